"""The project's producer settings in one place: idempotent, ``acks=all``, TLS/SASL options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer


def new_producer(
    bootstrap: str,
    *,
    client_id: str | None = None,
    client_options: Mapping[str, Any] | None = None,
    linger_ms: int | None = None,
    max_batch_size: int | None = None,
    max_request_size: int | None = None,
    retry_backoff_ms: int | None = None,
    transactional_id: str | None = None,
    transaction_timeout_ms: int | None = None,
) -> AIOKafkaProducer:
    """An idempotent producer (``acks=all``), not started yet.

    ``client_options`` are the TLS/SASL keyword arguments (``KafkaSecurity.client_options()``).
    An option left at None keeps aiokafka's default (``client_id`` ``aiokafka-<version>``,
    no linger, 16 KiB batches, 1 MiB requests, 100 ms retry back-off, not transactional); a
    high-throughput publisher sets ``linger_ms`` and ``max_batch_size``, the exactly-once
    ingest its ``transactional_id`` and timeout.
    """
    tuning: dict[str, Any] = {
        name: value
        for name, value in (
            ("client_id", client_id),
            ("linger_ms", linger_ms),
            ("max_batch_size", max_batch_size),
            ("max_request_size", max_request_size),
            ("retry_backoff_ms", retry_backoff_ms),
            ("transactional_id", transactional_id),
            ("transaction_timeout_ms", transaction_timeout_ms),
        )
        if value is not None
    }
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **tuning, **dict(client_options or {})
    )


async def start_producer(
    bootstrap: str, *, client_id: str | None = None, client_options: Mapping[str, Any] | None = None
) -> AIOKafkaProducer:
    """A started :func:`new_producer`; stopped again, and the error raised, if it cannot start."""
    producer = new_producer(bootstrap, client_id=client_id, client_options=client_options)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer
