"""Synthetic per-window traffic of one arm, folded straight into :class:`WindowStats`.

The request mix mirrors ``client/simulator/model.py``: three models (cheap / mid / hard
buckets, 50/30/20%) with lognormal latencies and per-model prices, so latency and cost
are mixtures, as a router's arm really is. Generating 120 million requests one by one
would take minutes in pure Python, so each window is drawn in bulk:

* latency: the exact probability of every sketch bucket is computed from the lognormal
  mixture, laid out in a 65,536-entry inverse-CDF table, and a window's values are a
  ``random.choices`` draw of bucket keys, counted into the sketch's bins (the same
  bins ``QuantileSketch.add`` would fill; the tests check that);
* cost: a 4,096-atom quantile table of the simulator's cost model (bucket price ×
  tokens in and out), scaled by the arm's cost factor; sum and sum of squares per window;
* errors and win/tie/loss outcomes: binomial counts (Hörmann's BTRS sampler).

Latency and cost are drawn independently (the gates look at each marginal alone).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from operator import mul

from bifrost.streams.aggregates.sketch import DEFAULT_RELATIVE_ACCURACY, QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats


@dataclass(frozen=True, slots=True)
class ModelMix:
    """One model of the mix: share of requests, latency median and spread, price."""

    share: float
    latency_median_ms: float
    latency_sigma: float
    usd_per_1k_tokens: float


#: Mirrors ``client/simulator/model.py`` (DEFAULT_MODELS with BUCKET_MIX).
DEFAULT_MIX: tuple[ModelMix, ...] = (
    ModelMix(0.5, 250.0, 0.35, 0.0002),
    ModelMix(0.3, 600.0, 0.35, 0.002),
    ModelMix(0.2, 1400.0, 0.45, 0.015),
)


@dataclass(frozen=True, slots=True)
class ArmProfile:
    """How one arm behaves in the simulation (the control, or a canary scenario)."""

    latency_factor: float = 1.0
    tail_fraction: float = 0.0
    tail_factor: float = 1.0
    error_rate: float = 0.02
    cost_factor: float = 1.0
    judged_fraction: float = 0.3
    win_probability: float = 0.86
    tie_probability: float = 0.08


LATENCY_TABLE_SIZE = 1 << 16
COST_TABLE_SIZE = 1 << 12


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A Binomial(n, p) draw: Devroye's geometric method for ``np < 10``, else BTRS.

    BTRS is Hörmann (1993), *The generation of binomial random variates*, J. Statist.
    Comput. Simul. 46; the same algorithm as ``random.binomialvariate`` in Python 3.12.
    """
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p < 10.0:
        x = y = 0
        c = math.log1p(-p)
        while True:
            y += math.floor(math.log(1.0 - rng.random()) / c) + 1
            if y > n:
                return x
            x += 1
    spq = math.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / (1.0 - p))
    m = math.floor((n + 1) * p)
    h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        if us >= 0.07 and v <= vr:
            return k
        v = v * alpha / (a / (us * us) + b)
        if math.log(v) <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * lpq:
            return k


def _latency_components(profile: ArmProfile, mix: tuple[ModelMix, ...]) -> list[tuple[float, float, float]]:
    """(weight, mean of log latency, sigma) of every lognormal in the arm's mixture."""
    base = math.log(profile.latency_factor)
    components = []
    for model in mix:
        mu = math.log(model.latency_median_ms) + base
        components.append((model.share * (1.0 - profile.tail_fraction), mu, model.latency_sigma))
        if profile.tail_fraction > 0:
            components.append((model.share * profile.tail_fraction, mu + math.log(profile.tail_factor), model.latency_sigma))
    return components


@lru_cache(maxsize=64)
def latency_key_table(
    latency_factor: float = 1.0,
    tail_fraction: float = 0.0,
    tail_factor: float = 1.0,
    mix: tuple[ModelMix, ...] = DEFAULT_MIX,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
) -> tuple[int, ...]:
    """Inverse-CDF table of sketch bucket keys: entry ``i`` is the key holding quantile
    ``(i + ½)/size`` of the arm's latency mixture (bucket probabilities are exact)."""
    profile = ArmProfile(latency_factor=latency_factor, tail_fraction=tail_fraction, tail_factor=tail_factor)
    components = _latency_components(profile, mix)
    lg = math.log((1 + relative_accuracy) / (1 - relative_accuracy))
    total = sum(w for w, _, _ in components)

    def cdf(log_value: float) -> float:
        return sum(w * 0.5 * math.erfc(-(log_value - mu) / (s * math.sqrt(2.0))) for w, mu, s in components) / total

    lo = math.floor(min(mu - 9 * s for _, mu, s in components) / lg)
    hi = math.ceil(max(mu + 9 * s for _, mu, s in components) / lg)
    table: list[int] = []
    i = 0
    for k in range(lo, hi + 1):
        upper = cdf(k * lg)
        while i < LATENCY_TABLE_SIZE and (i + 0.5) / LATENCY_TABLE_SIZE <= upper:
            table.append(k)
            i += 1
    table.extend([hi] * (LATENCY_TABLE_SIZE - len(table)))
    return tuple(table)


