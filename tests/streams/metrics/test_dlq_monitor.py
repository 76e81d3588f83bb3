"""The surge monitor shell: one WARNING per episode, alerts in order, retried when sending fails."""

from __future__ import annotations

import logging

import pytest

from bifrost.schemas.alerts import Alert
from bifrost.streams.metrics.dlq_monitor import DlqSurgeMonitor
from bifrost.streams.metrics.surge import DlqSurgeDetector, SurgePolicy

T = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> float:
        return self.now


async def test_one_warning_and_one_alert_per_episode_then_the_resolved_alert(caplog: pytest.LogCaptureFixture) -> None:
    clock, sent = Clock(), []

    async def publish(alert: Alert) -> None:
        sent.append(alert)

    detector = DlqSurgeDetector(SurgePolicy(threshold=0.01, min_dead_letters=20, window_seconds=60))
    monitor = DlqSurgeMonitor(detector, subject="app-ingest/w1", publish=publish, clock=clock)
    with caplog.at_level(logging.INFO, logger="bifrost.dlq"):
        for second in range(200):
            clock.now = T + second
            detector.record(clock.now, inputs=100, reasons={"too_late": 40} if second < 30 else {})
            await monitor.tick()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "event=dlq.surge " in line and "top_reason=too_late" in line and "dead_letters=40 inputs=100" in line
    assert [a.resolved for a in sent] == [False, True] and sent[0].alert_id == sent[1].alert_id
    assert any("event=dlq.surge.resolved" in r.getMessage() for r in caplog.records)


async def test_a_failed_send_is_kept_and_retried_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock, sent, failures = Clock(), [], [3]

    async def flaky(alert: Alert) -> None:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("broker down")
        sent.append(alert)

    detector = DlqSurgeDetector(SurgePolicy(threshold=0.01, min_dead_letters=5))
    monitor = DlqSurgeMonitor(detector, subject="s", publish=flaky, clock=clock)
    detector.record(T, inputs=10, reasons={"schema": 10})
    with caplog.at_level(logging.WARNING, logger="bifrost.dlq"):
        for step in range(100):  # the surge ends when its second leaves the window (60 s)
            clock.now = T + step
            await monitor.tick()
    assert len(sent) == 2 and not sent[0].resolved and sent[1].resolved  # nothing lost, order kept
    assert sum("event=alert.publish_failed" in r.getMessage() for r in caplog.records) == 1
