"""The baseline an artifact must beat: per-model logistic regression on the same features.

For every model ``m`` a logistic regression ``p̂(m | x)`` (L2-regularized, standardized
features, soft labels so graded scores work too) is fitted on the train split's feature
vectors — the very vectors the artifact routes with — and a prompt goes to
``argmax_m p̂(m | x) − λ·cost(m | x)``, with ``cost(m | x)`` the prompt's approximate
tokens × the model's mean cost per token on the train split (in units of the best
single model's mean cost). λ is chosen **on the train split**, from 5-fold out-of-fold
predictions: the λ whose train cost share is the largest not above a target (for an
equal-cost comparison, the artifact's cost share). Plain numpy + scipy's L-BFGS; no
scikit-learn needed. The fit runs with one BLAS thread (threadpoolctl): its products
are small, and on a busy host BLAS threads made it 10–20× slower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

DEFAULT_L2 = 1.0
WEIGHT_GRID = np.concatenate([[0.0], np.geomspace(1e-4, 1e3, 240)])


@dataclass(frozen=True)
class LogisticModels:
    """One logistic regression per model over standardized features: ``(features + 1, models)`` weights."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        logits = Z @ self.weights[:-1] + self.weights[-1]
        with np.errstate(over="ignore"):  # exp overflow gives p = 0, which is right
            return 1.0 / (1.0 + np.exp(-logits))


def standardization(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) per column, finite for any finite ``X``: a column whose square
    overflows is divided by its largest magnitude first."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, scale = X.mean(axis=0), X.std(axis=0)
    huge = ~(np.isfinite(mean) & np.isfinite(scale))
    if huge.any():
        peak = np.abs(X[:, huge]).max(axis=0)
        peak = np.where((peak > 0) & np.isfinite(peak), peak, 1.0)
        unit = X[:, huge] / peak
        mean[huge], scale[huge] = unit.mean(axis=0) * peak, unit.std(axis=0) * peak
    scale[~(scale > 0) | ~np.isfinite(scale)] = 1.0
    return mean, scale


def fit_logistic(X: np.ndarray, Y: np.ndarray, *, l2: float = DEFAULT_L2, max_iter: int = 400) -> LogisticModels:
    """Fit every model's regression at once (labels in [0, 1]; NaN labels are left out)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    mean, scale = standardization(X)
    Z = np.hstack([(X - mean) / scale, np.ones((len(X), 1))])
    known = np.isfinite(Y)
    target = np.where(known, Y, 0.0)
    counts = np.maximum(known.sum(axis=0), 1)
    d, m = Z.shape[1], Y.shape[1]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        W = w.reshape(d, m)
        logits = Z @ W
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-logits))
        terms = np.where(known, np.logaddexp(0.0, logits) - target * logits, 0.0)
        value = float((terms.sum(axis=0) / counts).sum() + 0.5 * l2 * (W[:-1] ** 2).sum() / counts.mean())
        grad = Z.T @ (np.where(known, p - target, 0.0) / counts)
        grad[:-1] += l2 * W[:-1] / counts.mean()
        return value, grad.ravel()

    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(loss, np.zeros(d * m), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return LogisticModels(mean=mean, scale=scale, weights=result.x.reshape(d, m))


def fold_fits(X: np.ndarray, Y: np.ndarray, folds: np.ndarray, *, l2: float = DEFAULT_L2) -> dict[int, LogisticModels]:
    """Per fold, the regressions fitted on every row but that fold's."""
    if np.unique(folds).size < 2:
        raise ValueError("out-of-fold fits need at least two folds (each leaves one out)")
    X = np.asarray(X, dtype=np.float64)
    return {int(fold): fit_logistic(X[folds != fold], Y[folds != fold], l2=l2) for fold in np.unique(folds)}


def predict_out_of_fold(X: np.ndarray, folds: np.ndarray, fits: dict[int, LogisticModels]) -> np.ndarray:
    """``(rows, models)`` predictions, each row by the fit of its fold (:func:`fold_fits`)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.zeros((len(X), next(iter(fits.values())).weights.shape[1]))
    for fold, fit in fits.items():
        held = folds == fold
        out[held] = fit.predict(X[held])
    return out


def out_of_fold(X: np.ndarray, Y: np.ndarray, folds: np.ndarray, *, l2: float = DEFAULT_L2) -> np.ndarray:
    """``(rows, models)`` predictions, each row by the regressions fitted without its fold."""
    return predict_out_of_fold(X, folds, fold_fits(X, Y, folds, l2=l2))


def average_fits(X: np.ndarray, fits: dict[int, LogisticModels]) -> LogisticModels:
    """One set of regressions whose logits are the mean of ``fits``' logits.

    Each fit is re-expressed over the standardization of all rows of ``X``, so the
    average is again a plain :class:`LogisticModels`.
    """
    X = np.asarray(X, dtype=np.float64)
    mean, scale = standardization(X)

    def over_all_rows(part: LogisticModels) -> np.ndarray:
        # logit = ((x − m_f)/s_f)·W_f + b_f = ((x − mean)/scale)·(W_f·scale/s_f) + b_f + ((mean − m_f)/s_f)·W_f
        slopes = part.weights[:-1] * (scale / part.scale)[:, None]
        intercept = part.weights[-1] + ((mean - part.mean) / part.scale) @ part.weights[:-1]
        return np.vstack([slopes, intercept])

    return LogisticModels(mean=mean, scale=scale, weights=np.mean([over_all_rows(f) for f in fits.values()], axis=0))


def price_per_unit(size: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Mean cost per unit of ``size`` (e.g. approximate tokens) per model."""
    size = np.asarray(size, dtype=np.float64)
    ok = size > 0
    return np.nanmean(costs[ok] / size[ok, None], axis=0) if ok.any() else np.nanmean(costs, axis=0)


def route(quality: np.ndarray, cost: np.ndarray, weight: float) -> np.ndarray:
    """``argmax q − λ·c`` per row (ties to the cheaper model)."""
    return np.argmax(quality - weight * cost - 1e-12 * cost, axis=1)


def weight_for_share(
    quality: np.ndarray,
    cost: np.ndarray,
    realized_costs: np.ndarray,
    reference_cost: float,
    target_share: float,
    grid: np.ndarray = WEIGHT_GRID,
) -> tuple[float, float]:
    """(λ, its cost share): the largest share on ``realized_costs`` not above ``target_share`` (smallest λ)."""
    rows = np.arange(len(quality))
    best: tuple[float, float] | None = None
    for weight in grid:
        share = float(realized_costs[rows, route(quality, cost, weight)].mean() / reference_cost)
        if share <= target_share + 1e-12:
            return float(weight), share
        if best is None or share < best[1]:
            best = (float(weight), share)
    assert best is not None
    return best


def frontier(
    quality: np.ndarray, cost: np.ndarray, scores: np.ndarray, costs: np.ndarray, grid: np.ndarray = WEIGHT_GRID
) -> list[tuple[float, float, float]]:
    """(λ, mean score, mean cost) of ``argmax q − λ·c`` for every λ of the grid."""
    rows = np.arange(len(quality))
    out = []
    for weight in grid:
        chosen = route(quality, cost, weight)
        out.append((float(weight), float(scores[rows, chosen].mean()), float(costs[rows, chosen].mean())))
    return out
