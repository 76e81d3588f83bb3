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
  tokens in and out), scaled by the arm's cost factor; sum and sum of squares per window,
  the log-cost moments and the cost sketch;
* errors and win/tie/loss outcomes: binomial counts (Hörmann's BTRS sampler).

Latency and cost are drawn independently (the gates look at each marginal alone).

Beyond the simulator's mix, the latency can be one lognormal of a given ``σ`` or a Pareto
of a given shape (:class:`LatencyModel`); events can come in clusters that share one arm
and one value (:class:`Clustering`: an incident's burst of errors, the retries of one
request, one conversation judged many times); and an arm can report latency 0, no cost or
no judgements (missing data).
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


#: Bounds of the simulated latency models (log-σ, Pareto tail index, median in ms).
MAX_SIGMA = 4.0
MIN_SHAPE = 0.5
MAX_MEDIAN_MS = 600_000.0


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """The latency distribution of the control arm (a canary scales it).

    ``kind``: ``"mix"`` (the simulator's three lognormals, median ~400 ms, log-latency
    σ ≈ 0.77), ``"lognormal"`` (median ``median_ms``, log-σ ``sigma``) or ``"pareto"``
    (median ``median_ms``, tail index ``shape``: P(X > x) ∝ x^-shape).
    """

    kind: str = "mix"
    sigma: float = 1.0
    shape: float = 2.0
    median_ms: float = 400.0

    def __post_init__(self) -> None:
        if self.kind not in ("mix", "lognormal", "pareto"):
            raise ValueError(f"latency kind must be mix, lognormal or pareto, got {self.kind!r}")
        if not (self.sigma > 0 and self.shape > 0 and self.median_ms > 0):
            raise ValueError("sigma, shape and median_ms must be positive")
        # Beyond these, simulated latencies overflow a float (and no service looks like that).
        if not (self.sigma <= MAX_SIGMA and self.shape >= MIN_SHAPE and self.median_ms <= MAX_MEDIAN_MS):
            raise ValueError(
                f"lognormal sigma must be at most {MAX_SIGMA:g}, Pareto shape at least {MIN_SHAPE:g} "
                f"and median_ms at most {MAX_MEDIAN_MS:g}"
            )

    @property
    def label(self) -> str:
        if self.kind == "lognormal":
            return f"lognormal σ {self.sigma:g}"
        if self.kind == "pareto":
            return f"Pareto shape {self.shape:g}"
        return "3-model mix"


@dataclass(frozen=True, slots=True)
class Clustering:
    """Events that come in clusters of geometric size with mean ``size``, each cluster in
    one arm, sharing one value: ``errors`` (a burst: every request of the cluster fails),
    ``latency``, ``cost``, ``judgements`` (one outcome for the whole cluster)."""

    size: float = 1.0
    metrics: frozenset[str] = frozenset({"errors"})

    def __post_init__(self) -> None:
        if not self.size >= 1.0:
            raise ValueError(f"cluster size must be at least 1, got {self.size}")
        unknown = set(self.metrics) - {"errors", "latency", "cost", "judgements"}
        if unknown:
            raise ValueError(f"unknown clustered metrics: {sorted(unknown)}")

    def on(self, metric: str) -> bool:
        return self.size > 1.0 and metric in self.metrics


NO_CLUSTERS = Clustering()


@dataclass(frozen=True, slots=True)
class ArmProfile:
    """How one arm behaves in the simulation (the control, or a canary scenario).

    Missing data: ``latency_zero_fraction`` of requests report latency 0,
    ``reports_cost=False`` reports cost 0, ``judged_fraction=0`` no judgements.
    """

    latency_factor: float = 1.0
    tail_fraction: float = 0.0
    tail_factor: float = 1.0
    error_rate: float = 0.02
    cost_factor: float = 1.0
    judged_fraction: float = 0.3
    win_probability: float = 0.86
    tie_probability: float = 0.08
    latency_zero_fraction: float = 0.0
    reports_cost: bool = True


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


def _latency_components(
    latency_factor: float,
    tail_fraction: float,
    tail_factor: float,
    mix: tuple[ModelMix, ...],
    model: LatencyModel,
) -> list[tuple[float, str, float, float]]:
    """(weight, kind, location, spread) of every component of the arm's log-latency:
    ``("normal", μ, σ)`` or ``("exponential", log x_m, shape)`` (a Pareto's log)."""
    base = math.log(latency_factor)
    if model.kind == "mix":
        parts = [(m.share, "normal", math.log(m.latency_median_ms), m.latency_sigma) for m in mix]
    elif model.kind == "lognormal":
        parts = [(1.0, "normal", math.log(model.median_ms), model.sigma)]
    else:
        parts = [(1.0, "exponential", math.log(model.median_ms) - math.log(2.0) / model.shape, model.shape)]
    components = []
    for share, kind, loc, spread in parts:
        components.append((share * (1.0 - tail_fraction), kind, loc + base, spread))
        if tail_fraction > 0:
            components.append((share * tail_fraction, kind, loc + base + math.log(tail_factor), spread))
    return components


def _component_cdf(kind: str, loc: float, spread: float, x: float) -> float:
    if kind == "normal":
        return 0.5 * math.erfc(-(x - loc) / (spread * math.sqrt(2.0)))
    return 0.0 if x <= loc else -math.expm1(-spread * (x - loc))


def _component_range(kind: str, loc: float, spread: float) -> tuple[float, float]:
    if kind == "normal":
        return loc - 9 * spread, loc + 9 * spread
    return loc, loc + 28.0 / spread


@lru_cache(maxsize=64)
def latency_key_table(
    latency_factor: float = 1.0,
    tail_fraction: float = 0.0,
    tail_factor: float = 1.0,
    mix: tuple[ModelMix, ...] = DEFAULT_MIX,
    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
    model: LatencyModel = LatencyModel(),
) -> tuple[int, ...]:
    """Inverse-CDF table of sketch bucket keys: entry ``i`` is the key holding quantile
    ``(i + ½)/size`` of the arm's latency distribution (bucket probabilities are exact)."""
    components = _latency_components(latency_factor, tail_fraction, tail_factor, mix, model)
    lg = math.log((1 + relative_accuracy) / (1 - relative_accuracy))
    total = sum(w for w, _, _, _ in components)

    def cdf(log_value: float) -> float:
        return sum(w * _component_cdf(kind, loc, spread, log_value) for w, kind, loc, spread in components) / total

    ranges = [_component_range(kind, loc, spread) for _, kind, loc, spread in components]
    lo = math.floor(min(r[0] for r in ranges) / lg)
    hi = math.ceil(max(r[1] for r in ranges) / lg)
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


def geometric_size(rng: random.Random, mean: float) -> int:
    """A cluster size on {1, 2, …} with the given mean (geometric)."""
    if mean <= 1.0:
        return 1
    return 1 + int(math.log(1.0 - rng.random()) / math.log1p(-1.0 / mean))


def cluster_sizes(rng: random.Random, n: int, mean: float) -> list[int]:
    """Split ``n`` requests into consecutive clusters of geometric size (the last cut short)."""
    sizes = []
    left = n
    while left > 0:
        size = min(geometric_size(rng, mean), left)
        sizes.append(size)
        left -= size
    return sizes


def _fold_costs(stats: WindowStats, costs: list[float], sizes: list[int] | None = None) -> None:
    """Add requests' costs (each repeated ``sizes[i]`` times, or once) to the cost moments
    and the cost sketch (every cost here is far above the sketch's zero)."""
    logs = list(map(math.log, costs))
    weights = sizes if sizes is not None else [1] * len(costs)
    stats.cost_usd += sum(map(mul, costs, weights))
    stats.cost_sq += sum(c * c * w for c, w in zip(costs, weights))
    stats.cost_paid += sum(weights)
    stats.cost_log += sum(map(mul, logs, weights))
    stats.cost_log_sq += sum(x * x * w for x, w in zip(logs, weights))
    if stats.cost_sketch is None:
        stats.cost_sketch = QuantileSketch()
    sketch = stats.cost_sketch
    scale = 1.0 / math.log(sketch.gamma)
    bins = sketch.bins
    for x, w in zip(logs, weights):
        k = math.ceil(x * scale)
        bins[k] = bins.get(k, 0) + w
    low, high = min(costs), max(costs)
    if sketch.count == 0:
        sketch.min, sketch.max = low, high
    else:
        sketch.min, sketch.max = min(sketch.min, low), max(sketch.max, high)
    sketch.count += sum(weights)
    sketch.total += sum(map(mul, costs, weights))


@dataclass(slots=True)
class BurstCarry:
    """Errors of an arm's bursts still owed to its next requests (a burst outlives a batch).

    A burst of ``G`` errors hits ``G`` consecutive requests of the arm that served it; at a
    5% share a batch holds ~10 canary requests, so cutting bursts at the batch made the
    canary's error rate 0.41× the control's with bursts of mean 20 (outside tester,
    2026-12-03). One per arm per rollout.
    """

    owed: int = 0


@dataclass(frozen=True, slots=True)
class ArmSampler:
    """Draws batches of one arm's traffic (tables prepared once per profile)."""

    profile: ArmProfile
    keys: tuple[int, ...]
    costs: tuple[float, ...]

    @classmethod
    def for_profile(
        cls,
        profile: ArmProfile,
        mix: tuple[ModelMix, ...] = DEFAULT_MIX,
        model: LatencyModel = LatencyModel(),
    ) -> ArmSampler:
        """Build (or reuse cached) tables for ``profile``."""
        keys = latency_key_table(
            profile.latency_factor, profile.tail_fraction, profile.tail_factor, mix, DEFAULT_RELATIVE_ACCURACY, model
        )
        costs = cost_table(mix)
        if profile.cost_factor != 1.0:
            costs = tuple(c * profile.cost_factor for c in costs)
        return cls(profile=profile, keys=keys, costs=costs)

    def add_window(
        self,
        stats: WindowStats,
        rng: random.Random,
        n: int,
        clustering: Clustering = NO_CLUSTERS,
        carry: BurstCarry | None = None,
    ) -> None:
        """Fold ``n`` simulated requests into ``stats`` (in place).

        ``carry``: the arm's error bursts continue into its next batches (without it a
        burst is cut at the end of this batch).
        """
        if n <= 0:
            return
        p = self.profile
        stats.count += n
        stats.errors += self._errors(rng, n, clustering, carry or BurstCarry())
        if clustering.on("cost"):
            sizes = cluster_sizes(rng, n, clustering.size)
            costs = rng.choices(self.costs, k=len(sizes))
            if p.reports_cost:
                _fold_costs(stats, costs, sizes)
        else:
            costs = rng.choices(self.costs, k=n)
            if p.reports_cost:
                _fold_costs(stats, costs)
        self._judgements(stats, rng, n, clustering)
        zeros = binomial(rng, n, p.latency_zero_fraction) if p.latency_zero_fraction > 0 else 0
        timed = n - zeros
        if clustering.on("latency"):
            counts: Counter[int] = Counter()
            for size, key in ((size, rng.choice(self.keys)) for size in cluster_sizes(rng, timed, clustering.size)):
                counts[key] += size
        else:
            counts = Counter(rng.choices(self.keys, k=timed))
        add_keys(stats.latency_ms, counts)
        if zeros:
            sketch = stats.latency_ms
            if sketch.count == 0:
                sketch.min = sketch.max = 0.0
            sketch.min = 0.0
            sketch.zero_count += zeros
            sketch.count += zeros

    def _errors(self, rng: random.Random, n: int, clustering: Clustering, carry: BurstCarry) -> int:
        rate = self.profile.error_rate
        if not clustering.on("errors"):
            return binomial(rng, n, rate)
        # Bursts: a Poisson number of clusters (binomial thinning of the requests) whose
        # sizes are geometric with the given mean, so the error rate stays ``rate``. The
        # requests still owed to earlier bursts come first; bursts start on the rest.
        first = min(n, carry.owed)
        carry.owed -= first
        rest = n - first
        clusters = binomial(rng, rest, min(rate / clustering.size, 1.0))
        carry.owed += sum(geometric_size(rng, clustering.size) for _ in range(clusters))
        second = min(rest, carry.owed)
        carry.owed -= second
        return first + second

    def _judgements(self, stats: WindowStats, rng: random.Random, n: int, clustering: Clustering) -> None:
        p = self.profile
        if p.judged_fraction <= 0:
            return
        p_not_won = 1.0 - p.win_probability
        p_tie = p.tie_probability / p_not_won if p_not_won > 0 else 0.0
        if clustering.on("judgements"):
            for size in cluster_sizes(rng, n, clustering.size):
                if rng.random() >= p.judged_fraction:
                    continue
                u = rng.random()
                if u < p.win_probability:
                    stats.wins += size
                elif rng.random() < p_tie:
                    stats.ties += size
                else:
                    stats.losses += size
            return
        judged = binomial(rng, n, p.judged_fraction)
        not_won = binomial(rng, judged, p_not_won)
        ties = binomial(rng, not_won, p_tie) if p_not_won > 0 else 0
        stats.wins += judged - not_won
        stats.ties += ties
        stats.losses += not_won - ties


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
