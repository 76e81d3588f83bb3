"""The rollout state machine: stages, rollbacks, operator commands, refusals."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bifrost.schemas.rollout import (
    CommandKind,
    GateResult,
    GateStatus,
    Phase,
    RolloutCommand,
    RolloutState,
    VerifiedArtifact,
)
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.controller import Decision, RolloutPolicy, apply_command, on_window_closed

POLICY = RolloutPolicy(min_stage_seconds=900, min_samples=100)
TRAFFIC = {"v1": 5000}


@dataclass
class Verdict:
    """A stand-in gate evaluation: the controller's logic is under test here, not the statistics."""

    results: list[GateResult] = field(default_factory=list)

    @property
    def rollback(self) -> GateResult | None:
        return next((r for r in self.results if r.status is GateStatus.FAIL), None)

    @property
    def promotion_blocked(self) -> bool:
        return any(r.status is not GateStatus.PASS for r in self.results)


def healthy(canary: WindowStats, control: WindowStats) -> Verdict:
    return Verdict([GateResult(gate="latency_p95", status=GateStatus.PASS)])


def slow(canary: WindowStats, control: WindowStats) -> Verdict:
    return Verdict([GateResult(gate="latency_p95", status=GateStatus.FAIL, canary=3000.0, control=1000.0, statistic=0.8, bound=0.25)])


def blocked(canary: WindowStats, control: WindowStats) -> Verdict:
    return Verdict([GateResult(gate="slo_p95", status=GateStatus.BLOCKED)])


def stats(n: int) -> WindowStats:
    return WindowStats(count=n)


def command(kind: CommandKind, **kw: object) -> RolloutCommand:
    return RolloutCommand(command_id=f"c-{kind.value}-{kw.get('artifact', '')}", router_id="r", kind=kind, **kw)  # type: ignore[arg-type]


VERIFIED = [VerifiedArtifact(version=v, sha256=f"{i:064x}", verified_by="pipeline", at=0.0)
            for i, v in enumerate(("v1", "v2", "v3"))]


def fresh(**fields: object) -> RolloutState:
    """A router state whose artifacts v1..v3 were verified (only verified versions start)."""
    return RolloutState(router_id="r", verified=VERIFIED, **fields)  # type: ignore[arg-type]


def started(**policy: object) -> RolloutState:
    state = fresh(clock=1000.0)
    decision = apply_command(state, command(CommandKind.START, artifact="v2"), arm_traffic=TRAFFIC, wall=1.0,
                             policy=RolloutPolicy(**policy) if policy else POLICY)  # type: ignore[arg-type]
    assert decision.state.last_command and decision.state.last_command.accepted, decision.state.last_command
    return decision.state


def window(state: RolloutState, clock: float, evaluate=healthy, n: int = 500) -> Decision:  # type: ignore[no-untyped-def]
    return on_window_closed(state, clock=clock, canary=stats(n), control=stats(n), evaluate=evaluate, wall=2.0, policy=POLICY)


def test_start_enters_first_stage_with_weights() -> None:
    state = started()
    assert state.phase is Phase.CANARY and state.stage_index == 0
    assert state.weights == {"v1": 0.95, "v2": 0.05}
    assert state.control_version == "v1" and state.canary_version == "v2" and state.since == 1000.0


def test_healthy_canary_walks_every_stage_and_is_promoted() -> None:
    state = started()
    seen = [state.stage_percent]
    clock = 1000.0
    while state.phase is Phase.CANARY:
        clock += 60
        state = window(state, clock).state
        if state.stage_percent != seen[-1]:
            seen.append(state.stage_percent)
    assert seen == [5.0, 25.0, 50.0, 100.0]
    assert state.phase is Phase.PROMOTED and state.weights == {"v2": 1.0}
    assert state.control_version == state.last_good_version == "v2" and state.canary_version is None
    assert clock - 1000.0 == 3 * 900  # each stage waited its minimum duration


def test_stage_waits_for_duration_samples_and_gates() -> None:
    state = started()
    assert window(state, 1000 + 840).state.stage_index == 0          # too early
    assert window(state, 1000 + 900, n=50).state.stage_index == 0     # too few samples
    assert window(state, 1000 + 900, evaluate=blocked).state.stage_index == 0
    assert window(state, 1000 + 900, evaluate=blocked).state.promotion_blocked_by == ["slo_p95"]
    assert window(state, 1000 + 900).state.stage_index == 1


def test_failed_gate_rolls_back_with_evidence() -> None:
    state = window(started(), 1060).state
    decision = window(state, 1120, evaluate=slow)
    assert decision.state.phase is Phase.ROLLED_BACK
    assert decision.state.weights == {"v1": 1.0, "v2": 0.0}
    rollback = decision.rollback
    assert rollback is not None and rollback.gate == "latency_p95" and rollback.canary_version == "v2"
    assert rollback.evidence[0].canary == 3000.0 and rollback.window_end == 1120 and rollback.stage_percent == 5.0
    assert rollback.revision == decision.state.revision
    # Later windows change nothing and never roll back twice.
    again = window(decision.state, 1180, evaluate=slow)
    assert again.rollback is None and not again.changed


