"""Async publisher for routers' PostHooks: routing events and feedback to Kafka."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Protocol, Self

from aiokafka.errors import KafkaConnectionError, KafkaError

from bifrost.common.errors import ExitCode
from bifrost.kafka.preflight import check_kafka
from bifrost.kafka.producer import new_producer
from bifrost.kafka.security import KafkaSecurity
from bifrost.schemas.codec import encode
from bifrost.schemas.events import FeedbackEvent, RoutingEvent
from bifrost.schemas.topics import Topics

log = logging.getLogger("bifrost.client")


class PublishError(RuntimeError):
    """Kafka refused or could not be reached; the message says which and where."""

    exit_code = ExitCode.UNAVAILABLE
    hint = "is the broker running? `bifrost-opt kafka start`, or set BIFROST_KAFKA_BOOTSTRAP"


class _Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def connect(client: _Startable, bootstrap: str, security: KafkaSecurity | None = None) -> None:
    """Start an aiokafka client, or raise why not.

    aiokafka reports a refused login or a TLS mismatch as a bare "Unable to bootstrap";
    the preflight check then names the cause (:class:`bifrost.kafka.preflight.KafkaUnreachable`
    and its subclasses). Otherwise :class:`PublishError` says Kafka is unreachable.
    """
    try:
        await client.start()
    except KafkaConnectionError as exc:
        await client.stop()
        if security is not None and security.protocol != "PLAINTEXT":
            await check_kafka(bootstrap, security, timeout=10.0)  # raises with the precise reason
        raise PublishError(f"cannot reach Kafka at {bootstrap}: {exc}") from None


class Publisher:
    """Publishes events with ``acks=all`` and an idempotent producer, batching by linger.

    ``security`` (TLS/SASL, e.g. ``KafkaSecurity.from_env()``) defaults to plaintext.
    ``publish`` returns once the event is queued; ``flush`` (and leaving the ``async
    with`` block) waits until every queued event is acknowledged, and raises if any
    was not.

    Example:
        >>> async def post_hook(event: RoutingEvent) -> None:  # doctest: +SKIP
        ...     async with Publisher("127.0.0.1:9092") as publisher:
        ...         await publisher.publish(event)
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics = Topics(),
        *,
        linger_ms: int = 10,
        max_batch_bytes: int = 512 * 1024,
        max_in_flight: int = 50_000,
        client_id: str = "bifrost-publisher",
        security: KafkaSecurity | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self._security = security or KafkaSecurity()
        self._producer = new_producer(
            bootstrap,
            client_id=client_id,
            client_options=self._security.client_options(),
            linger_ms=linger_ms,
            max_batch_size=max_batch_bytes,
        )
        self._pending: list[asyncio.Future[object]] = []
        self._max_in_flight = max_in_flight
        self.sent = 0

    async def start(self) -> None:
        """Connect to the cluster; raise :class:`PublishError` if it cannot be reached."""
        await connect(self._producer, self.bootstrap, self._security)

    async def stop(self) -> None:
        """Flush and disconnect."""
        try:
            await self.flush()
        finally:
            await self._producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def publish(self, event: RoutingEvent) -> None:
        """Queue one routing event, keyed by ``request_id``."""
        await self.send_raw(self.topics.routing_events, event.request_id.encode(), encode(event))

    async def publish_feedback(self, feedback: FeedbackEvent) -> None:
        """Queue one feedback event, keyed by ``request_id``."""
        await self.send_raw(self.topics.feedback, feedback.request_id.encode(), encode(feedback))

    async def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue arbitrary bytes (for tools and tests that need malformed input too)."""
        try:
            future = await self._producer.send(topic, value=value, key=key)
        except KafkaError as exc:
            raise PublishError(f"could not queue a message for {topic}: {exc}") from None
        self._pending.append(future)
        self.sent += 1
        if len(self._pending) >= self._max_in_flight:
            await self.flush()

    async def flush(self) -> None:
        """Wait until every queued message is acknowledged by the cluster."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        results = await asyncio.gather(*pending, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise PublishError(f"{len(failures)} of {len(results)} messages were not acknowledged: {failures[0]}")
