"""Consumer lag on the real broker: a stopped worker's groups go ERR/STOP and back to OK, lag in
records is exact and lag in seconds is the true age of the oldest unconsumed event; the
worker's monitor publishes one alert per episode and its resolution, gauges and /v1/lag."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bifrost.client.simulator import TrafficConfig, generate
from bifrost.config import Settings
from bifrost.schemas.alerts import Alert, AlertKind
from bifrost.schemas.codec import encode
from bifrost.streams.lag.probe import LagProbe
from bifrost.streams.lag.rules import GroupReport, LagStatus, LagWindows
from tests.integration.harness import WorkerProcess, collect, eventually, settings_env

pytestmark = pytest.mark.kafka

INTERVAL = 1.0
WINDOW = 4


def lag_settings(settings: Settings, **overrides: Any) -> Settings:
    """Short intervals so that a window is seconds long; the warehouse flushes (and commits) every second."""
    values: dict[str, Any] = dict(lag_interval_seconds=INTERVAL, lag_window=WINDOW, warehouse_flush_seconds=1.0)
    values.update(overrides)
    return Settings.from_env(settings.to_env(), **values)


class Observer:
    """Samples lag like the CLI does (the probe and the window rules), keeping every report."""

    def __init__(self, settings: Settings, groups: list[str]) -> None:
        self.probe = LagProbe(settings.kafka_bootstrap, settings.kafka_options())
        self.windows = LagWindows(WINDOW)
        self.groups = groups
        self.history: list[dict[str, GroupReport]] = []

    async def sample(self) -> dict[str, GroupReport]:
        reports = {s.group: self.windows.add(s) for s in await self.probe.snapshot(self.groups)}
        self.history.append(reports)
        return reports

    async def until(
        self, accept: Callable[[dict[str, GroupReport]], bool], *, timeout: float, what: str
    ) -> dict[str, GroupReport]:
        deadline = time.monotonic() + timeout
        while True:
            started = time.monotonic()
            reports = await self.sample()
            if accept(reports):
                return reports
            if time.monotonic() > deadline:
                last = {g: (r.status.value, r.lag, r.members) for g, r in reports.items()}
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last}")
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - started)))


async def send_events(producer: AIOKafkaProducer, topic: str, n: int, seed: int) -> dict[int, list[int]]:
    """Publish ``n`` valid routing events now; returns partition -> the records' timestamps (ms)."""
    config = TrafficConfig(
        routers=("router-lag",),
        arms={"v1": 1.0},
        rate_per_second=50.0,
        duration_seconds=n / 50.0,
        start_ts=time.time() - n / 50.0,
        seed=seed,
    )
    sent: dict[int, list[int]] = {}
    for generated in generate(config):
        if generated.event is None:
            continue
        meta = await producer.send_and_wait(topic, encode(generated.event), key=generated.event.request_id.encode())
        sent.setdefault(meta.partition, []).append(meta.timestamp)
    return sent


