"""Poison records at the wire contract: every one becomes an InvalidEvent with a reason.

Deep nesting, out-of-range numbers, non-finite literals, bad UTF-8, non-objects,
tombstones and non-bytes values; bounds that keep accepted events writable to Parquet;
dead letters that always fit in a Kafka record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass

import msgspec
import orjson
import pyarrow as pa
import pytest

from bifrost.schemas import (
    DeadLetter,
    EventDecoder,
    FeedbackEvent,
    InvalidEvent,
    Limits,
    RejectReason,
    RoutingEvent,
    encode,
)
from bifrost.schemas.codec import decode_as
from bifrost.schemas.dlq import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_ERROR_BYTES,
    MAX_KEY_BYTES,
    MAX_PAYLOAD_BYTES_CEILING,
    clip_text,
    dead_letter,
)

NOW = 1_764_000_000.0
KAFKA_MAX_REQUEST = 1024 * 1024  # producer max.request.size and broker message.max.bytes defaults
ROUTING = EventDecoder(RoutingEvent, Limits(max_event_bytes=8 * 1024 * 1024))
FEEDBACK = EventDecoder(FeedbackEvent, Limits(max_event_bytes=8 * 1024 * 1024))


def valid(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "request_id": "req-1",
        "ts": NOW - 10,
        "router_id": "router-a",
        "arm": "v1",
        "model": "m",
        "provider": "p",
        "bucket": "cheap",
        "latency_ms": 120.5,
        "cost_usd": 0.001,
        "success": True,
    }
    event.update(overrides)
    return event


def with_raw_field(name: str, literal: bytes, base: dict[str, object] | None = None) -> bytes:
    """A valid event with one extra member whose JSON text is ``literal`` (may be invalid JSON)."""
    body = orjson.dumps(valid() if base is None else base)
    return body[:-1] + b',"' + name.encode() + b'":' + literal + b"}"


def nested(depth: int, *, closed: bool = True, kind: str = "array") -> bytes:
    if kind == "array":
        return b"[" * depth + (b"]" * depth if closed else b"")
    return b'{"a":' * depth + (b"1" + b"}" * depth if closed else b"")


def reason(raw: object, decoder: EventDecoder = ROUTING) -> tuple[RejectReason, str]:
    with pytest.raises(InvalidEvent) as info:
        decoder.decode(raw, now=NOW)  # type: ignore[arg-type]  # some tests hand over non-bytes on purpose
    assert info.value.message
    return info.value.reason, info.value.message


# --- nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 10_000, 100_000])
@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("closed", [True, False])
def test_deep_nesting_in_an_ignored_field_is_too_deep(depth: int, kind: str, closed: bool) -> None:
    raw = with_raw_field("ignored", nested(depth, closed=closed, kind=kind))
    code, message = reason(raw)
    assert code is RejectReason.TOO_DEEP and "nests deeper" in message


def test_deep_nesting_at_the_top_and_in_feedback_is_too_deep() -> None:
    assert reason(nested(5_000, kind="object"))[0] is RejectReason.TOO_DEEP
    assert reason(nested(5_000))[0] is RejectReason.SCHEMA  # an array is refused at its first byte
    feedback = {"request_id": "r", "ts": NOW, "router_id": "a", "arm": "v1", "model": "m", "outcome": "win"}
    assert reason(with_raw_field("x", nested(5_000), feedback), FEEDBACK)[0] is RejectReason.TOO_DEEP


def test_moderate_nesting_in_an_ignored_field_is_still_accepted() -> None:
    event = ROUTING.decode(with_raw_field("ignored", nested(100, kind="object")), now=NOW)
    assert event.request_id == "req-1"


def test_the_decoder_keeps_working_after_a_too_deep_record() -> None:
    for _ in range(3):
        assert reason(with_raw_field("x", nested(50_000)))[0] is RejectReason.TOO_DEEP
        assert ROUTING.decode(orjson.dumps(valid()), now=NOW).arm == "v1"


# --- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema_version", 2**70),
        ("schema_version", 2**63),
        ("schema_version", 2**64),
        ("schema_version", 1_000_001),
        ("schema_version", 0),
        ("schema_version", -(2**70)),
        ("schema_version", "9" * 5000),
        ("tokens_in", 2**64),
        ("tokens_out", 10**12 + 1),
        ("cluster_id", 2**70),
        ("http_status", 2**70),
        ("latency_ms", 2**70),
        ("cost_usd", 10**400),
        ("ts", 2**70),
    ],
)
def test_out_of_range_integers_are_schema_errors(field: str, value: int | str) -> None:
    raw = with_raw_field(field, str(value).encode(), {k: v for k, v in valid().items() if k != field})
    code, message = reason(raw)
    assert code is RejectReason.SCHEMA and field in message


def test_feedback_schema_version_is_bounded() -> None:
    feedback = {"request_id": "r", "ts": NOW, "router_id": "a", "arm": "v1", "model": "m", "outcome": "win"}
    assert reason(with_raw_field("schema_version", str(2**70).encode(), feedback), FEEDBACK)[0] is RejectReason.SCHEMA


def _scalar_types(struct: type[msgspec.Struct], kind: type) -> dict[str, list[object]]:
    """Field name → the ``kind`` types it may hold (through unions and metadata)."""
    info = msgspec.inspect.type_info(struct)
    assert isinstance(info, msgspec.inspect.StructType)

    def flatten(t: object) -> list[object]:
        if isinstance(t, msgspec.inspect.Metadata):
            return flatten(t.type)
        if isinstance(t, msgspec.inspect.UnionType):
            return [x for a in t.types for x in flatten(a)]
        return [t]

    found = {f.name: [t for t in flatten(f.type) if isinstance(t, kind)] for f in info.fields}
    return {name: types for name, types in found.items() if types}


@pytest.mark.parametrize("struct", [RoutingEvent, FeedbackEvent])
def test_every_integer_field_fits_a_signed_64_bit_column(struct: type[msgspec.Struct]) -> None:
    fields = _scalar_types(struct, msgspec.inspect.IntType)
    assert "schema_version" in fields
    for name, types in fields.items():
        for t in types:
            assert isinstance(t, msgspec.inspect.IntType)
            assert t.ge is not None and t.le is not None, f"{struct.__name__}.{name} is unbounded"
            assert -(2**63) <= t.ge <= t.le < 2**63, name


@pytest.mark.parametrize("struct", [RoutingEvent, FeedbackEvent])
def test_every_float_field_is_bounded(struct: type[msgspec.Struct]) -> None:
    fields = _scalar_types(struct, msgspec.inspect.FloatType)
    assert "latency_ms" in fields or struct is FeedbackEvent
    for name, types in fields.items():
        for t in types:
            assert isinstance(t, msgspec.inspect.FloatType)
            low = t.ge if t.ge is not None else t.gt
            high = t.le if t.le is not None else t.lt
            assert low is not None and high is not None and math.isfinite(high), name


def test_the_largest_valid_event_writes_to_parquet_as_int64() -> None:
    """What the warehouse sink does with an accepted event (2**70 used to overflow here)."""
    biggest = valid(
        schema_version=1_000_000,
        tokens_in=10**12,
        tokens_out=10**12,
        cluster_id=1_000_000,
        http_status=599,
        ts=NOW,
        latency_ms=86_400_000,
        cost_usd=1e12,
        features=[1.7e308, -1.7e308],
    )
    event = ROUTING.decode(orjson.dumps(biggest), now=NOW)
    row = msgspec.to_builtins(event)
    row["_partition"], row["_offset"] = 0, 2**62
    table = pa.Table.from_pylist([row, msgspec.to_builtins(ROUTING.decode(orjson.dumps(valid()), now=NOW))])
    assert table.schema.field("schema_version").type == pa.int64()
    assert table.column("tokens_in").to_pylist()[0] == 10**12


@pytest.mark.parametrize("literal", [b"NaN", b"nan", b"Infinity", b"-Infinity", b"inf", b"1e400", b"-1e400"])
@pytest.mark.parametrize("field", ["latency_ms", "cost_usd", "quality", "propensity", "ts"])
def test_non_finite_floats_never_decode(field: str, literal: bytes) -> None:
    raw = with_raw_field(field, literal, {k: v for k, v in valid().items() if k != field})
    assert reason(raw)[0] in {RejectReason.BAD_JSON, RejectReason.SCHEMA}


@pytest.mark.parametrize("literal", [b"[NaN]", b"[Infinity]", b"[1e400]", b"[-1e400]", b"[1," + b"9" * 400 + b"]"])
def test_features_are_finite(literal: bytes) -> None:
    """``features`` has no value bounds, but msgspec's JSON decoder never yields inf or nan."""
    assert reason(with_raw_field("features", literal))[0] in {RejectReason.BAD_JSON, RejectReason.SCHEMA}


