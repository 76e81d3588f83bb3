"""Following topics for the dashboard without a consumer group: one helper for every feed.

A :class:`TopicTail` reads every partition of its topics (so any worker can answer for
every router), starts each newly seen partition ``backlog`` records back (or at the
beginning for a compacted topic read whole), never commits, and hands each record to
its topic's handler. Topics that do not exist yet are picked up when they appear
(metadata is refreshed every ``refresh_seconds``). Any Kafka error is logged and the tail
starts over after a pause: it never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from bifrost.config import Settings

log = logging.getLogger("bifrost.web")

#: What a topic's records go to: ``handler(key, value)``.
Handler = Callable[[bytes | None, bytes | None], object]


def values_only(add: Callable[[bytes], object]) -> Handler:
    """A handler that passes non-empty values on and skips tombstones."""

    def handle(key: bytes | None, value: bytes | None) -> None:
        if value is not None:
            add(value)

    return handle


class TopicTail:
    """Feeds ``{topic: handler}`` from Kafka, read from the last ``backlog`` records of each partition.

    Args:
        name: Names the feed in log events (``event=dashboard.<name>.error``).
        whole: Topics read from their beginning (compacted state, e.g. the catalog).
        on_following: Told the sorted names of the topics that exist and are followed.
    """

    def __init__(
        self,
        settings: Settings,
        handlers: Mapping[str, Handler],
        *,
        name: str,
        backlog: int,
        whole: Collection[str] = (),
        refresh_seconds: float = 10.0,
        on_following: Callable[[list[str]], None] = lambda topics: None,
    ) -> None:
        self._settings = settings
        self._handlers = dict(handlers)
        self._name = name
        self._backlog = backlog
        self._whole = frozenset(whole)
        self._refresh = refresh_seconds
        self._on_following = on_following

    async def run(self) -> None:
        """Follow until cancelled, starting over after any error."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a dashboard feed must never stop the worker
                log.warning("event=dashboard.%s.error error=%r note=%r", self._name, exc, "retrying in 5 s")
                await asyncio.sleep(5.0)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._settings.kafka_options(),
        )
        await consumer.start()
        try:
            assigned: set[TopicPartition] = set()
            refresh_at = 0.0
            while True:
                if time.monotonic() >= refresh_at:
                    assigned = await self._assign(consumer, assigned)
                    refresh_at = time.monotonic() + self._refresh
                if not assigned:
                    await asyncio.sleep(1.0)
                    continue
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    handle = self._handlers[tp.topic]
                    for record in records:
                        handle(record.key, record.value)
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> set[TopicPartition]:
        """Add partitions of followed topics that appeared; new ones start ``backlog`` records back."""
        # What consumer.topics() fetches, kept whole: an assign()-only consumer tracks only the
        # topics it is assigned, so partitions_for_topic() never learns of a topic created later.
        cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - no public call gives partitions
        found = {
            TopicPartition(topic, p) for topic in self._handlers for p in cluster.partitions_for_topic(topic) or ()
        }
        new = found - assigned
        if not new:
            return assigned
        positions = {tp: await consumer.position(tp) for tp in assigned}
        consumer.assign(sorted(found))
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        begins = await consumer.beginning_offsets(sorted(new))
        ends = await consumer.end_offsets(sorted(new))
        for tp in new:
            consumer.seek(tp, begins[tp] if tp.topic in self._whole else max(begins[tp], ends[tp] - self._backlog))
        following = sorted({tp.topic for tp in found})
        self._on_following(following)
        log.info("event=dashboard.%s.follow topics=%s partitions=%d", self._name, ",".join(following), len(found))
        return found
