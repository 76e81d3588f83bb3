"""The ingest loop: a batch consumer around the pure :class:`BatchFolder`, exactly once.

Why not a Faust agent: Faust's per-message stream path costs ~120 µs per record on
this machine (about 8k records/s per worker, measured in ``bench/``), while the fold
itself runs at about 200k records/s (``bench/results/ingest.md``). Ingest is the one high-volume path, so it reads with
aiokafka ``getmany`` in batches and keeps the guarantees itself:

- **Atomic per batch and input partition.** The changelog records, window-partials
  and DLQ records derived from a partition's records, and that partition's next input
  offset, are written in one Kafka transaction (:mod:`.transactions`). Readers use
  ``read_committed``, so a crash at any moment leaves either all of a batch or none of it.
  Each partition commits in its own lane (:mod:`.lanes`) while the loop goes on fetching
  and folding; what arrives during a commit joins the partition's next transaction.
- **Recovery barrier.** A newly assigned partition is paused inside the rebalance
  callback, before anything can be fetched for it; its producer is started (fencing
  any previous owner), its state is read back from the changelog, the consumer seeks to
  the committed offset, and only then is it resumed. Records of a partition that is not
  ready are never folded.
- **Failures restore, never guess.** If a transaction fails, the partition's in-memory
  state is dropped and recovered again from Kafka, where state and offset always agree.
  A recovery that cannot finish before ``BIFROST_RECOVERY_TIMEOUT_SECONDS`` raises
  :class:`RecoveryFailed`; the worker then exits with an error.
- **Static membership** (``group_instance_id``): a restarted worker gets its partitions
  back without waiting for the session timeout; a partition it gets back from itself
  within one rebalance keeps its state and producer (the producer's epoch proves nobody
  else wrote in between, else its next commit is fenced and the state is recovered).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from bifrost.config import Settings
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.streams import observability as obs
from bifrost.streams.aggregates.partial import WindowPartial
from bifrost.streams.ingest.changelog import RecoveryFailed, recover_partitions, retry_until
from bifrost.streams.ingest.fold import BatchFolder, InputRecord, PartitionState, WindowPolicy, rebuild_partition_state
from bifrost.streams.ingest.lanes import CommitLane
from bifrost.streams.ingest.transactions import OutputTopics, OwnershipLost, PartitionWriter, PartitionWrites
from bifrost.streams.metrics.surge import DlqSurgeDetector, SurgePolicy
from bifrost.streams.metrics.traffic import TrafficFigures

log = logging.getLogger("bifrost.ingest")

__all__ = ["IngestService", "IngestStatus", "RecoveryFailed", "changelog_topic", "ingest_topics"]

# After being fenced, wait this long (or for the rebalance that takes the partition
# away) before claiming the partition again, so two workers never fence each other in turn.
_FENCED_BACKOFF_FLOOR_S = 2.0
_RETRY_AFTER_FAILURE_S = 0.5


def changelog_topic(settings: Settings) -> str:
    """Compacted topic holding stage-1 partials (partition = input partition)."""
    return f"{settings.app_id}-partition-windows-changelog"


def ingest_group(settings: Settings) -> str:
    """Consumer group of the ingest loop (its offsets are committed in transactions)."""
    return f"{settings.app_id}-ingest"


def ingest_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic ingest reads or writes, with its partition count."""
    t, n = settings.topics, settings.partitions
    return [
        TopicSpec(t.routing_events, n),
        TopicSpec(t.feedback, n),
        TopicSpec(t.dlq, n),
        TopicSpec(t.window_partials, n),
        TopicSpec(changelog_topic(settings), n, compacted=True),
    ]


@dataclass(slots=True)
class IngestStatus:
    """Progress of the ingest loop, for /health."""

    assigned: list[str] = field(default_factory=list)
    recovering_partitions: list[str] = field(default_factory=list)
    batches: int = 0
    records: int = 0
    transactions: int = 0
    recoveries: int = 0
    last_batch_at: float = field(default_factory=time.time)
    recovering: bool = True


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: IngestService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._service.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._service.on_assigned(assigned)


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