def test_huge_but_finite_features_are_accepted() -> None:
    event = ROUTING.decode(with_raw_field("features", b"[1.7976931348623157e308,-1e300,5e-324]"), now=NOW)
    assert all(math.isfinite(x) for x in event.features)


def test_huge_numbers_in_ignored_fields_are_ignored() -> None:
    assert ROUTING.decode(with_raw_field("x", b"1e400"), now=NOW).arm == "v1"
    assert ROUTING.decode(with_raw_field("x", b"9" * 20_000), now=NOW).arm == "v1"


# --- text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps(valid()).replace(b'"arm":"v1"', b'"arm":"\xff\xfe"'),
        orjson.dumps(valid()).replace(b'"arm":"v1"', b'"arm":"\xed\xa0\x80"'),  # UTF-8-encoded surrogate
        b"\xff" + orjson.dumps(valid()),
        b"\xef\xbb\xbf" + orjson.dumps(valid()),  # a byte-order mark
    ],
)
def test_invalid_utf8_is_bad_json(raw: bytes) -> None:
    assert reason(raw)[0] is RejectReason.BAD_JSON


def test_invalid_utf8_inside_an_ignored_string_is_not_kept() -> None:
    """msgspec skips ignored members without validating their text; nothing of it is kept."""
    event = ROUTING.decode(with_raw_field("x", b'"\xff\xfe"'), now=NOW)
    assert "x" not in msgspec.structs.asdict(event)


