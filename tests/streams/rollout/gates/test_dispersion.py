"""Overdispersion: Pearson sums over windows, the pooled estimate and its prior."""

from __future__ import annotations

import random

import pytest

from bifrost.gatesim.traffic import ArmProfile, ArmSampler, Clustering
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates.config import DispersionPrior
from bifrost.streams.rollout.gates.dispersion import (
    ArmFigures,
    StageWindow,
    Sums,
    WindowSums,
    chi2_quantile,
    estimate,
    pearson,
)

FLAT = DispersionPrior(phi=1.0, weight=0.0)


def windows(clustering: Clustering, count: int, seed: int = 1, n: int = 2000) -> list[StageWindow]:
    rng = random.Random(seed)
    sampler = ArmSampler.for_profile(ArmProfile())
    out = []
    for w in range(count):
        canary, control = WindowStats(), WindowStats()
        sampler.add_window(canary, rng, n // 20, clustering)
        sampler.add_window(control, rng, n - n // 20, clustering)
        out.append(StageWindow(60 * w, ArmFigures.of(canary), ArmFigures.of(control)))
    return out


def test_pearson_statistic_by_hand() -> None:
    # Two windows, 10 requests each, 1 and 3 errors: mean 0.2, s² = (4 − 0.8)/19, between = 0.1 + 0.9.
    chi2, df = pearson([(10.0, 1.0, 1.0), (10.0, 3.0, 3.0)])
    assert df == 1
    assert chi2 == pytest.approx((1.0 - 4.0 * 0.2) / (3.2 / 19))
    assert pearson([(10.0, 1.0, 1.0)]) == (0.0, 0)
    assert pearson([(10.0, 0.0, 0.0), (5.0, 0.0, 0.0)]) == (0.0, 0)  # no variation at all


def test_sums_are_additive() -> None:
    ws = windows(Clustering(), 6)
    split, whole = WindowSums.of(ws[:2]) + WindowSums.of(ws[2:]), WindowSums.of(ws)
    for a, b in zip((*split.canary, *split.control), (*whole.canary, *whole.control)):
        assert (a.n, a.s, a.q, a.between, a.windows) == pytest.approx((b.n, b.s, b.q, b.between, b.windows))
    assert Sums().add((0.0, 0.0, 0.0)) == Sums()


@pytest.mark.parametrize("gate", ["error_rate", "latency_p95", "cost_per_task", "win_rate"])
def test_independent_requests_estimate_about_one(gate: str) -> None:
    phi = estimate(WindowSums.of(windows(Clustering(), 80)), gate, FLAT)
    assert phi == pytest.approx(1.0, abs=0.35)


def test_clustered_errors_estimate_the_variance_inflation() -> None:
    # Geometric clusters of mean 5: E[size²]/E[size] = 2·5 − 1 = 9.
    phi = estimate(WindowSums.of(windows(Clustering(5.0, frozenset({"errors"})), 80)), "error_rate", FLAT)
    assert 6.0 < phi < 12.0
    # Other metrics are not clustered.
    assert estimate(WindowSums.of(windows(Clustering(5.0, frozenset({"errors"})), 80)), "cost_per_task", FLAT) < 1.5


def test_the_prior_dominates_until_windows_accumulate() -> None:
    prior = DispersionPrior(phi=4.0, weight=4.0)
    assert estimate(WindowSums(), "error_rate", prior) == 4.0
    many = WindowSums.of(windows(Clustering(), 120))
    assert estimate(many, "error_rate", prior) < 1.3


def test_significance_gated_prior_ignores_noise_but_not_clusters() -> None:
    gated = DispersionPrior(phi=1.0, weight=2.0, significance=0.01)
    assert estimate(WindowSums.of(windows(Clustering(), 5, seed=3)), "latency_p95", gated) == 1.0
    clustered = WindowSums.of(windows(Clustering(5.0, frozenset({"latency"})), 30))
    assert estimate(clustered, "latency_p95", gated) > 4.0


def test_chi2_quantile_close_to_tables() -> None:
    # Tabulated 99% quantiles: df 2 → 9.210, df 10 → 23.209, df 30 → 50.892.
    for df, value in ((2, 9.210), (10, 23.209), (30, 50.892)):
        assert chi2_quantile(0.99, df) == pytest.approx(value, rel=0.01)
