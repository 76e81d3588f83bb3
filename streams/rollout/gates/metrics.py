"""Figures the gates compare, read from :class:`WindowStats` (no raw samples needed).

* error rate: ``errors / count`` (a proportion);
* cost per task: mean and sample variance from ``cost_usd`` and ``cost_sq``;
* win rate: the mean score of judged samples (win 1, tie ½, loss 0) and its variance;
* latency: the sketch's buckets are logarithmic (bucket ``k`` holds ``(γ^(k-1), γ^k]``),
  so the mean and variance of *log* latency are moments of the bucket index, and the
  number of values certainly above a threshold is a sum of whole buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats


@dataclass(frozen=True, slots=True)
class MeanEstimate:
    """Sample size, mean and (unbiased) sample variance of one arm's metric."""

    n: int
    mean: float
    variance: float

    @property
    def variance_of_mean(self) -> float:
        """``variance / n``: the squared standard error of :attr:`mean`."""
        return self.variance / self.n if self.n else math.inf


def error_rate(stats: WindowStats) -> float | None:
    """Errors per request, ``None`` without requests."""
    return stats.errors / stats.count if stats.count else None


def cost_estimate(stats: WindowStats) -> MeanEstimate | None:
    """Mean cost per task and its variance (from the sum of squares), ``None`` if empty."""
    n = stats.count
    if n == 0:
        return None
    mean = stats.cost_usd / n
    second = stats.cost_sq / n
    variance = max(second - mean * mean, 0.0) * n / (n - 1) if n > 1 else 0.0
    return MeanEstimate(n=n, mean=mean, variance=variance)


def log_cost_estimate(stats: WindowStats) -> MeanEstimate | None:
    """Mean and variance of ``log(cost)`` over the requests with a positive cost, ``None`` without any."""
    n = stats.cost_paid
    if n <= 0:
        return None
    mean = stats.cost_log / n
    variance = max(stats.cost_log_sq - stats.cost_log * mean, 0.0) / (n - 1) if n > 1 else 0.0
    return MeanEstimate(n=n, mean=mean, variance=variance)


def judged(stats: WindowStats) -> int:
    """Samples with a win/tie/loss outcome."""
    return stats.wins + stats.losses + stats.ties


def win_rate(stats: WindowStats) -> float | None:
    """``(wins + ties/2) / judged``, ``None`` without judged samples."""
    j = judged(stats)
    return (stats.wins + 0.5 * stats.ties) / j if j else None


def win_estimate(stats: WindowStats) -> MeanEstimate | None:
    """Mean and variance of the win score (win 1, tie ½, loss 0) over judged samples."""
    j = judged(stats)
    if j == 0:
        return None
    mean = (stats.wins + 0.5 * stats.ties) / j
    second = (stats.wins + 0.25 * stats.ties) / j
    variance = max(second - mean * mean, 0.0) * j / (j - 1) if j > 1 else 0.0
    return MeanEstimate(n=j, mean=mean, variance=variance)


def _log_gamma(sketch: QuantileSketch) -> float:
    rel = sketch.relative_accuracy
    return math.log((1.0 + rel) / (1.0 - rel))


def log_latency_estimate(sketch: QuantileSketch) -> MeanEstimate | None:
    """Mean and variance of ``log(latency)`` from the bucket counts.

    A value in bucket ``k`` is represented by the sketch's estimate ``2γ^k/(γ+1)``, whose
    log is ``k·log γ + log(2/(γ+1))``; the variance is ``(log γ)²·Var(k)`` (bucket width
    ``log γ ≈ 0.02`` adds at most ``(log γ)²/12 ≈ 3·10⁻⁵``, negligible). Values counted as
    zero have no logarithm and are left out. ``None`` without positive values.
    """
    n = 0
    s1 = 0
    s2 = 0
    for k, c in sketch.bins.items():
        n += c
        s1 += c * k
        s2 += c * k * k
    if n == 0:
        return None
    lg = _log_gamma(sketch)
    gamma = math.exp(lg)
    mean_k = s1 / n
    var_k = max(s2 - s1 * mean_k, 0.0) / (n - 1) if n > 1 else 0.0
    return MeanEstimate(n=n, mean=mean_k * lg + math.log(2.0 / (gamma + 1.0)), variance=var_k * lg * lg)