@pytest.mark.parametrize("where", ["arm", "ignored"])
@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udc00", b"\\ud800\\u0041"])
def test_lone_surrogates_are_bad_json(where: str, escape: bytes) -> None:
    if where == "arm":
        raw = orjson.dumps(valid()).replace(b'"arm":"v1"', b'"arm":"' + escape + b'"')
    else:
        raw = with_raw_field("ignored", b'"' + escape + b'"')
    assert reason(raw)[0] is RejectReason.BAD_JSON


def test_a_valid_surrogate_pair_and_control_characters_are_text() -> None:
    raw = orjson.dumps(valid()).replace(b'"arm":"v1"', b'"arm":"\\ud83d\\ude00\\u0000"')
    assert ROUTING.decode(raw, now=NOW).arm == "\U0001f600\x00"


def test_duplicate_keys_take_the_last_value() -> None:
    """As in most JSON parsers; detecting duplicates would cost a second parse."""
    raw = with_raw_field("arm", b'"v2"')
    assert raw.count(b'"arm"') == 2
    assert ROUTING.decode(raw, now=NOW).arm == "v2"
    assert reason(with_raw_field("latency_ms", b"-1"))[0] is RejectReason.SCHEMA


# --- shapes and types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"[]", b"42", b'"text"', b"null", b"true", b"-0.0", b"[" + orjson.dumps(valid()) + b"]"]
)
def test_non_object_json_is_a_schema_error(raw: bytes) -> None:
    assert reason(raw)[0] is RejectReason.SCHEMA


@pytest.mark.parametrize("raw", [b"", b" ", b"\x00", b"{", b"}", orjson.dumps(valid()) + b"{}", b"\x00" * 1000])
def test_truncated_or_trailing_input_is_bad_json(raw: bytes) -> None:
    assert reason(raw)[0] is RejectReason.BAD_JSON


def test_a_tombstone_is_bad_json() -> None:
    assert reason(None)[0] is RejectReason.BAD_JSON


@pytest.mark.parametrize("value", ["{}", 42, 1.5, ["a"], {"a": 1}, object()])
def test_non_bytes_values_are_undecodable(value: object) -> None:
    code, message = reason(value)
    assert code is RejectReason.UNDECODABLE and "not bytes" in message


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_bytes_like_values_decode(wrap: type) -> None:
    assert ROUTING.decode(wrap(orjson.dumps(valid())), now=NOW).arm == "v1"


def test_any_unexpected_decoder_error_is_undecodable() -> None:
    class Odd(msgspec.Struct):
        ts: float

        def __post_init__(self) -> None:
            raise ArithmeticError("boom")  # not a ValueError/TypeError: msgspec lets it through

    code, message = reason(b'{"ts": 1}', EventDecoder(Odd))
    assert code is RejectReason.UNDECODABLE and "ArithmeticError" in message and "boom" in message


def test_oversized_is_checked_before_parsing_even_when_deep() -> None:
    decoder = EventDecoder(RoutingEvent)  # 64 KiB
    assert reason(nested(100_000), decoder)[0] is RejectReason.OVERSIZED


# --- dead letters -------------------------------------------------------------------------


@dataclass
class Record:
    topic: str = "ev"
    partition: int = 3
    offset: int = 17
    key: bytes | None = None
    value: bytes | None = None


