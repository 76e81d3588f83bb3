"""The optimizer on the real broker: scheduled analyses publish recommendations and alerts once —
a restarted worker does not repeat them — and operators subscribe to and apply them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bifrost.client import Publisher
from bifrost.client.recommendations import follow_recommendations, read_recommendations
from bifrost.client.simulator import ArmEffect, ModelProfile, TrafficConfig, generate
from bifrost.config import Settings
from bifrost.schemas.alerts import Alert
from bifrost.schemas.recommendations import Recommendation, RecommendationKind
from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
from tests.integration.command_keys import command_keys
from tests.integration.harness import (
    WorkerProcess,
    collect,
    eventually,
    isolated_settings,
    metric_sum,
    settings_env,
    worker_metrics,
)

pytestmark = pytest.mark.kafka

HOUR = 3600
DAY = 86_400
PERIOD = 7 * DAY
FIRST_SPAN = 36 * HOUR
# The small model is rate-limited on 5% of its requests; the large one is slow: both are findings.
MODELS = (
    ModelProfile(
        "small-fast",
        "acme",
        250.0,
        usd_per_1k_tokens=0.0002,
        rate_limit_rate=0.05,
        quality_mean=0.82,
        win_probability=0.86,
    ),
    ModelProfile("mid-general", "acme", 600.0, usd_per_1k_tokens=0.002, quality_mean=0.88, win_probability=0.9),
    ModelProfile(
        "large-reasoner",
        "frontier",
        1400.0,
        latency_sigma=0.45,
        usd_per_1k_tokens=0.015,
        quality_mean=0.93,
        win_probability=0.93,
    ),
)


def quiet_end(now: float) -> int:
    """An hour boundary T, a few hours back, with [T − 36 h, T + 3 h] inside one dedup period and one UTC day
    around T (so later analyses in the test are the same period and day as the first ones)."""
    t = int(now // HOUR * HOUR) - 3 * HOUR
    while not (
        t - FIRST_SPAN >= t // PERIOD * PERIOD
        and 2 * HOUR <= t % DAY <= 20 * HOUR
        and (t + 3 * HOUR) // PERIOD == t // PERIOD
    ):
        t -= HOUR
    return t


async def publish(
    settings: Settings,
    start: float,
    seconds: float,
    *,
    seed: int,
    feedback: float = 0.3,
    router: str = "router-a",
    rate: float = 0.05,
) -> int:
    config = TrafficConfig(
        routers=(router,),
        arms={"v1": 1.0},
        models=MODELS,
        rate_per_second=rate,
        duration_seconds=seconds,
        start_ts=start,
        feedback_fraction=feedback,
        seed=seed,
    )
    n = 0
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        for item in generate(config):
            assert item.event is not None
            await publisher.publish(item.event)
            if item.feedback is not None:
                await publisher.publish_feedback(item.feedback)
            n += 1
    return n


def status(worker: WorkerProcess) -> dict[str, Any]:
    code, body = worker.get("/v1/optimizer/status")
    return body if code == 200 and isinstance(body, dict) else {}


async def settled(worker: WorkerProcess, *, at_least: int = 1, timeout: float = 240.0) -> dict[str, Any]:
    """The optimizer's status once it has analysed ``at_least`` times and stayed idle for 6 s."""
    last: list[Any] = []

    def probe() -> dict[str, Any] | None:
        now = status(worker)
        router = now.get("routers", {}).get("router-a", {})
        key = (now.get("analyses"), router.get("running"))
        idle = now.get("analyses", 0) >= at_least and router.get("running") is False
        if idle and last and last[0][0] == key and time.monotonic() - last[0][1] >= 6.0:
            return now
        if not last or last[0][0] != key:
            last[:] = [(key, time.monotonic())]
        return None

    return await eventually(probe, timeout=timeout, interval=0.5, what="the optimizer to finish its analyses")


async def optimizer_alerts(settings: Settings) -> list[Alert]:
    found = await collect(settings.kafka_bootstrap, settings.topics.alerts, Alert, want=10_000, timeout=8.0)
    return [a for a in found if a.alert_id.split("/")[0] in ("slo_breach", "cost_increase", "degradation")]


