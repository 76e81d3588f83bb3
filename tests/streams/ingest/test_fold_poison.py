"""The fold never raises on what producers send: each poison record is one dead letter.

Every kind of poison is mixed with valid events; counts + dead letters must equal the
number of records, each dead letter must carry the expected reason, and every dead
letter must fit in a Kafka record.
"""

from __future__ import annotations

import hashlib
import random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bifrost.schemas import Limits, RejectReason, encode
from bifrost.schemas.dlq import MAX_PAYLOAD_BYTES_CEILING
from bifrost.streams.ingest.fold import BatchFolder, InputRecord, WindowPolicy
from tests.streams.ingest.fold_store import DictStore as Store
from tests.streams.ingest.test_fold import NOW, T0, States, feedback, routing

LIMIT = 512 * 1024  # above 100,000 levels of nesting (200 KB), below the 900 KB payload
MB = 1024 * 1024


def with_raw_field(body: bytes, name: str, literal: bytes) -> bytes:
    return body[:-1] + b',"' + name.encode() + b'":' + literal + b"}"


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# (description, topic, key, value, expected reason or None when it must be accepted)
Poison = tuple[str, str, object, object, RejectReason | None]
POISON: list[Poison] = [
    ("deep 1,000", "ev", None, with_raw_field(routing(T0), "x", deep(1_000)), RejectReason.TOO_DEEP),
    ("deep 100,000", "ev", None, with_raw_field(routing(T0), "x", deep(100_000)), RejectReason.TOO_DEEP),
    (
        "deep object, unclosed",
        "ev",
        None,
        with_raw_field(routing(T0), "x", b'{"a":' * 20_000)[:-1],
        RejectReason.TOO_DEEP,
    ),
    ("deep feedback", "fb", None, with_raw_field(feedback(T0), "x", deep(3_000)), RejectReason.TOO_DEEP),
    ("900 KB", "ev", None, with_raw_field(routing(T0), "pad", b'"' + b"x" * 900_000 + b'"'), RejectReason.OVERSIZED),
    ("5 MB", "ev", None, b"\xff" * (5 * MB), RejectReason.OVERSIZED),
    (
        "schema_version 2**70",
        "ev",
        None,
        with_raw_field(routing(T0), "schema_version", str(2**70).encode()),
        RejectReason.SCHEMA,
    ),
    ("schema_version 0", "ev", None, routing(T0, schema_version=0), RejectReason.SCHEMA),
    (
        "tokens 2**64",
        "ev",
        None,
        with_raw_field(routing(T0), "tokens_in", b"18446744073709551616"),
        RejectReason.SCHEMA,
    ),
    ("cluster -1", "ev", None, routing(T0, cluster_id=-1), RejectReason.SCHEMA),
    (
        "feedback schema_version 2**70",
        "fb",
        None,
        with_raw_field(feedback(T0), "schema_version", str(2**70).encode()),
        RejectReason.SCHEMA,
    ),
    ("NaN", "ev", None, routing(T0).replace(b'"latency_ms":100.0', b'"latency_ms":NaN'), RejectReason.BAD_JSON),
    ("Infinity", "ev", None, routing(T0).replace(b'"cost_usd":0.01', b'"cost_usd":Infinity'), RejectReason.BAD_JSON),
    ("-Infinity feature", "ev", None, with_raw_field(routing(T0), "features", b"[-Infinity]"), RejectReason.BAD_JSON),
    ("1e400", "ev", None, routing(T0).replace(b'"latency_ms":100.0', b'"latency_ms":1e400'), RejectReason.SCHEMA),
    ("1e400 feature", "ev", None, with_raw_field(routing(T0), "features", b"[1e400]"), RejectReason.SCHEMA),
    ("invalid UTF-8", "ev", None, routing(T0).replace(b'"arm":"v1"', b'"arm":"\xc3\x28"'), RejectReason.BAD_JSON),
    ("lone surrogate", "ev", None, routing(T0).replace(b'"arm":"v1"', b'"arm":"\\ud800"'), RejectReason.BAD_JSON),
    ("lone surrogate, ignored", "ev", None, with_raw_field(routing(T0), "x", b'"\\udfff"'), RejectReason.BAD_JSON),
    ("array", "ev", None, b"[1,2,3]", RejectReason.SCHEMA),
    ("number", "ev", None, b"42", RejectReason.SCHEMA),
    ("string", "fb", None, b'"hello"', RejectReason.SCHEMA),
    ("null", "ev", None, b"null", RejectReason.SCHEMA),
    ("tombstone", "ev", None, None, RejectReason.BAD_JSON),
    ("empty", "fb", None, b"", RejectReason.BAD_JSON),
    ("text value", "ev", None, routing(T0).decode(), RejectReason.UNDECODABLE),
    ("1 MB key, bad value", "ev", b"k" * MB, b"{oops", RejectReason.BAD_JSON),
    ("1 MB key, valid value", "ev", b"k" * MB, routing(T0 + 1), None),
    ("duplicate keys", "ev", None, with_raw_field(routing(T0 + 2), "arm", b'"v2"'), None),
    ("huge ignored number", "ev", None, with_raw_field(routing(T0 + 3), "x", b"9" * 10_000), None),
]


