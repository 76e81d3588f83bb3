"""Per-prompt outcome models: each LLM's quality q̂(m | x) and cost ĉ(m | x) from the feature vector.

* **Quality**: one LightGBM model per LLM, objective ``cross_entropy`` (labels in [0, 1]:
  a success probability for pass/fail scores, an expected score for graded ones), then a
  Platt calibration ``sigmoid(a·raw + b)`` fitted on the out-of-fold raw scores.
* **Cost**: one LightGBM model per LLM, objective ``gamma`` (log link, mean-unbiased for
  positive targets) of the cost per unit of a size feature (approximate input tokens), so
  a price per token is learned exactly when cost is proportional to the prompt, and the
  prompt's expected output length enters when it is not (real per-call costs).

* **Blend (optional)**: with ``linear_blend = w``, a per-LLM logistic regression on the same
  standardized feature vector (:mod:`bifrost.trainer.baseline`'s fit, soft labels) is
  averaged in: ``q̂ = w·q̂_tree + (1 − w)·q̂_linear``. Two model families with different
  errors — trees cut the feature space into steps, the linear model is smooth — average
  to better per-prompt rankings than either (out-of-fold, on the train split). With
  ``choose_linear``, ``w`` (0 and 1 included) and the regression's L2 are chosen by grouped
  CV on these rows (:func:`bifrost.trainer.blend.choose_blend`: out-of-fold routing score
  over a band of cost shares), the given ``w``/L2 kept on ties.

Both use k-fold cross-validation (early stopping per fold) for their out-of-fold
predictions — what the bucket learning, the triage labels and the search see. **The
final quality model is the fold models' average** (one LightGBM model string whose trees
are every fold model's, at its early-stopped round, with leaf values divided by k; the
blended logistic regression likewise averages the fold fits' logits). One refit on every
row carries the variance of one fit; the average of k fits routes more steadily from seed
to seed (measured in the README, "Per-prompt routing"). The Platt calibration fitted on the
fold models' out-of-fold raw scores is applied to the average, whose raw scores spread a
little less (typically slightly under-confident; each model's ranking of
prompts unchanged). The cost model is refitted on every row
with the folds' median number of rounds. Rows where a model has no label (logged data:
only the served model's outcome) are left out of that model's fits but still get
predictions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import msgspec
import numpy as np
from scipy.optimize import minimize

from bifrost.router.gbdt import TreeEnsemble
from bifrost.trainer import baseline as lr
from bifrost.trainer.blend import DEFAULT_L2S, BlendChoice, choose_blend
from bifrost.trainer.progress import step

TREE_PARAMS: dict[str, object] = {
    "learning_rate": 0.1,
    "num_leaves": 15,
    "max_depth": 6,  # ≤ 8 keeps the router's one-row walk on its complete-tree path
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
MAX_ROUNDS = 200
EARLY_STOPPING = 20
MIN_MODEL_ROWS = 30
MAX_MODEL_ROWS = 20_000


class ModelFit(msgspec.Struct, frozen=True, kw_only=True):
    """Out-of-fold fit of one LLM's quality and cost models."""

    rows: int
    quality_rounds: int
    cost_rounds: int
    mean_label: float
    logloss: float
    brier: float
    auc: float | None  # labels split at 0.5
    ece: float
    calibration: tuple[float, float]
    cost_mape: float
    fallback: str = ""
    tree_logloss: float | None = None  # the blend's parts, out-of-fold (when a linear model is blended in)
    linear_logloss: float | None = None


class OutcomeReport(msgspec.Struct, frozen=True, kw_only=True):
    """Cross-validated fit of every model (``per_model``) and what the quality models rank."""

    folds: int
    params: dict[str, float | int | str | bool]
    cost_per: str
    cost_unit_usd: float
    per_model: dict[str, ModelFit]
    mean_logloss: float
    mean_brier: float
    mean_ece: float
    linear_blend: float | None = None  # weight of the tree model in q̂ (None: trees only)
    linear_l2: float | None = None
    blend_choice: BlendChoice | None = None  # how w and the L2 were chosen (choose_linear)


