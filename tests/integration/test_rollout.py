"""Progressive canary rollouts end to end on the real broker, with compressed time.

Commands are signed: the test holds the operator key and the pipeline key (which marks the
synthetic arms as verified, as the artifact listener does for real artifacts); workers get
the allow-list and the pipeline key.
"""

from __future__ import annotations

import asyncio
import bisect
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bifrost.client.rollout import follow, new_command, wait_for_outcome
from bifrost.client.simulator import ArmEffect, SimulationReport, TrafficConfig
from bifrost.config import Settings
from bifrost.schemas.rollout import CommandKind, Phase, RollbackEvent, RolloutState
from tests.integration.command_keys import CommandKeys, command_keys, mark_verified
from tests.integration.harness import WorkerProcess, arm_counts, eventually, settings_env, simulated_traffic

pytestmark = pytest.mark.kafka

ROUTER = "router-a"
SPEED = 120.0  # one simulated minute (a window) every half second


@pytest.fixture
def keys(tmp_path: Path) -> CommandKeys:
    return command_keys(tmp_path / "keys")


@pytest.fixture
def settings(kafka_bootstrap: str, settings: Settings, keys: CommandKeys) -> Settings:
    return keys.worker(Settings.from_env(settings.to_env(), partitions=2, batch_within_seconds=0.05))


@dataclass
class Recorder:
    """Everything a router-keyed topic carried while the test ran."""

    items: list[Any] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)


@asynccontextmanager
async def recording(bootstrap: str, topic: str, value_type: type) -> AsyncIterator[Recorder]:
    recorder = Recorder()

    async def run() -> None:
        async for item in follow(bootstrap, topic, value_type, routers={ROUTER}):
            recorder.items.append(item)
            recorder.received_at.append(time.time())

    task = asyncio.ensure_future(run())
    try:
        yield recorder
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def traffic(settings: Settings, effects: dict[str, ArmEffect] | None = None) -> AsyncIterator[SimulationReport]:
    config = TrafficConfig(
        routers=(ROUTER,),
        arms={"v1": 1.0},
        arm_effects=effects or {},
        rate_per_second=20.0,
        duration_seconds=3 * 3600,
        feedback_fraction=0.6,
        seed=11,
    )
    async with simulated_traffic(settings, config, speed=SPEED) as report:
        yield report


async def started_canary(
    settings: Settings, worker: WorkerProcess, keys: CommandKeys, artifact: str = "v2"
) -> RolloutState:
    await eventually(
        lambda: arm_counts(worker, ROUTER, since="10m").get("v1", 0) >= 200, timeout=90, what="control traffic"
    )
    await mark_verified(settings, keys, ROUTER, artifact)
    start = keys.operator.sign(new_command(ROUTER, CommandKind.START, artifact=artifact))
    state = await wait_for_outcome(settings.kafka_bootstrap, settings.topics, start)
    assert state is not None and state.last_command is not None and state.last_command.accepted, state
    assert state.phase is Phase.CANARY and state.weights == {"v1": 0.95, artifact: 0.05}
    return state


def latest(recorder: Recorder) -> RolloutState | None:
    return recorder.items[-1] if recorder.items else None


async def ready(worker: WorkerProcess) -> None:
    await eventually(lambda: len(worker.owns_inputs()) == worker.settings.partitions, timeout=90, what="worker ready")


