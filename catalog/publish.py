"""The refresher's Kafka output: entries on ``catalog``, drift on ``catalog-changes``, triggers, alerts.

One idempotent producer (``acks=all``) with the project's TLS/SASL settings. Topics are
created when missing: ``catalog`` compacted (the newest entry per id is the catalog),
``catalog-changes`` with one partition (one total order of drift), ``training-triggers``
with ``BIFROST_PARTITIONS`` (as the worker creates it); ``alerts`` goes through the
workers' :class:`~bifrost.streams.alerts.publisher.AlertProducer`.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer

from bifrost.config import Settings
from bifrost.kafka.producer import start_producer
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.schemas.alerts import Alert
from bifrost.schemas.catalog import CatalogChange, CatalogEntry
from bifrost.schemas.codec import encode
from bifrost.schemas.triggers import TrainingTrigger
from bifrost.streams.alerts.publisher import AlertProducer

log = logging.getLogger("bifrost.catalog")


class CatalogPublisher:
    """Sends a snapshot's outputs; ``close()`` when done."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._alerts = AlertProducer(settings)

    async def start(self) -> None:
        if self._producer is not None:
            return
        s = self.settings
        options = s.kafka_options()
        topics = s.topics
        # None of these is co-partitioned with anything: one created elsewhere with another count is fine.
        specs = [
            TopicSpec(topics.catalog, 1, compacted=True),
            TopicSpec(topics.catalog_changes, 1),
            TopicSpec(topics.training_triggers, s.partitions),
        ]
        await ensure_topics(
            s.kafka_bootstrap,
            specs,
            replication_factor=s.replication_factor,
            client_options=options,
            check_partitions=False,
        )
        producer = await start_producer(s.kafka_bootstrap, client_id=f"{s.app_id}-catalog", client_options=options)
        self._producer = producer

    async def entries(self, entries: list[CatalogEntry]) -> None:
        producer = await self._started()
        topic = self.settings.topics.catalog
        for entry in entries:
            await producer.send(topic, encode(entry), key=entry.id.encode())
        await producer.flush()

    async def changes(self, changes: list[CatalogChange]) -> None:
        producer = await self._started()
        topic = self.settings.topics.catalog_changes
        for change in changes:
            await producer.send(topic, encode(change), key=change.slug.encode())
        await producer.flush()

    async def trigger(self, trigger: TrainingTrigger) -> None:
        producer = await self._started()
        await producer.send_and_wait(
            self.settings.topics.training_triggers, encode(trigger), key=trigger.trigger_id.encode()
        )

    async def alert(self, alert: Alert) -> None:
        await self._alerts.publish(alert)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        await self._alerts.close()

    async def _started(self) -> AIOKafkaProducer:
        await self.start()
        assert self._producer is not None
        return self._producer
