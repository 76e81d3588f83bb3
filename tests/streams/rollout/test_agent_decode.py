"""Garbage on window-partials and rollout-commands is skipped, not raised in the router loop."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.schemas.codec import encode
from bifrost.schemas.rollout import CommandKind, RolloutCommand
from bifrost.streams.aggregates.partial import WindowPartial, encode_partial
from bifrost.streams.rollout.agent import _command_decoder, _partial_decoder, decode_or_none

PARTIAL = WindowPartial(router_id="web", window_start=60, window_seconds=60, source_topic="ev", partition=0)
COMMAND = RolloutCommand(command_id="c1", router_id="web", kind=CommandKind.PAUSE)
GARBAGE: list[object] = [
    None,
    b"",
    b"{oops",
    b"[]",
    b"null",
    b"\xff\xfe",
    "text",
    42,
    b'{"a":' * 100_000,
    b"[" * 100_000,
    b'{"router_id":"web","window_start":1e400}',
    b'{"router_id":"web","window_start":0,"window_seconds":60,"source_topic":"ev","partition":0,'
    b'"arms":{"v1":{"latency_ms":{"relative_accuracy":1.0}}}}',  # ZeroDivisionError in __post_init__
    b'{"command_id":"","router_id":"web","kind":"pause"}',
    b'{"command_id":"c","router_id":"web","kind":"explode"}',
]


def test_valid_records_decode() -> None:
    assert decode_or_none(_partial_decoder, encode_partial(PARTIAL)) == (PARTIAL, "")
    assert decode_or_none(_command_decoder, encode(COMMAND)) == (COMMAND, "")


@pytest.mark.parametrize("raw", GARBAGE, ids=range(len(GARBAGE)))
@pytest.mark.parametrize("decoder", [_partial_decoder, _command_decoder], ids=["partial", "command"])
def test_garbage_is_reported_not_raised(decoder: msgspec.json.Decoder, raw: object) -> None:
    value, error = decode_or_none(decoder, raw)
    assert value is None and error and len(error) <= 500


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.none() | st.text(max_size=50))
def test_arbitrary_values_never_raise(raw: object) -> None:
    for value, error in (decode_or_none(_partial_decoder, raw), decode_or_none(_command_decoder, raw)):
        assert (value is None) == bool(error)
