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
