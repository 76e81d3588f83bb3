"""Query parsing of the HTTP views: odd values are 400 with a reason, never 500 (pure)."""

from __future__ import annotations

import pytest

from bifrost.streams.web.views import (
    MAX_DURATION_SECONDS,
    BadDuration,
    BadQuery,
    metrics_query,
    parse_duration,
    parse_epoch,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("6h", 21600),
        ("7d", 604800),
        (" 15m ", 900),
        ("3650d", MAX_DURATION_SECONDS),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0", "not a duration"),
        ("", "not a duration"),
        ("-5m", "not a duration"),
        ("1.5h", "not a duration"),
        ("15w", "not a duration"),
        ("inf", "not a duration"),
        ("nan", "not a duration"),
        ("1e9", "not a duration"),
        ("١٢", "not a duration"),
        ("15m;drop", "not a duration"),
        ("3651d", "longer than 3650d"),
        ("9" * 40, "longer than 3650d"),
        ("9" * 10_000, "not a duration"),
    ],
)
def test_bad_durations_say_why(text: str, fragment: str) -> None:
    with pytest.raises(BadDuration) as info:
        parse_duration(text)
    assert fragment in str(info.value)
    assert len(str(info.value)) < 200  # a huge value is not echoed back whole


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1700000000", 1700000000),
        ("1700000000.9", 1700000000),
        ("1.7e9", 1700000000),
        ("4102444800", 4102444800),
    ],
)
def test_epochs(text: str, value: int) -> None:
    assert parse_epoch(text) == value


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("inf", "not finite"),
        ("-inf", "not finite"),
        ("nan", "not finite"),
        ("Infinity", "not finite"),
        ("1e309", "not finite"),
        ("-1", "negative"),
        ("-0.5", "negative"),
        ("1700000000000", "after 2100"),
        ("1e20", "after 2100"),
        ("abc", "not a number"),
        ("12:00", "not a number"),
        ("1" * 100, "not a number"),
        ("0x10", "not a number"),
    ],
)
def test_bad_epochs_say_why(text: str, fragment: str) -> None:
    with pytest.raises(BadQuery) as info:
        parse_epoch(text, "until")
    assert fragment in str(info.value) and str(info.value).startswith("until=")


def test_metrics_query_defaults_and_errors() -> None:
    assert metrics_query({}) == (900, None)
    assert metrics_query({"since": "1h", "until": ""}) == (3600, None)
    assert metrics_query({"since": "2d", "until": "1700000000"}) == (172800, 1700000000)
    with pytest.raises(BadQuery, match="^since: "):
        metrics_query({"since": "99999999999999d"})
    with pytest.raises(BadQuery, match="^until='inf' is not finite"):
        metrics_query({"until": "inf"})
