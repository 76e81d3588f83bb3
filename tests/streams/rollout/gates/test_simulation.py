"""A reduced simulation: the sequential gates keep false rollbacks rare under continuous
monitoring, catch +50% latency within 200 canary samples, and beat the naive gates."""

from __future__ import annotations

import pytest

from bifrost.streams.rollout.gates import GateConfig
from bifrost.streams.rollout.gates.simulation import (
    DEFAULT_SCENARIOS,
    SimulationReport,
    TrafficConfig,
    run_rollout,
    simulate_gates,
)
from bifrost.streams.rollout.gates.table import to_markdown

AA, LATENCY = DEFAULT_SCENARIOS[0], DEFAULT_SCENARIOS[1]


@pytest.fixture(scope="module")
def aa_report() -> SimulationReport:
    return simulate_gates(GateConfig(), [AA], rollouts=200, seed=2024, workers=2)


@pytest.fixture(scope="module")
def latency_report() -> SimulationReport:
    return simulate_gates(GateConfig(), [LATENCY], rollouts=100, seed=2024)


def test_aa_false_rollbacks_are_rare_under_continuous_monitoring(aa_report: SimulationReport) -> None:
    seq = aa_report.scenarios[0].sequential
    assert seq.rollouts == 200
    assert seq.rollback_rate <= 0.02


def test_naive_gates_roll_back_identical_canaries_far_more_often(aa_report: SimulationReport) -> None:
    scenario = aa_report.scenarios[0]
    assert scenario.naive.rollback_rate > scenario.sequential.rollback_rate
    assert scenario.naive.rollback_rate > 0.3


def test_latency_regression_is_caught_within_200_canary_samples(latency_report: SimulationReport) -> None:
    seq = latency_report.scenarios[0].sequential
    assert seq.within_budget_rate >= 0.90
    assert seq.by_gate.get("latency_p95", 0) == seq.rollbacks
    assert seq.median_samples is not None and seq.median_samples <= 200


def test_results_do_not_depend_on_scenario_set_or_workers() -> None:
    traffic = TrafficConfig(windows=4)
    alone = run_rollout(3, 11, GateConfig(), [LATENCY], traffic)
    together = run_rollout(3, 11, GateConfig(), [AA, LATENCY], traffic)
    assert alone[0] == together[1]
    one = simulate_gates(GateConfig(), [LATENCY], rollouts=4, seed=5, traffic=traffic, workers=1)
    two = simulate_gates(GateConfig(), [LATENCY], rollouts=4, seed=5, traffic=traffic, workers=2)
    assert one.scenarios == two.scenarios


def test_binomial_split_and_table() -> None:
    report = simulate_gates(GateConfig(), [AA, LATENCY], rollouts=3, seed=1,
                            traffic=TrafficConfig(windows=3, split="binomial"))
    table = to_markdown(report)
    assert "| A/A (false rollbacks) | sequential |" in table
    assert "| latency x1.5 | naive |" in table
    assert "binomial split" in table


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        simulate_gates(GateConfig(), [AA], rollouts=0)
    with pytest.raises(ValueError):
        simulate_gates(GateConfig(), [AA, AA], rollouts=1)
    with pytest.raises(ValueError):
        TrafficConfig(canary_share=1.5)
