"""Dead-letter record: an input that failed to decode or validate, with why."""

from __future__ import annotations

import base64
import enum
from typing import Protocol

import msgspec


class RejectReason(str, enum.Enum):
    """Why an input was rejected; a stable code for metrics and alerting."""

    OVERSIZED = "oversized"
    BAD_JSON = "bad_json"
    SCHEMA = "schema"
    INVALID_VALUE = "invalid_value"
    TOO_LATE = "too_late"
    UNVERIFIED = "unverified"


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """What the DLQ holds for one rejected input: enough to replay or debug it.

    ``original_b64`` is the exact input bytes, base64-encoded so any payload survives
    JSON. ``source_topic``/``partition``/``offset`` identify it uniquely, so a consumer
    can de-duplicate records that a crashed worker re-sent.
    """

    source_topic: str
    partition: int
    offset: int
    reason: RejectReason
    error: str
    original_b64: str
    key_b64: str | None = None
    rejected_at: float = 0.0

    @property
    def original(self) -> bytes:
        """The rejected input, byte for byte."""
        return base64.b64decode(self.original_b64)


def b64(data: bytes | None) -> str | None:
    """Base64 text of ``data`` (``None`` stays ``None``)."""
    return None if data is None else base64.b64encode(data).decode("ascii")


class SourceRecord(Protocol):
    """What a dead letter needs of the rejected record (aiokafka's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def dead_letter(record: SourceRecord, reason: RejectReason, error: str, now: float) -> DeadLetter:
    """The DLQ record of one rejected input: its exact bytes, where it came from, and why."""
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason,
        error=error,
        original_b64=b64(record.value or b"") or "",
        key_b64=b64(record.key),
        rejected_at=now,
    )
