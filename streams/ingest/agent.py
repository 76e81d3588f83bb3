"""The ingest agent: a thin shell around :class:`BatchFolder`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import faust
from faust.types import EventT

from bifrost.config import Settings
from bifrost.schemas.codec import encode
from bifrost.streams import observability as obs
from bifrost.streams.aggregates.partial import WindowPartial, decode_partial, encode_partial
from bifrost.streams.ingest.fold import (
    BatchFolder,
    InputRecord,
    PartitionState,
    WindowPolicy,
    rebuild_partition_state,
)

log = logging.getLogger("bifrost.ingest")


@dataclass(slots=True)
class IngestState:
    """Per-worker memory of the ingest agent, rebuilt from the table after rebalances."""

    partitions: dict[tuple[str, int], PartitionState] | None = None
    batches: int = 0
    last_batch_at: float = field(default_factory=time.time)


def register_ingest(
    app: faust.App,
    settings: Settings,
    *,
    inputs: faust.TopicT,
    dlq: faust.TopicT,
    partials_topic: faust.TopicT,
    table: faust.Table,
) -> IngestState:
    """Attach the ingest agent to ``app``; return its state (for health views)."""
    topics = settings.topics
    folder = BatchFolder(
        routing_topic=topics.routing_events,
        feedback_topic=topics.feedback,
        policy=WindowPolicy(
            window_seconds=settings.window_seconds,
            grace_seconds=settings.grace_seconds,
            feedback_grace_seconds=settings.feedback_grace_seconds,
            retention_seconds=settings.retention_seconds,
        ),
        limits=settings.limits,
    )
    state = IngestState()

    def load(key: str) -> WindowPartial | None:
        raw = table.get(key)
        return None if raw is None else decode_partial(raw)

    def partition_states() -> dict[tuple[str, int], PartitionState]:
        if state.partitions is None:
            state.partitions = rebuild_partition_state(decode_partial(raw) for raw in table.values())
            obs.LIVE_WINDOWS.labels("partition").set(len(table))
        return state.partitions

    @app.on_partitions_revoked.connect
    async def forget_partition_state(sender: object, revoked: set, **_: object) -> None:
        state.partitions = None
        # The memory store keeps keys of partitions this worker no longer owns; drop them
        # so they cannot shadow what the new owner writes if the partition comes back.
        gone = {tp.partition for tp in revoked if tp.topic in (topics.routing_events, topics.feedback)}
        if gone and settings.store.startswith("memory"):
            stale = [k for k in list(table.data.keys()) if int(k.split("|", 1)[0]) in gone]
            for key in stale:
                table.data.pop(key, None)

    @app.on_partitions_assigned.connect
    async def reset_partition_state(sender: object, assigned: set, **_: object) -> None:
        state.partitions = None

    @app.agent(inputs, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        # Output-only topics are not declared by Faust; create them (with our partition
        # count) before the first write rather than rely on broker auto-creation.
        await dlq.maybe_declare()
        await partials_topic.maybe_declare()
        async for events in stream.take_events(settings.batch_max, settings.batch_within_seconds):
            await _fold_batch(events)

    async def _fold_batch(events: Sequence[EventT]) -> None:
        started = time.perf_counter()
        records = [
            InputRecord(m.topic, m.partition, m.offset, m.key, m.value) for m in (e.message for e in events)
        ]
        result = folder.fold(records, load=load, states=partition_states())
        for key, partial in result.changed.items():
            raw = encode_partial(partial)
            table[key] = raw
            await partials_topic.send(key=partial.router_id, value=raw)
        for key in result.expired:
            table.pop(key, None)
        for letter in result.dead_letters:
            await dlq.send(key=letter.source_topic.encode(), value=encode(letter))
            obs.REJECTED.labels(letter.source_topic, letter.reason.value).inc()
        for topic, n in result.accepted.items():
            obs.INGESTED.labels(topic).inc(n)
        for topic, n in result.duplicates.items():
            obs.DUPLICATES.labels(topic).inc(n)
        state.batches += 1
        state.last_batch_at = time.time()
        elapsed = time.perf_counter() - started
        obs.BATCH_SECONDS.observe(elapsed)
        obs.BATCH_SIZE.observe(len(records))
        if result.dead_letters or result.duplicates:
            log.info(
                "event=ingest.batch records=%d accepted=%d dlq=%d duplicates=%d seconds=%.4f",
                len(records), sum(result.accepted.values()), len(result.dead_letters),
                sum(result.duplicates.values()), elapsed,
            )

    return state
