"""Deliver every alert on ``alerts`` to each webhook endpoint: signed JSON POSTs, retried, then the DLQ.

One consumer group per endpoint (``<app_id>-webhooks-<endpoint id>``), so a receiver that
is down delays only its own alerts, and each endpoint gets alerts in order. For each
record:

1. the body is ``{"type": "alert.<kind>", "timestamp": ISO-8601, "data": <the alert>}``,
   signed per attempt (:mod:`bifrost.webhooks.signing`; ``webhook-id`` is the alert id,
   with ``:resolved`` for an all-clear, the same on every retry);
2. attempts follow :mod:`bifrost.webhooks.policy` (2xx delivered; 408/429/5xx/no answer
   retried with backoff and jitter, obeying Retry-After; other 4xx refused);
3. after the last failed attempt (or a refusal) a dead letter (reason ``undelivered``,
   the alert's bytes, topic/partition/offset, the endpoint's host and last error) goes
   to the DLQ;
4. only then is the offset committed. The attempt count and next due time live in a
   state file (:mod:`bifrost.webhooks.state`), so a restart resumes the retries.

Delivery is at least once (a crash between a 2xx and the commit re-sends): receivers
de-duplicate on ``webhook-id``. Endpoint URLs can embed secrets (Slack-style paths), so
logs and dead letters name an endpoint by host and a short hash, never by URL. A new
endpoint's group starts at the end of ``alerts``: it receives alerts raised from then on.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from bifrost.catalog import metrics
from bifrost.catalog.http import parse_retry_after
from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.kafka.producer import new_producer
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import RejectReason, SourceRecord, dead_letter
from bifrost.webhooks.policy import DeliveryPolicy, Verdict, classify, retry_delay
from bifrost.webhooks.signing import WebhookSecretError, secret_key, sign
from bifrost.webhooks.state import DeliveryState, InFlight

log = logging.getLogger("bifrost.webhooks")

USER_AGENT = "bifrost-optimizer-webhooks/1"


@dataclass(frozen=True)
class Endpoint:
    """A receiver URL; shown as host + id, never as the URL."""

    url: str = field(repr=False)

    @property
    def id(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "?"

    def __str__(self) -> str:
        return f"{self.host}#{self.id}"


def endpoints(settings: Settings) -> list[Endpoint]:
    """``BIFROST_WEBHOOK_URLS`` as endpoints.

    SettingsError for anything but http(s) URLs, and for a link-local address
    (169.254.0.0/16, fe80::/10: where cloud metadata services answer, never a receiver).
    """
    found: list[Endpoint] = []
    for url in (u.strip() for u in settings.webhook_urls.split(",")):
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"BIFROST_WEBHOOK_URLS: entry {len(found) + 1} is not an http(s) URL")
        if is_link_local(parts.hostname):
            raise SettingsError(
                f"BIFROST_WEBHOOK_URLS: entry {len(found) + 1} ({parts.hostname}) is a link-local address "
                "(169.254.0.0/16, fe80::/10, where cloud metadata services answer): refused"
            )
        found.append(Endpoint(url))
    return found


def is_link_local(host: str) -> bool:
    """Whether ``host`` (a URL's hostname) is a link-local IP address, in any spelling a resolver accepts.

    Checks the literal only (names are not resolved): IPv6 with a zone, IPv4-mapped IPv6,
    and the legacy IPv4 forms ``inet_aton`` reads (``0xa9fea9fe``, ``2852039166``).

    >>> [is_link_local(h) for h in ("169.254.169.254", "fe80::1%25eth0", "::ffff:169.254.1.1", "2852039166")]
    [True, True, True, True]
    >>> [is_link_local(h) for h in ("10.0.0.5", "127.0.0.1", "fd00::1", "hooks.example.com")]
    [False, False, False, False]
    """
    host = unquote(host).strip("[]")
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local


def policy_of(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        max_attempts=max(1, settings.webhook_max_attempts),
        backoff_seconds=settings.webhook_backoff_seconds,
        max_backoff_seconds=settings.webhook_max_backoff_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
    )


def secret_of(settings: Settings) -> bytes:
    """The signing key (SettingsError when missing or unusable; the message never shows it)."""
    secret = settings.secret_value("webhook_secret")
    if not secret:
        raise SettingsError(
            "BIFROST_WEBHOOK_URLS is set but BIFROST_WEBHOOK_SECRET (or _FILE) is not: deliveries "
            "must be signed (e.g. `echo whsec_$(openssl rand -base64 32)`)"
        )
    try:
        return secret_key(secret)
    except WebhookSecretError as exc:
        raise SettingsError(f"BIFROST_WEBHOOK_SECRET: {exc}") from None


def envelope(alert: dict[str, object], now: float) -> tuple[str, bytes]:
    """(message id, body) of one alert record's delivery (pure)."""
    created = alert.get("created_at")
    moment = float(created) if isinstance(created, (int, float)) and created > 0 else now
    msg_id = str(alert["alert_id"]) + (":resolved" if alert.get("resolved") is True else "")
    body = msgspec.json.encode(
        {
            "type": f"alert.{alert.get('kind', 'unknown')}",
            "timestamp": datetime.fromtimestamp(moment, UTC).isoformat(),
            "data": alert,
        }
    )
    return msg_id, body


def parse_alert(value: bytes | None) -> dict[str, object]:
    """The alert record as a JSON object with an ``alert_id`` and a ``kind`` (ValueError otherwise).

    Kinds this version does not know are delivered too: the relay forwards what producers raise.
    """
    try:
        alert = msgspec.json.decode(value or b"")
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if (
        not isinstance(alert, dict)
        or not isinstance(alert.get("alert_id"), str)
        or not alert["alert_id"]
        or not isinstance(alert.get("kind"), str)
    ):
        raise ValueError("not an alert: a JSON object with string alert_id and kind is expected")
    return alert


@dataclass
class Attempt:
    status: int | None
    retry_after: float | None
    error: str


class EndpointDeliverer:
    """Consumes ``alerts`` for one endpoint until stopped (``run()``; ``stop_after`` for tests)."""

    def __init__(
        self,
        settings: Settings,
        endpoint: Endpoint,
        *,
        key: bytes,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.key = key
        self.policy = policy_of(settings)
        self.group = f"{settings.app_id}-webhooks-{endpoint.id}"
        self.state = DeliveryState(settings.webhook_state_dir, self.group)
        self.sleep, self.clock, self.rand = sleep, clock, rand
        self.handled = 0
        self.ready = asyncio.Event()  # set once partitions are assigned (tests publish after it)

    async def run(self, *, stop_after: int | None = None) -> None:
        s = self.settings
        options = s.kafka_options()
        topics = s.topics
        # Neither is co-partitioned with anything here: another partition count is fine.
        await ensure_topics(
            s.kafka_bootstrap,
            [TopicSpec(topics.alerts, 1), TopicSpec(topics.dlq, s.partitions)],
            replication_factor=s.replication_factor,
            client_options=options,
            check_partitions=False,
        )
        consumer = AIOKafkaConsumer(
            topics.alerts,
            bootstrap_servers=s.kafka_bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            max_poll_records=1,
            isolation_level="read_committed",
            max_poll_interval_ms=int((self.policy.budget_seconds() + 300) * 1000),
            client_id=self.group,
            **options,
        )
        producer = new_producer(s.kafka_bootstrap, client_id=f"{self.group}-dlq", client_options=options)
        await consumer.start()
        try:
            await producer.start()
            async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
                log.info(
                    "event=webhooks.started endpoint=%s group=%s topic=%s max_attempts=%d",
                    self.endpoint,
                    self.group,
                    topics.alerts,
                    self.policy.max_attempts,
                )
                while stop_after is None or self.handled < stop_after:
                    batches = await consumer.getmany(timeout_ms=500, max_records=1)
                    if consumer.assignment() and not self.ready.is_set():
                        await self._anchor(consumer)
                        self.ready.set()
                    for tp, records in batches.items():
                        for record in records:
                            await self.handle(record, session, producer)
                            try:
                                await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
                            except (CommitFailedError, KafkaError) as exc:
                                log.warning(
                                    "event=webhooks.commit_failed endpoint=%s offset=%d error=%r note=%r",
                                    self.endpoint,
                                    record.offset,
                                    str(exc)[:200],
                                    "the partition moved: its new owner delivers it again (same webhook-id)",
                                )
                            self.state.clear()
                            self.handled += 1
        finally:
            await consumer.stop()
            await producer.stop()

    async def _anchor(self, consumer: AIOKafkaConsumer) -> None:
        """Give a new group a committed starting point, so a restart never skips an alert.

        Without a committed offset the group would start at the end again after a restart,
        past an alert that was in flight: the state file's record is resumed, and otherwise
        the current end is committed as where this endpoint's deliveries begin.
        """
        state = self.state.load()
        for tp in consumer.assignment():
            if await consumer.committed(tp) is not None:
                continue
            if state is not None and (state.topic, state.partition) == (tp.topic, tp.partition):
                consumer.seek(tp, state.offset)
                continue
            start = await consumer.position(tp)
            await consumer.commit({tp: OffsetAndMetadata(start, "")})
            log.info("event=webhooks.anchored endpoint=%s partition=%d offset=%d", self.endpoint, tp.partition, start)

    async def handle(self, record: SourceRecord, session: aiohttp.ClientSession, producer: AIOKafkaProducer) -> str:
        """Deliver one record to the endpoint or dead-letter it; returns ``delivered`` or ``dead_lettered``."""
        topic, partition, offset = record.topic, record.partition, record.offset
        try:
            alert = parse_alert(record.value)
        except ValueError as exc:
            await self._dead_letter(record, producer, RejectReason.SCHEMA, f"webhook relay: {exc}")
            return "dead_lettered"
        msg_id, body = envelope(alert, self.clock())
        state = self.state.load()
        if state is None or not state.same_record(topic, partition, offset):
            state = InFlight(topic=topic, partition=partition, offset=offset, msg_id=msg_id)
        elif state.next_attempt_at > self.clock():  # resumed after a restart: keep the backoff
            await self.sleep(state.next_attempt_at - self.clock())
        while True:
            if state.attempts >= self.policy.max_attempts:
                return await self._give_up(record, producer, state, "no attempts left")
            now = self.clock()
            attempt = await self._post(session, msg_id, body)
            state = msgspec.structs.replace(
                state,
                attempts=state.attempts + 1,
                first_attempt_at=state.first_attempt_at or now,
                last_error=attempt.error,
            )
            verdict = classify(attempt.status)
            result = "error" if attempt.status is None else f"{attempt.status // 100}xx"
            metrics.WEBHOOK_ATTEMPTS.labels(self.endpoint.id, result).inc()
            if verdict is Verdict.DELIVERED:
                metrics.WEBHOOK_DELIVERIES.labels(self.endpoint.id, "delivered").inc()
                log.info(
                    "event=webhooks.delivered endpoint=%s msg_id=%s offset=%d attempts=%d status=%d",
                    self.endpoint,
                    msg_id,
                    offset,
                    state.attempts,
                    attempt.status,
                )
                return "delivered"
            if verdict is Verdict.REFUSED:
                return await self._give_up(record, producer, state, "refused by the receiver")
            if state.attempts >= self.policy.max_attempts:
                return await self._give_up(record, producer, state, "retries exhausted")
            delay = retry_delay(state.attempts, self.policy, rand=self.rand(), retry_after=attempt.retry_after)
            state = msgspec.structs.replace(state, next_attempt_at=self.clock() + delay)
            self.state.save(state)
            log.warning(
                "event=webhooks.retry endpoint=%s msg_id=%s attempt=%d error=%r delay_s=%.1f",
                self.endpoint,
                msg_id,
                state.attempts,
                attempt.error,
                delay,
            )
            await self.sleep(delay)

    async def _post(self, session: aiohttp.ClientSession, msg_id: str, body: bytes) -> Attempt:
        headers = {**sign(self.key, msg_id, body, timestamp=int(self.clock())), "Content-Type": "application/json"}
        try:
            async with session.post(
                self.endpoint.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout_seconds),
            ) as response:
                await response.read()
                return Attempt(
                    response.status,
                    parse_retry_after(response.headers.get("Retry-After"), time.time()),
                    f"HTTP {response.status}",
                )
        except TimeoutError:
            return Attempt(None, None, f"no answer within {self.policy.timeout_seconds:g} s")
        except aiohttp.ClientError as exc:
            return Attempt(None, None, type(exc).__name__)  # the message could quote the URL

    async def _give_up(self, record: SourceRecord, producer: AIOKafkaProducer, state: InFlight, why: str) -> str:
        span = self.clock() - (state.first_attempt_at or self.clock())
        error = (
            f"webhook endpoint {self.endpoint}: {why} after {state.attempts} attempt(s) over {span:.0f} s; "
            f"last: {state.last_error or '-'}; webhook-id {state.msg_id}"
        )
        await self._dead_letter(record, producer, RejectReason.UNDELIVERED, error)
        return "dead_lettered"

    async def _dead_letter(
        self, record: SourceRecord, producer: AIOKafkaProducer, reason: RejectReason, error: str
    ) -> None:
        letter = dead_letter(record, reason, error, self.clock())
        await producer.send_and_wait(self.settings.topics.dlq, encode(letter), key=letter.source_topic.encode())
        metrics.WEBHOOK_DELIVERIES.labels(self.endpoint.id, "dead_lettered").inc()
        log.error(
            "event=webhooks.dead_lettered endpoint=%s offset=%d reason=%s error=%r",
            self.endpoint,
            letter.offset,
            reason.value,
            error,
        )


async def run_deliverers(settings: Settings, *, stop_after: int | None = None) -> None:
    """One :class:`EndpointDeliverer` per ``BIFROST_WEBHOOK_URLS`` entry, until cancelled.

    With ``stop_after``, until each has handled that many alerts.
    """
    found = endpoints(settings)
    if not found:
        return
    key = secret_of(settings)
    await asyncio.gather(*(EndpointDeliverer(settings, e, key=key).run(stop_after=stop_after) for e in found))
