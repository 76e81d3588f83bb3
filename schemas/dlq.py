"""Dead-letter record: an input that failed to decode or validate, with why.

A dead letter must itself always be writable: whatever a producer sent (a record just
under the broker's 1 MB limit, a 1 MB key, a multi-kilobyte error message), the encoded
:class:`DeadLetter` stays far below Kafka's default ``max.request.size`` (1 MiB). The
payload and key are kept up to a cap, with the payload's full size and sha256, and the
error message is clipped.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from typing import Protocol

import msgspec

DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
# Whatever the setting says, a dead letter never keeps more of the payload than this: its
# base64 (4/3 of it) plus the capped key and error stays well under 1 MiB.
MAX_PAYLOAD_BYTES_CEILING = 512 * 1024
MAX_KEY_BYTES = 4 * 1024
MAX_ERROR_BYTES = 2 * 1024


class RejectReason(str, enum.Enum):
    """Why an input was rejected; a stable code for metrics and alerting."""

    OVERSIZED = "oversized"
    BAD_JSON = "bad_json"
    SCHEMA = "schema"
    INVALID_VALUE = "invalid_value"
    TOO_LATE = "too_late"
    UNVERIFIED = "unverified"
    TOO_DEEP = "too_deep"
    UNDECODABLE = "undecodable"
    UNAUTHORIZED = "unauthorized"  # a rollout command that failed authentication (which check: in the error)
    # an alert a webhook endpoint did not accept after the last retry (endpoint, status: in the error)
    UNDELIVERED = "undelivered"


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """What the DLQ holds for one rejected input: enough to replay or debug it.

    ``original_b64`` is the input bytes, base64-encoded so any payload survives JSON; it
    holds only the first bytes when ``truncated`` is set, and ``original_size`` and
    ``original_sha256`` always describe the whole input. ``key_b64`` likewise holds at
    most the first 4 KiB of the key (``key_truncated``). ``source_topic``/``partition``/
    ``offset`` identify the input uniquely, so a consumer can de-duplicate records that a
    crashed worker re-sent.

    Records written before the size fields existed decode with ``original_size`` -1 and
    an empty ``original_sha256``; their ``original_b64`` is complete.
    """

    source_topic: str
    partition: int
    offset: int
    reason: RejectReason
    error: str
    original_b64: str
    key_b64: str | None = None
    rejected_at: float = 0.0
    original_size: int = -1
    original_sha256: str = ""
    truncated: bool = False
    key_truncated: bool = False

    @property
    def original(self) -> bytes:
        """The rejected input as kept: byte for byte, or its first bytes if ``truncated``."""
        return base64.b64decode(self.original_b64)


def b64(data: bytes | None) -> str | None:
    """Base64 text of ``data`` (``None`` stays ``None``)."""
    return None if data is None else base64.b64encode(data).decode("ascii")


def as_bytes(data: object) -> bytes:
    """The bytes of a record value or key, whatever a misconfigured client handed over.

    ``None`` is empty, bytes-like objects are copied, text is UTF-8 (lone surrogates
    kept), anything else is its ``repr`` — a dead letter never fails on its input.
    """
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return repr(data).encode("utf-8", "backslashreplace")


def clip_text(text: str, max_bytes: int) -> str:
    """``text`` as at most ``max_bytes`` of UTF-8, ending in "…" when cut.

    Lone surrogates (which JSON encoders refuse) become ``?``; no character is split.
    """
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8")
    return data[: max(0, max_bytes - 3)].decode("utf-8", "ignore") + "…"


class SourceRecord(Protocol):
    """What a dead letter needs of the rejected record (aiokafka's ConsumerRecord fits).

    Read-only members, so frozen records (the fold's ``InputRecord``) fit too.
    """

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def dead_letter(
    record: SourceRecord,
    reason: RejectReason,
    error: str,
    now: float,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> DeadLetter:
    """The DLQ record of one rejected input: its bytes, where it came from, and why.

    At most ``max_payload_bytes`` of the payload are kept (never more than
    :data:`MAX_PAYLOAD_BYTES_CEILING`), at most :data:`MAX_KEY_BYTES` of the key and
    :data:`MAX_ERROR_BYTES` of the message, so the record always fits in Kafka.
    """
    value = as_bytes(record.value)
    keep = max(0, min(max_payload_bytes, MAX_PAYLOAD_BYTES_CEILING))
    key = None if record.key is None else as_bytes(record.key)
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason,
        error=clip_text(error, MAX_ERROR_BYTES),
        original_b64=b64(value[:keep]) or "",
        key_b64=None if key is None else b64(key[:MAX_KEY_BYTES]),
        rejected_at=now,
        original_size=len(value),
        original_sha256=hashlib.sha256(value).hexdigest(),
        truncated=len(value) > keep,
        key_truncated=key is not None and len(key) > MAX_KEY_BYTES,
    )
