"""Each gate: A/A passes, a clear regression fails with evidence, too little data is
insufficient, SLOs block promotion; the report's verdicts; the naive baseline."""

from __future__ import annotations

import random
from collections import Counter

import msgspec
import pytest

from bifrost.schemas import rollout as schema
from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates import (
    ROLLBACK_GATES,
    GateConfig,
    GateReport,
    GateResult,
    GateStatus,
    evaluate_gates,
    naive_gates,
)
from bifrost.streams.rollout.gates import inference
from bifrost.streams.rollout.gates.config import EXCEEDANCE_PRIOR
from bifrost.streams.rollout.gates.traffic import ArmProfile, ArmSampler, add_keys, latency_key_table


def arm(n: int, profile: ArmProfile = ArmProfile(), seed: int = 1, windows: int = 10) -> WindowStats:
    """Cumulative stats of ``n`` simulated requests of one arm."""
    rng = random.Random(seed)
    stats = WindowStats()
    sampler = ArmSampler.for_profile(profile)
    for w in range(windows):
        sampler.add_window(stats, rng, n // windows + (1 if w < n % windows else 0))
    return stats


def statuses(report: GateReport) -> dict[str, GateStatus]:
    return {r.gate: r.status for r in report.results}


def test_results_are_the_wire_types_in_a_fixed_order() -> None:
    assert GateResult is schema.GateResult and GateStatus is schema.GateStatus
    report = evaluate_gates(arm(2000, seed=2), arm(20_000, seed=3))
    assert [r.gate for r in report.results] == [*ROLLBACK_GATES, "slo_p95", "slo_win_rate"]
    decoded = msgspec.json.decode(msgspec.json.encode(report.results), type=list[schema.GateResult])
    assert decoded == report.results


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_aa_with_large_samples_passes_every_gate(seed: int) -> None:
    report = evaluate_gates(arm(20_000, seed=seed), arm(200_000, seed=seed + 100))
    assert statuses(report) == {g: GateStatus.PASS for g in [*ROLLBACK_GATES, "slo_p95", "slo_win_rate"]}
    assert report.rollback is None
    assert not report.promotion_blocked
    for result in report.results[:4]:
        assert result.statistic is not None and result.bound is not None
        assert result.statistic < result.bound
        assert result.alpha == pytest.approx(0.0025)


@pytest.mark.parametrize(
    ("gate", "profile", "canary_n"),
    [
        ("error_rate", ArmProfile(error_rate=0.06), 3000),
        ("latency_p95", ArmProfile(latency_factor=1.5), 400),
        ("cost_per_task", ArmProfile(cost_factor=1.3), 5000),
        ("win_rate", ArmProfile(win_probability=0.77), 6000),
    ],
)
def test_clear_regression_fails_with_evidence(gate: str, profile: ArmProfile, canary_n: int) -> None:
    config = GateConfig()
    report = evaluate_gates(arm(canary_n, profile, seed=5), arm(19 * canary_n, seed=6), config)
    result = report.get(gate)
    assert result is not None and result.status is GateStatus.FAIL
    assert report.rollback is not None and report.rollback.gate == gate
    assert report.promotion_blocked
    assert result.canary is not None and result.control is not None
    assert result.threshold == config.tolerance(gate)
    assert result.bound == pytest.approx(config.margin(gate))
    assert result.statistic is not None and result.statistic > result.bound
    assert result.method and result.alpha == pytest.approx(config.alpha / 4)
    assert result.canary_samples > 0 and result.control_samples > result.canary_samples
    # Only the regressed gate fails.
    others = [r for r in report.results[:4] if r.gate != gate]
    assert all(r.status is GateStatus.PASS for r in others)


def test_latency_evidence_compares_p95s() -> None:
    report = evaluate_gates(arm(400, ArmProfile(latency_factor=1.5), seed=7), arm(8000, seed=8))
    result = report.get("latency_p95")
    assert result is not None and result.status is GateStatus.FAIL
    assert result.canary is not None and result.control is not None
    assert result.canary / result.control == pytest.approx(1.5, rel=0.2)
    assert "log-latency shift" in result.method


def test_tail_test_catches_a_regression_confined_to_the_tail() -> None:
    # Only the slowest 12% get slower (x2.2): the median does not move, the P95 does.
    control = QuantileSketch()
    canary = QuantileSketch()
    rng = random.Random(9)
    base = latency_key_table()
    add_keys(control, Counter(rng.choices(base, k=40_000)))
    keys = rng.choices(base, k=2000)
    cut = sorted(keys)[int(0.88 * len(keys))]
    shifted = [k + 40 if k >= cut else k for k in keys]  # x e^(40·0.0198) ≈ x2.2
    add_keys(canary, Counter(shifted))
    outcome = inference.tail_exceedance_test(canary, control, 0.05, 0.95, 0.000625, 0.000625, 100.0, EXCEEDANCE_PRIOR)
    assert outcome.reject
    assert outcome.statistic is not None and outcome.statistic > 0.05 == outcome.bound
    aa = QuantileSketch()
    add_keys(aa, Counter(rng.choices(base, k=2000)))
    assert not inference.tail_exceedance_test(aa, control, 0.05, 0.95, 0.000625, 0.000625, 100.0, EXCEEDANCE_PRIOR).reject


def test_below_min_samples_is_insufficient() -> None:
    config = GateConfig(min_samples=100)
    report = evaluate_gates(arm(60, ArmProfile(latency_factor=3.0, error_rate=0.5), seed=1), arm(5000, seed=2), config)
    for gate in ROLLBACK_GATES:
        result = report.get(gate)
        assert result is not None and result.status is GateStatus.INSUFFICIENT, gate
        assert result.statistic is None
    assert report.rollback is None
    assert report.promotion_blocked
    # Control too small counts as well.
    report = evaluate_gates(arm(5000, seed=1), arm(60, seed=2), config)
    assert report.get("error_rate").status is GateStatus.INSUFFICIENT  # type: ignore[union-attr]


def test_win_rate_needs_judged_samples() -> None:
    canary = arm(1000, seed=1)
    canary.wins = canary.ties = canary.losses = 0
    report = evaluate_gates(canary, arm(20_000, seed=2))
    assert report.get("win_rate").status is GateStatus.INSUFFICIENT  # type: ignore[union-attr]
    assert report.get("slo_win_rate").status is GateStatus.PASS  # type: ignore[union-attr]
    assert report.get("error_rate").status is GateStatus.PASS  # type: ignore[union-attr]


def test_slo_gates_block_promotion_without_rolling_back() -> None:
    config = GateConfig(slo_p95_ms=1000.0, slo_min_win_rate=0.95)
    report = evaluate_gates(arm(5000, seed=3), arm(50_000, seed=4), config)
    assert statuses(report)["slo_p95"] is GateStatus.BLOCKED
    assert statuses(report)["slo_win_rate"] is GateStatus.BLOCKED
    assert all(statuses(report)[g] is GateStatus.PASS for g in ROLLBACK_GATES)
    assert report.rollback is None
    assert report.promotion_blocked
    slo = report.get("slo_p95")
    assert slo is not None and slo.canary is not None and slo.canary > 1000.0 == slo.threshold


def test_report_properties() -> None:
    def result(gate: str, status: GateStatus) -> GateResult:
        return GateResult(gate=gate, status=status, canary=None, control=None, threshold=None, statistic=None,
                          bound=None, method="m", alpha=None, canary_samples=0, control_samples=0)

    passing = [result(g, GateStatus.PASS) for g in [*ROLLBACK_GATES, "slo_p95", "slo_win_rate"]]
    assert GateReport(results=passing).rollback is None
    assert not GateReport(results=passing).promotion_blocked
    two_failed = list(passing)
    two_failed[1] = result("latency_p95", GateStatus.FAIL)
    two_failed[3] = result("win_rate", GateStatus.FAIL)
    report = GateReport(results=two_failed)
    assert report.rollback is not None and report.rollback.gate == "latency_p95"
    blocked = list(passing)
    blocked[5] = result("slo_win_rate", GateStatus.BLOCKED)
    assert GateReport(results=blocked).rollback is None
    assert GateReport(results=blocked).promotion_blocked


def test_statistic_exceeds_bound_exactly_when_a_gate_fails() -> None:
    rng = random.Random(4)
    profiles = [ArmProfile(), ArmProfile(latency_factor=1.15), ArmProfile(error_rate=0.035),
                ArmProfile(cost_factor=1.2), ArmProfile(win_probability=0.8)]
    for i in range(30):
        n = rng.choice([150, 600, 2500])
        report = evaluate_gates(arm(n, rng.choice(profiles), seed=i), arm(19 * n, seed=1000 + i))
        for result in report.results[:4]:
            if result.status is GateStatus.INSUFFICIENT or result.statistic is None:
                continue
            assert (result.status is GateStatus.FAIL) == (result.statistic > result.bound), result


def test_naive_gates_trip_on_noise_that_sequential_gates_ignore() -> None:
    config = GateConfig()
    control = WindowStats(count=1900, errors=38)
    canary = WindowStats(count=100, errors=3)  # 3% vs 2%: well within noise at n = 100
    assert naive_gates(canary, control, config).get("error_rate").status is GateStatus.FAIL  # type: ignore[union-attr]
    assert evaluate_gates(canary, control, config).get("error_rate").status is GateStatus.PASS  # type: ignore[union-attr]
    naive = naive_gates(canary, control, config).get("error_rate")
    assert naive is not None and naive.statistic == pytest.approx(0.5) and naive.bound == 0.1


def test_gate_config_validation() -> None:
    assert GateConfig().margin("latency_p95") == pytest.approx(0.05)
    assert GateConfig().gate_alpha == pytest.approx(0.0025)
    for bad in ({"alpha": 0.0}, {"alpha": 1.5}, {"min_samples": 0}, {"error_rate_increase": -0.1},
                {"win_rate_decrease": 1.0}, {"slo_p95_ms": 0.0}, {"slo_min_win_rate": 2.0}):
        with pytest.raises(ValueError):
            GateConfig(**bad)  # type: ignore[arg-type]


def test_win_rate_without_any_judged_samples_does_not_block_promotion() -> None:
    from bifrost.schemas import Bucket, RoutingEvent
    from bifrost.streams.aggregates.stats import WindowStats
    from bifrost.streams.rollout.gates import GateStatus, evaluate_gates

    def arm(n: int) -> WindowStats:
        stats = WindowStats()
        for i in range(n):
            stats.add_event(RoutingEvent(request_id=str(i), ts=1.0, router_id="r", arm="a", model="m", provider="p",
                                         bucket=Bucket.MID, latency_ms=100.0 + i % 7, cost_usd=0.01, success=True))
        return stats

    report = evaluate_gates(arm(500), arm(5000))
    win = next(r for r in report.results if r.gate == "win_rate")
    assert win.status is GateStatus.PASS and "not measured" in win.method
    assert not any(r.status is GateStatus.FAIL for r in report.results)