async def test_healthy_canary_is_promoted_stage_by_stage(
    settings: Settings, keys: CommandKeys, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(settings)
    await ready(worker)
    async with (
        recording(settings.kafka_bootstrap, settings.topics.rollout_state, RolloutState) as states,
        traffic(settings),
    ):
        await started_canary(settings, worker, keys)
        await eventually(
            lambda: (s := latest(states)) is not None and s.phase is Phase.PROMOTED, timeout=120, what="promotion"
        )
    stages: list[float] = []
    for state in states.items:
        if state.stage_percent is not None and (not stages or stages[-1] != state.stage_percent):
            stages.append(state.stage_percent)
    assert stages == [5.0, 25.0, 50.0, 100.0]
    by_stage = {s.stage_percent: s.weights for s in states.items if s.phase in (Phase.CANARY, Phase.PROMOTED)}
    assert by_stage[25.0] == {"v1": 0.75, "v2": 0.25} and by_stage[100.0] == {"v2": 1.0}
    final = states.items[-1]
    assert final.last_good_version == "v2" and final.control_version == "v2"
    # Each stage lasted at least its minimum duration of event time.
    starts = sorted({s.since for s in states.items if s.phase in (Phase.CANARY, Phase.PROMOTED)})
    assert len(starts) == 4
    assert all(b - a >= settings.rollout_min_stage_seconds for a, b in zip(starts, starts[1:]))


REGRESSIONS = {
    "latency": (ArmEffect(latency_factor=1.5), "latency_p95"),
    "errors": (ArmEffect(error_factor=8.0), "error_rate"),
    "cost": (ArmEffect(cost_factor=1.6), "cost_per_task"),
    "wins": (ArmEffect(win_delta=-0.3), "win_rate"),
}


def wall_time_of(report_timeline: list[tuple[float, float]], event_ts: float) -> float:
    """When the simulator published event time ``event_ts`` (from its samples)."""
    times = [ts for ts, _ in report_timeline]
    i = min(bisect.bisect_left(times, event_ts), len(times) - 1)
    return report_timeline[i][1]


@pytest.mark.parametrize("drill", sorted(REGRESSIONS))
async def test_regressed_canary_is_rolled_back_with_evidence(
    drill: str, settings: Settings, keys: CommandKeys, start_worker: Callable[..., WorkerProcess]
) -> None:
    effect, gate = REGRESSIONS[drill]
    worker = start_worker(settings)
    await ready(worker)
    async with (
        recording(settings.kafka_bootstrap, settings.topics.rollbacks, RollbackEvent) as rollbacks,
        recording(settings.kafka_bootstrap, settings.topics.rollout_state, RolloutState) as states,
        traffic(settings, {"v2": effect}) as report,
    ):
        await started_canary(settings, worker, keys)
        await eventually(lambda: rollbacks.items, timeout=120, what=f"a rollback ({drill})")
        await eventually(
            lambda: (s := latest(states)) is not None and s.phase is Phase.ROLLED_BACK, what="rolled-back state"
        )
        timeline = list(report.timeline)
    rollback = rollbacks.items[0]
    # The gates look at every stored snapshot, so a rollback is not tied to a window close:
    # its window_end is the event time of the newest data the tripping look saw. Take the
    # simulator's last sample at or before that event time (when it was published), so the
    # measured delay is never flattered.
    times = [ts for ts, _ in timeline]
    published_at = timeline[max(bisect.bisect_right(times, rollback.window_end) - 1, 0)][1]
    delay = rollbacks.received_at[0] - published_at
    print(f"{drill}: rollback arrived {delay:.3f} s after the data that tripped it was published")
    assert delay < 1.0
    rolled_back_state = next(s for s in states.items if s.phase is Phase.ROLLED_BACK)
    assert states.received_at[states.items.index(rolled_back_state)] - published_at < 1.0
    # ...and well before the stage could have been judged on closed windows only: the
    # rollback's data lie inside a window, not at its end.
    assert rollback.window_end % settings.window_seconds != 0
    assert rollback.gate == gate, rollback
    assert rollback.canary_version == "v2" and rollback.control_version == "v1" and rollback.stage_percent == 5.0
    tripped = next(e for e in rollback.evidence if e.gate == gate)
    assert tripped.status.value == "fail" and tripped.statistic is not None and tripped.bound is not None
    assert tripped.canary_samples > 0 and tripped.control_samples > 0 and tripped.method
    assert states.items[-1].weights["v2"] == 0.0 and states.items[-1].weights["v1"] == 1.0
    assert len(rollbacks.items) == 1


async def test_operator_commands_from_the_cli(
    settings: Settings, keys: CommandKeys, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(settings)
    await ready(worker)
    env = settings_env(keys.cli(Settings.from_env(settings.to_env(), worker_url=worker.url)))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bifrost.cli.main", "rollout", *args, "--router", ROUTER],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    unknown = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "rollout", "status", "--router", "no-such-router"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert unknown.returncode == 1 and "unknown router 'no-such-router'" in unknown.stderr, unknown.stderr
    assert "idle" not in unknown.stdout + unknown.stderr
    async with (
        recording(settings.kafka_bootstrap, settings.topics.rollbacks, RollbackEvent) as rollbacks,
        traffic(settings),
    ):
        await started_canary(settings, worker, keys)

        def looked() -> str:
            text = cli("status").stdout
            ready = "requests in the stage: canary" in text and "gate latency_p95" in text
            # Until the first evaluation with data in both arms a gate may still read "insufficient".
            return text if ready and (" vs bound " in text or "no statistic yet" in text) else ""

        status = await eventually(looked, timeout=60, what="status after a look at the stage's data")
        assert "stage 5% for" in status and "of event time" in status
        assert "promotion blocked by:" in status and "covered by data in both arms" in status
        paused = cli("pause")
        assert paused.returncode == 0 and "paused" in paused.stdout, paused.stderr
        refused = cli("pause")
        assert refused.returncode == 1 and "refused: cannot pause while paused" in refused.stderr
        assert cli("resume").returncode == 0
        forced = cli("rollback", "--reason", "bad answers reported by support")
        assert forced.returncode == 0 and "rolled_back" in forced.stdout, forced.stderr
        await eventually(lambda: rollbacks.items, what="manual rollback event")
        assert rollbacks.items[0].gate == "manual" and rollbacks.items[0].reason == "bad answers reported by support"
        await mark_verified(settings, keys, ROUTER, "v3")
        restarted = cli("start", "--artifact", "v3")
        assert restarted.returncode == 0 and "canary" in restarted.stdout, restarted.stderr
        stopped = cli("stop", "--reason", "incident 42")
        assert stopped.returncode == 0 and "emergency_stopped" in stopped.stdout, stopped.stderr
        assert "stopped by operator at" in stopped.stdout
        as_json = cli("status", "--json")
        assert as_json.returncode == 0 and '"phase": "emergency_stopped"' in as_json.stdout
        assert '"v1": 1.0' in as_json.stdout
        # Emergency stop does not restart by itself: a healthy window changes nothing, and a
        # start (even of a verified version) is refused until an operator resumes.
        await asyncio.sleep(2 * 60 / SPEED)
        assert '"phase": "emergency_stopped"' in cli("status", "--json").stdout
        again = cli("start", "--artifact", "v3")
        assert again.returncode == 1 and "router stopped by operator at" in again.stderr, again.stderr
        assert "an operator must resume" in again.stderr and "Traceback" not in again.stderr
        resumed = cli("resume")
        assert resumed.returncode == 0 and "idle" in resumed.stdout, resumed.stderr


async def test_unknown_router_and_illegal_commands_are_refused(
    settings: Settings, keys: CommandKeys, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(settings)
    await ready(worker)

    async def ask(**kw: Any) -> RolloutState | None:
        return await wait_for_outcome(settings.kafka_bootstrap, settings.topics, keys.operator.sign(new_command(**kw)))

    unknown = await ask(router_id="ghost", kind=CommandKind.START, artifact="v2")
    assert unknown is not None and unknown.last_command is not None
    assert not unknown.last_command.accepted
    assert "unknown router" in unknown.last_command.reason
    async with traffic(settings):
        await started_canary(settings, worker, keys)
        wrong = await ask(router_id=ROUTER, kind=CommandKind.PROMOTE, artifact="v9")
        assert wrong is not None and wrong.last_command is not None
        assert "canary is v2" in wrong.last_command.reason
        twice = await ask(router_id=ROUTER, kind=CommandKind.START, artifact="v3")
        assert twice is not None and twice.last_command is not None
        assert not twice.last_command.accepted and twice.phase is Phase.CANARY
    assert "event=rollout.command" in worker.log_tail(400) and "accepted=False" in worker.log_tail(400)


async def test_restart_mid_rollout_resumes_the_stage_without_duplicate_rollbacks(
    settings: Settings, keys: CommandKeys, start_worker: Callable[..., WorkerProcess]
) -> None:
    first = start_worker(settings)
    await ready(first)
    async with (
        recording(settings.kafka_bootstrap, settings.topics.rollout_state, RolloutState) as states,
        recording(settings.kafka_bootstrap, settings.topics.rollbacks, RollbackEvent) as rollbacks,
        traffic(settings, {"v3": ArmEffect(latency_factor=1.6)}),
    ):
        await started_canary(settings, first, keys)
        await eventually(
            lambda: (s := latest(states)) is not None and (s.stage_percent or 0) >= 25.0, timeout=90, what="stage 25%"
        )
        first.kill()
        at_kill = latest(states)
        second = start_worker(settings, web_port=first.settings.web_port, data_dir=first.settings.data_dir)
        await ready(second)
        status, body = second.get(f"/v1/routers/{ROUTER}/rollout")
        assert at_kill is not None
        assert status == 200 and body["stage_index"] >= at_kill.stage_index and body["phase"] in ("canary", "promoted")
        await eventually(
            lambda: (s := latest(states)) is not None and s.phase is Phase.PROMOTED,
            timeout=120,
            what="promotion after restart",
        )
        # A regressed canary after the restart: one rollback, then a restart must not repeat it.
        await mark_verified(settings, keys, ROUTER, "v3")
        state = await wait_for_outcome(
            settings.kafka_bootstrap,
            settings.topics,
            keys.operator.sign(new_command(ROUTER, CommandKind.START, artifact="v3")),
        )
        assert state is not None and state.phase is Phase.CANARY and state.control_version == "v2"
        await eventually(lambda: rollbacks.items, timeout=120, what="rollback of v3")
        _, before = second.get(f"/v1/routers/{ROUTER}/metrics?since=1h")
        second.kill()
        third = start_worker(settings, web_port=first.settings.web_port, data_dir=first.settings.data_dir)
        await ready(third)
        # Let the restarted controller see several more windows close.
        await eventually(
            lambda: (
                (m := third.get(f"/v1/routers/{ROUTER}/metrics?since=1h")[1])
                and isinstance(m, dict)
                and m.get("to_ts", 0) >= before["to_ts"] + 5 * settings.window_seconds
            ),
            timeout=90,
            what="more windows after the restart",
        )
        status, body = third.get(f"/v1/routers/{ROUTER}/rollout")
        assert status == 200 and body["phase"] == "rolled_back"
    assert len(rollbacks.items) == 1, rollbacks.items