def log_latency_from_moments(n: int, k1: float, k2: float, relative_accuracy: float) -> MeanEstimate | None:
    """:func:`log_latency_estimate` from the bucket-index moments ``Σc·k``, ``Σc·k²`` (additive
    over windows, so a stage's moments are sums of its windows')."""
    if n <= 0:
        return None
    lg = math.log((1.0 + relative_accuracy) / (1.0 - relative_accuracy))
    gamma = math.exp(lg)
    mean_k = k1 / n
    var_k = max(k2 - k1 * mean_k, 0.0) / (n - 1) if n > 1 else 0.0
    return MeanEstimate(n=n, mean=mean_k * lg + math.log(2.0 / (gamma + 1.0)), variance=var_k * lg * lg)


def exceedances(sketch: QuantileSketch, threshold: float) -> int:
    """How many counted values are certainly above ``threshold``.

    Whole buckets above the one containing ``threshold``: a lower bound of the true
    count (never more), which keeps the tail test conservative.
    """
    if threshold <= 0:
        return sum(sketch.bins.values())
    key = sketch.key(threshold)
    return sum(c for k, c in sketch.bins.items() if k > key)


def tail_upper_bound(sketch: QuantileSketch, min_exceedances: float) -> float | None:
    """The smallest bucket edge ``T`` with fewer than ``min_exceedances`` values above it.

    Used for the control's P95 upper confidence bound: if at the true quantile ``x*`` at
    least ``min_exceedances`` values are ``≥ x*`` (a confidence statement), then
    ``T ≥ x*``. ``None`` when even all values are not enough (no bound yet).
    """
    if min_exceedances <= 0:
        return None
    gamma = math.exp(_log_gamma(sketch))
    above = 0
    for k in sorted(sketch.bins, reverse=True):
        count = sketch.bins[k]
        if above + count >= min_exceedances:
            return gamma**k
        above += count
    return None


def measured_latency(sketch: QuantileSketch) -> int:
    """Requests with a latency: values counted as zero are missing measurements."""
    return sketch.count - sketch.zero_count


def measured_quantile(sketch: QuantileSketch, q: float) -> float | None:
    """The ``q``-quantile of the measured (positive) latencies, ``None`` without any.

    A router that reports 0 for requests it did not time must not look fast: zeros are
    left out (the gates flag them as missing instead).
    """
    measured = measured_latency(sketch)
    if measured <= 0:
        return None
    gamma = math.exp(_log_gamma(sketch))
    rank = q * (measured - 1)
    seen = 0
    for k in sorted(sketch.bins):
        seen += sketch.bins[k]
        if seen > rank:
            return min(max(2.0 * gamma**k / (gamma + 1.0), sketch.min), sketch.max)
    return sketch.max


def missing_latency(canary: WindowStats, control: WindowStats, min_samples: int, dispersion: float) -> str | None:
    """Why the canary's latencies are missing (:func:`missing_share`), or ``None``.

    Counted out of the requests, not the sketch: a latency never recorded is missing too.
    Not judged before the canary has ``min_samples`` requests.
    """
    if canary.count < min_samples:
        return None
    return missing_share(
        measured_latency(canary.latency_ms),
        canary.count,
        measured_latency(control.latency_ms),
        control.count,
        "latency",
        dispersion=dispersion,
    )


def missing_share(
    have_canary: int,
    n_canary: int,
    have_control: int,
    n_control: int,
    what: str,
    *,
    slack: float = 0.005,
    dispersion: float = 1.0,
) -> str | None:
    """Why the canary's figure is missing where the control's is not, or ``None``.

    ``have_*``: requests that carry the figure (a latency above zero, a judgement) out of
    ``n_*``. Missing when the canary has none while the control has some, or when the
    canary's share is below the control's by more than three binomial standard errors
    (× ``sqrt(dispersion)`` when requests come in clusters) plus ``slack``: absent data must
    never pass a gate (a canary that reports latency 0 would otherwise look fast).
    """
    if have_control <= 0 or n_control <= 0 or n_canary <= 0:
        return None
    h_k = have_control / n_control
    if have_canary <= 0:
        return (
            f"missing: the canary reports no {what} for its {n_canary:,} requests while the control has one "
            f"for {h_k:.1%} of its requests"
        )
    h_c = have_canary / n_canary
    se = math.sqrt(dispersion * max(h_k * (1.0 - h_k), 0.0) / n_canary)
    if h_c < h_k - 3.0 * se - slack:
        return f"missing: the canary has a {what} for {h_c:.1%} of requests, the control for {h_k:.1%}"
    return None