class IngestService:
    """Consumes routing events and feedback, folds them, and commits each partition's
    outputs and input offset in one transaction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.status = IngestStatus()
        topics = settings.topics
        # Stage 1 keeps a window only while it can still change; stage 2 keeps history.
        horizon = max(settings.grace_seconds, settings.feedback_grace_seconds) + settings.window_seconds
        self._folder = BatchFolder(
            routing_topic=topics.routing_events,
            feedback_topic=topics.feedback,
            policy=WindowPolicy(
                window_seconds=settings.window_seconds,
                grace_seconds=settings.grace_seconds,
                feedback_grace_seconds=settings.feedback_grace_seconds,
                retention_seconds=horizon,
            ),
            limits=settings.limits,
            dlq_max_payload_bytes=settings.dlq_max_payload_bytes,
        )
        self._changelog = changelog_topic(settings)
        self._group = ingest_group(settings)
        self._outputs = OutputTopics(self._changelog, topics.window_partials, topics.dlq)
        self._partials: dict[str, WindowPartial] = {}
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._ready: dict[TopicPartition, CommitLane] = {}
        self._parked: dict[TopicPartition, CommitLane] = {}
        self._pending: dict[TopicPartition, float] = {}  # partition -> recover not before (monotonic)
        self._assignments: dict[TopicPartition, int] = {}  # bumped at every assignment
        self._next_offset: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        # Product metrics, fed at each commit: per router and arm figures, and the DLQ share.
        self.traffic = TrafficFigures(
            max_routers=settings.metrics_max_routers, max_arms_per_router=settings.metrics_max_arms
        )
        self.dlq_window = DlqSurgeDetector(
            SurgePolicy(
                threshold=settings.dlq_surge_threshold,
                min_dead_letters=settings.dlq_surge_min_records,
                window_seconds=settings.dlq_surge_window_seconds,
            )
        )

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Run until cancelled. Raises :class:`RecoveryFailed` when state cannot be restored."""
        s = self.settings
        options = s.kafka_options()
        await ensure_topics(
            s.kafka_bootstrap, ingest_topics(s), replication_factor=s.replication_factor, client_options=options
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=self._group,
            client_id=f"{s.app_id}-ingest",
            group_instance_id=s.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=s.batch_max,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout_seconds / 3) * 1000),
            **options,
        )
        await self._consumer.start()
        log.info("event=ingest.started group=%s instance=%s", self._group, s.group_instance_id)
        try:
            self._consumer.subscribe([s.topics.routing_events, s.topics.feedback], listener=_Rebalance(self))
            while True:
                if self._pending:
                    await self._recover_due()
                await self._wait_for_room()
                batches = await self._consumer.getmany(
                    timeout_ms=int(s.batch_within_seconds * 1000), max_records=s.batch_max
                )
                if batches:
                    self._fold_and_submit(batches)
        finally:
            await self._shutdown()

    async def _wait_for_room(self) -> None:
        # Bounded work in flight: fold ahead of the commits by at most a few batches.
        limit = 4 * self.settings.batch_max
        while sum(lane.backlog for lane in self._ready.values()) > limit:
            tasks = [lane.task for lane in self._ready.values() if lane.task is not None]
            if not tasks:
                return
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)

    async def _shutdown(self) -> None:
        # Nothing to commit by hand: every batch commits in its own transaction, and an
        # open one aborts (its records are read again by whoever owns the partition next).
        lanes = [*self._ready.values(), *self._parked.values()]
        self._ready.clear()
        self._parked.clear()
        await asyncio.gather(*(lane.close() for lane in lanes), return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    def _fold_and_submit(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # Synchronous on purpose: no rebalance callback or commit outcome can interleave.
        started = time.perf_counter()
        total = 0
        for tp, records in batches.items():
            lane = self._ready.get(tp)
            if lane is None:
                continue  # not recovered (or no longer ours): it will be re-read from its committed offset
            start = self._next_offset.get(tp, 0)
            inputs = [InputRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records if r.offset >= start]
            if len(inputs) < len(records):
                obs.DUPLICATES.labels(tp.topic).inc(len(records) - len(inputs))
            if not inputs:
                continue
            result = self._folder.fold(inputs, load=self._partials.get, states=self._states)
            for key, partial in result.changed.items():
                self._partials[key] = partial
            for key in result.expired:
                self._partials.pop(key, None)
            self._next_offset[tp] = inputs[-1].offset + 1
            writes = PartitionWrites.of(
                result.changed,
                result.expired,
                result.dead_letters,
                next_offset=inputs[-1].offset + 1,
                records=len(inputs),
            )
            writes.accepted = sum(result.accepted.values())
            writes.traffic = result.traffic
            lane.submit(writes)
            total += len(inputs)
        if not total:
            return
        self.status.batches += 1
        self.status.records += total
        self.status.last_batch_at = time.time()
        obs.BATCH_SECONDS.observe(time.perf_counter() - started)
        obs.BATCH_SIZE.observe(total)
        obs.LIVE_WINDOWS.labels("partition").set(len(self._partials))

    def _committed(self, lane: CommitLane, writes: PartitionWrites, seconds: float) -> None:
        topic = lane.tp.topic
        obs.INGESTED.labels(topic).inc(writes.accepted)
        reasons: dict[str, int] = {}
        for letter in writes.dead_letters:
            reason = letter.reason.value
            reasons[reason] = reasons.get(reason, 0) + 1
            obs.REJECTED.labels(letter.source_topic, reason).inc()
        self.traffic.add_all(writes.traffic)
        self.dlq_window.record(time.time(), inputs=writes.records, reasons=reasons)
        obs.TRANSACTION_SECONDS.observe(seconds)
        self.status.transactions += 1

    def _lane_failed(self, lane: CommitLane, error: BaseException) -> None:
        """Forget the partition's state (the fold already moved past the failed commit) and recover it."""
        tp = lane.tp
        current = self._ready.get(tp) is lane
        if current:
            del self._ready[tp]
        asyncio.ensure_future(lane.close())
        self._drop_state(tp)
        fenced = isinstance(error, OwnershipLost)
        assert self._consumer is not None
        if current and tp in self._consumer.assignment():
            self._consumer.pause(tp)
            delay = (
                max(_FENCED_BACKOFF_FLOOR_S, self.settings.session_timeout_seconds / 2)
                if fenced
                else _RETRY_AFTER_FAILURE_S
            )
            self._pending[tp] = time.monotonic() + delay
        self._update_status()
        log.warning(
            "event=ingest.txn.failed partition=%s fenced=%s error=%r action=%s",
            _name(tp),
            fenced,
            error,
            "recover" if current else "drop",
        )

    def _drop_state(self, tp: TopicPartition) -> None:
        for key in [k for k, p in self._partials.items() if p.partition == tp.partition and p.source_topic == tp.topic]:
            del self._partials[key]
        self._states.pop((tp.topic, tp.partition), None)
        self._next_offset.pop(tp, None)

    # ------------------------------------------------------------------ recovery

    async def _recover_due(self) -> None:
        now = time.monotonic()
        due = {tp: self._assignments.get(tp, 0) for tp, at in self._pending.items() if at <= now}
        if not due:
            return
        s = self.settings
        began = now
        deadline = now + s.recovery_timeout_seconds
        log.info("event=ingest.recovery.start partitions=%s", sorted(_name(tp) for tp in due))
        writers = await asyncio.gather(*(self._start_writer(tp, deadline) for tp in due))
        wanted = set(due)
        try:
            recovered = await recover_partitions(
                s.kafka_bootstrap,
                self._changelog,
                {tp.partition for tp in due},
                keep=lambda p: TopicPartition(p.source_topic, p.partition) in wanted,
                deadline=deadline,
                client_options=s.kafka_options(),
            )
            assert self._consumer is not None
            consumer = self._consumer
            committed: dict[TopicPartition, int] = {}
            for tp in due:
                offset = await retry_until(
                    deadline, f"committed offset of {_name(tp)}", functools.partial(consumer.committed, tp)
                )
                if offset is None:  # never committed: start from what the topic still holds
                    starts = await retry_until(
                        deadline, f"first offset of {_name(tp)}", functools.partial(consumer.beginning_offsets, [tp])
                    )
                    offset = starts[tp]
                committed[tp] = offset
        except BaseException:
            await asyncio.gather(*(w.close() for w in writers), return_exceptions=True)
            raise
        # From here on synchronous: the install cannot interleave with a rebalance.
        installed = 0
        for (tp, assignment), writer in zip(due.items(), writers):
            still_ours = tp in self._pending and self._assignments.get(tp, 0) == assignment
            if not still_ours or tp not in consumer.assignment():
                asyncio.ensure_future(writer.close())
                continue
            installed += self._install(tp, writer, recovered, committed[tp])
        self._update_status()
        self.status.recoveries += 1
        log.info(
            "event=ingest.recovery.done partitions=%s partials=%d seconds=%.2f",
            sorted(_name(tp) for tp in due),
            installed,
            time.monotonic() - began,
        )

    async def _start_writer(self, tp: TopicPartition, deadline: float) -> PartitionWriter:
        s = self.settings

        async def attempt() -> PartitionWriter:
            writer = PartitionWriter(
                tp,
                bootstrap=s.kafka_bootstrap,
                app_id=s.app_id,
                group_id=self._group,
                outputs=self._outputs,
                transaction_timeout_ms=int(s.transaction_timeout_seconds * 1000),
                client_options=s.kafka_options(),
            )
            try:
                await asyncio.wait_for(writer.start(), timeout=max(1.0, min(30.0, deadline - time.monotonic())))
            except BaseException:
                await writer.close()
                raise
            return writer

        return await retry_until(deadline, f"producer of {_name(tp)}", attempt)

    def _install(
        self, tp: TopicPartition, writer: PartitionWriter, recovered: dict[str, WindowPartial], committed: int
    ) -> int:
        assert self._consumer is not None
        self._drop_state(tp)
        mine = {k: p for k, p in recovered.items() if p.source_topic == tp.topic and p.partition == tp.partition}
        self._partials.update(mine)
        state = rebuild_partition_state(mine.values()).get((tp.topic, tp.partition))
        if state is not None:
            self._states[(tp.topic, tp.partition)] = state
        self._consumer.seek(tp, committed)
        self._next_offset[tp] = committed
        self._ready[tp] = CommitLane(
            writer,
            on_committed=self._committed,
            on_failed=self._lane_failed,
            min_interval=self.settings.ingest_commit_interval_seconds,
        )
        del self._pending[tp]
        self._consumer.resume(tp)
        log.info("event=ingest.partition.ready partition=%s offset=%s partials=%d", _name(tp), committed, len(mine))
        return len(mine)

    # ------------------------------------------------------------------ rebalance

    async def on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Let each revoked partition's commits finish, then park it (state and producer kept)."""
        revoked = list(revoked)
        lanes: dict[TopicPartition, CommitLane] = {}
        for tp in revoked:
            self._pending.pop(tp, None)
            lane = self._ready.pop(tp, None)
            if lane is not None:
                lanes[tp] = lane
            else:
                self._drop_state(tp)
        # No new batch reaches these lanes now; give their transactions a bounded time.
        budget = max(1.0, self.settings.session_timeout_seconds / 2)
        drained = await asyncio.gather(*(lane.drain(budget) for lane in lanes.values()))
        for (tp, lane), ok in zip(lanes.items(), drained):
            if ok:
                self._parked[tp] = lane  # kept in case the same partition comes straight back
            else:
                self._drop_state(tp)
                asyncio.ensure_future(lane.close())
        self._update_status()
        log.info("event=ingest.revoked partitions=%s parked=%d", sorted(_name(tp) for tp in revoked), len(self._parked))

    async def on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Pause new partitions at once; recovery runs in the main loop before they resume."""
        assigned = list(assigned)
        assert self._consumer is not None
        consumer = self._consumer
        fresh = [tp for tp in assigned if tp not in self._parked]
        if fresh:
            consumer.pause(*fresh)  # nothing of theirs may be fetched and folded before recovery
        now = time.monotonic()
        for tp in assigned:
            self._assignments[tp] = self._assignments.get(tp, 0) + 1
            lane = self._parked.pop(tp, None)
            if lane is not None:
                # Ours again within one rebalance: same state, same producer epoch.
                self._ready[tp] = lane
                consumer.seek(tp, self._next_offset.get(tp, 0))
            else:
                self._drop_state(tp)
                self._pending[tp] = now
        leftovers = list(self._parked.items())
        self._parked.clear()
        for tp, lane in leftovers:
            self._drop_state(tp)
            asyncio.ensure_future(lane.close())
        self._update_status()
        log.info(
            "event=ingest.assigned partitions=%s kept=%d to_recover=%d",
            self.status.assigned,
            len(assigned) - len(fresh),
            len(fresh),
        )

    def _update_status(self) -> None:
        assert self._consumer is not None
        self.status.assigned = sorted(_name(tp) for tp in self._consumer.assignment())
        self.status.recovering_partitions = sorted(_name(tp) for tp in self._pending)
        self.status.recovering = bool(self._pending)
