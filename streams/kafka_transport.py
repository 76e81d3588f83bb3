"""Faust's aiokafka transport with ``read_committed`` consumers (the ``bifrost://`` scheme).

Stage 2 reads ``window-partials``, which stage 1 writes in Kafka transactions; a
``read_uncommitted`` reader would see snapshots of batches that were later aborted.
Faust turns ``read_committed`` on only together with its own exactly-once processing,
which stage 2 does not need (its state is snapshots kept by highest offset), so this
transport sets the isolation level alone. Registered as a ``faust.transports`` entry
point in ``pyproject.toml``.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka


class ReadCommittedConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread whose worker consumer reads only committed records."""

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by the fetcher created in start(); no public setter exists after construction.
        consumer._isolation_level = "read_committed"  # noqa: SLF001 - no public setter after construction
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ReadCommittedConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """aiokafka transport whose consumers are ``read_committed``."""

    Consumer = ReadCommittedConsumer
