"""`rollout status` shows the stage's data coverage, a timed-out stage's reasons and each gate's note."""

from __future__ import annotations

from bifrost.cli.rollout_cmd import render_state
from bifrost.schemas.rollout import GateResult, GateStatus, Phase, RolloutState, StallRecord


def test_a_paused_stage_shows_why() -> None:
    state = RolloutState(
        router_id="r",
        phase=Phase.PAUSED,
        control_version="v1",
        canary_version="v2",
        stage_index=0,
        weights={"v1": 0.95, "v2": 0.05},
        covered_seconds=3540.0,
        alpha_share=0.5,
        reason="stage 5% timed out after 60 min of traffic without a decision; paused: slo_p95 blocked: …",
        stall=StallRecord(
            stage_percent=5.0,
            at=5000.0,
            wall=1.0,
            timeout_seconds=3600.0,
            covered_seconds=3540.0,
            reasons=[
                "slo_p95 blocked: the P95 is above the SLO in both arms (canary 4,700 ms, "
                "control 4,650 ms, SLO 2,500 ms): no artifact can pass it on this traffic"
            ],
        ),
        gates=[
            GateResult(
                gate="win_rate",
                status=GateStatus.INSUFFICIENT,
                canary=None,
                control=0.9,
                note="missing: the canary reports no judgement for its 6,000 requests",
            ),
            GateResult(
                gate="cost_per_task",
                status=GateStatus.PASS,
                canary=0.0031,
                control=0.0027,
                evidence=0.4,
                dispersion=2.5,
            ),
        ],
        promotion_blocked_by=["win_rate", "cost_per_task"],
    )
    text = render_state(state)
    assert "stage covered by data in both arms: 59 min, spends 50% of the rollout's false-rollback budget" in text
    assert "ALERT stage 5% timed out after 60 min of traffic" in text
    assert "    - slo_p95 blocked: the P95 is above the SLO in both arms" in text
    assert "missing: the canary reports no judgement" in text
    assert "evidence 40%  dispersion 2.5  (holding promotion)" in text


def test_a_stage_held_for_non_inferiority_shows_the_gate_its_upper_bound_and_limit() -> None:
    line = (
        "cost_per_task not shown within tolerance: upper bound +42.0% of the degradation, needs below +30% "
        "(time-uniform bound; canary +12.0% vs control so far)"
    )
    state = RolloutState(
        router_id="r",
        phase=Phase.CANARY,
        control_version="v1",
        canary_version="v2",
        stage_index=0,
        weights={"v1": 0.95, "v2": 0.05},
        covered_seconds=1200.0,
        alpha_share=0.5,
        blockers=[line],
        gates=[
            GateResult(
                gate="cost_per_task", status=GateStatus.PASS, canary=0.0031, control=0.0027, upper=0.42, upper_limit=0.3
            )
        ],
        promotion_blocked_by=["cost_per_task"],
    )
    text = render_state(state)
    assert f"    - {line}" in text
    assert "upper +0.42 vs limit 0.3 (promotes below)" in text