def worker_view(worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    status, body = worker.get("/v1/lag")
    return {g["group"]: g for g in body["groups"]} if status == 200 and body else {}


async def test_stopped_worker_goes_stop_then_ok_and_lag_seconds_is_the_true_age(
    settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Any
) -> None:
    s = lag_settings(settings)
    ingest, faust_group, warehouse = f"{s.app_id}-ingest", s.app_id, f"{s.app_id}-warehouse"
    worker = start_worker(s, data_dir=str(tmp_path / "w"))
    await eventually(lambda: len(worker.owns_inputs()) == s.partitions, timeout=120, what="worker to own the inputs")
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    await producer.start()
    observer = Observer(s, [ingest, faust_group, warehouse])
    await observer.probe.start()
    try:
        await send_events(producer, s.topics.routing_events, 40, seed=1)
        # The worker's own monitor sees its groups caught up (view and metrics).
        await eventually(
            lambda: (
                (v := worker_view(worker).get(ingest)) and v["status"] == "OK" and v["lag"] == 0 and v["samples"] >= 2
            ),
            timeout=60,
            what="the worker's /v1/lag to show the ingest group OK",
        )
        _, metrics = worker.get("/metrics")
        assert f'bifrost_consumer_group_status{{group="{ingest}",status="OK"}} 1.0' in metrics
        assert (
            f'bifrost_consumer_lag_messages{{group="{ingest}",partition="0",topic="{s.topics.routing_events}"}} '
            "0.0" in metrics
        )

        worker.stop()
        stopped = time.time()
        # The oldest unconsumed events: published right after the stop; more follow while it is down.
        first = await send_events(producer, s.topics.routing_events, 12, seed=2)
        await asyncio.sleep(5.0)
        later = await send_events(producer, s.topics.routing_events, 12, seed=3)
        published = {p: len(first.get(p, [])) + len(later.get(p, [])) for p in set(first) | set(later)}
        bad = await observer.until(
            lambda r: all(r[g].status in (LagStatus.ERR, LagStatus.STOP) for g in (ingest, warehouse)),
            timeout=s.session_timeout_seconds + WINDOW * INTERVAL + 20,
            what="the stopped worker's ingest and warehouse groups to go ERR or STOP",
        )
        went_bad = time.time() - stopped
        report = bad[ingest]
        # Within the sliding window (after the static member's session timeout at worst).
        assert went_bad <= s.session_timeout_seconds + WINDOW * INTERVAL + 10, went_bad
        # Lag in records is exact, per partition.
        lag = {p.partition: p.lag for p in report.partitions if p.topic == s.topics.routing_events}
        assert lag == {p: published.get(p, 0) for p in range(s.partitions)}
        # Lag in seconds: the age of each partition's oldest unconsumed event, within 20%.
        for p in report.partitions:
            if p.topic != s.topics.routing_events or not p.lag:
                continue
            oldest = min(first.get(p.partition) or later[p.partition]) / 1000.0
            true_age = report.at - oldest
            assert p.lag_seconds is not None and abs(p.lag_seconds - true_age) <= 0.2 * true_age, (p, true_age)
        oldest_overall = min(min(ts) for ts in first.values()) / 1000.0
        assert report.lag_seconds is not None and report.lag_seconds >= 5.0  # not the newest (~0 s) record
        assert abs(report.lag_seconds - (report.at - oldest_overall)) <= 0.2 * (report.at - oldest_overall)

        restarted = start_worker(s, data_dir=str(tmp_path / "w"), web_port=worker.settings.web_port)
        back = time.time()
        healthy = await observer.until(
            lambda r: all(
                r[g].status is LagStatus.OK and r[g].lag == 0 and r[g].members > 0
                for g in (ingest, warehouse, faust_group)
            ),
            timeout=120,
            what="the restarted worker's groups back to OK with lag 0",
        )
        assert healthy[ingest].lag_seconds == 0.0
        print(f"went ERR/STOP {went_bad:.1f} s after the stop; OK {time.time() - back:.1f} s after the restart")
        await eventually(
            lambda: (v := worker_view(restarted).get(ingest)) and v["status"] == "OK" and v["lag"] == 0,
            timeout=60,
            what="the restarted worker's /v1/lag to show the ingest group OK",
        )
    finally:
        await observer.probe.close()
        await producer.stop()


async def test_worker_alerts_once_per_episode_and_resolves(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    topic = f"{settings.topic_prefix}lag-watched"
    group = f"{settings.app_id}-outside"  # another service's group, named by BIFROST_LAG_GROUPS
    s = lag_settings(settings, lag_groups=group)
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"first", partition=0)

        async def consume_all() -> None:
            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=s.kafka_bootstrap,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            try:
                await eventually(lambda: consumer.getmany(timeout_ms=500), timeout=30, what="records")
                await consumer.commit()
            finally:
                await consumer.stop()

        await consume_all()  # the group exists, caught up, and has no member
        worker = start_worker(s)
        await eventually(
            lambda: (v := worker_view(worker).get(group)) and v["status"] == "OK" and v["samples"] >= WINDOW,
            timeout=120,
            what="the watched group OK for a full window",
        )
        for i in range(3):
            await producer.send_and_wait(topic, f"waiting {i}".encode(), partition=0)
        await eventually(
            lambda: (v := worker_view(worker).get(group)) and v["status"] == "STOP",
            timeout=30,
            what="the watched group to go STOP",
        )
        _, metrics = worker.get("/metrics")
        assert f'bifrost_consumer_group_status{{group="{group}",status="STOP"}} 1.0' in metrics
        assert f'bifrost_consumer_lag_messages{{group="{group}",partition="0",topic="{topic}"}} 3.0' in metrics
        await asyncio.sleep(3 * INTERVAL)  # still STOP for a few samples: no second alert
        await consume_all()
        await eventually(
            lambda: (v := worker_view(worker).get(group)) and v["status"] == "OK",
            timeout=30,
            what="the watched group back to OK",
        )
        alerts = [
            a
            for a in await collect(s.kafka_bootstrap, s.topics.alerts, Alert, want=2, timeout=30)
            if a.subject == group
        ]
        assert [a.resolved for a in alerts] == [False, True], alerts
        opened, resolved = alerts
        assert opened.kind is AlertKind.CONSUMER_LAG and opened.evidence["status"] == "STOP"
        assert opened.evidence["lag"] == 3 and opened.evidence["members"] == 0
        assert resolved.alert_id == f"{opened.alert_id}:resolved" and resolved.evidence["previous"] == "STOP"
    finally:
        await producer.stop()


async def test_cli_lag_refuses_an_unknown_group_and_shows_a_known_one(settings: Settings) -> None:
    topic = f"{settings.topic_prefix}cli-lag"
    group = f"{settings.app_id}-cli"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for _ in range(5):
            await producer.send_and_wait(topic, b"x", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        records = await eventually(lambda: consumer.getmany(timeout_ms=500), timeout=30, what="records")
        first = next(iter(records.values()))[0]
        await consumer.commit({next(iter(records)): first.offset + 2})
    finally:
        await consumer.stop()
    env = settings_env(settings)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bifrost.cli.main", "lag", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    unknown = cli("--group", group + "x")
    assert unknown.returncode == 2 and "unknown consumer group" in unknown.stderr and group in unknown.stderr
    assert "Traceback" not in unknown.stderr
    shown = cli("--group", group, "--json")
    assert shown.returncode == 0, shown.stderr
    (report,) = json.loads(shown.stdout)["groups"]
    assert report["status"] == "STOP" and report["lag"] == 3 and report["members"] == 0
    assert report["partitions"][0]["lag_seconds"] > 0
    table = cli("--group", group)
    assert table.returncode == 0 and f"{group}  STOP" in table.stdout and topic in table.stdout


async def test_transaction_markers_aborted_and_open_transactions_are_not_lag(settings: Settings) -> None:
    from aiokafka import TopicPartition

    from bifrost.kafka.topics import TopicSpec, ensure_topics

    topic, group = f"{settings.topic_prefix}tx-lag", f"{settings.app_id}-tx"
    tp = TopicPartition(topic, 0)
    await ensure_topics(settings.kafka_bootstrap, [TopicSpec(topic, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"{group}-producer")
    committer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    probe = LagProbe(settings.kafka_bootstrap, settings.kafka_options())
    await producer.start()
    await committer.start()
    await probe.start()

    async def transaction(n: int, *, commit: bool = True) -> None:
        async with producer.transaction() if commit else _aborting(producer):
            for i in range(n):
                await producer.send_and_wait(topic, f"r{i}".encode(), partition=0)

    async def lag() -> tuple[int, int, float | None]:
        (snapshot,) = await probe.snapshot([group])
        (p,) = snapshot.partitions
        return p.lag, p.log_end, p.lag_seconds

    try:
        await transaction(3)  # records 0-2, commit marker 3
        committer.assign([tp])
        await committer.commit({tp: 3})  # a consumer that read everything commits after its last record
        assert await lag() == (0, 4, 0.0)  # the marker is not lag
        await transaction(2, commit=False)  # aborted records 4-5, abort marker 6
        assert await lag() == (0, 7, 0.0)
        await transaction(1)  # record 7, marker 8
        sent = time.time()
        await asyncio.sleep(1.0)
        await producer.begin_transaction()  # open: its records are beyond the last stable offset
        await producer.send_and_wait(topic, b"pending", partition=0)
        records, end, age = await lag()
        assert (records, end) == (1, 9)  # exactly record 7
        assert age is not None and 1.0 <= age <= time.time() - sent + 0.2
        await producer.abort_transaction()
    finally:
        await probe.close()
        await committer.stop()
        await producer.stop()


class _aborting:
    """``async with``: a transaction that is aborted at the end."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def __aenter__(self) -> None:
        await self.producer.begin_transaction()

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.abort_transaction()
