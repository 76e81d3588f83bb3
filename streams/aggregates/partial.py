"""The per-partition partial aggregate of one router's window, and its keys.

Each input partition folds its own events into its own ``WindowPartial`` records, so no
key or partition carries all traffic; readers merge partials across partitions. A
partial remembers the last input offset folded into it, which makes re-delivery after a
crash harmless: offsets at or below ``last_offset`` were already counted.
"""

from __future__ import annotations

import msgspec

from bifrost.streams.aggregates.stats import WindowStats


class WindowPartial(msgspec.Struct, kw_only=True):
    """Aggregates of one (input topic, partition, router, window)."""

    router_id: str
    window_start: int
    window_seconds: int
    source_topic: str
    partition: int
    last_offset: int = -1
    max_event_ts: float = 0.0
    arms: dict[str, WindowStats] = {}
    models: dict[str, WindowStats] = {}
    buckets: dict[str, WindowStats] = {}

    @property
    def key(self) -> str:
        """This partial's table key."""
        return partial_key(self.source_topic, self.partition, self.router_id, self.window_start)

    @property
    def source_key(self) -> str:
        """Which input partition this partial summarizes."""
        return f"{self.source_topic}|{self.partition}"

    @property
    def window_end(self) -> int:
        return self.window_start + self.window_seconds


def partial_key(source_topic: str, partition: int, router_id: str, window_start: int) -> str:
    """Stage-1 table key; the partition is part of the key so each partition owns its keys."""
    return f"{partition}|{window_start}|{source_topic}|{router_id}"


def partition_of_key(key: str) -> int:
    """The input partition a stage-1 key belongs to."""
    return int(key.split("|", 1)[0])


def router_window_key(partial: WindowPartial) -> str:
    """Stage-2 (per-router) table key of a partial."""
    return f"{partial.router_id}|{partial.window_start}|{partial.source_topic}|{partial.partition}"


def window_start_of(ts: float, window_seconds: int) -> int:
    """Start of the tumbling window holding event time ``ts``."""
    return int(ts // window_seconds) * window_seconds


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WindowPartial)


def encode_partial(partial: WindowPartial) -> bytes:
    """Bytes stored in tables and on the window-partials topic."""
    return _encoder.encode(partial)


def decode_partial(raw: bytes) -> WindowPartial:
    """Inverse of :func:`encode_partial`."""
    return _decoder.decode(raw)
