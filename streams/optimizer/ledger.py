"""What is already on a topic, read back from Kafka: the optimizer's memory across restarts.

A :class:`TopicLedger` reads one topic from its beginning (no consumer group: every worker
keeps its own copy) and keeps going, recording the id of every record. Before the
optimizer publishes, it calls :meth:`TopicLedger.sync` — the ledger has then read up to
the topic's end as of that moment, so anything published earlier, by this worker before a
restart or by another worker, is known and not sent again. The topic's retention
(recommendations: four dedup periods) bounds what is read at start.

Two workers publishing the same new id within the same instant could both send it (each
checks, then sends); that window is one analysis of one router during a rebalance, and a
repeated id is recognisable to consumers. Outside it, an id is published once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from bifrost.config import Settings

log = logging.getLogger("bifrost.optimizer")
T = TypeVar("T")
Decode = Callable[[bytes | None, bytes | None], "tuple[str, T] | None"]


class LedgerUnavailable(RuntimeError):
    """The ledger has not read its topic up to the end (yet): publishing now could repeat a record."""


class TopicLedger(Generic[T]):
    """Ids (and the newest ``keep`` decoded values) of every record on ``topic``.

    Example (in a worker task)::

        ledger = TopicLedger(settings, topic, decode=lambda key, value: (key.decode(), value))
        asyncio.ensure_future(ledger.run())
        await ledger.sync(timeout=30)
        if not ledger.seen(record_id): ...
    """

    def __init__(
        self, settings: Settings, topic: str, decode: Decode[T], *, keep: int = 2000, poll_ms: int = 500
    ) -> None:
        self.settings = settings
        self.topic = topic
        self._decode = decode
        self._keep = keep
        self._poll_ms = poll_ms
        self._ids: set[str] = set()
        self.values: OrderedDict[str, T] = OrderedDict()
        self.records = 0
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._started = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    def seen(self, record_id: str) -> bool:
        return record_id in self._ids

    def note(self, record_id: str, value: T) -> None:
        """Record what this process just published (its own read of it comes later)."""
        self._ids.add(record_id)
        self.values[record_id] = value
        self.values.move_to_end(record_id)
        while len(self.values) > self._keep:
            self.values.popitem(last=False)

    async def run(self) -> None:
        """Read the topic from its beginning, forever (a task of the worker). Errors are logged and retried."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:
                log.warning("event=optimizer.ledger.error topic=%s error=%r", self.topic, str(exc)[:300])
                await asyncio.sleep(2.0)
            finally:
                consumer, self._consumer = self._consumer, None
                self._started.clear()
                if consumer is not None:
                    await consumer.stop()

    async def _follow(self) -> None:
        s = self.settings
        # Subscribed without a group: every partition is assigned, read from the beginning (earliest).
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=s.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
            client_id=f"{s.app_id}-optimizer-ledger",
            **s.kafka_options(),
        )
        self._consumer = consumer
        await consumer.start()
        while True:
            batches = await consumer.getmany(timeout_ms=self._poll_ms)
            for records in batches.values():
                for record in records:
                    self.records += 1
                    found = self._decode(record.key, record.value)
                    if found is not None:
                        self.note(*found)
            for tp in consumer.assignment():
                self._positions[tp] = await consumer.position(tp)
            if consumer.assignment():
                self._started.set()
            async with self._progress:
                self._progress.notify_all()

    async def sync(self, timeout: float = 30.0) -> None:
        """Return once every record on the topic now has been read.

        Raises:
            LedgerUnavailable: not within ``timeout`` (broker down, topic missing).
        """
        try:
            await asyncio.wait_for(self._sync(), timeout)
        except TimeoutError:
            raise LedgerUnavailable(f"{self.topic} not read to its end within {timeout:.0f} s") from None

    async def _sync(self) -> None:
        while True:
            await self._started.wait()
            consumer = self._consumer
            if consumer is None:
                await asyncio.sleep(0.2)
                continue
            try:
                ends = await consumer.end_offsets(list(consumer.assignment()))
            except KafkaError:
                await asyncio.sleep(0.5)
                continue

            def caught_up(ends: dict[TopicPartition, int] = ends) -> bool:
                return all(self._positions.get(tp, -1) >= end for tp, end in ends.items()) or self._consumer is None

            async with self._progress:
                await self._progress.wait_for(caught_up)
            if self._consumer is not None:
                return
