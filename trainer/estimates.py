"""Q̂ (expected score per model and cluster) and Ĉ (normalized cost per model).

Q̂ is a shrunken mean: ``(Σ scores in c + κ·q̄_m) / (n_c + κ)``, so a small cluster leans
on the model's overall mean instead of on a handful of prompts. Ĉ is each model's mean
cost divided by the most expensive model's, in (0, 1].
"""

from __future__ import annotations

import numpy as np

DEFAULT_PRIOR_STRENGTH = 5.0


def quality_table(
    scores: np.ndarray, clusters: np.ndarray, n_clusters: int, *, prior_strength: float = DEFAULT_PRIOR_STRENGTH
) -> np.ndarray:
    """Q̂ as ``(models, clusters)`` from ``scores`` ``(rows, models)`` and row clusters."""
    scores = np.asarray(scores, dtype=np.float64)
    overall = scores.mean(axis=0) if len(scores) else np.zeros(scores.shape[1])
    sums = np.zeros((n_clusters, scores.shape[1]))
    np.add.at(sums, clusters, scores)
    counts = np.bincount(clusters, minlength=n_clusters)[:, None]
    weight = counts + prior_strength
    # A cluster with no rows (and no prior) is the model's overall mean, not 0/0.
    table = np.where(weight > 0, (sums + prior_strength * overall) / np.where(weight > 0, weight, 1.0), overall)
    return table.T


def out_of_fold_quality(
    scores: np.ndarray,
    clusters: np.ndarray,
    n_clusters: int,
    folds: np.ndarray,
    *,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
) -> np.ndarray:
    """Per row, Q̂ of its cluster estimated without the row's fold: ``(rows, models)``.

    What the search optimizes on, so it never scores a policy on the rows that shaped it.
    """
    out = np.zeros_like(scores, dtype=np.float64)
    for fold in np.unique(folds):
        held = folds == fold
        table = quality_table(scores[~held], clusters[~held], n_clusters, prior_strength=prior_strength)
        out[held] = table[:, clusters[held]].T
    return out


def normalized_costs(costs: np.ndarray) -> np.ndarray:
    """Ĉ per model: mean cost / the largest mean cost."""
    mean = np.asarray(costs, dtype=np.float64).mean(axis=0)
    top = float(mean.max()) if mean.size else 0.0
    return mean / top if top > 0 else np.zeros_like(mean)
