"""Figures read from WindowStats: log-latency moments from buckets, tails, costs, win scores."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter

import pytest

from bifrost.gatesim.traffic import add_keys
from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates import metrics


def _latencies(seed: int, n: int = 5000) -> list[float]:
    rng = random.Random(seed)
    return [rng.choice((250.0, 600.0, 1400.0)) * math.exp(rng.gauss(0.0, 0.4)) for _ in range(n)]


def test_log_latency_moments_from_buckets() -> None:
    values = _latencies(1)
    sketch = QuantileSketch()
    sketch.add_many(values)
    estimate = metrics.log_latency_estimate(sketch)
    assert estimate is not None
    logs = [math.log(v) for v in values]
    # Each value is within relative accuracy 1% of its bucket's representative.
    assert estimate.n == len(values)
    assert estimate.mean == pytest.approx(statistics.fmean(logs), abs=0.01)
    assert estimate.variance == pytest.approx(statistics.variance(logs), rel=0.01)


def test_log_latency_ignores_zeros_and_empty() -> None:
    assert metrics.log_latency_estimate(QuantileSketch()) is None
    sketch = QuantileSketch()
    sketch.add_many([0.0, 0.0, 100.0, 100.0])
    estimate = metrics.log_latency_estimate(sketch)
    assert estimate is not None and estimate.n == 2
    assert estimate.mean == pytest.approx(math.log(100.0), abs=0.01)


@pytest.mark.parametrize("threshold", [10.0, 300.0, 1000.0, 2345.6, 1e6])
def test_exceedances_never_overcount(threshold: float) -> None:
    values = _latencies(2)
    sketch = QuantileSketch()
    sketch.add_many(values)
    counted = metrics.exceedances(sketch, threshold)
    assert counted <= sum(1 for v in values if v > threshold)
    # ...and miss at most the values of one bucket (relative width ~2%).
    assert counted >= sum(1 for v in values if v > threshold * 1.0203)


def test_tail_upper_bound_is_an_edge_with_fewer_values_above() -> None:
    values = _latencies(3)
    sketch = QuantileSketch()
    sketch.add_many(values)
    bound = metrics.tail_upper_bound(sketch, 200)
    assert bound is not None
    assert sum(1 for v in values if v > bound * (1 + 1e-9)) < 200
    # It is the smallest such edge: one bucket lower there would be at least 200.
    assert sum(1 for v in values if v > bound / 1.0203) >= 200
    assert metrics.tail_upper_bound(sketch, 0) is None
    assert metrics.tail_upper_bound(sketch, len(values) + 1) is None


def test_cost_and_win_estimates() -> None:
    stats = WindowStats()
    costs = [0.001, 0.003, 0.002, 0.010]
    stats.count = len(costs)
    stats.cost_usd = sum(costs)
    stats.cost_sq = sum(c * c for c in costs)
    cost = metrics.cost_estimate(stats)
    assert cost is not None
    assert cost.mean == pytest.approx(statistics.fmean(costs))
    assert cost.variance == pytest.approx(statistics.variance(costs))
    assert metrics.cost_estimate(WindowStats()) is None

    stats.wins, stats.ties, stats.losses = 6, 2, 2
    scores = [1.0] * 6 + [0.5] * 2 + [0.0] * 2
    win = metrics.win_estimate(stats)
    assert win is not None and win.n == 10
    assert win.mean == pytest.approx(0.7) == metrics.win_rate(stats)
    assert win.variance == pytest.approx(statistics.variance(scores))
    assert metrics.win_estimate(WindowStats()) is None
    assert metrics.error_rate(WindowStats()) is None


def test_add_keys_fills_the_same_bins_as_add() -> None:
    values = _latencies(4, 2000)
    by_add = QuantileSketch()
    by_add.add_many(values)
    by_keys = QuantileSketch()
    add_keys(by_keys, Counter(by_keys.key(v) for v in values))
    assert by_keys.bins == by_add.bins
    assert by_keys.count == by_add.count
    for q in (0.5, 0.95, 0.99):
        assert by_keys.quantile(q) == pytest.approx(by_add.quantile(q), rel=0.021)


def test_win_variance_is_read_at_the_null() -> None:
    observed = metrics.MeanEstimate(n=450, mean=0.81, variance=0.15)
    # A [0, 1] score whose mean the null allows (≥ 0.9) has variance ≤ 0.9 · 0.1.
    assert metrics.win_variance_under_null(observed, 0.9).variance == pytest.approx(0.09)
    # Below ½ the bound is ¼; a smaller observed variance is kept as it is.
    assert metrics.win_variance_under_null(observed, 0.3).variance == pytest.approx(0.15)
    assert metrics.win_variance_under_null(metrics.MeanEstimate(450, 0.9, 0.05), 0.9).variance == 0.05
    capped = metrics.win_variance_under_null(observed, 0.9)
    assert (capped.n, capped.mean) == (450, 0.81)


def _win_z(canary: WindowStats, control: WindowStats, margin: float, capped: bool) -> float:
    from bifrost.streams.rollout.gates import inference
    from bifrost.streams.rollout.gates.config import WIN_RATE_SHAPE

    c, k = metrics.win_estimate(canary), metrics.win_estimate(control)
    assert c is not None and k is not None
    if capped:
        c = metrics.win_variance_under_null(c, (1.0 - margin) * k.mean)
    z = inference.mean_decrease_test(c, k, margin, 0.002, WIN_RATE_SHAPE).z
    assert z is not None
    return z


def _judged(rng: random.Random, n: int, win: float, tie: float) -> WindowStats:
    stats = WindowStats()
    for _ in range(n):
        u = rng.random()
        if u < win:
            stats.wins += 1
        elif u < win + tie:
            stats.ties += 1
        else:
            stats.losses += 1
    stats.count = n
    return stats


def test_win_variance_at_the_null_keeps_the_level_and_adds_power() -> None:
    # Canary exactly at the null's boundary with the largest variance its mean allows (no
    # ties: wins and losses only) against a control with ties: the capped statistic exceeds
    # a one-sided 5% critical value no more often than 5% (plus Monte Carlo noise).
    rng = random.Random(11)
    margin = 0.002
    control_win, control_tie = 0.86, 0.08  # mean 0.90
    boundary = (1.0 - margin) * 0.90
    z_null = [
        _win_z(_judged(rng, 450, boundary, 0.0), _judged(rng, 8550, control_win, control_tie), margin, capped=True)
        for _ in range(2000)
    ]
    assert sum(z > 1.645 for z in z_null) / len(z_null) < 0.065
    # Win −10% (wins 0.86 → 0.774, ties kept): the capped statistic is larger, by ~0.9 SE.
    gains = []
    for _ in range(300):
        canary, control = _judged(rng, 450, 0.774, 0.08), _judged(rng, 8550, control_win, control_tie)
        gains.append(_win_z(canary, control, margin, capped=True) - _win_z(canary, control, margin, capped=False))
    assert min(gains) >= 0.0 and statistics.fmean(gains) > 0.5
