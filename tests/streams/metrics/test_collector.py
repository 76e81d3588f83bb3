"""The /metrics exposition of product figures: names, labels, values (parsed back)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bifrost.schemas.rollout import GateResult, GateStatus, Phase, RolloutState
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.metrics.collector import ProductCollector, install
from bifrost.streams.metrics.rollout import RolloutBoard, rollout_figures
from bifrost.streams.metrics.traffic import TrafficFigures


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def canary_state(router: str = "router-a") -> RolloutState:
    return RolloutState(
        router_id=router,
        phase=Phase.CANARY,
        control_version="v1",
        canary_version="v2",
        last_good_version="v1",
        stage_index=1,
        weights={"v1": 0.75, "v2": 0.25},
        gates=[
            GateResult(gate="error_rate", status=GateStatus.PASS, evidence=0.2),
            GateResult(gate="slo_p95", status=GateStatus.BLOCKED),
        ],
        promotion_blocked_by=["slo_p95"],
    )


def test_families_and_values_after_traffic_and_a_rollout() -> None:
    traffic = TrafficFigures(max_routers=5, max_arms_per_router=5)
    stats = WindowStats(count=4, errors=1, rate_limited=1, cost_usd=0.04)
    stats.latency_ms.add_many([90.0, 400.0, 2400.0, 7000.0])
    traffic.add("router-a", "v1", stats)
    board = RolloutBoard(5)
    board.update(canary_state())
    registry = CollectorRegistry()
    install(registry, ProductCollector(traffic, board))
    got = samples(registry)
    ra = (("arm", "v1"), ("router", "router-a"))
    assert got[("bifrost_router_requests_total", ra)] == 4
    assert got[("bifrost_router_errors_total", ra)] == 1
    assert got[("bifrost_router_rate_limited_total", ra)] == 1
    assert abs(got[("bifrost_router_cost_usd_total", ra)] - 0.04) < 1e-12
    assert got[("bifrost_router_request_latency_seconds_count", ra)] == 4
    assert abs(got[("bifrost_router_request_latency_seconds_sum", ra)] - 9.89) < 1e-9
    bucket = lambda le: got[("bifrost_router_request_latency_seconds_bucket", tuple(sorted((*ra, ("le", le)))))]  # noqa: E731
    assert (bucket("0.1"), bucket("0.5"), bucket("2.5"), bucket("5.0"), bucket("10.0"), bucket("+Inf")) == (
        1,
        2,
        3,
        3,
        4,
        4,
    )
    r = (("router", "router-a"),)
    assert got[("bifrost_rollout_phase", (("phase", "canary"), *r))] == 1
    assert got[("bifrost_rollout_phase", (("phase", "idle"), *r))] == 0
    assert got[("bifrost_rollout_stage", r)] == 1
    assert got[("bifrost_rollout_stage_share", r)] == 0.25
    assert got[("bifrost_rollout_canary_share", r)] == 0.25
    assert got[("bifrost_rollout_promotion_blockers", r)] == 1
    assert got[("bifrost_rollout_gate_state", (("gate", "error_rate"), *r, ("state", "pass")))] == 1
    assert got[("bifrost_rollout_gate_state", (("gate", "slo_p95"), *r, ("state", "blocked")))] == 1
    assert got[("bifrost_rollout_gate_state", (("gate", "slo_p95"), *r, ("state", "pass")))] == 0
    assert got[("bifrost_rollout_gate_evidence", (("gate", "error_rate"), *r))] == 0.2
    assert ("bifrost_rollout_gate_evidence", (("gate", "slo_p95"), *r)) not in got
    for role, version in (("control", "v1"), ("canary", "v2"), ("last_good", "v1")):
        assert got[("bifrost_rollout_artifact_info", (("role", role), *r, ("version", version)))] == 1


def test_installing_again_replaces_the_collector() -> None:
    registry = CollectorRegistry()
    board = RolloutBoard(5)
    install(registry, ProductCollector(TrafficFigures(max_routers=1, max_arms_per_router=1), RolloutBoard(1)))
    install(registry, ProductCollector(TrafficFigures(max_routers=1, max_arms_per_router=1), board))
    board.update(canary_state())
    assert samples(registry)[("bifrost_rollout_stage", (("router", "router-a"),))] == 1


def test_board_is_bounded_and_cleared_on_rebalance() -> None:
    board = RolloutBoard(2)
    for i in range(5):
        board.update(RolloutState(router_id=f"r{i}"))
    assert [f.router for f in board.figures()] == ["r0", "r1"] and board.dropped == 3
    board.update(RolloutState(router_id="r1", phase=Phase.PROMOTED))
    assert board.figures()[1].phase == "promoted"
    board.clear()
    assert board.figures() == []
    board.update(RolloutState(router_id="r0"))  # known routers come back after a rebalance
    assert [f.router for f in board.figures()] == ["r0"]


def test_figures_outside_a_rollout_and_after_a_rollback() -> None:
    idle = rollout_figures(RolloutState(router_id="r"))
    assert (idle.phase, idle.stage_index, idle.stage_share, idle.canary_share, idle.versions) == (
        "idle",
        -1,
        0.0,
        0.0,
        (),
    )
    rolled = rollout_figures(
        RolloutState(
            router_id="r",
            phase=Phase.ROLLED_BACK,
            control_version="v1",
            canary_version="v2",
            stage_index=-1,
            weights={"v1": 1.0, "v2": 0.0},
        )
    )
    assert rolled.canary_share == 0.0 and rolled.phase == "rolled_back" and ("canary", "v2") in rolled.versions
