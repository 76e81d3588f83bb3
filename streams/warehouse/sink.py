"""The warehouse sink: its own consumer group, atomic Parquet files, commit after write."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from bifrost.config import Settings
from bifrost.schemas.codec import EventDecoder, InvalidEvent
from bifrost.schemas.events import FeedbackEvent, RoutingEvent
from bifrost.streams.ingest.service import ingest_topics
from bifrost.streams.topics_admin import ensure_topics
from bifrost.streams.warehouse.layout import FileSpan, file_path, hour_of, stored_through

log = logging.getLogger("bifrost.warehouse")


@dataclass(slots=True)
class _Buffer:
    hour: str
    first_offset: int
    last_offset: int = -1
    rows: list[dict[str, Any]] = field(default_factory=list)
    opened_at: float = field(default_factory=time.monotonic)


def write_atomically(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as one Parquet file that appears complete or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), temp)
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)


class WarehouseSink:
    """Copies valid routing events and feedback into Parquet, exactly once per offset.

    Invalid records are skipped here (ingest dead-letters them). A buffer is flushed when
    it reaches ``max_rows``, is older than ``max_age_s``, or the next event belongs to
    another hour; offsets are committed only after the files covering them exist.
    """

    def __init__(self, settings: Settings, root: Path, *, max_rows: int = 50_000, max_age_s: float = 60.0) -> None:
        self.settings = settings
        self.root = root
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        topics = settings.topics
        self._decoders: dict[str, EventDecoder[Any]] = {
            topics.routing_events: EventDecoder(RoutingEvent, settings.limits),
            topics.feedback: EventDecoder(FeedbackEvent, settings.limits),
        }
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._stored: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self.files_written = 0

    async def run(self) -> None:
        s = self.settings
        # Subscribing before the input topics exist would leave this group with nothing
        # assigned until the next metadata refresh (minutes).
        await ensure_topics(s.kafka_bootstrap, ingest_topics(s), replication_factor=s.replication_factor)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=f"{s.app_id}-warehouse", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=10_000,
            session_timeout_ms=int(s.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout_seconds / 3) * 1000),
        )
        await self._consumer.start()
        try:
            self._consumer.subscribe(list(self._decoders), listener=_Rebalance(self))
            while True:
                batches = await self._consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        self._add(tp, record.offset, record.value)
                await self._flush(due_only=True)
        finally:
            await self._consumer.stop()

    def _add(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        if offset <= self._stored.get(tp, -1):
            return  # already in a file from before a restart
        try:
            event = self._decoders[tp.topic].decode(value)
        except InvalidEvent:
            self._stored_gap(tp, offset)
            return
        hour = hour_of(event.ts)
        buffer = self._buffers.get(tp)
        if buffer is not None and buffer.hour != hour:
            self._write(tp, buffer)
            buffer = None
        if buffer is None:
            buffer = self._buffers[tp] = _Buffer(hour=hour, first_offset=offset)
        row = msgspec.to_builtins(event)
        row["_partition"], row["_offset"] = tp.partition, offset
        buffer.rows.append(row)
        buffer.last_offset = offset
        if len(buffer.rows) >= self.max_rows:
            self._write(tp, buffer)

    def _stored_gap(self, tp: TopicPartition, offset: int) -> None:
        # An invalid record (in the DLQ) ends up covered by the next file's range.
        buffer = self._buffers.get(tp)
        if buffer is not None:
            buffer.last_offset = offset

    def _write(self, tp: TopicPartition, buffer: _Buffer) -> None:
        self._buffers.pop(tp, None)
        if not buffer.rows:
            return
        span = FileSpan(tp.partition, buffer.first_offset, buffer.last_offset)
        write_atomically(file_path(self.root, tp.topic, buffer.hour, span), buffer.rows)
        self._stored[tp] = buffer.last_offset
        self.files_written += 1

    async def _flush(self, *, due_only: bool) -> None:
        now = time.monotonic()
        for tp, buffer in list(self._buffers.items()):
            if not due_only or now - buffer.opened_at >= self.max_age_s:
                self._write(tp, buffer)
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        offsets = {tp: last + 1 for tp, last in self._stored.items() if tp in assigned}
        if offsets:
            await self._consumer.commit(offsets)

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            buffer = self._buffers.get(tp)
            if buffer is not None:
                self._write(tp, buffer)
        assert self._consumer is not None
        offsets = {tp: self._stored[tp] + 1 for tp in revoked if tp in self._stored}
        if offsets:
            await self._consumer.commit(offsets)
        for tp in revoked:
            self._stored.pop(tp, None)

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        for topic in {tp.topic for tp in assigned}:
            stored = stored_through(self.root, topic)
            for tp in assigned:
                if tp.topic == topic and tp.partition in stored:
                    self._stored[tp] = stored[tp.partition]
        log.info("event=warehouse.assigned partitions=%s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, sink: WarehouseSink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._sink.on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._sink.on_assigned(list(assigned))
