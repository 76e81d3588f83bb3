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
    groups: np.ndarray | None = None,
) -> PairedComparison:
    """Percentile bootstrap of the mean paired difference.

    Rows are resampled with replacement; with ``groups`` (e.g. the same prompt text → the same
    group), whole groups are: copies of a prompt are one piece of evidence, so they do not
    shrink the standard error (an outside test padded a holdout with five copies of every
    prompt, the SE fell from 0.0070 to 0.0030, and a candidate significantly worse on the test
    split was signed). With one row per group this is exactly the row bootstrap.
    """
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
    sums: np.ndarray
    sizes: np.ndarray
    if groups is None:
        sums, sizes = d, np.ones(n)
    else:
        _, first, inverse = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # groups in first-seen order: one row each = the row bootstrap
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        index = rank[inverse.reshape(-1)]
        sums = np.bincount(index, weights=d, minlength=len(order))
        sizes = np.bincount(index, minlength=len(order)).astype(np.float64)
    k = len(sums)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    block = max(1, 2_000_000 // max(k, 1))
    for lo in range(0, resamples, block):
        hi = min(resamples, lo + block)
        picks = rng.integers(k, size=(hi - lo, k))
        means[lo:hi] = sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    return PairedComparison(
        method="paired bootstrap" if groups is None or k == n else f"paired bootstrap over {k} prompts",
        rows=n,
        candidate=float(a.mean()),
        current=float(b.mean()),
        difference=float(d.mean()),
        standard_error=float(means.std(ddof=1)) if resamples > 1 else math.nan,
        confidence=confidence,
        lower=float(np.quantile(means, 1.0 - confidence)),
        upper=float(np.quantile(means, confidence)),
    )


def grouped_standard_error(values: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Standard error of ``mean(values)`` with rows of one group (copies of a prompt) dependent.

    The cluster-robust form: per-group sums of deviations from the mean; with one row per group
    it is exactly ``sd / √n``.

    >>> round(grouped_standard_error(np.array([0.0, 1.0, 0.0, 1.0])), 4)
    0.2887
    >>> round(grouped_standard_error(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 0, 1, 1])), 4)
    0.5
    """
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n < 2:
        return 0.0
    if groups is None:
        return float(v.std(ddof=1) / math.sqrt(n))
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    residual = np.bincount(inverse.reshape(-1), weights=v - v.mean())
    k = len(residual)
    if k < 2:
        return 0.0
    return float(math.sqrt(float((residual**2).sum()) * k / (k - 1)) / n)


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
