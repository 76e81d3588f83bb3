"""DLQ surge detection: threshold, minimum, sliding window, one episode per surge, its alert."""

from __future__ import annotations

from typing import Any

import pytest

from bifrost.schemas.alerts import AlertKind, Severity
from bifrost.streams.metrics.surge import DlqSurgeDetector, SurgeChange, SurgePolicy, surge_alert

T = 1_700_000_000.0


def detector(**policy: Any) -> DlqSurgeDetector:
    return DlqSurgeDetector(SurgePolicy(**policy))


def test_one_bad_record_in_ten_is_not_a_surge() -> None:
    d = detector(threshold=0.01, min_dead_letters=20)
    d.record(T, inputs=10, reasons={"bad_json": 1})
    assert d.check(T) is None and not d.in_surge


def test_a_share_at_or_below_the_threshold_is_not_a_surge() -> None:
    d = detector(threshold=0.01, min_dead_letters=5)
    d.record(T, inputs=10_000, reasons={"schema": 100})  # exactly 1%
    assert d.check(T) is None
    d.record(T + 1, inputs=1, reasons={"schema": 1})  # 101 / 10001 > 1%
    change = d.check(T + 1)
    assert change is not None and change.started and change.dead_letters == 101 and change.inputs == 10_001


def test_a_surge_starts_once_and_ends_once_with_the_top_reason() -> None:
    d = detector(threshold=0.01, min_dead_letters=20, window_seconds=60)
    changes: list[SurgeChange] = []
    for s in range(120):  # 2 minutes: 30 s healthy, 30 s of 5% too_late, then healthy again
        bad = 25 if 30 <= s < 60 else 0
        d.record(T + s, inputs=500, reasons={"too_late": bad, "schema": 1 if bad else 0})
        change = d.check(T + s + 0.5)
        if change:
            changes.append(change)
    started, ended = changes
    assert started.started and not ended.started
    # 26 bad of 500 a second against 15,000 good ones: above 1% of the minute after 8 bad seconds.
    assert started.episode_start == ended.episode_start == T + 37.5
    assert started.top_reason == ("too_late", 8 * 25) and started.reasons == {"too_late": 200, "schema": 8}
    # It ends when the bad second slid out far enough for the share to fall below half the threshold.
    assert T + 60 < ended.at <= T + 121


def test_hysteresis_a_share_hovering_at_the_threshold_does_not_flap() -> None:
    d = detector(threshold=0.01, min_dead_letters=10, window_seconds=10)
    starts = ends = 0
    for s in range(300):
        d.record(T + s, inputs=1000, reasons={"schema": 12 if s % 2 else 8})  # 0.8% .. 1.2%
        change = d.check(T + s)
        if change:
            starts += change.started
            ends += not change.started
    assert starts == 1 and ends == 0


def test_the_window_forgets_old_seconds_and_a_stop_in_traffic_ends_a_surge() -> None:
    d = detector(threshold=0.01, min_dead_letters=5, window_seconds=60)
    d.record(T, inputs=100, reasons={"bad_json": 50})
    surge = d.check(T)
    assert surge is not None and surge.started
    assert d.check(T + 59) is None  # still inside the window
    change = d.check(T + 61)  # nothing read since: the window is empty
    assert change is not None and not change.started and change.inputs == 0 and change.dead_letters == 0


def test_a_new_episode_after_the_end_has_a_new_alert_id() -> None:
    d = detector(threshold=0.01, min_dead_letters=5, window_seconds=10)
    ids = []
    for start in (T, T + 100):
        d.record(start, inputs=100, reasons={"schema": 10})
        first = d.check(start)
        last = d.check(start + 20)
        assert first and last and first.started and not last.started
        a, b = (surge_alert(c, subject="s", window_seconds=10) for c in (first, last))
        assert a.alert_id == b.alert_id and not a.resolved and b.resolved
        ids.append(a.alert_id)
    assert ids[0] != ids[1]


def test_surge_alert_carries_kind_severity_counts_and_a_hint() -> None:
    change = SurgeChange(
        started=True, episode_start=T, at=T, inputs=2000, dead_letters=300, reasons={"too_late": 250, "schema": 50}
    )
    alert = surge_alert(change, subject="app-ingest/host-6066", window_seconds=60)
    assert alert.kind is AlertKind.DLQ_SURGE and alert.severity is Severity.WARNING and not alert.resolved
    assert alert.evidence["top_reason"] == "too_late" and alert.evidence["top_reason_count"] == 250
    assert alert.evidence["reason.schema"] == 50 and alert.evidence["share"] == 0.15
    assert "300 of 2000" in alert.message and "15.0%" in alert.message and "BIFROST_GRACE_SECONDS" in alert.message
    resolved = surge_alert(
        SurgeChange(started=False, episode_start=T, at=T + 90, inputs=1000, dead_letters=0, reasons={}),
        subject="app-ingest/host-6066",
        window_seconds=60,
    )
    assert resolved.resolved and resolved.severity is Severity.INFO and resolved.alert_id == alert.alert_id


def test_ties_in_the_top_reason_are_broken_alphabetically() -> None:
    change = SurgeChange(
        started=True, episode_start=T, at=T, inputs=10, dead_letters=4, reasons={"schema": 2, "bad_json": 2}
    )
    assert change.top_reason == ("bad_json", 2)


@pytest.mark.parametrize(
    "policy", [dict(threshold=0.0), dict(threshold=1.5), dict(min_dead_letters=0), dict(window_seconds=0)]
)
def test_policy_refuses_values_that_cannot_work(policy: dict) -> None:
    with pytest.raises(ValueError):
        SurgePolicy(**policy)