@dataclass(frozen=True)
class OutcomeModels:
    """Final model strings, calibration, and out-of-fold predictions ``(rows, models)``."""

    models: tuple[str, ...]
    quality: dict[str, str]
    calibration: dict[str, list[float]]
    cost: dict[str, str]
    cost_unit_usd: float
    cost_per: str
    oof_quality: np.ndarray
    oof_cost: np.ndarray  # normalized by cost_unit_usd
    report: OutcomeReport
    linear: LinearModels | None = None


@dataclass(frozen=True)
class LinearModels:
    """The blended logistic regressions: standardization, ``(features + 1, models)`` weights, tree weight."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    blend: float


def platt(raw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` minimizing the cross-entropy of ``sigmoid(a·raw + b)`` against labels in [0, 1]."""
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(raw) < 2 or np.ptp(raw) == 0:
        return 1.0, 0.0

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * raw + ab[1]
        p = 1.0 / (1.0 + np.exp(-z))
        value = float(np.mean(np.logaddexp(0.0, z) - y * z)) + 1e-4 * float((ab[0] - 1.0) ** 2 + ab[1] ** 2)
        g = p - y
        return value, np.array([np.mean(g * raw) + 2e-4 * (ab[0] - 1.0), np.mean(g) + 2e-4 * ab[1]])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = (float(v) for v in result.x)
    if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
        return 1.0, 0.0
    return a, b


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |mean label − mean prediction| per probability decile, weighted."""
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mine = index == b
        if mine.any():
            total += mine.sum() * abs(float(y[mine].mean() - p[mine].mean()))
    return total / max(len(p), 1)


def _auc(p: np.ndarray, y: np.ndarray) -> float | None:
    """ROC AUC of the labels split at 0.5 (pass/fail; graded labels are thresholded), None for one class."""
    pos, neg = y >= 0.5, y < 0.5
    if not pos.any() or not neg.any():
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    # average ranks of ties
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * neg.sum()))


def group_folds(X: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Fold per row with identical feature vectors (the same prompt logged again) in one fold.

    Out-of-fold predictions must not come from a model that saw the same prompt: replayed
    or repeated prompts would otherwise be memorized and look predictable.
    """
    X = np.ascontiguousarray(X)
    _, group = np.unique(X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel(), return_inverse=True)
    fold_of_group = np.random.default_rng(seed).integers(k, size=int(group.max()) + 1 if len(group) else 0)
    return fold_of_group[group.reshape(-1)] if len(group) else np.zeros(0, dtype=np.int64)


def _fit(
    params: dict[str, object],
    X: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    rows: np.ndarray,
    max_rounds: int,
    feature_names: list[str],
    max_rows: int,
    seed: int,
    *,
    average_folds: bool = False,
) -> tuple[np.ndarray, str, int, np.ndarray]:
    """k-fold OOF raw predictions for every row, the final model string, its rounds, and
    which rows have a true out-of-fold prediction.

    The final model is refitted on ``rows`` (labelled) with the folds' median rounds, or,
    with ``average_folds``, is the fold models' average (:func:`average_models`). At most
    ``max_rows`` labelled rows (a uniform sample) are fitted on per fit. A fold whose
    complement has too few labelled rows to fit is skipped: its rows get the mean of the
    others' out-of-fold predictions (no information either way) and are not ``covered``.
    """
    k = int(folds.max()) + 1
    oof = np.zeros(len(X))
    covered = np.zeros(len(X), dtype=bool)
    iterations = []
    fold_models: list[str] = []
    if rows.sum() > max_rows:
        keep = np.zeros(len(rows), dtype=bool)
        keep[np.random.default_rng(seed).choice(np.flatnonzero(rows), size=max_rows, replace=False)] = True
        rows = keep
    for fold in range(k):
        held = folds == fold
        fit, valid = rows & ~held, rows & held
        if fit.sum() < MIN_MODEL_ROWS:
            continue
        train = lgb.Dataset(X[fit], y[fit], feature_name=feature_names, free_raw_data=False)
        callbacks: list[Callable[..., Any]] = []
        valid_sets = []
        if valid.sum() >= 10:
            valid_sets = [lgb.Dataset(X[valid], y[valid], reference=train)]
            callbacks = [lgb.early_stopping(EARLY_STOPPING, verbose=False)]
        booster = lgb.train(params, train, num_boost_round=max_rounds, valid_sets=valid_sets, callbacks=callbacks)
        best = int(booster.best_iteration or booster.current_iteration() or max_rounds)
        iterations.append(best)
        oof[held] = booster.predict(X[held], num_iteration=best, raw_score=True)
        covered |= held
        if average_folds:
            fold_models.append(booster.model_to_string(num_iteration=best))
    if iterations and not covered.all():
        known = covered & rows if (covered & rows).any() else covered
        oof[~covered] = float(oof[known].mean())
        step("outcomes", skipped_folds=k - len(iterations), uncovered_rows=int((~covered & rows).sum()))
    rounds = max(1, int(np.median(iterations))) if iterations else max_rounds // 4
    if fold_models:
        return oof, average_models(fold_models), rounds, covered
    final = lgb.train(params, lgb.Dataset(X[rows], y[rows], feature_name=feature_names), num_boost_round=rounds)
    if not iterations:  # too few labelled rows for any fold: the final model's in-sample predictions
        oof = np.asarray(final.predict(X, raw_score=True))
        covered = np.ones(len(X), dtype=bool)
    return oof, final.model_to_string(), rounds, covered


