"""Webhook delivery of alerts on the real broker, to a local receiver that verifies every signature.

* a delivered alert's signature verifies with the shared secret (``bifrost.webhooks.verify``);
* a receiver down for a while (503, then refused connections) still gets the alert after retries;
* a receiver down for good → one dead letter (reason ``undelivered``) and the offset moves on;
* a deliverer stopped mid-retry resumes its attempt count after a restart, and an alert
  delivered before a restart is not delivered again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bifrost.config import Settings
from bifrost.schemas.alerts import Alert, AlertKind, Severity
from bifrost.schemas.dlq import RejectReason
from bifrost.streams.alerts.publisher import AlertProducer
from bifrost.webhooks import WebhookVerificationError, verify
from bifrost.webhooks.deliverer import Endpoint, EndpointDeliverer, secret_of
from bifrost.webhooks.state import DeliveryState
from tests.integration.harness import eventually, read_dead_letters

pytestmark = pytest.mark.kafka

SECRET = "whsec_" + base64.b64encode(b"integration-test-webhook-key-32b").decode()


@dataclass
class Receiver:
    """A webhook receiver: answers ``plan`` statuses in order (then 204), verifies what it accepts."""

    plan: list[int] = field(default_factory=list)
    always: int | None = None
    attempts: list[dict[str, str]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)  # JSON bodies
    rejected: list[str] = field(default_factory=list)
    server: TestServer | None = None

    async def start(self, port: int = 0) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks/T000/B000/secret-path", self.handle)
        self.server = TestServer(app, host="127.0.0.1", port=port)
        await self.server.start_server()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hooks/T000/B000/secret-path"))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts.append(dict(request.headers))
        status = self.plan.pop(0) if self.plan else (self.always or 204)
        if status >= 300:
            return web.Response(status=status, headers={"Retry-After": "0"} if status == 503 else {})
        try:
            verify(SECRET, request.headers, body)
        except WebhookVerificationError as exc:
            self.rejected.append(str(exc))
            return web.Response(status=401)
        self.accepted.append({"id": request.headers["webhook-id"], **json.loads(body)})
        return web.Response(status=status)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()


def hook_settings(settings: Settings, tmp_path: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        webhook_urls=url,
        webhook_secret=SECRET,
        webhook_max_attempts=4,
        webhook_backoff_seconds=0.2,
        webhook_max_backoff_seconds=1.0,
        webhook_timeout_seconds=2.0,
        webhook_state_dir=str(tmp_path / "webhooks"),
        refresher_metrics_port=0,
    )
    values.update(overrides)
    return Settings.from_env(settings.to_env(), **values)


def alert(n: int, *, resolved: bool = False) -> Alert:
    return Alert(
        alert_id=f"catalog_drift:test-{n}",
        kind=AlertKind.CATALOG_DRIFT,
        severity=Severity.WARNING,
        subject="artifact v1",
        message=f"test alert {n}",
        evidence={"n": n},
        resolved=resolved,
        created_at=time.time(),
    )


async def started(settings: Settings, url: str, **kwargs: Any) -> tuple[EndpointDeliverer, asyncio.Task[None]]:
    deliverer = EndpointDeliverer(settings, Endpoint(url), key=secret_of(settings), **kwargs)
    task = asyncio.create_task(deliverer.run())
    await asyncio.wait_for(deliverer.ready.wait(), 60)
    return deliverer, task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def publish(settings: Settings, *alerts: Alert) -> None:
    producer = AlertProducer(settings)
    try:
        for a in alerts:
            await producer.publish(a)
    finally:
        await producer.close()


async def test_signed_delivery_after_a_receiver_outage_and_no_redelivery_after_restart(
    settings: Settings, tmp_path: Path
) -> None:
    receiver = await Receiver(plan=[503, 502]).start()
    s = hook_settings(settings, tmp_path, receiver.url)
    deliverer, task = await started(s, receiver.url)
    try:
        await publish(s, alert(1), alert(1, resolved=True))
        await eventually(lambda: len(receiver.accepted) == 2, timeout=60, what="both alerts delivered")
    finally:
        await stop(task)
    assert receiver.rejected == []
    assert len(receiver.attempts) == 4  # two failed attempts, then one per alert
    first, second = receiver.accepted
    assert first["id"] == "catalog_drift:test-1" and second["id"] == "catalog_drift:test-1:resolved"
    assert first["type"] == "alert.catalog_drift" and first["data"]["message"] == "test alert 1"
    # Same webhook-id on the retries of one alert: receivers de-duplicate on it.
    assert {a["webhook-id"] for a in receiver.attempts[:3]} == {"catalog_drift:test-1"}
    assert not DeliveryState(s.webhook_state_dir, deliverer.group).path.exists()

    # Restarted: the committed offsets say both are done; only the new alert arrives.
    deliverer, task = await started(s, receiver.url)
    try:
        await publish(s, alert(2))
        await eventually(lambda: len(receiver.accepted) == 3, timeout=60, what="the third alert")
        await asyncio.sleep(1.0)
    finally:
        await stop(task)
    assert [a["id"] for a in receiver.accepted] == [
        "catalog_drift:test-1",
        "catalog_drift:test-1:resolved",
        "catalog_drift:test-2",
    ]
    await receiver.close()


async def test_a_receiver_down_for_a_while_gets_the_alert_once_it_is_back(settings: Settings, tmp_path: Path) -> None:
    receiver = await Receiver().start()
    assert receiver.server is not None and receiver.server.port is not None
    port = receiver.server.port
    url = receiver.url
    await receiver.close()  # nothing listens: connections are refused
    s = hook_settings(
        settings, tmp_path, url, webhook_max_attempts=30, webhook_backoff_seconds=0.2, webhook_max_backoff_seconds=0.5
    )
    deliverer, task = await started(s, url)
    try:
        await publish(s, alert(3))
        state = DeliveryState(s.webhook_state_dir, deliverer.group)
        await eventually(
            lambda: (st := state.load()) is not None and st.attempts >= 3, timeout=30, what="three refused attempts"
        )
        receiver = await Receiver().start(port=port)  # back, on the same address
        await eventually(lambda: len(receiver.accepted) == 1, timeout=30, what="delivery once the receiver is back")
    finally:
        await stop(task)
        await receiver.close()
    assert receiver.accepted[0]["id"] == "catalog_drift:test-3" and receiver.rejected == []


async def test_a_receiver_down_for_good_ends_in_the_dlq_and_retries_survive_a_restart(
    settings: Settings, tmp_path: Path
) -> None:
    receiver = await Receiver(always=503).start()
    s = hook_settings(
        settings,
        tmp_path,
        receiver.url,
        webhook_max_attempts=5,
        webhook_backoff_seconds=2.0,
        webhook_max_backoff_seconds=2.0,
    )
    deliverer, task = await started(s, receiver.url)
    state = DeliveryState(s.webhook_state_dir, deliverer.group)
    await publish(s, alert(4))
    await eventually(
        lambda: (st := state.load()) is not None and st.attempts >= 2, timeout=30, interval=0.05, what="two attempts"
    )
    await stop(task)  # stopped mid-retry (the next attempt is 1-2 s away)
    spent = len(receiver.attempts)
    loaded = state.load()
    assert 2 <= spent < 5 and loaded is not None and loaded.attempts == spent

    deliverer, task = await started(s, receiver.url)  # resumes the same alert with 2 attempts spent
    try:
        letters = await read_dead_letters(s.kafka_bootstrap, s.topics.dlq, expected=1, timeout=60)
    finally:
        await stop(task)
    assert len(receiver.attempts) == 5  # the attempts before the restart count: the budget was not restarted
    (letter,) = letters
    assert letter.reason is RejectReason.UNDELIVERED and letter.source_topic == s.topics.alerts
    assert json.loads(letter.original)["alert_id"] == "catalog_drift:test-4"
    assert "5 attempt(s)" in letter.error and "HTTP 503" in letter.error and "127.0.0.1#" in letter.error
    assert "secret-path" not in letter.error  # the URL's path can be a credential: never in a dead letter
    assert not state.path.exists()

    # The dead-lettered offset is committed: a new alert is delivered next, the old one never again.
    receiver.always = None
    deliverer, task = await started(s, receiver.url)
    try:
        await publish(s, alert(5))
        await eventually(lambda: len(receiver.accepted) == 1, timeout=30, what="the next alert")
    finally:
        await stop(task)
    assert receiver.accepted[0]["id"] == "catalog_drift:test-5"
    await receiver.close()