async def test_a_restarted_worker_does_not_publish_earlier_recommendations_again(
    kafka_bootstrap: str, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = isolated_settings(kafka_bootstrap, optimizer_interval_seconds=float(HOUR), goal_p95_ms=1200.0)
    worker = start_worker(settings)
    await eventually(lambda: len(worker.owns_inputs()) == 4, timeout=90, what="worker ready")
    end = quiet_end(time.time())
    await publish(settings, end - FIRST_SPAN, FIRST_SPAN, seed=1)
    first_status = await settled(worker)
    before = await read_recommendations(settings.kafka_bootstrap, settings.topics)
    kinds = {r.kind for r in before}
    assert {RecommendationKind.RATE_LIMIT_HOTSPOT, RecommendationKind.SLOW_PROVIDER} <= kinds, [r.title for r in before]
    assert len({r.recommendation_id for r in before}) == len(before)  # the coalesced analyses published each id once
    assert first_status["published"] == len(before)
    alerts_before = await optimizer_alerts(settings)
    assert any(a.alert_id.startswith("slo_breach/router-a/p95_ms/") for a in alerts_before)
    # A router with a handful of requests is not analysed on schedule (10,000 such ids starved
    # the optimizer in an outside test); it is counted as skipped.
    assert await publish(settings, end - 3 * HOUR, 3 * HOUR, seed=3, router="tiny", rate=0.002) < 100
    await eventually(
        lambda: status(worker).get("skipped", 0) >= 1 and "tiny" in status(worker).get("routers", {}),
        timeout=120,
        what="the tiny router's scheduled analysis skipped",
    )
    assert status(worker)["routers"]["tiny"]["last_analysis_at"] is None

    worker.stop()
    restarted = start_worker(settings)
    await eventually(lambda: len(restarted.owns_inputs()) == 4, timeout=120, what="restarted worker ready")
    await publish(settings, end, 2 * HOUR, seed=2)  # more traffic in the same period and day: analysed again
    after_status = await settled(restarted)
    after = await read_recommendations(settings.kafka_bootstrap, settings.topics)
    assert [r.recommendation_id for r in after] == [r.recommendation_id for r in before]
    assert after_status["published"] == 0 and after_status["suppressed"] >= len(before)
    assert after_status["routers"]["router-a"]["last_recommendations"]  # it did find them again
    alerts_after = await optimizer_alerts(settings)
    assert sorted(a.alert_id for a in alerts_after) == sorted(a.alert_id for a in alerts_before)
    assert after_status["alerts_published"] == 0
    suppressed = metric_sum(worker_metrics(restarted), "bifrost_optimizer_recommendations_total", outcome="suppressed")
    assert suppressed >= len(before)


async def test_subscribers_list_follow_and_apply_recommendations(
    kafka_bootstrap: str, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    keys = command_keys(tmp_path / "keys")
    settings = isolated_settings(kafka_bootstrap, optimizer_interval_seconds=float(HOUR), goal_p95_ms=1200.0)
    worker = start_worker(keys.worker(settings))
    await eventually(lambda: len(worker.owns_inputs()) == 4, timeout=90, what="worker ready")
    end = quiet_end(time.time())
    # Feedback on 10% of requests: label coverage below the trainer's 20% → a data-refresh (retrain) recommendation.
    await publish(settings, end - FIRST_SPAN, FIRST_SPAN, seed=3, feedback=0.1)
    await settled(worker)

    group = "capacity-bot"
    seen: list[Recommendation] = []

    async def take(count: int) -> None:
        async for rec in follow_recommendations(
            settings.kafka_bootstrap, settings.topics, router="router-a", group_id=group
        ):
            seen.append(rec)
            if len(seen) == count:
                return

    await asyncio.wait_for(take(2), 60)  # the first is consumed (the loop asked for more), the second handed out
    await asyncio.wait_for(take(3), 60)  # a new subscriber in the group resumes at the second (at least once)
    assert [r.recommendation_id for r in seen][1:] == [seen[1].recommendation_id] * 2
    assert seen[0].recommendation_id != seen[1].recommendation_id

    env = settings_env(keys.cli(settings))
    listed = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "recommendations", "--router", "router-a", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    recs = json.loads(listed.stdout)
    refresh = next(r for r in recs if r["kind"] == "data_refresh")
    assert refresh["action"]["kind"] == "retrain" and refresh["evidence"]["figures"]["label_coverage"] < 0.2

    def apply(rec_id: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bifrost.cli.main", "recommendations", "apply", rec_id, "--json", "--note", "drill"],
            capture_output=True,
            text=True,
            env=environment,
            timeout=90,
        )

    done = apply(refresh["recommendation_id"], env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["accepted"] and answer["applied_by"] == "operator" and not answer["already_applied"]
    assert answer["trigger_id"] == f"recommendation-{refresh['recommendation_id']}"
    (trigger,) = await collect(settings.kafka_bootstrap, settings.topics.training_triggers, TrainingTrigger, want=1)
    assert trigger.trigger_id == answer["trigger_id"] and trigger.router_id == "router-a"
    assert trigger.details["recommendation_id"] == refresh["recommendation_id"] and trigger.requested_by == "operator"

    again = apply(refresh["recommendation_id"], env)  # applied once: the second answer sends nothing
    assert again.returncode == 0 and json.loads(again.stdout)["already_applied"], again.stderr
    assert (
        len(
            await collect(
                settings.kafka_bootstrap, settings.topics.training_triggers, TrainingTrigger, want=2, timeout=5.0
            )
        )
        == 1
    )

    stranger = command_keys(tmp_path / "stranger")  # another key under the listed name "operator"
    refused = apply(refresh["recommendation_id"], settings_env(stranger.cli(settings)))
    assert refused.returncode == 4 and "bad_signature" in refused.stderr, refused.stderr

    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "bifrost.cli.main",
            "analyze",
            "--router",
            "router-a",
            "--json",
            "--worker-url",
            worker.url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert shown.returncode == 0, shown.stderr
    analysis = json.loads(shown.stdout)
    assert {g["goal"] for g in analysis["goals"]} == {"win_rate", "cost_per_task", "p95_ms", "quality", "availability"}
    assert any(r["kind"] == "rate_limit_hotspot" for r in analysis["recommendations"])
    code, body = worker.get("/v1/recommendations?router=router-a")
    assert code == 200 and {r["recommendation_id"] for r in body["recommendations"]} == {
        r["recommendation_id"] for r in recs
    }


async def test_a_slow_latency_drift_raises_a_degradation_alert_and_a_training_trigger(
    kafka_bootstrap: str, start_worker: Callable[..., WorkerProcess]
) -> None:
    """+1%/day latency over 7 simulated days: the trainer's last-day rule stays quiet (+3.5% on the day), the
    optimizer's 7-day trend test alerts and asks for the retrain."""
    settings = isolated_settings(kafka_bootstrap, optimizer_interval_seconds=float(6 * HOUR))
    worker = start_worker(settings)
    await eventually(lambda: len(worker.owns_inputs()) == 4, timeout=90, what="worker ready")
    quiet = tuple(
        ModelProfile(
            m.name,
            m.provider,
            m.latency_median_ms,
            latency_sigma=0.2,
            error_rate=0.0005,
            rate_limit_rate=0.0,
            usd_per_1k_tokens=m.usd_per_1k_tokens,
        )
        for m in MODELS
    )
    start = int(time.time() // DAY * DAY) - 7 * DAY
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        for day in range(7):
            config = TrafficConfig(
                routers=("router-a",),
                arms={"v1": 1.0},
                models=quiet,
                rate_per_second=0.1,
                duration_seconds=DAY,
                start_ts=start + day * DAY,
                seed=10 + day,
                arm_effects={"v1": ArmEffect(latency_factor=1.01**day)},
            )
            for item in generate(config):
                assert item.event is not None
                await publisher.publish(item.event)

    def degradation_alerts(alerts: list[Alert]) -> list[Alert]:
        return [
            a for a in alerts if a.alert_id.startswith(("degradation/router-a/p95_ms/", "degradation/router-a/p50_ms/"))
        ]

    async def alerted() -> list[Alert]:
        return degradation_alerts(
            await collect(settings.kafka_bootstrap, settings.topics.alerts, Alert, want=10_000, timeout=3.0)
        )

    alerts = await eventually(alerted, timeout=240, interval=2.0, what="a degradation alert")
    assert float(alerts[0].evidence["change"]) > 0.05
    triggers = await collect(settings.kafka_bootstrap, settings.topics.training_triggers, TrainingTrigger, want=1)
    assert triggers and triggers[0].reason is TriggerReason.DEGRADATION and triggers[0].router_id == "router-a"
    assert triggers[0].details["source"] == "optimizer-7d-trend"
    latency = [float(v) for k, v in triggers[0].details.items() if k in {"p95_ms.change", "p50_ms.change"}]
    assert latency and max(latency) > 0.05, triggers[0].details
    assert not any(a.alert_id.startswith("slo_breach/") for a in await optimizer_alerts(settings))
