"""`rollout status` tells the truth: samples per arm, time in stage, what blocks promotion,
each gate's statistic and bound; an unknown router is not shown as ``idle``."""

from __future__ import annotations

from bifrost.cli.rollout_cmd import render_state
from bifrost.schemas.rollout import CommandKind, GateResult, GateStatus, Phase, RolloutState, VerifiedArtifact
from bifrost.streams.rollout.controller import apply_command, router_known
from tests.streams.rollout.test_controller import POLICY, TRAFFIC, blocked, command, started, window


def test_a_look_records_samples_and_every_blocker_in_the_state() -> None:
    early = window(started(), 1000 + 300, n=40, evaluate=blocked).state
    assert early.phase is Phase.CANARY and early.stage_index == 0
    assert (early.canary_samples, early.control_samples) == (40, 40)
    assert early.blockers[0].startswith("only 5 of 15 min covered by data in both arms")
    assert early.blockers[1] == "too few requests: canary 40, control 40 (need 100 each)"
    assert early.blockers[2] == "slo_p95 blocked"
    ripe = window(started(), 1000 + 840).state  # healthy gates, 14 of 15 min: only coverage blocks
    assert len(ripe.blockers) == 1 and "14 of 15 min" in ripe.blockers[0]


def test_paused_is_a_blocker_and_resume_clears_it() -> None:
    looked = window(started(), 1000 + 300).state
    paused = apply_command(looked, command(CommandKind.PAUSE), arm_traffic=TRAFFIC, wall=5.0, policy=POLICY).state
    assert paused.blockers[0].startswith("the rollout is paused")
    assert window(paused, 1000 + 360).state.blockers[0].startswith("the rollout is paused")
    resumed = apply_command(paused, command(CommandKind.RESUME), arm_traffic=TRAFFIC, wall=6.0, policy=POLICY).state
    assert not any(line.startswith("the rollout is paused") for line in resumed.blockers)


def test_entering_a_stage_resets_its_figures() -> None:
    promoted_stage = window(started(), 1000 + 900).state
    assert promoted_stage.stage_index == 1
    assert promoted_stage.blockers == [] and promoted_stage.canary_samples == 0 and promoted_stage.gates == []


def test_status_shows_time_in_stage_samples_blockers_and_each_gates_test() -> None:
    state = RolloutState(
        router_id="r",
        phase=Phase.CANARY,
        control_version="v1",
        canary_version="v2",
        stage_index=0,
        weights={"v1": 0.95, "v2": 0.05},
        since=1_700_000_000.0,
        clock=1_700_000_000.0 + 23 * 60,
        covered_seconds=1200.0,
        alpha_share=0.5,
        canary_samples=412,
        control_samples=7_830,
        blockers=["slo_p95 blocked: canary 2,700 ms above the SLO"],
        gates=[
            GateResult(
                gate="latency_p95",
                status=GateStatus.PASS,
                canary=812.0,
                control=790.0,
                statistic=-0.0213,
                bound=0.01,
                alpha=0.0015,
                canary_samples=412,
                control_samples=7830,
                evidence=0.02,
            ),
            GateResult(gate="slo_p95", status=GateStatus.BLOCKED, statistic=2700.0, bound=2500.0),
            GateResult(gate="win_rate", status=GateStatus.INSUFFICIENT, bound=0.002, note="too few samples"),
        ],
    )
    text = render_state(state)
    assert "stage 5% for 23 min of event time (since 2023-11-14T22:13:20Z" in text
    assert "requests in the stage: canary 412, control 7,830" in text
    assert "promotion blocked by:\n    - slo_p95 blocked: canary 2,700 ms above the SLO" in text
    assert "statistic -0.0213 vs bound 0.01 (fails above)  α 0.0015  n 412/7,830" in text
    assert "canary P95 2700 ms vs SLO ≤ 2500" in text
    assert "no statistic yet (bound 0.002)" in text
    clear = render_state(
        RolloutState(
            router_id="r",
            phase=Phase.CANARY,
            control_version="v1",
            canary_version="v2",
            stage_index=1,
            gates=state.gates[:1],
        )
    )
    assert "nothing blocks promotion" in clear


def test_unknown_means_no_windows_and_no_rollout_state() -> None:
    assert not router_known(None, has_windows=False)
    assert router_known(None, has_windows=True)
    # A refused command for an unknown router is answered and stored: that alone is not a router.
    refused = apply_command(RolloutState(router_id="ghost"), command(CommandKind.PAUSE), arm_traffic={}, wall=1.0).state
    assert refused.last_command is not None and not refused.last_command.accepted
    assert not router_known(refused, has_windows=False)
    verified = RolloutState(
        router_id="new", verified=[VerifiedArtifact(version="v1", sha256="0" * 64, verified_by="pipeline", at=1.0)]
    )
    assert router_known(verified, has_windows=False)
    assert router_known(RolloutState(router_id="old", phase=Phase.PROMOTED, control_version="v2"), has_windows=False)
