"""Stage-2 agent: keep the newest snapshot of every partial in a per-router table."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faust

from bifrost.config import Settings
from bifrost.streams import observability as obs
from bifrost.streams.aggregates.partial import WindowPartial, decode_partial
from bifrost.streams.rollup.index import RouterIndex
from bifrost.streams.rollup.query import RouterMetrics, merge_partials, time_range

log = logging.getLogger("bifrost.rollup")


@dataclass(slots=True)
class RollupState:
    """The per-router index of this worker, rebuilt from the table after rebalances."""

    index: RouterIndex | None = None


class RouterMetricsReader:
    """Answers per-router metric queries from the stage-2 table of this worker."""

    def __init__(self, table: faust.Table, state: RollupState, window_seconds: int) -> None:
        self._table = table
        self._state = state
        self._window_seconds = window_seconds

    def index(self) -> RouterIndex:
        if self._state.index is None:
            self._state.index = RouterIndex.build(decode_partial(raw) for raw in self._table.values())
        return self._state.index

    def routers(self) -> list[str]:
        return sorted(self.index().routers)

    def metrics(self, router_id: str, *, since_seconds: int, until_ts: int | None = None) -> RouterMetrics | None:
        """Merged figures of the router's last ``since_seconds`` (of event time), or None."""
        index = self.index()
        newest = index.newest_window_end(router_id, self._window_seconds)
        if newest is None:
            return None
        from_ts, to_ts = time_range(newest, since_seconds=since_seconds, until_ts=until_ts)
        partials = [self._load(key) for key in index.keys_between(router_id, from_ts, to_ts)]
        return merge_partials(router_id, (p for p in partials if p is not None), from_ts=from_ts, to_ts=to_ts)

    def _load(self, key: str) -> WindowPartial | None:
        raw = self._table.get(key)
        return None if raw is None else decode_partial(raw)


def register_rollup(
    app: faust.App, settings: Settings, *, partials_topic: faust.TopicT, table: faust.Table
) -> RouterMetricsReader:
    """Attach the stage-2 agent; return a reader for the web views."""
    state = RollupState()
    reader = RouterMetricsReader(table, state, settings.window_seconds)
    retention = settings.retention_seconds

    @app.on_partitions_assigned.connect
    async def reset_index(sender: object, assigned: set, **_: object) -> None:
        state.index = None

    @app.on_partitions_revoked.connect
    async def forget_index(sender: object, revoked: set, **_: object) -> None:
        state.index = None

    # One event at a time (the volume is one record per batch, partition and router):
    # Faust writes each table change to the changelog partition of the current event,
    # which here is the router's partition.
    @app.agent(partials_topic, name="rollup")
    async def rollup(stream: faust.StreamT) -> None:
        async for event in stream.events():
            _store(event.message.value)

    def _store(raw: bytes) -> None:
        index = reader.index()
        partial = decode_partial(raw)
        if not index.is_newer(partial):
            obs.PARTIALS_MERGED.labels("stale").inc()
            return
        table[index.record(partial)] = raw
        obs.PARTIALS_MERGED.labels("stored").inc()
        newest = index.newest_window_end(partial.router_id, settings.window_seconds) or 0
        for key in index.expire(partial.router_id, newest - retention - settings.window_seconds):
            table.pop(key, None)
        obs.LIVE_WINDOWS.labels("router").set(len(index))

    return reader