@pytest.mark.parametrize(
    ("kind", "phase_after"),
    [(CommandKind.PAUSE, Phase.PAUSED), (CommandKind.FORCE_ROLLBACK, Phase.ROLLED_BACK), (CommandKind.EMERGENCY_STOP, Phase.EMERGENCY_STOPPED)],
)
def test_operator_commands(kind: CommandKind, phase_after: Phase) -> None:
    decision = apply_command(started(), command(kind, reason="drill"), arm_traffic=TRAFFIC, wall=5.0, policy=POLICY)
    assert decision.state.phase is phase_after and decision.state.last_command.accepted  # type: ignore[union-attr]
    if kind is CommandKind.FORCE_ROLLBACK:
        assert decision.rollback is not None and decision.rollback.gate == "manual" and decision.rollback.reason == "drill"
    if kind is CommandKind.EMERGENCY_STOP:
        assert decision.state.weights == {"v1": 1.0} and decision.state.canary_version is None


def test_pause_holds_the_stage_and_resume_continues() -> None:
    paused = apply_command(started(), command(CommandKind.PAUSE), arm_traffic=TRAFFIC, wall=5.0, policy=POLICY).state
    assert window(paused, 1000 + 2000).state.stage_index == 0  # no promotion while paused
    assert window(paused, 1060, evaluate=slow).state.phase is Phase.ROLLED_BACK  # but gates still protect
    resumed = apply_command(paused, command(CommandKind.RESUME), arm_traffic=TRAFFIC, wall=6.0, policy=POLICY).state
    assert resumed.phase is Phase.CANARY
    assert window(resumed, 1000 + 900).state.stage_index == 1


def test_promote_skips_the_wait_only_with_every_gate_passing() -> None:
    evaluated = window(started(), 1060).state  # one window: every gate passes, the stage is not ripe yet
    assert evaluated.stage_index == 0
    state = apply_command(evaluated, command(CommandKind.PROMOTE), arm_traffic=TRAFFIC, wall=5.0, policy=POLICY).state
    assert state.stage_index == 1 and state.weights["v2"] == 0.25 and state.last_command.accepted  # type: ignore[union-attr]
    assert state.overrides == []


def test_approval_gate() -> None:
    waiting = started(require_approval=True)
    assert waiting.phase is Phase.AWAITING_APPROVAL and waiting.weights == {"v1": 1.0}
    approved = apply_command(waiting, command(CommandKind.APPROVE), arm_traffic=TRAFFIC, wall=5.0, policy=POLICY).state
    assert approved.phase is Phase.CANARY and approved.weights["v2"] == 0.05


@pytest.mark.parametrize(
    ("state_factory", "cmd", "traffic", "fragment"),
    [
        (fresh, command(CommandKind.START, artifact="v2"), {}, "unknown router"),
        (started, command(CommandKind.START, artifact="v3"), TRAFFIC, "force_rollback"),
        (fresh, command(CommandKind.START), TRAFFIC, "artifact version"),
        (fresh, command(CommandKind.START, artifact="v1"), TRAFFIC, "already"),
        (fresh, command(CommandKind.START, artifact="never-signed-v666"), TRAFFIC, "is not verified for router r"),
        (started, command(CommandKind.RESUME), TRAFFIC, "cannot resume while canary"),
        (started, command(CommandKind.APPROVE), TRAFFIC, "cannot approve"),
        (started, command(CommandKind.PROMOTE, artifact="v9"), TRAFFIC, "canary is v2"),
        (started, command(CommandKind.PROMOTE), TRAFFIC, "no gate has been evaluated at 5% yet"),
        (lambda: window(started(), 1060, evaluate=blocked).state, command(CommandKind.PROMOTE), TRAFFIC,
         "gates not passing at 5%: slo_p95 blocked"),
        (started, command(CommandKind.PROMOTE, override=True), TRAFFIC, "an override needs a reason"),
        (started, command(CommandKind.PAUSE, override=True, reason="x"), TRAFFIC, "override applies only to promote"),
        (lambda: fresh(revision=3), command(CommandKind.EMERGENCY_STOP), TRAFFIC, "no last good"),
    ],
)
def test_illegal_commands_are_refused_with_a_reason(state_factory, cmd, traffic, fragment) -> None:  # type: ignore[no-untyped-def]
    before = state_factory()
    decision = apply_command(before, cmd, arm_traffic=traffic, wall=9.0, policy=POLICY)
    outcome = decision.state.last_command
    assert outcome is not None and not outcome.accepted and fragment in outcome.reason
    assert decision.state.phase is before.phase and decision.state.weights == before.weights
    assert decision.rollback is None and decision.state.revision == before.revision + 1
