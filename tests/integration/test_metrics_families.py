"""Product metrics on the real broker: /metrics after traffic, a canary and a rollback; DLQ surges.

A real worker consumes what the project's Publisher sends; the test scrapes the worker's
(and the trainer's) /metrics and reads alerts back from Kafka. Nothing is mocked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bifrost.client import Publisher
from bifrost.client.rollout import new_command, wait_for_outcome
from bifrost.client.simulator import TrafficConfig, generate
from bifrost.config import Settings
from bifrost.router.keys import generate_private_key
from bifrost.schemas import encode
from bifrost.schemas.alerts import Alert, AlertKind
from bifrost.schemas.events import RoutingEvent
from bifrost.schemas.rollout import CommandKind, Phase
from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
from tests.integration.command_keys import CommandKeys, command_keys, mark_verified
from tests.integration.harness import WorkerProcess, collect, eventually, free_port, settings_env

pytestmark = pytest.mark.kafka

ROUTER = "router-m"
MALFORMED = {b"{truncated": "bad_json", b'{"request_id": "x"}': "schema", b"[]": "schema"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    import urllib.request

    request = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labelled(samples: Samples, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return {key: value for (n, key), value in samples.items() if n == name and want <= set(key)}


def one(samples: Samples, name: str, **labels: str) -> float | None:
    found = labelled(samples, name, **labels)
    return sum(found.values()) if found else None


def events(n: int, *, seed: int, start: float) -> list[RoutingEvent]:
    config = TrafficConfig(
        routers=(ROUTER,),
        arms={"v1": 0.6, "v2": 0.4},
        rate_per_second=50.0,
        duration_seconds=n / 50.0,
        start_ts=start,
        seed=seed,
    )
    return [g.event for g in generate(config) if g.event is not None]


async def publish(settings: Settings, items: list[RoutingEvent], raw: Sequence[bytes] = ()) -> None:
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        for event in items:
            await publisher.publish(event)
        for value in raw:
            await publisher.send_raw(settings.topics.routing_events, b"bad", value)


async def ready(worker: WorkerProcess) -> None:
    await eventually(
        lambda: len(worker.owns_inputs()) == worker.settings.partitions,
        timeout=90,
        what="worker to own all input partitions",
    )


@pytest.fixture
def keys(tmp_path: Path) -> CommandKeys:
    return command_keys(tmp_path / "keys")


async def test_metrics_families_after_traffic_a_canary_and_a_rollback(
    settings: Settings, keys: CommandKeys, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = keys.worker(Settings.from_env(settings.to_env(), partitions=2))
    worker = start_worker(settings)
    await ready(worker)
    start = time.time() - 1800
    first = events(1500, seed=21, start=start)
    raw = list(MALFORMED) * 4  # 12 dead letters of 1,512 inputs: below the surge minimum
    await publish(settings, first, raw)

    want = Counter(e.arm for e in first)

    def counted() -> dict[str, float | None]:
        samples = scrape(worker.url)
        return {arm: one(samples, "bifrost_router_requests_total", router=ROUTER, arm=arm) for arm in want}

    await eventually(lambda: counted() == want, timeout=90, what=f"request counters {dict(want)}")
    samples = scrape(worker.url)
    for arm in want:
        mine = [e for e in first if e.arm == arm]
        assert one(samples, "bifrost_router_errors_total", router=ROUTER, arm=arm) == sum(not e.success for e in mine)
        assert one(samples, "bifrost_router_rate_limited_total", router=ROUTER, arm=arm) == sum(
            e.rate_limited for e in mine
        )
        assert one(samples, "bifrost_router_cost_usd_total", router=ROUTER, arm=arm) == pytest.approx(
            sum(e.cost_usd for e in mine), rel=1e-9
        )
        assert one(samples, "bifrost_router_request_latency_seconds_count", router=ROUTER, arm=arm) == len(mine)
        assert one(samples, "bifrost_router_request_latency_seconds_sum", router=ROUTER, arm=arm) == pytest.approx(
            sum(e.latency_ms for e in mine) / 1000, rel=1e-9
        )
        # The 2.5 s bucket (the SLO) holds the latencies up to 2.5 s, within the sketch's 2% at the bound.
        le_slo = one(samples, "bifrost_router_request_latency_seconds_bucket", router=ROUTER, arm=arm, le="2.5")
        assert le_slo is not None
        assert sum(e.latency_ms <= 2450 for e in mine) <= le_slo <= sum(e.latency_ms <= 2550 for e in mine)
        assert one(samples, "bifrost_router_request_latency_seconds_bucket", router=ROUTER, arm=arm, le="+Inf") == len(
            mine
        )
    topic = settings.topics.routing_events
    assert one(samples, "bifrost_dlq_events_total", topic=topic, reason="bad_json") == 4
    assert one(samples, "bifrost_dlq_events_total", topic=topic, reason="schema") == 8
    assert one(samples, "bifrost_ingest_events_total", topic=topic) == len(first)
    # The controller of the router is on this worker: its (idle) rollout is shown.
    await eventually(
        lambda: one(scrape(worker.url), "bifrost_rollout_phase", router=ROUTER, phase="idle") == 1,
        timeout=30,
        what="idle rollout phase",
    )

    # A canary of v2 against v1 (the arm with most traffic), a look with traffic, then a forced rollback.
    await mark_verified(settings, keys, ROUTER, "v2")
    started = await wait_for_outcome(
        settings.kafka_bootstrap,
        settings.topics,
        keys.operator.sign(new_command(ROUTER, CommandKind.START, artifact="v2")),
    )
    assert started is not None and started.phase is Phase.CANARY, started
    second = events(600, seed=22, start=first[-1].ts + 1)
    await publish(settings, second)
    await eventually(
        lambda: one(scrape(worker.url), "bifrost_rollout_gate_state", router=ROUTER) is not None,
        timeout=60,
        what="gate states of the canary",
    )
    samples = scrape(worker.url)
    assert one(samples, "bifrost_rollout_phase", router=ROUTER, phase="canary") == 1
    assert one(samples, "bifrost_rollout_phase", router=ROUTER, phase="idle") == 0
    assert one(samples, "bifrost_rollout_stage", router=ROUTER) == 0
    assert one(samples, "bifrost_rollout_stage_share", router=ROUTER) == 0.05
    assert one(samples, "bifrost_rollout_canary_share", router=ROUTER) == 0.05
    assert one(samples, "bifrost_rollout_artifact_info", router=ROUTER, role="control", version="v1") == 1
    assert one(samples, "bifrost_rollout_artifact_info", router=ROUTER, role="canary", version="v2") == 1
    gates = labelled(samples, "bifrost_rollout_gate_state", router=ROUTER)
    by_gate: dict[str, float] = {}
    for key, value in gates.items():
        by_gate[dict(key)["gate"]] = by_gate.get(dict(key)["gate"], 0) + value
    assert len(by_gate) >= 4 and set(by_gate.values()) == {1.0}, gates  # each gate in exactly one state
    total = Counter(e.arm for e in first + second)
    await eventually(lambda: counted() == total, timeout=60, what=f"request counters {dict(total)}")

    rolled = await wait_for_outcome(
        settings.kafka_bootstrap,
        settings.topics,
        keys.operator.sign(new_command(ROUTER, CommandKind.FORCE_ROLLBACK, reason="metrics test")),
    )
    assert rolled is not None and rolled.phase is Phase.ROLLED_BACK, rolled
    await eventually(
        lambda: one(scrape(worker.url), "bifrost_rollout_rollbacks_total", router=ROUTER, gate="manual") == 1,
        timeout=30,
        what="the rollback counted by router and gate",
    )
    samples = scrape(worker.url)
    assert one(samples, "bifrost_rollout_phase", router=ROUTER, phase="rolled_back") == 1
    assert one(samples, "bifrost_rollout_canary_share", router=ROUTER) == 0
    assert one(samples, "bifrost_rollout_commands_total", kind="force_rollback", outcome="accepted") == 1
    assert one(samples, "bifrost_metrics_label_values_folded_total", label="router") == 0


async def test_dlq_surge_logs_one_warning_and_publishes_the_alert_and_its_resolution(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = Settings.from_env(settings.to_env(), partitions=2, dlq_surge_window_seconds=10.0)
    worker = start_worker(settings)
    await ready(worker)
    now = time.time()
    good = events(1000, seed=31, start=now - 600)
    await publish(settings, good)
    # Then what the issue saw: events from a producer whose event times are hours behind the
    # others' (too_late), and a few that are not JSON.
    late = [
        orjson.dumps({**orjson.loads(encode(e)), "request_id": f"late-{i}", "ts": now - 6 * 3600})
        for i, e in enumerate(good[:90])
    ]
    await publish(settings, [], late + [b"{nope"] * 10)

    alerts = await collect(settings.kafka_bootstrap, settings.topics.alerts, Alert, want=2, timeout=90)
    assert [a.resolved for a in alerts] == [False, True], alerts
    began, ended = alerts
    assert began.kind is AlertKind.DLQ_SURGE and began.alert_id == ended.alert_id
    # The surge is declared at the first look past the minimum (20): the late records come
    # first in their partition, so the top reason is too_late whichever commit that was.
    assert began.evidence["top_reason"] == "too_late"
    assert 20 <= int(began.evidence["dead_letters"]) <= 100 and int(began.evidence["top_reason_count"]) <= 90
    assert "too_late" in began.message and "BIFROST_GRACE_SECONDS" in began.message
    log = worker.log_path.read_text(errors="replace")
    warnings = [line for line in log.splitlines() if "WARNING" in line and "event=dlq.surge" in line]
    assert len(warnings) == 1, warnings
    assert re.search(r"top_reason=too_late top_reason_count=\d+ dead_letters=\d+ inputs=\d+", warnings[0]), warnings[0]
    assert "event=dlq.surge.resolved" in log
    samples = scrape(worker.url)
    assert one(samples, "bifrost_dlq_surges_total") == 1 and one(samples, "bifrost_dlq_surge_active") == 0
    assert one(samples, "bifrost_alerts_published_total", kind="dlq_surge") == 2
    assert one(samples, "bifrost_dlq_events_total", reason="too_late") == 90
    assert one(samples, "bifrost_dlq_events_total", reason="bad_json") == 10


async def test_trainer_serves_runs_outcomes_and_ignored_triggers(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    key = tmp_path / "signing.pem"
    generate_private_key(key)
    env = settings_env(settings)
    env.update(
        BIFROST_ARTIFACT_STORE=str(tmp_path / "artifacts"),
        BIFROST_TRAINER_RUNS_DIR=str(tmp_path / "runs"),
        BIFROST_WAREHOUSE_DIR=str(tmp_path / "warehouse"),
        BIFROST_SIGNING_KEY_FILE=str(key),
        BIFROST_TRAINER_METRICS_PORT=str(port),
    )
    log_path = tmp_path / "trainer.log"
    with log_path.open("ab") as log:
        trainer = subprocess.Popen(
            [sys.executable, "-m", "bifrost.cli.main", "trainer"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: scrape(url) != {}, timeout=60, what="the trainer's /metrics")
        trigger = TrainingTrigger(
            trigger_id="metrics-test",
            reason=TriggerReason.MANUAL,
            window_from=time.time() - 3600,
            window_to=time.time(),
        )
        async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
            # No current artifact in the store: the run ends "skipped" at once (nothing to retrain).
            await publisher.send_raw(settings.topics.training_triggers, b"metrics-test", encode(trigger))
            await publisher.send_raw(settings.topics.training_triggers, b"junk", b"{not a trigger")
        await eventually(
            lambda: one(scrape(url), "bifrost_trainer_runs_total", outcome="skipped") == 1,
            timeout=60,
            what="a skipped run counted",
        )
        await eventually(
            lambda: one(scrape(url), "bifrost_trainer_triggers_ignored_total", reason="invalid") == 1,
            timeout=30,
            what="the invalid trigger counted",
        )
        samples = scrape(url)
        assert one(samples, "bifrost_trainer_run_duration_seconds_count", outcome="skipped") == 1
        assert one(samples, "bifrost_trainer_run_in_progress") == 0
        assert (one(samples, "bifrost_trainer_last_run_timestamp_seconds", outcome="skipped") or 0) > time.time() - 120
        assert one(samples, "bifrost_trainer_artifact_info") is None  # an empty store has no current version
    finally:
        os.killpg(trainer.pid, signal.SIGTERM)
        try:
            trainer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(trainer.pid, signal.SIGKILL)
            trainer.wait(timeout=10)
