"""The per-router window table of one worker: store snapshots, answer queries."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

from bifrost.streams import observability as obs
from bifrost.streams.aggregates.partial import WindowPartial, decode_partial
from bifrost.streams.rollup.index import RouterIndex
from bifrost.streams.rollup.query import MergedStats, RouterMetrics, merge_stats, summarize, time_range
from bifrost.streams.rollup.series import RouterSeries, aligned_range, build_series, series_step


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing one snapshot did."""

    partial: WindowPartial
    stored: bool
    window_closed: bool


class RouterWindows:
    """Newest snapshot of every partial, by router, over a Faust table (or any mapping).

    Snapshots replace older ones of the same (router, window, input partition) only when
    they carry a higher ``last_offset``, so re-delivery and reordering are harmless.
    The in-memory index is rebuilt from the table after a rebalance (:meth:`invalidate`).
    """

    def __init__(self, table: MutableMapping[str, bytes], *, window_seconds: int, retention_seconds: int) -> None:
        self._table = table
        self._window_seconds = window_seconds
        self._retention_seconds = retention_seconds
        self._index: RouterIndex | None = None

    def invalidate(self) -> None:
        """Forget the index (partitions moved); it is rebuilt on next use."""
        self._index = None

    def index(self) -> RouterIndex:
        if self._index is None:
            self._index = RouterIndex.build(decode_partial(raw) for raw in self._table.values())
        return self._index

    def store(self, raw: bytes) -> Stored:
        """Store one encoded partial; report whether a newer window began (the previous closed)."""
        index = self.index()
        partial = decode_partial(raw)
        if not index.is_newer(partial):
            obs.PARTIALS_MERGED.labels("stale").inc()
            return Stored(partial, stored=False, window_closed=False)
        before = index.newest_window_end(partial.router_id, self._window_seconds)
        self._table[index.record(partial)] = raw
        obs.PARTIALS_MERGED.labels("stored").inc()
        newest = index.newest_window_end(partial.router_id, self._window_seconds) or 0
        for key in index.expire(partial.router_id, newest - self._retention_seconds - self._window_seconds):
            self._table.pop(key, None)
        obs.LIVE_WINDOWS.labels("router").set(len(index))
        return Stored(partial, stored=True, window_closed=before is not None and newest > before)

    def routers(self) -> list[str]:
        return sorted(self.index().routers)

    def clock(self, router_id: str) -> int | None:
        """End of the router's newest window: its event-time "now"."""
        return self.index().newest_window_end(router_id, self._window_seconds)

    def settled_until(self, router_id: str, topic: str) -> int | None:
        """See :meth:`RouterIndex.settled_until`."""
        return self.index().settled_until(router_id, topic)

    def history_start(self, router_id: str) -> int | None:
        """Start of the router's oldest stored window."""
        return self.index().oldest_window(router_id)

    def frontier(self, router_id: str) -> int | None:
        """End of the router's newest *closed* window: the second-newest window with data
        (or the start of the only one). A window dated ahead of the data is never closed by
        itself, so it cannot move this forward."""
        return self.index().frontier(router_id, self._window_seconds)

    def window_versions(self, router_id: str, from_ts: int, to_ts: int) -> dict[int, tuple[tuple[str, int], ...]]:
        """Windows starting in ``[from_ts, to_ts)`` → their partials' (source, last offset),
        sorted: a window's version (it changes exactly when a snapshot of it is stored)."""
        windows = self.index().routers.get(router_id, {})
        ws = self._window_seconds
        first = -(-from_ts // ws) * ws  # windows start on multiples of the window length
        found = {}
        for start in range(first, to_ts, ws):
            parts = windows.get(start)
            if parts:
                found[start] = tuple(sorted((source, offset) for source, (_, offset) in parts.items()))
        return found

    def window_partials(self, router_id: str, window_start: int) -> list[WindowPartial]:
        """The stored partials of one of the router's windows (one per input partition)."""
        parts = self.index().routers.get(router_id, {}).get(window_start, {})
        raws = (self._table.get(key) for key, _ in parts.values())
        return [decode_partial(raw) for raw in raws if raw is not None]

    def merged(self, router_id: str, from_ts: int, to_ts: int) -> MergedStats:
        """Merged statistics of the router's windows starting in ``[from_ts, to_ts)``."""
        keys = self.index().keys_between(router_id, from_ts, to_ts)
        partials = (decode_partial(raw) for raw in (self._table.get(k) for k in keys) if raw is not None)
        return merge_stats(partials, from_ts=from_ts, to_ts=to_ts)

    def metrics(self, router_id: str, *, since_seconds: int, until_ts: int | None = None) -> RouterMetrics | None:
        """Summaries of the router's last ``since_seconds`` (of event time), or None."""
        newest = self.clock(router_id)
        if newest is None:
            return None
        from_ts, to_ts = time_range(newest, since_seconds=since_seconds, until_ts=until_ts)
        return summarize(router_id, self.merged(router_id, from_ts, to_ts), from_ts=from_ts, to_ts=to_ts)

    def series(
        self, router_id: str, *, since_seconds: int, until_ts: int | None = None, step: int | None = None
    ) -> RouterSeries | None:
        """Per-arm series of the router's last ``since_seconds`` (of event time), or None.

        The series starts at the router's oldest stored window when that is later (a new
        router has no history to draw as zero traffic).

        Raises:
            BadStep: ``step`` is not a whole number of windows, or too many points.
        """
        newest = self.clock(router_id)
        if newest is None:
            return None
        step = series_step(since_seconds, self._window_seconds, step)
        from_ts, to_ts = aligned_range(
            newest if until_ts is None else until_ts, since_seconds, step=step, window_seconds=self._window_seconds
        )
        oldest = self.history_start(router_id)
        if oldest is not None and oldest > from_ts:  # no points before the router's first window
            from_ts = to_ts - max(1, -(-(to_ts - oldest) // step)) * step
        keys = self.index().keys_between(router_id, from_ts, to_ts)
        partials = (decode_partial(raw) for raw in (self._table.get(k) for k in keys) if raw is not None)
        return build_series(
            router_id,
            partials,
            from_ts=from_ts,
            to_ts=to_ts,
            step=step,
            window_seconds=self._window_seconds,
            closed_until=self.frontier(router_id),
        )
