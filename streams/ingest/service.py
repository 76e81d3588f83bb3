"""The ingest loop: a batch consumer around the pure :class:`BatchFolder`.

Why not a Faust agent: Faust's per-message stream path costs ~120 µs per record on
this machine (about 8k records/s per worker, measured in ``bench/``), while the fold
itself runs at ~170k records/s. Ingest is the one high-volume path, so it reads with
aiokafka ``getmany`` in batches and keeps Faust's guarantees itself:

- state (the per-partition window partials) lives in a compacted changelog topic,
  co-partitioned with the input, and is recovered from it on partition assignment;
- offsets are committed only after the producer has flushed every changelog,
  window-partials and DLQ record of the records they cover;
- re-delivered records are recognised by the ``last_offset`` kept in each partial.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from bifrost.config import Settings
from bifrost.schemas.codec import encode
from bifrost.streams import observability as obs
from bifrost.streams.aggregates.partial import WindowPartial, encode_partial, partition_of_key
from bifrost.streams.ingest.changelog import recover_partitions
from bifrost.streams.ingest.fold import BatchFolder, InputRecord, PartitionState, WindowPolicy, rebuild_partition_state
from bifrost.streams.topics_admin import TopicSpec, ensure_topics

log = logging.getLogger("bifrost.ingest")


def changelog_topic(settings: Settings) -> str:
    """Compacted topic holding stage-1 partials (partition = input partition)."""
    return f"{settings.app_id}-partition-windows-changelog"


def ingest_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic ingest reads or writes, with its partition count."""
    t, n = settings.topics, settings.partitions
    return [
        TopicSpec(t.routing_events, n), TopicSpec(t.feedback, n), TopicSpec(t.dlq, n),
        TopicSpec(t.window_partials, n), TopicSpec(changelog_topic(settings), n, compacted=True),
    ]


@dataclass(slots=True)
class IngestStatus:
    """Progress of the ingest loop, for /health."""

    assigned: list[str] = field(default_factory=list)
    batches: int = 0
    records: int = 0
    last_batch_at: float = field(default_factory=time.time)
    recovering: bool = True


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: "IngestService") -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._service.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._service.on_assigned(assigned)


class IngestService:
    """Consumes routing events and feedback, folds them, writes partials, commits."""

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
        )
        self._changelog = changelog_topic(settings)
        self._partials: dict[str, WindowPartial] = {}
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._last_commit = time.monotonic()

    async def run(self) -> None:
        """Run until cancelled; on the way out, flush and commit what was processed."""
        s = self.settings
        await ensure_topics(s.kafka_bootstrap, ingest_topics(s), replication_factor=s.replication_factor)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
            max_batch_size=1024 * 1024, client_id=f"{s.app_id}-ingest",
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=f"{s.app_id}-ingest", client_id=f"{s.app_id}-ingest",
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=s.batch_max,
            fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024,
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout_seconds / 3) * 1000),
        )
        await self._producer.start()
        await self._consumer.start()
        try:
            self._consumer.subscribe([s.topics.routing_events, s.topics.feedback], listener=_Rebalance(self))
            while True:
                batches = await self._consumer.getmany(timeout_ms=int(s.batch_within_seconds * 1000), max_records=s.batch_max)
                if batches:
                    await self._process(batches)
                if time.monotonic() - self._last_commit >= s.commit_interval_seconds:
                    await self._commit()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        try:
            if self._consumer is not None and self._consumer.assignment():
                await self._commit()
        except Exception as exc:  # noqa: BLE001 - best effort on the way out; replays are de-duplicated
            log.warning("event=ingest.final_commit_failed error=%r", exc)
        finally:
            if self._consumer is not None:
                await self._consumer.stop()
            if self._producer is not None:
                await self._producer.stop()

    async def _commit(self) -> None:
        assert self._producer is not None and self._consumer is not None
        await self._producer.flush()
        await self._consumer.commit()
        self._last_commit = time.monotonic()

    async def _process(self, batches: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        started = time.perf_counter()
        records = [
            InputRecord(r.topic, r.partition, r.offset, r.key, r.value) for records in batches.values() for r in records
        ]
        result = self._folder.fold(records, load=self._partials.get, states=self._states)
        producer = self._producer
        assert producer is not None
        # Count before the first await: a reader that sees this batch's effects
        # downstream must also see it in /metrics.
        for topic, n in result.accepted.items():
            obs.INGESTED.labels(topic).inc(n)
        for topic, n in result.duplicates.items():
            obs.DUPLICATES.labels(topic).inc(n)
        for key, partial in result.changed.items():
            self._partials[key] = partial
            raw = encode_partial(partial)
            await producer.send(self._changelog, raw, key=key.encode(), partition=partial.partition)
            await producer.send(self.settings.topics.window_partials, raw, key=orjson.dumps(partial.router_id))
        for key in result.expired:
            self._partials.pop(key, None)
            await producer.send(self._changelog, None, key=key.encode(), partition=partition_of_key(key))
        for letter in result.dead_letters:
            await producer.send(self.settings.topics.dlq, encode(letter), key=letter.source_topic.encode())
            obs.REJECTED.labels(letter.source_topic, letter.reason.value).inc()
        self.status.batches += 1
        self.status.records += len(records)
        self.status.last_batch_at = time.time()
        elapsed = time.perf_counter() - started
        obs.BATCH_SECONDS.observe(elapsed)
        obs.BATCH_SIZE.observe(len(records))
        obs.LIVE_WINDOWS.labels("partition").set(len(self._partials))
        if result.dead_letters or result.duplicates:
            log.info(
                "event=ingest.batch records=%d accepted=%d dlq=%d duplicates=%d seconds=%.4f",
                len(records), sum(result.accepted.values()), len(result.dead_letters),
                sum(result.duplicates.values()), elapsed,
            )

    async def on_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Commit what was processed, then forget the state of partitions that leave."""
        revoked = list(revoked)
        if self._consumer is not None and self._producer is not None and self._consumer.assignment():
            await self._commit()
        gone = {tp.partition for tp in revoked}
        for key in [k for k in self._partials if partition_of_key(k) in gone]:
            del self._partials[key]
        for tp in revoked:
            self._states.pop((tp.topic, tp.partition), None)
        log.info("event=ingest.revoked partitions=%s", sorted(f"{tp.topic}:{tp.partition}" for tp in revoked))

    async def on_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Recover the state of newly assigned partitions from the changelog before consuming."""
        assigned = list(assigned)
        self.status.recovering = True
        held = {partition_of_key(k) for k in self._partials}
        wanted = {tp.partition for tp in assigned} - held
        recovered = await recover_partitions(self.settings.kafka_bootstrap, self._changelog, wanted)
        mine = {(tp.topic, tp.partition) for tp in assigned}
        for key, partial in recovered.items():
            if (partial.source_topic, partial.partition) in mine:
                self._partials[key] = partial
        self._states = rebuild_partition_state(self._partials.values())
        assert self._consumer is not None
        self.status.assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in self._consumer.assignment())
        self.status.recovering = False
        log.info("event=ingest.assigned partitions=%s partials=%d", self.status.assigned, len(self._partials))


def start_ingest(settings: Settings) -> tuple[IngestService, "asyncio.Future[None]"]:
    """Create the service and schedule its loop on the running event loop."""
    service = IngestService(settings)
    return service, asyncio.ensure_future(service.run())
