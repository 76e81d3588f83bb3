"""The project's producer settings in one place: idempotent, ``acks=all``, TLS/SASL options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer


async def start_producer(bootstrap: str, *, client_id: str, client_options: Mapping[str, Any]) -> AIOKafkaProducer:
    """A started idempotent producer (``acks=all``); stopped again, and the error raised, if it cannot start."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, client_id=client_id, **dict(client_options)
    )
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer
