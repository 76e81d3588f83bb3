"""The session's Kafka broker: a real single-node KRaft broker (``bifrost.devkafka``).

Set ``BIFROST_KAFKA_BOOTSTRAP`` to use an already running broker instead (e.g.
one started with ``python -m bifrost.devkafka start`` or a CI service).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bifrost.devkafka import LocalBroker
from bifrost.kafka.preflight import probe_kafka

BOOTSTRAP_ENV = "BIFROST_KAFKA_BOOTSTRAP"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address (``host:port``) of a Kafka broker shared by the whole session."""
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        if not probe_kafka(external, timeout=10.0):
            pytest.fail(f"{BOOTSTRAP_ENV}={external} does not answer Kafka metadata requests", pytrace=False)
        yield external
        return
    broker = LocalBroker()
    broker.start(timeout=120.0)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
