"""Off-policy estimates of a deterministic routing policy from logged bandit feedback.

A logged row holds the served model ``a``, the probability ``p`` the logging router gave
it (``propensity``), and the outcome ``r`` of that model only. For a candidate policy
``π`` (one model per row) and a reward model ``r̂(x, m)`` (direct method):

* IPS:   ``mean(1[a = π(x)] · r / p)`` — unbiased when ``p`` is right, high variance;
* SNIPS: IPS divided by ``mean(1[a = π(x)] / p)`` — self-normalized, bounded by the rewards;
* DR:    ``mean(r̂(x, π(x)) + 1[a = π(x)] · (r − r̂(x, a)) / p)`` — unbiased if either the
  propensities or the reward model are right, and far less variance than IPS.

Rows without an outcome (no quality label) are left out of quality estimates; cost is
logged for every row. Standard errors are the sample standard deviation of the per-row
terms over ``√n``.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    """One policy value estimate from logged data."""

    ips: float
    snips: float
    dr: float
    dr_stderr: float
    rows: int
    matched: int

    @property
    def value(self) -> float:
        """The estimate the trainer acts on (doubly robust)."""
        return self.dr


def estimate(
    chosen: np.ndarray,
    served: np.ndarray,
    propensity: np.ndarray,
    reward: np.ndarray,
    reward_model: np.ndarray,
    *,
    min_propensity: float = 1e-3,
) -> Estimate:
    """IPS, SNIPS and DR value of the policy that picks ``chosen`` per row.

    Args:
        chosen: the candidate's model index per row.
        served: the logged (served) model index per row.
        propensity: the logging policy's probability of ``served`` per row, in (0, 1].
        reward: the logged outcome per row; NaN rows are left out.
        reward_model: ``(rows, models)`` predicted outcome of every model per row.
        min_propensity: propensities are clipped from below (bounds the weights).
    """
    keep = np.isfinite(reward) & np.isfinite(propensity)
    if not keep.any():
        return Estimate(ips=math.nan, snips=math.nan, dr=math.nan, dr_stderr=math.nan, rows=0, matched=0)
    chosen, served, reward = chosen[keep], served[keep], reward[keep]
    p = np.clip(propensity[keep], min_propensity, 1.0)
    rows = np.arange(len(chosen))
    model = reward_model[keep]
    match = chosen == served
    weight = match / p
    ips_terms = weight * reward
    dr_terms = model[rows, chosen] + weight * (reward - model[rows, served])
    total_weight = float(weight.sum())
    n = len(chosen)
    return Estimate(
        ips=float(ips_terms.mean()),
        snips=float(ips_terms.sum() / total_weight) if total_weight > 0 else math.nan,
        dr=float(dr_terms.mean()),
        dr_stderr=float(dr_terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        rows=n,
        matched=int(match.sum()),
    )


def dr_value(
    chosen: np.ndarray, served: np.ndarray, weight: np.ndarray, reward: np.ndarray, reward_model: np.ndarray
) -> float:
    """The DR estimate only, with precomputed ``weight = 1/p`` and no NaN rows (the search's hot path)."""
    rows = np.arange(len(chosen))
    correction = np.where(chosen == served, weight * (reward - reward_model[rows, served]), 0.0)
    return float((reward_model[rows, chosen] + correction).mean())


def cell_means(
    reward: np.ndarray,
    served: np.ndarray,
    cluster: np.ndarray,
    n_models: int,
    n_clusters: int,
    *,
    prior: np.ndarray,
    prior_strength: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Shrunken mean reward per (model, cluster) and the number of rows behind each.

    ``(Σ r + κ·prior) / (n + κ)`` over the rows where the model was served in the
    cluster; ``prior`` is ``(models, clusters)`` (e.g. the current artifact's Q̂).
    """
    keep = np.isfinite(reward)
    sums = np.zeros((n_models, n_clusters))
    counts = np.zeros((n_models, n_clusters))
    np.add.at(sums, (served[keep], cluster[keep]), reward[keep])
    np.add.at(counts, (served[keep], cluster[keep]), 1.0)
    return (sums + prior_strength * prior) / (counts + prior_strength), counts


def dr_terms(
    chosen: np.ndarray,
    served: np.ndarray,
    propensity: np.ndarray,
    reward: np.ndarray,
    reward_model: np.ndarray,
    *,
    min_propensity: float = 1e-3,
) -> np.ndarray:
    """Per-row doubly robust terms (their mean is the DR estimate); rows must have a finite reward.

    Two policies' terms on the same rows and with the same reward model are paired: the
    mean of their difference estimates the difference of their values, and its standard
    error is that of the per-row differences (:func:`bifrost.trainer.stats.paired_normal`).
    """
    rows = np.arange(len(chosen))
    weight = (chosen == served) / np.clip(propensity, min_propensity, 1.0)
    terms: np.ndarray = reward_model[rows, chosen] + weight * (reward - reward_model[rows, served])
    return terms