_TREE_VALUES = re.compile(r"^(leaf_value=|internal_value=)(.*)$", re.MULTILINE)
_TREE_INDEX = re.compile(r"^Tree=\d+", re.MULTILINE)
_LINEAR_TREE = re.compile(r"^is_linear=1\b", re.MULTILINE)


def average_models(model_strings: list[str]) -> str:
    """One LightGBM model string whose raw score is the mean of ``model_strings``' raw scores.

    Every tree of every model, in order, with its leaf (and internal) values divided by the
    number of models; the header is the first model's without ``tree_sizes`` (LightGBM
    then parses the trees one by one). Loadable by LightGBM and by
    :class:`bifrost.router.gbdt.TreeEnsemble`, so the artifact format does not change.
    """
    if not model_strings:
        raise ValueError("no models to average")
    k = len(model_strings)
    header_lines: list[str] = []
    tail = ""
    trees: list[str] = []

    def divided(match: re.Match[str]) -> str:
        return match.group(1) + " ".join(repr(float(v) / k) for v in match.group(2).split())

    for index, text in enumerate(model_strings):
        header, _, body = text.partition("\nTree=")
        body, _, rest = ("Tree=" + body).partition("end of trees")
        if index == 0:
            header_lines = [line for line in header.splitlines() if not line.startswith("tree_sizes=")]
            tail = rest
        for block in body.split("\nTree="):
            if not block.strip():
                continue
            if _LINEAR_TREE.search(block):
                raise ValueError("linear trees cannot be averaged by their leaf values")
            block = block if block.startswith("Tree=") else "Tree=" + block
            block = _TREE_INDEX.sub(f"Tree={len(trees)}", _TREE_VALUES.sub(divided, block), count=1)
            trees.append(block.strip("\n"))
    return "\n".join(header_lines) + "\n\n" + "\n\n".join(trees) + "\n\n\nend of trees" + tail