def mixed(poison: list[Poison], valid_between: int = 3) -> tuple[list[InputRecord], list[RejectReason | None]]:
    """Poison records interleaved with valid ones; offsets per (topic, partition) in order."""
    offsets = {"ev": 0, "fb": 0}
    records: list[InputRecord] = []
    expected: list[RejectReason | None] = []

    def add(topic: str, key: object, value: object, reason: RejectReason | None) -> None:
        # arg-type: a poison value may be what no Kafka record holds (text), to check the fold survives it.
        records.append(InputRecord(topic, 0, offsets[topic], key, value))  # type: ignore[arg-type]
        offsets[topic] += 1
        expected.append(reason)

    for i, (_, topic, key, value, reason) in enumerate(poison):
        for j in range(valid_between):
            add("ev", None, routing(T0 + 10 + i + j / 10, arm="v1" if j % 2 else "v2"), None)
        add("fb", None, feedback(T0 + i), None)
        add(topic, key, value, reason)
    return records, expected


def folder(limits: Limits = Limits(max_event_bytes=LIMIT), **kwargs: int) -> BatchFolder:
    return BatchFolder(routing_topic="ev", feedback_topic="fb", policy=WindowPolicy(), limits=limits, **kwargs)


@pytest.mark.parametrize(("name", "topic", "key", "value", "reason"), POISON, ids=[p[0] for p in POISON])
def test_each_poison_costs_one_dead_letter(
    name: str, topic: str, key: object, value: object, reason: RejectReason | None
) -> None:
    records, expected = mixed([(name, topic, key, value, reason)])
    result = folder().fold(records, load=Store().load, states={}, now=NOW)
    assert sum(result.accepted.values()) + len(result.dead_letters) == len(records)
    assert not result.duplicates
    assert [d.reason for d in result.dead_letters] == [r for r in expected if r is not None]
    for letter in result.dead_letters:
        assert len(encode(letter)) < MB // 2
        assert (letter.source_topic, letter.offset) == (records[-1].topic, records[-1].offset)


def test_all_poison_in_one_batch_with_valid_events() -> None:
    records, expected = mixed(POISON)
    store, states = Store(), States()
    result = folder().fold(records, load=store.load, states=states, now=NOW)
    store.apply(result.changed, result.expired)
    assert sum(result.accepted.values()) + len(result.dead_letters) == len(records)
    assert [d.reason for d in result.dead_letters] == [r for r in expected if r is not None]
    accepted_ev = sum(1 for r, e in zip(records, expected) if r.topic == "ev" and e is None)
    # Feedback adds quality, not requests: the arms' counts are the accepted routing events.
    assert result.accepted["ev"] == accepted_ev == store.count("v1") + store.count("v2")
    by_offset = {(d.source_topic, d.offset): d for d in result.dead_letters}
    for record, reason in zip(records, expected):
        letter = by_offset.get((record.topic, record.offset))
        assert (letter is None) == (reason is None)
        if letter is not None and isinstance(record.value, bytes):
            assert letter.original_size == len(record.value)
            assert letter.original_sha256 == hashlib.sha256(record.value).hexdigest()
            assert letter.truncated == (len(record.value) > 256 * 1024)


def test_with_the_default_64_kib_limit_the_large_ones_are_oversized() -> None:
    records, expected = mixed(POISON)
    result = BatchFolder(routing_topic="ev", feedback_topic="fb").fold(records, load=Store().load, states={}, now=NOW)
    assert sum(result.accepted.values()) + len(result.dead_letters) == len(records)
    reasons = {d.offset: d.reason for d in result.dead_letters if d.source_topic == "ev"}
    big = [r.offset for r in records if r.topic == "ev" and isinstance(r.value, bytes) and len(r.value) > 64 * 1024]
    assert big and all(reasons[o] is RejectReason.OVERSIZED for o in big)


