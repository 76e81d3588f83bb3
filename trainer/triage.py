"""Triage: learned buckets, cheap/mid/hard labels from per-prompt estimates, LightGBM with k-fold CV.

**Buckets are cost levels whose members are learned.** A bucket may use the models
that are affordable at its *budget* and that the utility argmax ``q̂(m | x) − λ·ĉ(m | x)``
restricted to them actually picks on the training prompts (out-of-fold estimates, λ
set so the mean cost meets the budget): a model enters when it is chosen for at least
``min_share`` of the prompts (the most chosen one always enters). ``cheap``'s budget is
a third of the way (in log cost) from the cheapest to the dearest model's mean cost,
``mid``'s two thirds; ``hard`` is every model, and buckets are nested (escalating never
removes a model). So a model that is cheap but good on one task only is in ``cheap``
(it wins there), a cheap model that never wins is not, and a premium model is only in
the buckets that can afford it — reached when the triage says "hard" *and* the per-prompt
utility says it is worth its price, which the search can make as often as it pays
(τ_hard = 0 lets every prompt use every model).

**Labels**: a prompt's label is the cheapest bucket whose best model, by the out-of-fold
q̂, is within ``tolerance`` of the best model's q̂. Expected quality, not the realized
0/1 outcome: on pass/fail scores "some cheap model happened to pass" is a maximum over
noisy draws that makes most prompts look easy; q̂ is a success probability there and an
expected score on graded data, so the same labels make sense for both. The class
balance is checked and reported; the search (τ_cheap, τ_hard) decides how much the gate
is used, and can switch it off (τ_hard = 0 sends everything to ``hard``).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import msgspec
import numpy as np

from bifrost.router.artifact import BUCKETS
from bifrost.trainer.outcomes import TREE_PARAMS
from bifrost.trainer.progress import step

# The per-model outcome models' tree shape, as a 3-class model with a smaller step.
DEFAULT_PARAMS: dict[str, object] = {"objective": "multiclass", "num_class": 3, **TREE_PARAMS, "learning_rate": 0.05}
MAX_ROUNDS = 400
EARLY_STOPPING = 30
BUDGET_LEVELS = (1.0 / 3.0, 2.0 / 3.0)
MIN_BUCKET_SHARE = 0.02


class BucketReport(msgspec.Struct, frozen=True, kw_only=True):
    """How the buckets were learned: per level, the budget, λ and the models' shares."""

    levels: list[float]
    budgets: list[float]
    cost_weights: list[float]
    shares: list[dict[str, float]]
    min_share: float
    buckets: dict[str, list[str]]


def route_at(quality: np.ndarray, cost: np.ndarray, cost_weight: float) -> np.ndarray:
    """Model index per row of ``argmax q̂ − λ·ĉ`` (ties to the cheaper model)."""
    key = quality - cost_weight * cost - 1e-12 * cost
    return np.argmax(key, axis=1)


def weight_for_budget(quality: np.ndarray, cost: np.ndarray, budget: float, *, iterations: int = 60) -> float:
    """The smallest λ ≥ 0 whose routing has mean ĉ ≤ ``budget`` (bisection in log λ)."""
    rows = np.arange(len(quality))

    def spend(weight: float) -> float:
        return float(cost[rows, route_at(quality, cost, weight)].mean())

    if spend(0.0) <= budget:
        return 0.0
    lo, hi = -12.0, 12.0
    if spend(10.0**hi) > budget:
        return 10.0**hi
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if spend(10.0**mid) <= budget:
            hi = mid
        else:
            lo = mid
    return 10.0**hi


