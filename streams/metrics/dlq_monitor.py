"""The worker's DLQ surge monitor: one WARNING line and one alert per surge (thin shell).

Ingest records, at each committed transaction, how many input records it read and how
many went to the DLQ by reason (:class:`~.surge.DlqSurgeDetector`, pure). This task looks
once a second: when a surge begins it logs one WARNING with the top reason and counts and
publishes a ``dlq_surge`` alert; when it ends, one INFO line and the resolved alert (same
``alert_id``). Each worker judges its own input (its partitions are a sample of all).
A failed publish is retried every few seconds; the monitor never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge

from bifrost.schemas.alerts import Alert
from bifrost.streams import observability as obs
from bifrost.streams.metrics.surge import DlqSurgeDetector, SurgeChange, surge_alert

log = logging.getLogger("bifrost.dlq")

SURGE_ACTIVE = Gauge(
    "bifrost_dlq_surge_active",
    "1 while this worker's share of input going to the DLQ is in a surge (BIFROST_DLQ_SURGE_*).",
    registry=obs.REGISTRY,
)
SURGES = Counter("bifrost_dlq_surges_total", "DLQ surge episodes begun on this worker.", registry=obs.REGISTRY)
ALERTS = Counter(
    "bifrost_alerts_published_total",
    "Alerts this worker published on the alerts topic, by kind.",
    ["kind"],
    registry=obs.REGISTRY,
)

_OUTBOX_MAX = 20
_RETRY_SECONDS = 5.0


class DlqSurgeMonitor:
    """Turns the detector's surge starts and ends into log lines and alerts."""

    def __init__(
        self,
        detector: DlqSurgeDetector,
        *,
        subject: str,
        publish: Callable[[Alert], Awaitable[None]] | None,
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
    ) -> None:
        self.detector = detector
        self.subject = subject
        self._publish = publish
        self._clock = clock
        self._interval = interval
        self._outbox: deque[Alert] = deque(maxlen=_OUTBOX_MAX)
        self._retry_at = 0.0

    async def run(self) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(self._interval)

    async def tick(self) -> None:
        """One look: report a surge that began or ended, then send what is waiting."""
        now = self._clock()
        change = self.detector.check(now)
        if change is not None:
            self._report(change)
        await self._flush(now)

    def _report(self, change: SurgeChange) -> None:
        window = self.detector.policy.window_seconds
        alert = surge_alert(change, subject=self.subject, window_seconds=window)
        reason, count = change.top_reason
        reasons = ",".join(f"{r}:{c}" for r, c in sorted(change.reasons.items()))
        if change.started:
            SURGE_ACTIVE.set(1)
            SURGES.inc()
            log.warning(
                "event=dlq.surge subject=%s top_reason=%s top_reason_count=%d dead_letters=%d inputs=%d "
                "share=%.4f threshold=%.4f window_s=%.0f reasons=%s alert_id=%s",
                self.subject,
                reason,
                count,
                change.dead_letters,
                change.inputs,
                change.share,
                self.detector.policy.threshold,
                window,
                reasons,
                alert.alert_id,
            )
        else:
            SURGE_ACTIVE.set(0)
            log.info(
                "event=dlq.surge.resolved subject=%s dead_letters=%d inputs=%d share=%.4f window_s=%.0f "
                "lasted_s=%.0f alert_id=%s",
                self.subject,
                change.dead_letters,
                change.inputs,
                change.share,
                window,
                change.at - change.episode_start,
                alert.alert_id,
            )
        if self._publish is not None:
            self._outbox.append(alert)

    async def _flush(self, now: float) -> None:
        if not self._outbox or now < self._retry_at or self._publish is None:
            return
        while self._outbox:
            alert = self._outbox[0]
            try:
                await self._publish(alert)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - kept and retried; alerts must not stop the worker
                if self._retry_at == 0.0:
                    log.warning(
                        "event=alert.publish_failed kind=%s alert_id=%s error=%r retry_s=%.0f",
                        alert.kind.value,
                        alert.alert_id,
                        exc,
                        _RETRY_SECONDS,
                    )
                self._retry_at = now + _RETRY_SECONDS
                return
            self._outbox.popleft()
            self._retry_at = 0.0
            ALERTS.labels(alert.kind.value).inc()
            log.info(
                "event=alert.published kind=%s alert_id=%s resolved=%s",
                alert.kind.value,
                alert.alert_id,
                alert.resolved,
            )
