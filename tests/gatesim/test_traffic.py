"""The simulation's traffic synthesis: binomial counts and latency tables are right."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from bifrost.gatesim.traffic import (
    LATENCY_TABLE_SIZE,
    ArmProfile,
    ArmSampler,
    BurstCarry,
    Clustering,
    binomial,
    cost_table,
    latency_key_table,
)
from bifrost.streams.aggregates.stats import WindowStats


@pytest.mark.parametrize(("n", "p"), [(1900, 0.02), (2000, 0.3), (100, 0.9), (50, 0.5), (3, 0.0), (7, 1.0)])
def test_binomial_mean_and_variance(n: int, p: float) -> None:
    rng = random.Random(11)
    draws = [binomial(rng, n, p) for _ in range(4000)]
    assert all(0 <= d <= n for d in draws)
    mean, var = n * p, n * p * (1 - p)
    assert statistics.fmean(draws) == pytest.approx(mean, abs=4 * math.sqrt(var / 4000) + 1e-9)
    if var:
        assert statistics.variance(draws) == pytest.approx(var, rel=0.1)


def test_latency_table_quantiles() -> None:
    gamma = 1.01 / 0.99
    base = latency_key_table()
    slow = latency_key_table(1.5)
    assert len(base) == len(slow) == LATENCY_TABLE_SIZE
    assert list(base) == sorted(base)

    def quantile(table: tuple[int, ...], q: float) -> float:
        return 2 * gamma ** table[int(q * len(table))] / (gamma + 1)

    # x1.5 moves every quantile by x1.5 (within a bucket or two).
    for q in (0.5, 0.95):
        assert quantile(slow, q) / quantile(base, q) == pytest.approx(1.5, rel=0.03)
    # The mix of the request simulator: median near 400 ms, P95 near 1.9 s.
    assert quantile(base, 0.5) == pytest.approx(408, rel=0.03)
    assert quantile(base, 0.95) == pytest.approx(1900, rel=0.03)


def test_sampler_window_totals() -> None:
    rng = random.Random(3)
    stats = WindowStats()
    sampler = ArmSampler.for_profile(ArmProfile(cost_factor=2.0))
    for _ in range(20):
        sampler.add_window(stats, rng, 1000)
    assert stats.count == stats.latency_ms.count == 20_000
    assert stats.errors == pytest.approx(400, abs=80)
    judged = stats.wins + stats.ties + stats.losses
    assert judged == pytest.approx(6000, abs=250)
    assert (stats.wins + 0.5 * stats.ties) / judged == pytest.approx(0.90, abs=0.02)
    mean_cost = statistics.fmean(cost_table())
    assert stats.cost_usd / stats.count == pytest.approx(2 * mean_cost, rel=0.1)
    assert stats.cost_sq > 0


@pytest.mark.parametrize("burst", [5.0, 20.0])
def test_error_bursts_keep_a_small_arms_error_rate_when_carried_across_batches(burst: float) -> None:
    # A 5% arm gets ~10 requests per batch; a burst cut at the batch lost most of its errors
    # (0.41× the error rate with bursts of 20, found by an outside tester). Carried over, the
    # arm's error rate is the profile's, as the large arm's is.
    rng = random.Random(11)
    sampler = ArmSampler.for_profile(ArmProfile(error_rate=0.02))
    clustering = Clustering(burst, frozenset({"errors"}))
    small, large = WindowStats(), WindowStats()
    small_carry, large_carry = BurstCarry(), BurstCarry()
    for _ in range(20_000):
        sampler.add_window(small, rng, 10, clustering, small_carry)
        sampler.add_window(large, rng, 190, clustering, large_carry)
    cut = WindowStats()
    for _ in range(20_000):
        sampler.add_window(cut, rng, 10, clustering)
    # ~200 (bursts of 20) to ~800 bursts per arm: a relative SE of 5–10%.
    assert small.errors / small.count == pytest.approx(0.02, rel=0.25)
    assert large.errors / large.count == pytest.approx(0.02, rel=0.25)
    if burst == 20.0:
        assert cut.errors / cut.count < 0.02 * 0.6  # what cutting the bursts did