def train_outcome_models(
    X: np.ndarray,
    scores: np.ndarray,
    costs: np.ndarray,
    folds: np.ndarray,
    *,
    models: tuple[str, ...],
    feature_names: list[str],
    cost_per: str = "tokens_approx",
    cost_unit_usd: float,
    seed: int = 0,
    max_rounds: int = MAX_ROUNDS,
    fallback: dict[str, tuple[str, list[float], str]] | None = None,
    min_rows: int = MIN_MODEL_ROWS,
    params: dict[str, object] | None = None,
    max_rows: int = MAX_MODEL_ROWS,
    linear_blend: float | None = None,
    linear_l2: float = 10.0,
    choose_linear: bool = False,
) -> OutcomeModels:
    """Quality and cost models of every LLM, cross-validated on ``folds``.

    Args:
        X: ``(rows, features)`` feature vectors (the router's schema).
        scores, costs: ``(rows, models)`` outcomes; NaN where a model's outcome is unknown.
        folds: fold index per row.
        cost_unit_usd: the normalization of costs (the reference model's mean cost).
        fallback: per model, (quality string, calibration, cost string) to keep when the
            model has fewer than ``min_rows`` labelled rows (e.g. the current artifact's).
        linear_blend: weight of the tree model when a logistic regression per model is
            blended in (module docstring); None for trees only. Not with ``fallback``.
        choose_linear: choose the tree weight and L2 by CV (module docstring); needs
            every outcome (full-information rows) and ``linear_blend`` not None.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    n, n_models = scores.shape
    size = np.maximum(X[:, feature_names.index(cost_per)], 0.0)
    quality_params = {**TREE_PARAMS, **(params or {}), "objective": "cross_entropy", "seed": seed}
    cost_params = {**TREE_PARAMS, **(params or {}), "objective": "gamma", "seed": seed}
    oof_q = np.zeros((n, n_models))
    oof_c = np.zeros((n, n_models))
    quality, calibration, cost, fits = {}, {}, {}, {}
    rounds: dict[str, tuple[int, int, tuple[float, float]]] = {}
    ratio_all = costs / np.where(size > 0, size, np.nan)[:, None]
    positive = ratio_all[np.isfinite(ratio_all) & (ratio_all > 0)]
    floor = 1e-6 * float(positive.mean()) if positive.size else 1e-12
    linear = None
    oof_linear = None
    labels = np.where(np.isfinite(scores), np.clip(scores, 0.0, 1.0), np.nan)
    if linear_blend is not None:
        if not 0.0 <= linear_blend <= 1.0:
            raise ValueError(f"linear_blend must be in [0, 1], not {linear_blend}")
        l2s = sorted({*DEFAULT_L2S, linear_l2}) if choose_linear else [linear_l2]
        linear_fits = {l2: lr.fold_fits(X, labels, folds, l2=l2) for l2 in l2s}
        oof_linear = {l2: lr.predict_out_of_fold(X, folds, fits) for l2, fits in linear_fits.items()}
    for j, model in enumerate(models):
        labelled = np.isfinite(scores[:, j])
        costed = np.isfinite(costs[:, j]) & (size > 0)
        if labelled.sum() < min_rows or costed.sum() < min_rows:
            if linear_blend is not None:
                raise ValueError(
                    f"model {model} has {int(labelled.sum())} labelled rows (fewer than {min_rows}); "
                    "a blended linear model needs every model's labels"
                )
            if not fallback or model not in fallback:
                raise ValueError(
                    f"model {model} has {int(labelled.sum())} labelled rows (fewer than {min_rows}) and no fallback"
                )
            q_string, ab, c_string = fallback[model]
            quality[model], calibration[model], cost[model] = q_string, list(ab), c_string
            q_raw = TreeEnsemble.from_model_string(q_string).raw_scores(X)[:, 0]
            oof_q[:, j] = _sigmoid(ab[0] * q_raw + ab[1])
            oof_c[:, j] = np.exp(TreeEnsemble.from_model_string(c_string).raw_scores(X)[:, 0]) * size / cost_unit_usd
            fits[model] = ModelFit(
                rows=int(labelled.sum()),
                quality_rounds=0,
                cost_rounds=0,
                mean_label=float("nan"),
                logloss=float("nan"),
                brier=float("nan"),
                auc=None,
                ece=float("nan"),
                calibration=(float(ab[0]), float(ab[1])),
                cost_mape=float("nan"),
                fallback="too few labelled rows: kept the current artifact's models",
            )
            step("outcomes", model=model, rows=int(labelled.sum()), fallback="current")
            continue
        y = np.clip(np.nan_to_num(scores[:, j]), 0.0, 1.0)
        raw, q_string, q_rounds, covered = _fit(
            quality_params, X, y, folds, labelled, max_rounds, feature_names, max_rows, seed, average_folds=True
        )
        calibrate = labelled & covered if (labelled & covered).any() else labelled
        a, b = platt(raw[calibrate], y[calibrate])
        oof_q[:, j] = _sigmoid(a * raw + b)
        quality[model], calibration[model] = q_string, [round(a, 6), round(b, 6)]
        ratio = np.maximum(np.nan_to_num(ratio_all[:, j]), floor)
        c_raw, cost[model], c_rounds, _ = _fit(
            cost_params, X, ratio, folds, costed, max_rounds, feature_names, max_rows, seed
        )
        oof_c[:, j] = np.exp(c_raw) * size / cost_unit_usd
        rounds[model] = (q_rounds, c_rounds, (round(a, 4), round(b, 4)))
    choice = None
    tree_q = oof_q.copy()
    if linear_blend is not None and oof_linear is not None:
        weight, l2 = float(linear_blend), float(linear_l2)
        if choose_linear:
            reference = int(np.argmax(np.nanmean(scores, axis=0)))
            choice = choose_blend(
                tree_q, oof_linear, oof_c, scores, costs, float(np.nanmean(costs[:, reference])), default=(weight, l2)
            )
            weight, l2 = choice.weight, choice.l2
            step("outcomes", blend=weight, l2=l2, value=choice.value)
        logistic = lr.average_fits(X, linear_fits[l2])  # the fold fits the CV already made
        linear = LinearModels(mean=logistic.mean, scale=logistic.scale, weights=logistic.weights, blend=weight)
        oof_q = weight * tree_q + (1.0 - weight) * oof_linear[l2]
        linear_l2 = l2
    for j, model in enumerate(models):
        if model not in rounds:
            continue
        q_rounds, c_rounds, ab_rounded = rounds[model]
        labelled = np.isfinite(scores[:, j])
        costed = np.isfinite(costs[:, j]) & (size > 0)
        y = np.clip(np.nan_to_num(scores[:, j]), 0.0, 1.0)
        tree_logloss: float | None = None
        linear_logloss: float | None = None
        if linear is not None and oof_linear is not None:
            tree_logloss = round(_logloss(tree_q[labelled, j], y[labelled]), 4)
            linear_logloss = round(_logloss(oof_linear[linear_l2][labelled, j], y[labelled]), 4)
        p, yl = oof_q[labelled, j], y[labelled]
        pc = np.clip(p, 1e-12, 1 - 1e-12)
        actual = costs[costed, j]
        predicted = oof_c[costed, j] * cost_unit_usd
        fits[model] = ModelFit(
            rows=int(labelled.sum()),
            quality_rounds=q_rounds,
            cost_rounds=c_rounds,
            mean_label=round(float(yl.mean()), 4),
            logloss=round(float(-np.mean(yl * np.log(pc) + (1 - yl) * np.log(1 - pc))), 4),
            brier=round(float(np.mean((p - yl) ** 2)), 4),
            auc=None if (auc := _auc(p, yl)) is None else round(auc, 4),
            ece=round(float(_calibration_error(p, yl)), 4),
            calibration=ab_rounded,
            cost_mape=round(float(np.mean(np.abs(predicted - actual) / np.maximum(actual, 1e-300))), 4)
            if len(actual)
            else float("nan"),
            tree_logloss=tree_logloss,
            linear_logloss=linear_logloss,
        )
        step(
            "outcomes",
            model=model,
            rows=int(labelled.sum()),
            rounds=q_rounds,
            logloss=fits[model].logloss,
            auc=fits[model].auc,
            cost_rounds=c_rounds,
            cost_mape=fits[model].cost_mape,
        )
    fits = {m: fits[m] for m in models if m in fits}
    fitted = [f for f in fits.values() if not f.fallback]
    report = OutcomeReport(
        folds=int(folds.max()) + 1,
        params={k: v for k, v in TREE_PARAMS.items() if isinstance(v, (int, float, str, bool))},
        cost_per=cost_per,
        cost_unit_usd=float(cost_unit_usd),
        per_model=fits,
        mean_logloss=round(float(np.mean([f.logloss for f in fitted])), 4) if fitted else float("nan"),
        mean_brier=round(float(np.mean([f.brier for f in fitted])), 4) if fitted else float("nan"),
        mean_ece=round(float(np.mean([f.ece for f in fitted])), 4) if fitted else float("nan"),
        linear_blend=None if linear is None else linear.blend,
        linear_l2=None if linear is None else linear_l2,
        blend_choice=choice,
    )
    return OutcomeModels(
        models=models,
        quality=quality,
        calibration=calibration,
        cost=cost,
        cost_unit_usd=float(cost_unit_usd),
        cost_per=cost_per,
        oof_quality=oof_q,
        oof_cost=oof_c,
        report=report,
        linear=linear,
    )


def _logloss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
