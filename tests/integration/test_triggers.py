"""Training triggers on the real broker: a degraded last day, and a manual retrain."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from bifrost.client import Publisher
from bifrost.client.simulator import ArmEffect, TrafficConfig, generate
from bifrost.config import Settings
from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
from tests.integration.harness import WorkerProcess, collect, eventually, settings_env

pytestmark = pytest.mark.kafka

DAY = 86_400.0


async def collect_triggers(settings: Settings, want: int, timeout: float = 90.0) -> list[TrainingTrigger]:
    return await collect(settings.kafka_bootstrap, settings.topics.training_triggers, TrainingTrigger, want, timeout)


async def test_a_degraded_last_day_emits_one_degradation_trigger(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(settings)
    await eventually(lambda: len(worker.owns_inputs()) == 4, timeout=90, what="worker ready")
    now = (time.time() // 3600) * 3600 - 60
    week = TrafficConfig(
        routers=("router-a",),
        arms={"v1": 1.0},
        rate_per_second=0.02,
        duration_seconds=6 * DAY,
        start_ts=now - 7 * DAY,
        seed=1,
    )
    last_day = TrafficConfig(
        routers=("router-a",),
        arms={"v1": 1.0},
        rate_per_second=0.02,
        duration_seconds=DAY,
        start_ts=now - DAY,
        seed=2,
        arm_effects={"v1": ArmEffect(cost_factor=1.5)},
    )
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        for config in (week, last_day):
            for item in generate(config):
                assert item.event is not None
                await publisher.publish(item.event)
    triggers = await collect_triggers(settings, want=1)
    assert triggers, "no degradation trigger"
    trigger = triggers[0]
    assert trigger.reason is TriggerReason.DEGRADATION and trigger.router_id == "router-a"
    assert float(trigger.details["cost_per_task.change"]) > 0.05
    assert "win_rate.change" not in trigger.details


async def test_manual_retrain_from_the_cli(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "retrain", "--router", "router-a", "--since", "3d"],
        capture_output=True,
        text=True,
        env=settings_env(settings),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (trigger,) = await collect_triggers(settings, want=1)
    assert trigger.reason is TriggerReason.MANUAL and trigger.trigger_id in result.stdout
    assert abs((trigger.window_to - trigger.window_from) - 3 * DAY) < 1
