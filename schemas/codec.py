"""Bytes ⇄ typed events. Decoding validates; every rejection has a reason and a message.

msgspec's typed JSON decoder parses and validates in one pass in C (about 0.9 µs for a
routing event here, against 2.6 µs for ``orjson.loads`` followed by a typed
conversion), so it is the hot-path decoder. orjson serves untyped JSON elsewhere
(HTTP views, CLI output).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from bifrost.schemas.dlq import RejectReason
from bifrost.schemas.events import FeedbackEvent, RoutingEvent

DEFAULT_MAX_EVENT_BYTES = 64 * 1024
DEFAULT_MAX_FUTURE_SKEW_S = 300.0

E = TypeVar("E", RoutingEvent, FeedbackEvent)
S = TypeVar("S", bound=msgspec.Struct)


class InvalidEvent(ValueError):
    """An input that is not a valid event; ``reason`` is a stable code for the DLQ."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied beyond the field types."""

    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_future_skew_s: float = DEFAULT_MAX_FUTURE_SKEW_S


class EventDecoder(Generic[E]):
    """Validating decoder for one event type.

    Example:
        >>> decoder = EventDecoder(RoutingEvent)
        >>> decoder.decode(b"[]", now=0.0)
        Traceback (most recent call last):
        ...
        bifrost.schemas.codec.InvalidEvent: Expected `object`, got `array`
    """

    def __init__(self, event_type: type[E], limits: Limits = Limits()) -> None:
        self._decoder: msgspec.json.Decoder[E] = msgspec.json.Decoder(event_type)
        self._limits = limits
        self.event_type: type[E] = event_type

    def decode(self, raw: bytes | None, *, now: float | None = None) -> E:
        """Decode and validate ``raw``; raise :class:`InvalidEvent` with the reason.

        Whatever ``raw`` holds, the only exception this raises for it is
        :class:`InvalidEvent` (``MemoryError`` aside: that is the process's state, not the
        record's, and dead-lettering a valid event for it would lose data).
        """
        if raw is None:
            raise InvalidEvent(RejectReason.BAD_JSON, "empty message value (tombstone)")
        if type(raw) is not bytes:
            raw = _value_bytes(raw)
        size = len(raw)
        if size > self._limits.max_event_bytes:
            raise InvalidEvent(
                RejectReason.OVERSIZED,
                f"payload is {size} bytes; the limit is {self._limits.max_event_bytes} (BIFROST_MAX_EVENT_BYTES)",
            )
        try:
            event = self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise InvalidEvent(RejectReason.SCHEMA, str(exc)) from None
        except msgspec.DecodeError as exc:
            raise InvalidEvent(RejectReason.BAD_JSON, str(exc)) from None
        except RecursionError:
            # msgspec counts nesting against Python's recursion limit, also inside
            # ignored fields; ~1,000 levels of "[" would otherwise escape as a crash.
            raise InvalidEvent(
                RejectReason.TOO_DEEP,
                f"JSON nests deeper than the decoder allows (about {sys.getrecursionlimit()} levels)",
            ) from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 — one record must never stop the process
            raise InvalidEvent(
                RejectReason.UNDECODABLE, f"decoder failed: {type(exc).__name__}: {exc}"[:1000]
            ) from None
        check_event_time(event.ts, now=time.time() if now is None else now, limits=self._limits)
        return event


def _value_bytes(raw: object) -> bytes:
    """Bytes of a bytes-like value; anything else (text, numbers…) is rejected."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    raise InvalidEvent(
        RejectReason.UNDECODABLE,
        f"message value is {type(raw).__name__}, not bytes (is a value deserializer configured?)",
    )


def check_event_time(ts: float, *, now: float, limits: Limits) -> None:
    """Reject event times too far in the future (clock skew or unit mistakes)."""
    skew = ts - now
    if skew > limits.max_future_skew_s:
        hint = " (milliseconds instead of seconds?)" if ts > now * 100 else ""
        raise InvalidEvent(
            RejectReason.INVALID_VALUE,
            f"ts {ts:.3f} is {skew:.0f} s in the future; the limit is "
            f"{limits.max_future_skew_s:.0f} s (BIFROST_MAX_FUTURE_SKEW_SECONDS){hint}",
        )


_encoder = msgspec.json.Encoder()


def encode(value: msgspec.Struct) -> bytes:
    """Canonical JSON bytes of any wire struct."""
    return _encoder.encode(value)


def decode_as(raw: bytes, value_type: type[S]) -> S:
    """Decode JSON bytes into ``value_type`` (for internal records we wrote ourselves)."""
    return msgspec.json.decode(raw, type=value_type)
