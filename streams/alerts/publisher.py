"""The worker's producer for the ``alerts`` topic (TLS/SASL like every client, idempotent).

Alerts are rare, so the producer starts on the first alert and the topic is created
then if missing. A failed send raises; callers keep the alert and try again (an alert's
``alert_id`` makes a repeat recognisable to consumers).
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer

from bifrost.config import Settings
from bifrost.kafka.producer import start_producer
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.schemas.alerts import Alert
from bifrost.schemas.codec import encode

log = logging.getLogger("bifrost.alerts")

# One partition: alerts are few, and one total order is what a webhook relay wants.
ALERT_PARTITIONS = 1


class AlertProducer:
    """Sends :class:`Alert` records to ``<prefix>alerts``, keyed by ``alert_id``.

    Example (in a worker)::

        producer = AlertProducer(settings)
        await producer.publish(alert)
        await producer.close()
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topics.alerts
        self.sent = 0
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, alert: Alert) -> None:
        """Send ``alert`` and wait for the broker's acknowledgement (raises on failure)."""
        producer = await self._started()
        try:
            await producer.send_and_wait(self.topic, encode(alert), key=alert.alert_id.encode())
        except BaseException:
            await self.close()  # start afresh on the next attempt
            raise
        self.sent += 1

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        s = self.settings
        options = s.kafka_options()
        # Created elsewhere with another partition count is fine: alerts need no co-partitioning.
        await ensure_topics(
            s.kafka_bootstrap,
            [TopicSpec(self.topic, ALERT_PARTITIONS)],
            replication_factor=s.replication_factor,
            client_options=options,
            check_partitions=False,
        )
        producer = await start_producer(s.kafka_bootstrap, client_id=f"{s.app_id}-alerts", client_options=options)
        self._producer = producer
        return producer
