"""The rollout state machine: stages, rollbacks, operator commands, refusals; stage timing
from data (gaps and future-dated windows never ripen a stage), timeouts, α per stage."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from bifrost.gatesim.traffic import ArmProfile, ArmSampler, LatencyModel
from bifrost.schemas.rollout import (
    CommandKind,
    GateResult,
    GateStatus,
    Phase,
    RolloutCommand,
    RolloutState,
    VerifiedArtifact,
)
from bifrost.streams.aggregates.stats import WindowStats, merged
from bifrost.streams.rollout.controller import (
    Decision,
    Evaluate,
    Look,
    RolloutPolicy,
    apply_command,
    coverage,
    on_look,
)
from bifrost.streams.rollout.gates import GateConfig, evaluate_gates
from bifrost.streams.rollout.gates.config import ROLLBACK_GATES
from bifrost.streams.rollout.gates.dispersion import ArmFigures, StageWindow

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
        return bool(self.blockers())

    def blockers(self) -> list[str]:
        return [f"{r.gate} {r.status.value}" for r in self.results if r.status is not GateStatus.PASS]


def healthy(look: Look, share: float) -> Verdict:
    return Verdict([GateResult(gate="latency_p95", status=GateStatus.PASS)])


def slow(look: Look, share: float) -> Verdict:
    return Verdict(
        [
            GateResult(
                gate="latency_p95", status=GateStatus.FAIL, canary=3000.0, control=1000.0, statistic=0.8, bound=0.25
            )
        ]
    )


def blocked(look: Look, share: float) -> Verdict:
    return Verdict([GateResult(gate="slo_p95", status=GateStatus.BLOCKED)])


def stats(n: int) -> WindowStats:
    return WindowStats(count=n)


def command(kind: CommandKind, **kw: Any) -> RolloutCommand:
    return RolloutCommand(command_id=f"c-{kind.value}-{kw.get('artifact', '')}", router_id="r", kind=kind, **kw)


VERIFIED = [
    VerifiedArtifact(version=v, sha256=f"{i:064x}", verified_by="pipeline", at=0.0)
    for i, v in enumerate(("v1", "v2", "v3"))
]


def fresh(**fields: Any) -> RolloutState:
    """A router state whose artifacts v1..v3 were verified (only verified versions start)."""
    return RolloutState(router_id="r", verified=VERIFIED, **fields)


def started(**policy: Any) -> RolloutState:
    state = fresh(clock=1000.0)
    decision = apply_command(
        state,
        command(CommandKind.START, artifact="v2"),
        arm_traffic=TRAFFIC,
        wall=1.0,
        policy=RolloutPolicy(**policy) if policy else POLICY,
    )
    assert decision.state.last_command and decision.state.last_command.accepted, decision.state.last_command
    return decision.state


def look_at(
    state: RolloutState, clock: float, n: int = 500, *, starts: list[int] | None = None, canary_windows: bool = True
) -> Look:
    """A look at event time ``clock``: windows from the stage's start up to the open one that
    starts at ``clock`` (or exactly ``starts``), ``n`` requests per arm in all."""
    starts = list(range(int(state.since), int(clock) + 1, 60)) if starts is None else starts
    per = max(1, n // max(len(starts), 1))
    windows = [StageWindow(s, ArmFigures(count=per if canary_windows else 0), ArmFigures(count=per)) for s in starts]
    return Look(
        clock=clock + 1.0,
        window_seconds=60,
        windows=windows,
        canary=stats(n if canary_windows else 0),
        control=stats(n),
    )


def window(
    state: RolloutState,
    clock: float,
    evaluate: Evaluate = healthy,
    n: int = 500,
    policy: RolloutPolicy = POLICY,
    **kw: Any,
) -> Decision:
    """The look at ``clock``: every window before it has closed (a window close, as before)."""
    return on_look(state, look_at(state, clock, n, **kw), evaluate=evaluate, wall=2.0, policy=policy)


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
    assert window(state, 1000 + 840).state.stage_index == 0  # 14 windows covered: too early
    assert window(state, 1000 + 900, n=50).state.stage_index == 0  # too few samples
    assert window(state, 1000 + 900, evaluate=blocked).state.stage_index == 0
    assert window(state, 1000 + 900, evaluate=blocked).state.promotion_blocked_by == ["slo_p95"]
    ripe = window(state, 1000 + 900).state
    assert ripe.stage_index == 1 and ripe.since == 1900.0  # the next stage starts at the frontier


def test_failed_gate_rolls_back_with_evidence() -> None:
    state = window(started(), 1060).state
    decision = window(state, 1120, evaluate=slow)
    assert decision.state.phase is Phase.ROLLED_BACK
    assert decision.state.weights == {"v1": 1.0, "v2": 0.0}
    rollback = decision.rollback
    assert rollback is not None and rollback.gate == "latency_p95" and rollback.canary_version == "v2"
    # window_end: the event time of the newest data the gates saw (the look at 1120 has data up to 1121).
    assert rollback.evidence[0].canary == 3000.0 and rollback.window_end == 1121 and rollback.stage_percent == 5.0
    assert rollback.revision == decision.state.revision
    # Later windows change nothing and never roll back twice.
    again = window(decision.state, 1180, evaluate=slow)
    assert again.rollback is None and not again.changed


@pytest.mark.parametrize(
    ("kind", "phase_after"),
    [
        (CommandKind.PAUSE, Phase.PAUSED),
        (CommandKind.FORCE_ROLLBACK, Phase.ROLLED_BACK),
        (CommandKind.EMERGENCY_STOP, Phase.EMERGENCY_STOPPED),
    ],
)
def test_operator_commands(kind: CommandKind, phase_after: Phase) -> None:
    decision = apply_command(started(), command(kind, reason="drill"), arm_traffic=TRAFFIC, wall=5.0, policy=POLICY)
    assert decision.state.last_command is not None
    assert decision.state.phase is phase_after and decision.state.last_command.accepted
    if kind is CommandKind.FORCE_ROLLBACK:
        assert (
            decision.rollback is not None and decision.rollback.gate == "manual" and decision.rollback.reason == "drill"
        )
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
    assert state.last_command is not None
    assert state.stage_index == 1 and state.weights["v2"] == 0.25 and state.last_command.accepted
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
        # An outside test set an arbitrary control name, which then got 95% and the emergency stop's 100%.
        (
            fresh,
            command(CommandKind.START, artifact="v2", control="v-attacker-control"),
            TRAFFIC,
            "neither the router's current artifact, nor serving its traffic, nor a verified version",
        ),
        (started, command(CommandKind.RESUME), TRAFFIC, "cannot resume while canary"),
        (started, command(CommandKind.APPROVE), TRAFFIC, "cannot approve"),
        (started, command(CommandKind.PROMOTE, artifact="v9"), TRAFFIC, "canary is v2"),
        (started, command(CommandKind.PROMOTE), TRAFFIC, "no gate has been evaluated at 5% yet"),
        (
            lambda: window(started(), 1060, evaluate=blocked).state,
            command(CommandKind.PROMOTE),
            TRAFFIC,
            "gates not passing at 5%: slo_p95 blocked",
        ),
        (started, command(CommandKind.PROMOTE, override=True), TRAFFIC, "an override needs a reason"),
        (started, command(CommandKind.PAUSE, override=True, reason="x"), TRAFFIC, "override applies only to promote"),
        (lambda: fresh(revision=3), command(CommandKind.EMERGENCY_STOP), TRAFFIC, "no last good"),
    ],
)
def test_illegal_commands_are_refused_with_a_reason(
    state_factory: Callable[[], RolloutState], cmd: RolloutCommand, traffic: dict[str, int], fragment: str
) -> None:
    before = state_factory()
    decision = apply_command(before, cmd, arm_traffic=traffic, wall=9.0, policy=POLICY)
    outcome = decision.state.last_command
    assert outcome is not None and not outcome.accepted and fragment in outcome.reason
    assert decision.state.phase is before.phase and decision.state.weights == before.weights
    assert decision.rollback is None and decision.state.revision == before.revision + 1


# --- stage timing from data -----------------------------------------------------------------------


def test_a_clock_gap_without_data_does_not_ripen_a_stage() -> None:
    state = started()
    # One window of data, 900 s of silence, then the next window: by the clocks the stage is
    # 15 minutes old, by the data it has 2 minutes.
    # (A single window after a gap could be dated ahead of the data: the window before the
    # gap counts once a second window has data after it.)
    gap = window(state, 1000 + 900, starts=[1000, 1900])
    assert gap.state.stage_index == 0 and gap.state.phase is Phase.CANARY
    assert gap.state.covered_seconds == 0.0
    later = window(gap.state, 1000 + 960, starts=[1000, 1900, 1960])
    assert later.state.stage_index == 0 and later.state.covered_seconds == 120.0


def test_a_future_dated_window_never_ripens_a_stage_or_moves_its_start() -> None:
    state = started()
    future = 1000 + 3600
    # Two real windows and one dated an hour ahead: the future one is the newest, never closed.
    # The still-open newest real window (1060) does not count either: the future window does
    # not close it.
    early = window(state, 1120, starts=[1000, 1060, future])
    assert early.state.stage_index == 0 and early.state.covered_seconds == 60.0
    assert early.state.frontier == 1060.0  # not the future window's end
    # Real windows keep arriving behind it; each counts once, so the stage ripens after 15
    # real minutes — and the next stage starts at the real frontier, not an hour ahead.
    state = early.state
    for clock in range(1180, 1900 + 1, 60):
        state = window(state, clock, starts=[*range(1000, clock + 1, 60), future]).state
        if state.stage_index:
            break
    assert state.stage_index == 1 and clock == 1900  # 1000..1840 closed: 15 windows
    assert state.since == 1900.0 < future


def test_many_thin_windows_dated_ahead_neither_ripen_a_stage_nor_move_the_next_ones_start() -> None:
    # Outside tester: 16 adjacent windows a day ahead with one request per arm closed one
    # another, ripened the 5% stage after 3 real minutes and moved the 25% stage's start a
    # day ahead (past all the traffic still arriving).
    state = started()
    ahead = [StageWindow(1000 + 86_400 + 60 * i, ArmFigures(count=1), ArmFigures(count=1)) for i in range(16)]
    clock = 1000
    while state.stage_index == 0 and clock < 1000 + 3600:
        clock += 60
        real = [StageWindow(s, ArmFigures(count=100), ArmFigures(count=1900)) for s in range(1000, clock + 1, 60)]
        n = len(real)
        look = Look(
            clock=clock + 1.0,
            window_seconds=60,
            windows=[*real, *ahead],
            canary=stats(100 * n + 16),
            control=stats(1900 * n + 16),
        )
        decision = on_look(state, look, evaluate=healthy, wall=2.0, policy=POLICY)
        state = decision.state
        if clock == 1000 + 300:
            assert state.covered_seconds == 300.0 and "with too little traffic to count" in state.blockers[0]
    assert state.stage_index == 1 and clock == 1000 + 900  # 15 real minutes, as without them
    assert state.since == 1900.0


def _real_look(clock: int, extra: list[StageWindow], counts: dict[int, int] | None = None) -> Look:
    """Windows of 100 canary / 1,900 control requests from 1000 up to ``clock`` (``counts``
    overrides the control's in some), plus ``extra``."""
    real = [
        StageWindow(s, ArmFigures(count=100), ArmFigures(count=(counts or {}).get(s, 1900)))
        for s in range(1000, clock + 1, 60)
    ]
    windows = [*real, *extra]
    return Look(
        clock=clock + 1.0,
        window_seconds=60,
        windows=windows,
        canary=stats(sum(w.canary.count for w in windows)),
        control=stats(sum(w.control.count for w in windows)),
    )


def test_one_spike_of_traffic_does_not_make_the_other_windows_too_thin_to_count() -> None:
    # A 9× minute at 1180: against the busiest window every other one fell below 1/8 and the
    # rollout paused after an hour (outside tester); the typical window is the reference.
    state, clock = started(), 1000
    while state.stage_index == 0 and clock < 1000 + 3600:
        clock += 60
        state = on_look(state, _real_look(clock, [], {1180: 9 * 1900}), evaluate=healthy, wall=2.0).state
    assert state.stage_index == 1 and clock == 1000 + 900


def test_windows_without_a_usable_start_are_ignored_not_a_frontier_or_an_exception() -> None:
    state = started()
    odd = [
        StageWindow(float("inf"), ArmFigures(count=100), ArmFigures(count=1900)),  # type: ignore[arg-type]
        StageWindow(float("nan"), ArmFigures(count=100), ArmFigures(count=1900)),  # type: ignore[arg-type]
        StageWindow(None, ArmFigures(count=100), ArmFigures(count=1900)),  # type: ignore[arg-type]
    ]
    decision = on_look(state, _real_look(1300, odd), evaluate=healthy, wall=2.0, policy=POLICY)
    assert decision.state.frontier == 1300.0 and decision.state.covered_seconds == 300.0


def test_windows_with_traffic_in_one_arm_only_do_not_count() -> None:
    decision = window(started(), 1000 + 1200, canary_windows=False)
    assert decision.state.stage_index == 0 and decision.state.covered_seconds == 0.0


def test_overlapping_windows_cover_their_union_not_the_sum_of_their_lengths() -> None:
    state = started()
    # 20 windows of 60 s starting 1 s apart (an unaligned producer): 79 s of data, not 20 min.
    decision = window(state, 1019, starts=list(range(1000, 1020)))
    assert decision.state.stage_index == 0 and decision.state.covered_seconds == 0.0  # none is closed yet
    overlapping = [*range(1000, 1020), *range(1060, 1080), 1120]
    decision = window(state, 1120, starts=overlapping)
    assert decision.state.stage_index == 0
    # Closed: 1000..1019 and 1060 (1061..1079 and 1120 have nothing after them yet): their
    # union is [1000, 1120), not 21 × 60 s.
    assert decision.state.covered_seconds == 120.0
    frontier, covered, active = coverage(state, look_at(state, 1120, starts=overlapping))
    assert (frontier, covered, active) == (1120.0, 120.0, 120.0)


def test_coverage_counts_closed_windows_once() -> None:
    state = started()
    frontier, covered, active = coverage(state, look_at(state, 1000 + 300))
    assert (frontier, covered, active) == (1300.0, 300.0, 300.0)


# --- no stuck stages ------------------------------------------------------------------------------


def test_a_stage_blocked_until_its_timeout_pauses_with_the_reason() -> None:
    state = started()
    clock = 1000.0
    decision = None
    while state.phase is Phase.CANARY and clock < 1000 + 7200:
        clock += 60
        decision = window(state, clock, evaluate=blocked)
        state = decision.state
    assert decision is not None and state.phase is Phase.PAUSED
    assert clock - 1000 == POLICY.timeout_seconds == 4 * 900  # four times the minimum, of traffic
    assert decision.stalled is not None and decision.stalled == state.stall
    assert state.stall.reasons == ["slo_p95 blocked"]
    assert "timed out after 60 min of traffic" in (state.reason or "") and "slo_p95 blocked" in (state.reason or "")
    # Paused, the gates still protect; a resume counts the timeout again from there.
    assert window(state, clock + 60, evaluate=slow).state.phase is Phase.ROLLED_BACK
    resumed = apply_command(state, command(CommandKind.RESUME), arm_traffic=TRAFFIC, wall=9.0, policy=POLICY).state
    assert resumed.phase is Phase.CANARY and resumed.stall is None and resumed.timeout_from == clock
    assert window(resumed, clock + 60, evaluate=blocked).state.phase is Phase.CANARY


def test_the_timeout_is_configurable_and_names_missing_coverage() -> None:
    policy = RolloutPolicy(min_stage_seconds=900, min_samples=100, stage_timeout_seconds=600)
    decision = window(started(), 1000 + 600, canary_windows=False, policy=policy)
    assert decision.state.phase is Phase.PAUSED
    assert decision.state.stall is not None
    reasons = decision.state.stall.reasons
    assert (
        reasons[0] == "only 0 of 15 min covered by data in both arms (canary traffic in 0 of 10 closed "
        "windows, control in 10)"
    )
    assert reasons[1].startswith("too few requests: canary 0")
    assert RolloutPolicy(stage_timeout_seconds=0).timeout_seconds == float("inf")


# --- α per rollout --------------------------------------------------------------------------------


def test_each_stage_spends_its_share_of_the_rollouts_alpha() -> None:
    shares: list[float] = []

    def recording(look: Look, share: float) -> Verdict:
        shares.append(share)
        return healthy(look, share)

    state, clock = started(), 1000.0
    while state.phase is Phase.CANARY:
        clock += 60
        state = window(state, clock, evaluate=recording).state
    assert sorted(set(shares), reverse=True) == [0.8, 0.1] and sum(POLICY.alpha_share(i) for i in range(4)) == 1.0
    assert [POLICY.alpha_share(i) for i in range(4)] == [0.8, 0.1, 0.1, 0.0]


# --- with the real gates: missing data never promote, stuck stages say why ------------------------


def real_stage(
    canary_profile: ArmProfile,
    *,
    minutes: int,
    seed: int = 3,
    latency: LatencyModel = LatencyModel(),
    config: GateConfig = GateConfig(),
    trace: list[RolloutState] | None = None,
) -> RolloutState:
    """Run the real gates on simulated traffic (2,000 requests a minute, 5% canary) until the
    stage leaves the canary phase or ``minutes`` pass (``trace`` collects the state after each window)."""
    rng = random.Random(seed)
    canary_sampler = ArmSampler.for_profile(canary_profile, model=latency)
    control_sampler = ArmSampler.for_profile(ArmProfile(), model=latency)
    state = started()
    windows: list[tuple[int, WindowStats, WindowStats]] = []
    for minute in range(minutes):
        start = 1000 + 60 * minute
        canary, control = WindowStats(), WindowStats()
        share = state.weights.get("v2", 0.0)
        n = round(2000 * share)
        canary_sampler.add_window(canary, rng, n)
        control_sampler.add_window(control, rng, 2000 - n)
        windows.append((start, canary, control))
        stage = [w for w in windows if w[0] >= state.since]
        look = Look(
            clock=start + 59.0,
            window_seconds=60,
            windows=[StageWindow(s, ArmFigures.of(c), ArmFigures.of(k)) for s, c, k in stage],
            canary=merged([c for _, c, _ in stage]),
            control=merged([k for _, _, k in stage]),
        )
        state = on_look(
            state,
            look,
            wall=0.0,
            policy=POLICY,
            evaluate=lambda lk, share: evaluate_gates(
                lk.canary, lk.control, config, windows=lk.windows, alpha_share=share
            ),
        ).state
        if trace is not None:
            trace.append(state)
        if state.phase is not Phase.CANARY:
            break
    return state


def test_a_healthy_canary_on_real_gates_is_promoted_stage_by_stage() -> None:
    state = real_stage(ArmProfile(), minutes=120)
    assert state.phase is Phase.PROMOTED


def test_a_canary_reporting_latency_zero_is_never_promoted() -> None:
    state = real_stage(ArmProfile(latency_zero_fraction=1.0), minutes=120)
    assert state.phase is Phase.PAUSED and state.stage_index == 0
    assert state.stall is not None
    reasons = " | ".join(state.stall.reasons)
    assert "latency_p95 insufficient: missing: the canary reports no latency for its" in reasons
    assert "slo_p95 insufficient: missing" in reasons


def test_a_canary_with_a_fifth_of_latencies_zero_is_never_promoted() -> None:
    state = real_stage(ArmProfile(latency_zero_fraction=0.2), minutes=120)
    assert state.stall is not None
    assert state.phase is Phase.PAUSED and "has a latency for" in " ".join(state.stall.reasons)


def test_an_unjudged_canary_pauses_with_the_reason() -> None:
    state = real_stage(ArmProfile(judged_fraction=0.0), minutes=120)
    assert state.phase is Phase.PAUSED
    assert state.stall is not None
    assert any("win_rate insufficient: missing: the canary reports no judgement" in r for r in state.stall.reasons)


def test_an_slo_breached_by_both_arms_pauses_with_the_reason() -> None:
    state = real_stage(ArmProfile(), minutes=120, latency=LatencyModel("lognormal", sigma=1.5))
    assert state.phase is Phase.PAUSED
    assert state.stall is not None
    assert any("above the SLO in both arms" in r for r in state.stall.reasons)


# --- promotion needs shown non-inferiority, not the absence of a rollback -------------------------

#: Rollback practically impossible (α 1e-300, ~37 standard errors): what is left is whether
#: promotion waits for evidence.
UNCONDEMNABLE = GateConfig(alpha=1e-300)


def test_a_regression_the_data_cannot_yet_condemn_is_held_then_paused_not_promoted() -> None:
    trace: list[RolloutState] = []
    state = real_stage(ArmProfile(cost_factor=1.3), minutes=120, config=UNCONDEMNABLE, trace=trace)
    assert state.phase is Phase.PAUSED and state.stage_index == 0, state.reason
    assert all(s.stage_index == 0 and s.phase is not Phase.ROLLED_BACK for s in trace)
    # Ripe (15 min covered, samples, no gate failing), yet held by the cost gate's upper bound.
    ripe = [s for s in trace if s.phase is Phase.CANARY and s.covered_seconds >= POLICY.min_stage_seconds]
    assert ripe and all(
        any(
            line.startswith("cost_per_task not shown within tolerance: upper bound +") and "needs below +30%" in line
            for line in s.blockers
        )
        for s in ripe
    )
    assert all("cost_per_task" in s.promotion_blocked_by for s in ripe)
    cost = next(g for g in trace[-1].gates if g.gate == "cost_per_task")
    assert cost.status is GateStatus.PASS and cost.upper is not None and cost.upper_limit == 0.3
    assert cost.upper >= cost.upper_limit
    # After the timeout (60 min of traffic) it pauses, and says why.
    assert state.stall is not None and state.stall.timeout_seconds == 4 * POLICY.min_stage_seconds
    assert any(r.startswith("cost_per_task not shown within tolerance") for r in state.stall.reasons)
    assert "cost_per_task not shown within tolerance" in (state.reason or "")


def test_an_identical_canary_shows_non_inferiority_and_is_promoted() -> None:
    trace: list[RolloutState] = []
    state = real_stage(ArmProfile(), minutes=240, config=UNCONDEMNABLE, trace=trace)
    assert state.phase is Phase.PROMOTED
    shown = [
        (g.upper, g.upper_limit) for s in trace for g in s.gates if g.upper_limit is not None and g.upper is not None
    ]
    assert shown and any(upper < limit for upper, limit in shown)


def _looking(gates: frozenset[str], seen: list[frozenset[str]], then: Evaluate = blocked) -> Evaluate:
    """A stand-in evaluation that records the fixed looks offered and makes those of ``gates``."""

    def evaluate(look: Look, share: float) -> Verdict:
        seen.append(look.fixed_looks)
        verdict = then(look, share)
        made = [GateResult(gate=g, status=GateStatus.PASS, fixed_look=True) for g in sorted(look.fixed_looks & gates)]
        return Verdict([*verdict.results, *made])

    return evaluate


def test_the_fixed_horizon_look_happens_once_per_stage_at_its_first_ripe_look() -> None:
    """The gates' look-once test is valid only if it is made once per stage, at a moment set
    by coverage (never by the values tested); the state remembers it across looks and
    restarts, and a new stage gets its own."""
    seen: list[frozenset[str]] = []
    both = frozenset({"cost_per_task", "win_rate"})
    recording = _looking(both, seen)  # held by an SLO: the stage stays ripe and keeps looking
    state = started()
    clocks = list(range(1060, 1000 + 1200, 60))
    for clock in clocks:
        state = window(state, clock, evaluate=recording).state
    offered = [i for i, gates in enumerate(seen) if gates & both]
    assert len(offered) == 1, seen
    assert clocks[offered[0]] == 1000 + 900  # the first look with 15 closed windows
    assert sorted(state.fixed_looks_done) == sorted(both) and state.stage_index == 0
    # A restart reads the state back: the look is not repeated.
    state = msgspec.json.decode(msgspec.json.encode(state), type=RolloutState)
    state = window(state, 1000 + 1260, evaluate=recording).state
    assert not seen[-1] & both and state.stage_index == 0
    # The next stage has fixed looks of its own.
    advanced = window(state, 1000 + 1320).state
    assert advanced.stage_index == 1 and not advanced.fixed_looks_done


def test_a_gate_that_could_not_test_at_the_ripe_look_makes_its_fixed_look_later() -> None:
    seen: list[frozenset[str]] = []
    state = started()
    for clock in range(1060, 1000 + 1020, 60):
        state = window(state, clock, evaluate=_looking(frozenset({"cost_per_task"}), seen)).state
    assert state.fixed_looks_done == ["cost_per_task"] and "win_rate" in seen[-1]
    state = window(state, 1000 + 1020, evaluate=_looking(frozenset({"win_rate"}), seen)).state
    assert sorted(state.fixed_looks_done) == ["cost_per_task", "win_rate"]
    state = window(state, 1000 + 1080, evaluate=_looking(frozenset({"win_rate"}), seen)).state
    assert not seen[-1] & {"cost_per_task", "win_rate"}


def test_no_fixed_look_before_the_stage_is_ripe_by_data_and_a_caller_cannot_force_one() -> None:
    seen: list[frozenset[str]] = []
    recording = _looking(frozenset(ROLLBACK_GATES), seen, then=healthy)
    state = started()
    for clock in range(1060, 1000 + 900, 60):  # 14 closed windows: not ripe yet
        state = window(state, clock, evaluate=recording).state
    assert not any(seen) and not state.fixed_looks_done
    # Ripe by time but too few requests: still not the fixed look.
    thin = window(state, 1000 + 960, evaluate=recording, n=50).state
    assert not seen[-1] and not thin.fixed_looks_done
    # A look built with fixed looks already set is overridden by the controller.
    forced = dataclasses.replace(look_at(state, 1000 + 600), fixed_looks=frozenset(ROLLBACK_GATES))
    on_look(state, forced, evaluate=recording, wall=2.0, policy=POLICY)
    assert not seen[-1]


def test_a_paused_stage_makes_its_fixed_look_when_it_ripens_not_when_resumed() -> None:
    """The operator must not choose the moment: a stage ripening while paused looks then."""
    seen: list[frozenset[str]] = []
    recording = _looking(frozenset({"cost_per_task"}), seen, then=healthy)
    state = window(started(), 1000 + 300, evaluate=recording).state
    paused = apply_command(state, command(CommandKind.PAUSE), arm_traffic=TRAFFIC, wall=3.0, policy=POLICY).state
    assert paused.phase is Phase.PAUSED
    for clock in range(1000 + 360, 1000 + 1200, 60):
        paused = window(paused, clock, evaluate=recording).state
    assert paused.phase is Phase.PAUSED and paused.fixed_looks_done == ["cost_per_task"]
    assert sum("cost_per_task" in gates for gates in seen) == 1


def test_the_fixed_look_is_published_even_when_no_window_closes() -> None:
    """The worker stores a state only when a decision is ``changed``: a fixed look made at a
    look that closes no window (the stage ripened by its request count) must be stored, or
    the next look would make it again."""
    state = started()
    for clock in range(1060, 1000 + 960, 60):
        state = window(state, clock, n=50).state  # ripe by time, too few requests
    assert not state.fixed_looks_done
    decision = window(state, 1000 + 900, n=500, evaluate=_looking(frozenset({"cost_per_task"}), []))
    assert decision.state.fixed_looks_done == ["cost_per_task"] and decision.changed
