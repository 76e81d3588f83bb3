"""Lag alerts and the monitor's bookkeeping (episodes, leader-only publishing, gauges): no Kafka."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.schemas.alerts import Alert, AlertKind, Severity
from bifrost.streams import observability as obs
from bifrost.streams.lag.alerting import episode_id, next_episode
from bifrost.streams.lag.groups import project_groups, watched_groups
from bifrost.streams.lag.monitor import LagMonitor
from bifrost.streams.lag.rules import GroupSnapshot, LagStatus, LagWindows, PartitionLag


def snap(
    at: float,
    committed: int,
    end: int,
    *,
    members: int = 1,
    group: str = "g",
    partition: int = 0,
    age: float | None = 5.0,
) -> GroupSnapshot:
    lag = max(0, end - committed)
    return GroupSnapshot(
        group=group,
        at=at,
        state="Stable" if members else "Empty",
        members=members,
        exists=True,
        partitions=(
            PartitionLag(
                topic="t",
                partition=partition,
                committed=committed,
                log_end=end,
                lag=lag,
                lag_seconds=age if lag else 0.0,
            ),
        ),
    )


def test_one_alert_per_episode_then_one_resolved() -> None:
    windows = LagWindows(size=3)
    episode = None
    alerts: list[Alert] = []
    # OK, then stopped (no members) for three samples, then caught up.
    for report in [
        windows.add(snap(0, 10, 10)),
        windows.add(snap(10, 10, 12, members=0)),
        windows.add(snap(20, 10, 14, members=0)),
        windows.add(snap(30, 10, 16, members=0)),
        windows.add(snap(40, 16, 16)),
    ]:
        episode, alert = next_episode(report, episode)
        if alert is not None:
            alerts.append(alert)
    opened, resolved = alerts
    assert opened.kind is AlertKind.CONSUMER_LAG and opened.severity is Severity.CRITICAL and not opened.resolved
    assert opened.subject == "g" and opened.evidence["status"] == "STOP" and opened.evidence["lag"] == 2
    assert "STOP" in opened.message and "t[0]" in opened.message
    assert resolved.resolved and resolved.alert_id == opened.alert_id + ":resolved"
    assert resolved.evidence["previous"] == "STOP" and resolved.evidence["seconds"] == 30
    assert episode is None


def test_warn_keeps_an_episode_open_and_stall_is_a_warning() -> None:
    windows = LagWindows(size=3)
    for i in range(3):
        report = windows.add(snap(i * 10.0, 10, 13))
    assert report.status is LagStatus.STALL
    episode, alert = next_episode(report, None)
    assert alert is not None and alert.severity is Severity.WARNING
    warn = windows.add(snap(30, 11, 15))  # moving again but lag not falling
    warn = windows.add(snap(40, 12, 17))
    assert warn.status is LagStatus.WARN
    assert next_episode(warn, episode) == (episode, None)


def test_episode_id_comes_from_kafka_state_not_the_clock() -> None:
    a = LagWindows(size=3).add(snap(0, 10, 12, members=0))
    b = LagWindows(size=3).add(snap(999, 10, 15, members=0))  # another worker, later, more records
    c = LagWindows(size=3).add(snap(0, 11, 15, members=0))  # stuck elsewhere: another episode
    assert episode_id(a) == episode_id(b) != episode_id(c)


def test_groups_derive_from_settings() -> None:
    from bifrost.streams.ingest.service import ingest_group
    from bifrost.streams.warehouse.sink import WarehouseSink

    settings = Settings.from_env({}, app_id="acme", lag_groups=" extra , acme ,")
    groups = project_groups(settings)
    # Each name is the one its service joins.
    assert ingest_group(settings) in groups and settings.app_id in groups
    assert WarehouseSink(settings, Path(settings.warehouse_dir)).group_id in groups
    assert "acme-trainer" in groups and "acme-artifacts" in groups
    assert watched_groups(settings) == [*groups, "extra"]


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"lag_window": 1}, "BIFROST_LAG_WINDOW"),
        ({"lag_interval_seconds": -1.0}, "BIFROST_LAG_INTERVAL_SECONDS"),
    ],
)
def test_bad_lag_settings_are_refused(env: dict[str, object], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        LagMonitor(Settings.from_env({}, **env))


class Leader:
    def __init__(self, value: bool) -> None:
        self.value = value

    def __call__(self) -> bool:
        return self.value


def sample(name: str, labels: dict[str, str]) -> float | None:
    return obs.REGISTRY.get_sample_value(name, labels)


def test_monitor_exports_gauges_and_alerts_only_as_leader() -> None:
    sent: list[Alert] = []

    async def publish(alert: Alert) -> None:
        sent.append(alert)

    leader = Leader(False)
    group = "unit-lag-group"
    monitor = LagMonitor(
        Settings.from_env({}, lag_window=2, lag_interval_seconds=1.0), publish=publish, is_leader=leader
    )

    async def run() -> None:
        await monitor.record([snap(0, 10, 10, group=group)])
        assert sample("bifrost_consumer_lag_messages", {"group": group, "topic": "t", "partition": "0"}) == 0
        assert sample("bifrost_consumer_group_status", {"group": group, "status": "OK"}) == 1
        await monitor.record([snap(1, 10, 14, members=0, group=group, age=7.5)])
        assert sample("bifrost_consumer_lag_messages", {"group": group, "topic": "t", "partition": "0"}) == 4
        assert sample("bifrost_consumer_lag_seconds", {"group": group, "topic": "t", "partition": "0"}) == 7.5
        assert sample("bifrost_consumer_group_status", {"group": group, "status": "STOP"}) == 1
        assert sample("bifrost_consumer_group_status", {"group": group, "status": "OK"}) == 0
        assert sent == []  # not the leader: the episode is tracked, nothing published
        leader.value = True
        await monitor.record([snap(2, 10, 15, members=0, group=group)])
        assert [a.resolved for a in sent] == [False]  # the open episode, sent by the new leader
        await monitor.record([snap(3, 10, 16, members=0, group=group)])
        assert len(sent) == 1  # same episode: not again
        await monitor.record([snap(4, 16, 16, group=group, partition=1)])  # partition 0 gone, 1 caught up
        assert [a.resolved for a in sent] == [False, True]
        assert sample("bifrost_consumer_lag_messages", {"group": group, "topic": "t", "partition": "0"}) is None
        view = monitor.view()
        assert view["groups"][0]["group"] == group and view["groups"][0]["status"] == "OK" and view["samples"] == 5

    asyncio.run(run())


def test_a_failing_publisher_keeps_the_alert_for_the_next_sample() -> None:
    sent: list[Alert] = []
    failures = [RuntimeError("broker away")]

    async def publish(alert: Alert) -> None:
        if failures:
            raise failures.pop()
        sent.append(alert)

    monitor = LagMonitor(Settings.from_env({}, lag_window=2), publish=publish)

    async def run() -> None:
        await monitor.record([snap(0, 10, 14, members=0, group="unit-lag-retry")])
        assert sent == [] and failures  # warming up: nothing decided in the first window
        await monitor.record([snap(1, 10, 14, members=0, group="unit-lag-retry")])
        assert sent == [] and not failures  # the first attempt failed
        await monitor.record([snap(2, 10, 14, members=0, group="unit-lag-retry")])
        assert len(sent) == 1 and not sent[0].resolved

    asyncio.run(run())


def test_an_unreachable_broker_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    from bifrost.devkafka import free_listener_port
    from bifrost.streams.lag.probe import LagProbe

    settings = Settings.from_env({}, kafka_bootstrap=f"127.0.0.1:{free_listener_port()}", lag_window=2)
    monitor = LagMonitor(settings, probe=LagProbe(settings.kafka_bootstrap, settings.kafka_options(), timeout=2.0))

    async def run() -> None:
        assert await monitor.sample_once() == ()
        assert await monitor.sample_once() == ()  # and again: the probe reconnects each time

    asyncio.run(run())
    assert monitor.last_error and monitor.samples == 0
    assert monitor.view()["error"] == monitor.last_error
    assert sum("event=lag.sample_failed" in r.getMessage() for r in caplog.records) == 2


def test_a_long_training_run_is_not_an_episode_until_its_grace_ends_but_a_stopped_trainer_is() -> None:
    sent: list[Alert] = []

    async def publish(alert: Alert) -> None:
        sent.append(alert)

    settings = Settings.from_env({}, lag_window=2, lag_interval_seconds=10.0, lag_trainer_grace_seconds=100.0)
    trainer = f"{settings.app_id}-trainer"
    monitor = LagMonitor(settings, publish=publish, is_leader=Leader(True))

    async def run() -> None:
        # A run in progress: the trigger's offset stands still, lag 1, the member is alive.
        for at in range(0, 100, 10):
            await monitor.record([snap(at, 10, 11, group=trainer)])
        assert monitor.reports[0].status in (LagStatus.STALL, LagStatus.ERR)
        assert sent == []  # inside the grace
        await monitor.record([snap(120, 10, 11, group=trainer)])
        assert [a.resolved for a in sent] == [False]  # a run longer than the grace is worth a look
        await monitor.record([snap(130, 11, 11, group=trainer)])
        assert [a.resolved for a in sent] == [False, True]
        await monitor.record([snap(140, 11, 12, members=0, group=trainer)])
        await monitor.record([snap(150, 11, 12, members=0, group=trainer)])
        assert [a.resolved for a in sent] == [False, True, False]  # no trainer at all: at once
        assert sent[-1].severity is Severity.CRITICAL

    asyncio.run(run())