def learn_buckets(
    quality: np.ndarray,
    cost: np.ndarray,
    models: tuple[str, ...],
    *,
    levels: tuple[float, ...] = BUDGET_LEVELS,
    min_share: float = MIN_BUCKET_SHARE,
) -> BucketReport:
    """Nested cheap ⊆ mid ⊆ hard buckets from out-of-fold q̂ and ĉ (see the module docstring)."""
    mean = np.maximum(cost.mean(axis=0), 1e-300)
    lo, hi = np.log(mean.min()), np.log(mean.max())
    budgets, weights, shares, members = [], [], [], []
    previous: set[str] = set()
    for level in levels:
        budget = float(np.exp(lo + level * (hi - lo)))
        affordable = np.flatnonzero(mean <= budget * (1 + 1e-9))
        if not len(affordable):
            affordable = np.array([int(np.argmin(mean))])
        weight = weight_for_budget(quality[:, affordable], cost[:, affordable], budget)
        chosen = affordable[route_at(quality[:, affordable], cost[:, affordable], weight)]
        share = np.bincount(chosen, minlength=len(models)) / max(len(chosen), 1)
        used = {models[j] for j in np.flatnonzero(share >= min_share)} | {models[int(np.argmax(share))]}
        previous = previous | used
        budgets.append(budget)
        weights.append(float(weight))
        shares.append({m: round(float(s), 4) for m, s in zip(models, share) if s > 0})
        members.append(sorted(previous))
    buckets = {"cheap": members[0], "mid": members[-1] if len(members) > 1 else members[0], "hard": sorted(models)}
    return BucketReport(
        levels=list(levels), budgets=budgets, cost_weights=weights, shares=shares, min_share=min_share, buckets=buckets
    )


def triage_labels(
    quality: np.ndarray, buckets: dict[str, list[str]], models: tuple[str, ...], *, tolerance: float = 0.05
) -> np.ndarray:
    """0/1/2 (cheap/mid/hard) per row: the cheapest bucket whose best q̂ is within ``tolerance`` of the best q̂."""
    best = quality.max(axis=1)
    labels = np.full(len(quality), 2, dtype=np.int64)
    for index in (1, 0):
        mask = np.array([m in set(buckets[BUCKETS[index]]) for m in models], dtype=bool)
        if mask.any():
            labels[quality[:, mask].max(axis=1) >= best - tolerance] = index
    return labels


def stratified_folds(labels: np.ndarray, k: int, *, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index per row, each class spread evenly over the folds.

    With ``groups`` (e.g. :func:`bifrost.storage.dataset.prompt_groups`), every row of a
    group lands in the same fold — the class of a group is its first row's — so a prompt
    repeated in the data is never on both sides of a fold.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if groups is None:
        return _spread(labels, k, rng)
    _, first, inverse = np.unique(np.asarray(groups), return_index=True, return_inverse=True)
    return _spread(labels[first], k, rng)[inverse.reshape(-1)]


def _spread(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold per item: each class dealt round-robin from fold 0. Classes smaller than ``k`` cannot
    be spread within themselves, so they are dealt together, continuing one count (an outside
    test gave every prompt its own task: all landed in fold 0 and training crashed)."""
    folds = np.zeros(len(labels), dtype=np.int64)
    dealt = 0
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        rng.shuffle(members)
        if len(members) >= k:
            folds[members] = np.arange(len(members)) % k
        else:
            folds[members] = (dealt + np.arange(len(members))) % k
            dealt += len(members)
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
            params,
            train,
            num_boost_round=max_rounds,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
        )
        oof[held] = booster.predict(X[held], num_iteration=booster.best_iteration)
        metrics = _metrics(labels[held], oof[held])
        per_fold.append(
            FoldMetrics(
                fold=fold + 1, rows=int(held.sum()), best_iteration=int(booster.best_iteration or max_rounds), **metrics
            )
        )
        step(
            "cv",
            fold=f"{fold + 1}/{k}",
            rows=int(held.sum()),
            logloss=metrics["logloss"],
            accuracy=metrics["accuracy"],
            macro_f1=metrics["macro_f1"],
            rounds=per_fold[-1].best_iteration,
        )
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