def test_the_duplicate_key_event_counts_under_the_last_arm() -> None:
    store = Store()
    value = with_raw_field(routing(T0), "arm", b'"v9"')
    result = folder().fold([InputRecord("ev", 0, 0, None, value)], load=store.load, states={}, now=NOW)
    store.apply(result.changed, result.expired)
    assert store.count("v9") == 1 and store.count("v1") == 0


def test_the_dlq_payload_cap_is_passed_through() -> None:
    value = b"\x00" * 100_000
    result = folder(dlq_max_payload_bytes=1000).fold(
        [InputRecord("ev", 0, 0, b"k", value)], load=Store().load, states={}, now=NOW
    )
    (letter,) = result.dead_letters
    assert letter.truncated and letter.original == value[:1000] and letter.original_size == 100_000


def test_too_late_dead_letters_are_capped_too() -> None:
    late = with_raw_field(routing(T0 - 10_000), "pad", b'"' + b"y" * 5000 + b'"')
    records = [InputRecord("ev", 0, 0, None, routing(T0)), InputRecord("ev", 0, 1, None, late)]
    result = folder(dlq_max_payload_bytes=100).fold(records, load=Store().load, states={}, now=NOW)
    (letter,) = result.dead_letters
    assert letter.reason is RejectReason.TOO_LATE and letter.truncated and len(letter.original) == 100


@pytest.mark.parametrize("cap", [-1, MAX_PAYLOAD_BYTES_CEILING + 1])
def test_a_payload_cap_that_would_not_fit_kafka_is_refused_at_startup(cap: int) -> None:
    with pytest.raises(ValueError, match="dlq_max_payload_bytes"):
        folder(dlq_max_payload_bytes=cap)


# --- property: arbitrary input never raises -------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FIELDS = [
    "request_id",
    "ts",
    "router_id",
    "arm",
    "model",
    "provider",
    "bucket",
    "latency_ms",
    "cost_usd",
    "success",
    "cluster_id",
    "features",
    "tokens_in",
    "http_status",
    "propensity",
    "quality",
    "win",
    "schema_version",
    "grade",
    "outcome",
    "unknown",
]


@st.composite
def mutated_event(draw: st.DrawFn) -> bytes:
    """A valid routing or feedback event with one field replaced by any JSON value, or cut short."""
    base = orjson.loads(draw(st.sampled_from([routing(T0), feedback(T0)])))
    base[draw(st.sampled_from(FIELDS))] = draw(json_values)
    raw = orjson.dumps(base, option=orjson.OPT_NON_STR_KEYS) if _finite(base) else orjson.dumps(str(base))
    cut = draw(st.integers(0, len(raw)))
    return raw if draw(st.booleans()) else raw[:cut]


def _finite(value: object) -> bool:
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return True


values = st.one_of(
    st.binary(max_size=300),
    mutated_event(),
    st.builds(lambda n, c: c * n, st.integers(0, 5000), st.sampled_from([b"[", b"{", b'{"a":', b"\\", b'"'])),
    st.sampled_from([routing(T0), routing(T0 + 30), feedback(T0), None]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["ev", "fb"]), st.none() | st.binary(max_size=64), values), min_size=1, max_size=30
    )
)
def test_the_fold_never_raises_on_arbitrary_records(batch: list[tuple[str, bytes | None, bytes | None]]) -> None:
    offsets = {"ev": 0, "fb": 0}
    records = []
    for topic, key, value in batch:
        records.append(InputRecord(topic, 0, offsets[topic], key, value))
        offsets[topic] += 1
    result = folder(Limits()).fold(records, load=Store().load, states={}, now=NOW)
    assert sum(result.accepted.values()) + len(result.dead_letters) + sum(result.duplicates.values()) == len(records)
    assert not result.duplicates
    for letter in result.dead_letters:
        assert letter.reason in set(RejectReason)
        encode(letter)


def test_random_byte_flips_of_valid_events_never_raise() -> None:
    rng = random.Random(7)
    base = [routing(T0 + i) for i in range(20)] + [feedback(T0 + i) for i in range(5)]
    records = []
    for offset in range(5000):
        raw = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        records.append(InputRecord("ev", 0, offset, None, bytes(raw)))
    result = folder().fold(records, load=Store().load, states={}, now=NOW)
    assert sum(result.accepted.values()) + len(result.dead_letters) == len(records)