@lru_cache(maxsize=8)
def cost_table(mix: tuple[ModelMix, ...] = DEFAULT_MIX, seed: int = 20240601) -> tuple[float, ...]:
    """Quantile atoms of the per-request cost: ``(tokens_in + tokens_out)/1000 × price``
    with tokens as in ``client/simulator/model.py`` (lognormal(6, 0.8) in, (5, 0.7) out),
    from 16 fixed-seed draws per atom (midpoint of each block of the sorted draws)."""
    rng = random.Random(seed)
    per_atom = 16
    shares = [m.share for m in mix]
    draws = []
    for _ in range(COST_TABLE_SIZE * per_atom):
        model = rng.choices(mix, shares)[0]
        tokens = rng.lognormvariate(6.0, 0.8) + rng.lognormvariate(5.0, 0.7)
        draws.append(tokens / 1000.0 * model.usd_per_1k_tokens)
    draws.sort()
    return tuple(draws[i * per_atom + per_atom // 2] for i in range(COST_TABLE_SIZE))


@dataclass(frozen=True, slots=True)
class ArmSampler:
    """Draws windows of one arm's traffic (tables prepared once per profile)."""

    profile: ArmProfile
    keys: tuple[int, ...]
    costs: tuple[float, ...]

    @classmethod
    def for_profile(cls, profile: ArmProfile, mix: tuple[ModelMix, ...] = DEFAULT_MIX) -> "ArmSampler":
        """Build (or reuse cached) tables for ``profile``."""
        keys = latency_key_table(profile.latency_factor, profile.tail_fraction, profile.tail_factor, mix)
        costs = cost_table(mix)
        if profile.cost_factor != 1.0:
            costs = tuple(c * profile.cost_factor for c in costs)
        return cls(profile=profile, keys=keys, costs=costs)

    def add_window(self, stats: WindowStats, rng: random.Random, n: int) -> None:
        """Fold ``n`` simulated requests into ``stats`` (in place)."""
        if n <= 0:
            return
        p = self.profile
        stats.count += n
        stats.errors += binomial(rng, n, p.error_rate)
        costs = rng.choices(self.costs, k=n)
        stats.cost_usd += sum(costs)
        stats.cost_sq += sum(map(mul, costs, costs))
        judged = binomial(rng, n, p.judged_fraction)
        not_won = binomial(rng, judged, 1.0 - p.win_probability)
        ties = binomial(rng, not_won, p.tie_probability / (1.0 - p.win_probability)) if p.win_probability < 1 else 0
        stats.wins += judged - not_won
        stats.ties += ties
        stats.losses += not_won - ties
        add_keys(stats.latency_ms, Counter(rng.choices(self.keys, k=n)))


def add_keys(sketch: QuantileSketch, counts: Counter[int]) -> None:
    """Add values given as bucket counts to a sketch: what ``add`` does for each value,
    with every value of bucket ``k`` represented by the sketch's estimate ``2γ^k/(γ+1)``."""
    if not counts:
        return
    gamma = (1 + sketch.relative_accuracy) / (1 - sketch.relative_accuracy)
    bins = sketch.bins
    total = 0.0
    for k, c in counts.items():
        bins[k] = bins.get(k, 0) + c
        total += c * 2.0 * gamma**k / (gamma + 1.0)
    low = 2.0 * gamma ** min(counts) / (gamma + 1.0)
    high = 2.0 * gamma ** max(counts) / (gamma + 1.0)
    if sketch.count == 0:
        sketch.min, sketch.max = low, high
    else:
        sketch.min, sketch.max = min(sketch.min, low), max(sketch.max, high)
    sketch.count += sum(counts.values())
    sketch.total += total