@pytest.mark.parametrize("size", [900_000, 1024 * 1024, 5 * 1024 * 1024])
def test_the_dead_letter_of_a_large_payload_fits_a_kafka_record(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    letter = dead_letter(Record(value=payload, key=b"k"), RejectReason.OVERSIZED, "too big", NOW)
    encoded = encode(letter)
    assert len(encoded) < 512 * 1024  # half of Kafka's default limit
    assert letter.truncated and letter.original_size == size
    assert letter.original == payload[:DEFAULT_MAX_PAYLOAD_BYTES]
    assert letter.original_sha256 == hashlib.sha256(payload).hexdigest()
    assert decode_as(encoded, DeadLetter) == letter


def test_the_worst_dead_letter_still_fits() -> None:
    """5 MB value, 1 MB key, a 1 MB error of escaped control characters, an absurd cap."""
    letter = dead_letter(
        Record(value=b"\x00" * 5_000_000, key=b"\xff" * 1_000_000),
        RejectReason.BAD_JSON,
        "\x01" * 1_000_000,
        NOW,
        max_payload_bytes=10**9,
    )
    encoded = encode(letter)
    assert len(encoded) < 0.75 * KAFKA_MAX_REQUEST
    assert len(letter.original) == MAX_PAYLOAD_BYTES_CEILING
    assert letter.key_truncated and len(base64.b64decode(letter.key_b64 or "")) == MAX_KEY_BYTES
    assert len(letter.error.encode()) <= MAX_ERROR_BYTES


def test_a_small_payload_is_kept_whole() -> None:
    letter = dead_letter(Record(value=b"{oops", key=b"key"), RejectReason.BAD_JSON, "malformed", NOW)
    assert letter.original == b"{oops" and not letter.truncated and not letter.key_truncated
    assert letter.original_size == 5 and letter.original_sha256 == hashlib.sha256(b"{oops").hexdigest()
    assert base64.b64decode(letter.key_b64 or "") == b"key"


def test_the_payload_cap_is_configurable_and_zero_keeps_only_the_digest() -> None:
    letter = dead_letter(Record(value=b"abcdef"), RejectReason.SCHEMA, "x", NOW, max_payload_bytes=4)
    assert letter.original == b"abcd" and letter.truncated and letter.original_size == 6
    empty = dead_letter(Record(value=b"abcdef"), RejectReason.SCHEMA, "x", NOW, max_payload_bytes=0)
    assert empty.original == b"" and empty.truncated and empty.original_sha256 == hashlib.sha256(b"abcdef").hexdigest()


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (None, b""),
        ("t\u00e9xt\ud800", "t\u00e9xt\ud800".encode("utf-8", "surrogatepass")),
        (bytearray(b"ab"), b"ab"),
        (memoryview(b"cd"), b"cd"),
        (42, b"42"),
    ],
)
def test_a_dead_letter_never_fails_on_its_input(value: object, kept: bytes) -> None:
    # Deliberately not bytes: what a misconfigured client may hand over.
    record = Record(value=value, key="k\ud800")  # type: ignore[arg-type]
    letter = dead_letter(record, RejectReason.UNDECODABLE, "why \ud800", NOW)
    assert letter.original == kept
    assert json.loads(encode(letter))["error"] == "why ?"


def test_old_dead_letters_still_decode() -> None:
    old = (
        b'{"source_topic":"ev","partition":0,"offset":1,"reason":"bad_json","error":"e",'
        b'"original_b64":"e29vcHM=","key_b64":null,"rejected_at":1.0}'
    )
    letter = decode_as(old, DeadLetter)
    assert letter.original == b"{oops" and letter.original_size == -1 and letter.original_sha256 == ""
    assert not letter.truncated and not letter.key_truncated


def test_clip_text_cuts_on_character_boundaries() -> None:
    assert clip_text("short", 100) == "short"
    clipped = clip_text("\u00e9" * 5000, 2048)
    assert len(clipped.encode()) <= 2048 and clipped.endswith("…")
    assert clip_text("a\ud800b", 100) == "a?b"


def test_the_new_reasons_are_stable_codes() -> None:
    assert RejectReason.TOO_DEEP.value == "too_deep"
    assert RejectReason.UNDECODABLE.value == "undecodable"


# --- JSON Schema export ------------------------------------------------------------------


def _walk_refs(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _walk_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_refs(value, found)


@pytest.mark.parametrize("name", ["routing-event", "feedback", "dlq"])
def test_json_schema_export_is_self_consistent_json(name: str) -> None:
    from bifrost.schemas import json_schema

    schema = json.loads(orjson.dumps(json_schema(name)))
    refs: set[str] = set()
    _walk_refs(schema, refs)
    assert refs and all(ref.removeprefix("#/$defs/") in schema["$defs"] for ref in refs)
    assert schema["$schema"].endswith("2020-12/schema")


def test_json_schema_documents_the_new_bounds_and_fields() -> None:
    from bifrost.schemas import json_schema

    routing = json_schema("routing-event")["$defs"]["RoutingEvent"]["properties"]
    assert routing["schema_version"]["minimum"] == 1 and routing["schema_version"]["maximum"] == 1_000_000
    dlq = json_schema("dlq")["$defs"]
    assert {"original_size", "original_sha256", "truncated", "key_truncated"} <= set(dlq["DeadLetter"]["properties"])
    assert not {"original_size", "original_sha256", "truncated", "key_truncated"} & set(dlq["DeadLetter"]["required"])
    assert {"too_deep", "undecodable"} <= set(dlq["RejectReason"]["enum"])
