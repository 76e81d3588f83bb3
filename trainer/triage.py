"""Triage: cost tiers, cheap/mid/hard labels from full information, LightGBM with k-fold CV.

Models fall into three cost tiers at the two largest gaps of their log mean cost. The
buckets are nested: ``cheap`` may use tier 0, ``mid`` tiers 0–1, ``hard`` every model; the
utility argmax then chooses inside the bucket. A prompt's label is the cheapest tier
that holds a model as good as the best one on it (within ``tolerance``): cheap when a
cheap model matches the best, hard when only an expensive one does. A prompt no model
answers at all is cheap (paying more does not help).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import msgspec
import numpy as np

from bifrost.router.artifact import BUCKETS
from bifrost.trainer.progress import step

DEFAULT_PARAMS: dict[str, object] = {
    "objective": "multiclass",
    "num_class": 3,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
MAX_ROUNDS = 400
EARLY_STOPPING = 30


def cost_tiers(mean_costs: np.ndarray) -> np.ndarray:
    """Tier (0 cheapest … 2) per model, split at the two largest gaps in log mean cost."""
    costs = np.maximum(np.asarray(mean_costs, dtype=np.float64), 1e-12)
    order = np.argsort(costs, kind="stable")
    logs = np.log(costs[order])
    gaps = np.diff(logs)
    cuts = sorted(np.argsort(-gaps, kind="stable")[: min(2, len(gaps))].tolist()) if len(gaps) else []
    cuts = [c for c in cuts if gaps[c] > 1e-9]
    tiers = np.zeros(len(costs), dtype=np.int64)
    tier_of_sorted = np.zeros(len(costs), dtype=np.int64)
    for cut in cuts:
        tier_of_sorted[cut + 1 :] += 1
    if len(cuts) == 1:
        tier_of_sorted[tier_of_sorted == 1] = 2  # two price levels: cheap and expensive
    tiers[order] = tier_of_sorted
    return tiers


def bucket_members(models: tuple[str, ...], tiers: np.ndarray) -> dict[str, list[str]]:
    """Nested buckets: cheap = tier 0, mid = tiers ≤ 1, hard = every model."""
    return {
        bucket: [m for m, t in zip(models, tiers) if t <= limit]
        for bucket, limit in zip(BUCKETS, (0, 1, 2))
    }


def triage_labels(scores: np.ndarray, tiers: np.ndarray, *, tolerance: float = 0.05) -> np.ndarray:
    """0/1/2 (cheap/mid/hard) per row: the cheapest tier with a model within ``tolerance`` of the best."""
    best = scores.max(axis=1)
    labels = np.full(len(scores), 2, dtype=np.int64)
    for tier in (1, 0):
        reach = scores[:, tiers <= tier].max(axis=1) if (tiers <= tier).any() else np.full(len(scores), -np.inf)
        labels[reach >= best - tolerance] = tier
    labels[best <= 0.0] = 0
    return labels


def stratified_folds(labels: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Fold index per row, each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(labels), dtype=np.int64)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        rng.shuffle(rows)
        folds[rows] = np.arange(len(rows)) % k
    return folds


class FoldMetrics(msgspec.Struct, frozen=True, kw_only=True):
    fold: int
    rows: int
    logloss: float
    accuracy: float
    macro_f1: float
    best_iteration: int


class CvReport(msgspec.Struct, frozen=True, kw_only=True):
    """k-fold cross-validation of the triage model, out-of-fold."""

    folds: int
    classes: list[str]
    label_counts: dict[str, int]
    per_fold: list[FoldMetrics]
    logloss: float
    accuracy: float
    macro_f1: float
    majority_accuracy: float
    recall: dict[str, float]
    confusion: list[list[int]]
    rounds: int
    params: dict[str, float | int | str | bool]


@dataclass(frozen=True)
class TriageModel:
    """The final booster (trained on all rows), its CV report and out-of-fold probabilities."""

    booster: lgb.Booster
    cv: CvReport
    oof: np.ndarray

    @property
    def model_string(self) -> str:
        return self.booster.model_to_string()


def train_triage(
    X: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    *,
    feature_names: list[str],
    seed: int = 0,
    params: dict[str, object] | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> TriageModel:
    """k-fold CV (early stopping per fold), then one model on every row.

    The final model's rounds are the median of the folds' best iterations.
    """
    params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
    k = int(folds.max()) + 1
    oof = np.zeros((len(labels), len(BUCKETS)))
    per_fold = []
    for fold in range(k):
        held = folds == fold
        train = lgb.Dataset(X[~held], labels[~held], feature_name=feature_names, free_raw_data=False)
        valid = lgb.Dataset(X[held], labels[held], reference=train)
        booster = lgb.train(
            params, train, num_boost_round=max_rounds, valid_sets=[valid],
            callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
        )
        oof[held] = booster.predict(X[held], num_iteration=booster.best_iteration)
        metrics = _metrics(labels[held], oof[held])
        per_fold.append(FoldMetrics(fold=fold + 1, rows=int(held.sum()), best_iteration=int(booster.best_iteration or max_rounds), **metrics))
        step("cv", fold=f"{fold + 1}/{k}", rows=int(held.sum()), logloss=metrics["logloss"],
             accuracy=metrics["accuracy"], macro_f1=metrics["macro_f1"], rounds=per_fold[-1].best_iteration)
    rounds = max(1, int(np.median([f.best_iteration for f in per_fold])))
    final = lgb.train(params, lgb.Dataset(X, labels, feature_name=feature_names), num_boost_round=rounds)
    overall = _metrics(labels, oof)
    predicted = oof.argmax(axis=1)
    confusion = np.zeros((len(BUCKETS), len(BUCKETS)), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    counts = np.bincount(labels, minlength=len(BUCKETS))
    cv = CvReport(
        folds=k,
        classes=list(BUCKETS),
        label_counts={b: int(n) for b, n in zip(BUCKETS, counts)},
        per_fold=per_fold,
        majority_accuracy=round(float(counts.max() / counts.sum()), 4),
        recall={b: round(float(confusion[i, i] / max(confusion[i].sum(), 1)), 4) for i, b in enumerate(BUCKETS)},
        confusion=confusion.tolist(),
        rounds=rounds,
        params={key: value for key, value in params.items() if isinstance(value, (int, float, str, bool))},
        **overall,
    )
    step("cv", status="summary", logloss=cv.logloss, accuracy=cv.accuracy, majority=cv.majority_accuracy, rounds=rounds)
    return TriageModel(booster=final, cv=cv, oof=oof)


def _metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    clipped = np.clip(probabilities[np.arange(len(labels)), labels], 1e-15, 1.0)
    predicted = probabilities.argmax(axis=1)
    f1s = []
    for c in range(probabilities.shape[1]):
        tp = float(((predicted == c) & (labels == c)).sum())
        fp = float(((predicted == c) & (labels != c)).sum())
        fn = float(((predicted != c) & (labels == c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {
        "logloss": round(float(-np.log(clipped).mean()), 4),
        "accuracy": round(float((predicted == labels).mean()), 4),
        "macro_f1": round(float(np.mean(f1s)), 4),
    }
