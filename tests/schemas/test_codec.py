"""Wire contract: round trips, rejections with reasons, unknown fields ignored."""

from __future__ import annotations

import math

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.schemas import (
    Bucket,
    EventDecoder,
    FeedbackEvent,
    InvalidEvent,
    Limits,
    RejectReason,
    RoutingEvent,
    encode,
)
from bifrost.schemas.events import Outcome

NOW = 1_764_000_000.0


def valid_event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "request_id": "req-1",
        "ts": NOW - 10,
        "router_id": "router-a",
        "arm": "v1",
        "model": "small-fast",
        "provider": "acme",
        "bucket": "cheap",
        "latency_ms": 120.5,
        "cost_usd": 0.0012,
        "success": True,
    }
    event.update(overrides)
    return event


DECODER = EventDecoder(RoutingEvent)


def decode(obj: object) -> RoutingEvent:
    return DECODER.decode(orjson.dumps(obj), now=NOW)


def reason_of(raw: bytes, decoder: EventDecoder = DECODER) -> RejectReason:
    with pytest.raises(InvalidEvent) as info:
        decoder.decode(raw, now=NOW)
    assert info.value.message  # every rejection says why
    return info.value.reason


def test_valid_event_decodes_with_defaults() -> None:
    event = decode(valid_event())
    assert event.bucket is Bucket.CHEAP
    assert event.tokens_in == 0 and event.win is None and event.schema_version == 1


def test_unknown_fields_are_ignored() -> None:
    event = decode(valid_event(some_future_field={"x": 1}, schema_version=2))
    assert event.request_id == "req-1" and event.schema_version == 2


@pytest.mark.parametrize(
    ("raw", "reason", "fragment"),
    [
        (b"{not json", RejectReason.BAD_JSON, "malformed"),
        (b"", RejectReason.BAD_JSON, ""),
        (b"[1,2]", RejectReason.SCHEMA, "object"),
        (orjson.dumps({k: v for k, v in valid_event().items() if k != "arm"}), RejectReason.SCHEMA, "arm"),
        (orjson.dumps(valid_event(latency_ms=-1)), RejectReason.SCHEMA, "latency_ms"),
        (orjson.dumps(valid_event(success="yes")), RejectReason.SCHEMA, "success"),
        (orjson.dumps(valid_event(bucket="tiny")), RejectReason.SCHEMA, "bucket"),
        (orjson.dumps(valid_event(propensity=0)), RejectReason.SCHEMA, "propensity"),
        (orjson.dumps(valid_event(ts=NOW + 3600)), RejectReason.INVALID_VALUE, "future"),
        (orjson.dumps(valid_event(ts=NOW * 1000)), RejectReason.SCHEMA, "ts"),
        (
            b'{"request_id":"a","ts":1,"router_id":"r","arm":"a","model":"m","provider":"p","bucket":"cheap","latency_ms":1,"cost_usd":1e999,"success":true}',
            RejectReason.SCHEMA,
            "cost_usd",
        ),
        (
            b'{"request_id":"a","ts":1,"router_id":"r","arm":"a","model":"m","provider":"p","bucket":"cheap","latency_ms":1,"cost_usd":NaN,"success":true}',
            RejectReason.BAD_JSON,
            "malformed",
        ),
    ],
)
def test_rejections_name_their_reason(raw: bytes, reason: RejectReason, fragment: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        DECODER.decode(raw, now=NOW)
    assert info.value.reason is reason
    assert fragment in info.value.message


def test_oversized_payload_is_rejected_before_parsing() -> None:
    decoder = EventDecoder(RoutingEvent, Limits(max_event_bytes=1000))
    raw = orjson.dumps(valid_event(pad="x" * 2000))
    assert reason_of(raw, decoder) is RejectReason.OVERSIZED


def test_tombstone_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as info:
        DECODER.decode(None, now=NOW)
    assert info.value.reason is RejectReason.BAD_JSON


def test_feedback_needs_a_signal() -> None:
    decoder = EventDecoder(FeedbackEvent)
    base = {"request_id": "r", "ts": NOW, "router_id": "a", "arm": "v1", "model": "m"}
    assert reason_of(orjson.dumps(base), decoder) is RejectReason.SCHEMA
    ok = decoder.decode(orjson.dumps({**base, "outcome": "win"}), now=NOW)
    assert ok.outcome is Outcome.WIN


finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
labels = st.text(min_size=1, max_size=20)
events = st.builds(
    RoutingEvent,
    request_id=labels,
    ts=st.floats(min_value=0, max_value=NOW, allow_nan=False),
    router_id=labels,
    arm=labels,
    model=labels,
    provider=labels,
    bucket=st.sampled_from(list(Bucket)),
    latency_ms=finite,
    cost_usd=finite,
    success=st.booleans(),
    cluster_id=st.integers(0, 1000),
    features=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=16),
    tokens_in=st.integers(0, 10**6),
    quality=st.none() | st.floats(0, 1),
    win=st.none() | st.sampled_from(list(Outcome)),
    propensity=st.none() | st.floats(min_value=1e-6, max_value=1),
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_round_trip(event: RoutingEvent) -> None:
    assert DECODER.decode(encode(event), now=NOW) == event


@settings(max_examples=200, deadline=None)
@given(
    events,
    st.sampled_from(["latency_ms", "cost_usd", "tokens_in", "cluster_id"]),
    st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.text(max_size=5), st.booleans(), st.none()),
)
def test_any_bad_numeric_field_is_rejected(event: RoutingEvent, field: str, bad: object) -> None:
    obj = msgspec.to_builtins(event)
    obj[field] = bad
    raw = orjson.dumps(obj)
    assert reason_of(raw) is RejectReason.SCHEMA


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(raw: bytes) -> None:
    try:
        DECODER.decode(raw, now=NOW)
    except InvalidEvent as exc:
        assert exc.reason in set(RejectReason)


def test_json_schema_documents_constraints() -> None:
    from bifrost.schemas import json_schema

    schema = json_schema("routing-event")
    props = schema["$defs"]["RoutingEvent"]["properties"]
    assert props["latency_ms"]["minimum"] == 0
    assert set(schema["$defs"]["RoutingEvent"]["required"]) >= {"request_id", "ts", "arm", "latency_ms"}
    assert math.isfinite(props["cost_usd"]["maximum"])
