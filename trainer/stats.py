"""Paired comparisons of two policies on the same rows: mean difference, standard error, bounds.

Full-information rows give both policies' outcomes on every prompt, so the comparison is
paired: ``d_i = candidate_i − current_i``. :func:`paired_bootstrap` resamples the rows
(percentile bounds, the bootstrap standard error); :func:`paired_normal` uses per-row
terms that already are unbiased estimates (e.g. doubly robust terms on logged rows) and
the normal approximation. Both return a one-sided lower bound at ``confidence``, which
is what a non-inferiority test reads: the candidate passes when the lower bound of
``mean(d)`` is above ``−margin``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import msgspec
import numpy as np

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000


class PairedComparison(msgspec.Struct, frozen=True, kw_only=True):
    """``mean(candidate − current)`` with its standard error and one-sided bounds."""

    method: str
    rows: int
    candidate: float
    current: float
    difference: float
    standard_error: float
    confidence: float
    lower: float  # one-sided lower bound at ``confidence``
    upper: float  # one-sided upper bound at ``confidence``

    def describe(self) -> str:
        return (
            f"{self.difference:+.4f} ± {self.standard_error:.4f} (SE, {self.method}, {self.rows} rows); "
            f"{self.confidence:.0%} one-sided bounds [{self.lower:+.4f}, {self.upper:+.4f}]"
        )


def paired_bootstrap(
    candidate: np.ndarray,
    current: np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedComparison:
    """Percentile bootstrap of the mean paired difference (rows resampled with replacement)."""
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    d = a - b
    n = len(d)
    if n == 0:
        return PairedComparison(
            method="paired bootstrap",
            rows=0,
            candidate=math.nan,
            current=math.nan,
            difference=math.nan,
            standard_error=math.nan,
            confidence=confidence,
            lower=math.nan,
            upper=math.nan,
        )
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    block = max(1, 2_000_000 // max(n, 1))
    for lo in range(0, resamples, block):
        hi = min(resamples, lo + block)
        means[lo:hi] = d[rng.integers(n, size=(hi - lo, n))].mean(axis=1)
    return PairedComparison(
        method="paired bootstrap",
        rows=n,
        candidate=float(a.mean()),
        current=float(b.mean()),
        difference=float(d.mean()),
        standard_error=float(means.std(ddof=1)) if resamples > 1 else math.nan,
        confidence=confidence,
        lower=float(np.quantile(means, 1.0 - confidence)),
        upper=float(np.quantile(means, confidence)),
    )


def paired_normal(
    candidate_terms: np.ndarray,
    current_terms: np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    method: str = "paired normal",
) -> PairedComparison:
    """Mean paired difference of per-row terms, SE = sd/√n, bounds mean ∓ z·SE."""
    a = np.asarray(candidate_terms, dtype=np.float64)
    b = np.asarray(current_terms, dtype=np.float64)
    d = a - b
    n = len(d)
    if n < 2:
        return PairedComparison(
            method=method,
            rows=n,
            candidate=float(a.mean()) if n else math.nan,
            current=float(b.mean()) if n else math.nan,
            difference=float(d.mean()) if n else math.nan,
            standard_error=math.nan,
            confidence=confidence,
            lower=math.nan,
            upper=math.nan,
        )
    se = float(d.std(ddof=1) / math.sqrt(n))
    z = NormalDist().inv_cdf(confidence)
    mean = float(d.mean())
    return PairedComparison(
        method=method,
        rows=n,
        candidate=float(a.mean()),
        current=float(b.mean()),
        difference=mean,
        standard_error=se,
        confidence=confidence,
        lower=mean - z * se,
        upper=mean + z * se,
    )
