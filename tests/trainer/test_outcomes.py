"""Per-prompt outcome models: calibrated quality (pass/fail and graded) and per-prompt cost."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from bifrost.router.gbdt import TreeEnsemble
from bifrost.trainer import baseline as lr
from bifrost.trainer.outcomes import (
    EARLY_STOPPING,
    MAX_ROUNDS,
    TREE_PARAMS,
    average_models,
    group_folds,
    platt,
    train_outcome_models,
)

NAMES = ["chars", "tokens_approx", "x0", "x1", "x2"]


def synthetic(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three models over 5 features: pass/fail ``a`` and ``b`` that depend on x0 in opposite ways, graded ``c``;
    cost = input tokens × price + an output length that grows with x1 (so cost per token varies by prompt)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(20, 2000, size=n).astype(float)
    x = rng.normal(size=(n, 3))
    X = np.column_stack([tokens * 4, tokens, x])
    p_a = 1 / (1 + np.exp(-2 * x[:, 0]))
    p_b = 1 / (1 + np.exp(2 * x[:, 0]))
    scores = np.column_stack(
        [
            (rng.random(n) < p_a).astype(float),
            (rng.random(n) < p_b).astype(float),
            np.clip(0.5 + 0.2 * x[:, 1] + rng.normal(0, 0.05, n), 0, 1),  # graded
        ]
    )
    output_tokens = 200 * np.exp(0.5 * x[:, 1])
    price_in, price_out = np.array([1e-6, 2e-6, 1e-5]), np.array([2e-6, 4e-6, 3e-5])
    costs = tokens[:, None] * price_in + output_tokens[:, None] * price_out
    return X, scores, costs


def test_platt_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 2, 20_000)
    labels = (rng.random(raw.size) < 1 / (1 + np.exp(-(0.5 * raw - 0.3)))).astype(float)
    a, b = platt(raw, labels)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-0.3, abs=0.05)
    assert platt(np.zeros(10), np.ones(10)) == (1.0, 0.0)  # nothing to calibrate on


def test_group_folds_keep_repeated_prompts_together() -> None:
    rng = np.random.default_rng(2)
    unique = rng.normal(size=(200, 4)).astype(np.float32)
    X = unique[rng.integers(200, size=3000)]  # every prompt logged ~15 times
    folds = group_folds(X, 5, seed=0)
    for row in unique:
        same = (X == row).all(axis=1)
        if same.any():
            assert len(set(folds[same].tolist())) == 1
    assert set(folds.tolist()) == set(range(5))
    assert np.array_equal(folds, group_folds(X, 5, seed=0))


def test_quality_and_cost_models_out_of_fold() -> None:
    X, scores, costs = synthetic()
    folds = np.arange(len(X)) % 5
    unit = float(costs[:, 2].mean())
    models = train_outcome_models(
        X, scores, costs, folds, models=("a", "b", "c"), feature_names=NAMES, cost_unit_usd=unit, seed=0
    )
    assert models.oof_quality.shape == models.oof_cost.shape == scores.shape
    fits = models.report.per_model
    # Pass/fail models rank and are calibrated; the graded one tracks its expected score.
    assert fits["a"].auc is not None and fits["b"].auc is not None
    assert fits["a"].auc > 0.75 and fits["b"].auc > 0.75 and fits["a"].ece < 0.05
    assert np.corrcoef(models.oof_quality[:, 0], models.oof_quality[:, 1])[0, 1] < -0.5  # opposite prompts
    assert np.abs(models.oof_quality[:, 2] - scores[:, 2]).mean() < 0.08
    # The cost per prompt (input and output tokens) is learned, normalized by the unit.
    assert max(f.cost_mape for f in fits.values()) < 0.15
    assert np.corrcoef(models.oof_cost[:, 2] * unit, costs[:, 2])[0, 1] > 0.95
    # The final models are what the router evaluates: raw → sigmoid(a·raw + b) and exp(raw) × tokens.
    q = TreeEnsemble.from_model_string(models.quality["a"]).raw_scores(X)[:, 0]
    a, b = models.calibration["a"]
    final = 1 / (1 + np.exp(-(a * q + b)))
    assert np.corrcoef(final, models.oof_quality[:, 0])[0, 1] > 0.8
    per_token = np.exp(TreeEnsemble.from_model_string(models.cost["c"]).raw_scores(X)[:, 0])
    assert np.abs(per_token * X[:, 1] - costs[:, 2]).mean() / costs[:, 2].mean() < 0.15
    assert models.report.cost_per == "tokens_approx" and models.report.cost_unit_usd == unit


def test_unlabelled_rows_are_left_out_and_thin_models_keep_the_fallback() -> None:
    X, scores, costs = synthetic(900, seed=3)
    served = np.random.default_rng(4).choice(3, size=len(X), p=[0.49, 0.49, 0.02])  # c: ~18 rows only
    logged_scores = np.full(scores.shape, np.nan)
    logged_costs = np.full(costs.shape, np.nan)
    logged_scores[np.arange(len(X)), served] = scores[np.arange(len(X)), served]
    logged_costs[np.arange(len(X)), served] = costs[np.arange(len(X)), served]
    full = train_outcome_models(
        X, scores, costs, np.arange(len(X)) % 5, models=("a", "b", "c"), feature_names=NAMES, cost_unit_usd=1e-3
    )
    fallback = {m: (full.quality[m], full.calibration[m], full.cost[m]) for m in ("a", "b", "c")}
    logged = train_outcome_models(
        X,
        logged_scores,
        logged_costs,
        group_folds(X, 5),
        models=("a", "b", "c"),
        feature_names=NAMES,
        cost_unit_usd=1e-3,
        fallback=fallback,
        min_rows=30,
    )
    fits = logged.report.per_model
    assert fits["a"].rows == int((served == 0).sum()) and not fits["a"].fallback
    assert fits["c"].fallback and logged.quality["c"] == full.quality["c"] and logged.cost["c"] == full.cost["c"]
    assert fits["a"].auc is not None and fits["a"].auc > 0.7  # learned from its own rows only
    with pytest.raises(ValueError, match="no fallback"):
        train_outcome_models(
            X,
            logged_scores,
            logged_costs,
            group_folds(X, 5),
            models=("a", "b", "c"),
            feature_names=NAMES,
            cost_unit_usd=1e-3,
            min_rows=30,
        )


def test_chosen_blend_is_the_one_routed_with() -> None:
    X, scores, costs = synthetic(1200, seed=5)
    folds = np.arange(len(X)) % 5
    unit = float(costs[:, 2].mean())
    fixed = train_outcome_models(
        X,
        scores,
        costs,
        folds,
        models=("a", "b", "c"),
        feature_names=NAMES,
        cost_unit_usd=unit,
        linear_blend=0.5,
        linear_l2=10.0,
    )
    chosen = train_outcome_models(
        X,
        scores,
        costs,
        folds,
        models=("a", "b", "c"),
        feature_names=NAMES,
        cost_unit_usd=unit,
        linear_blend=0.5,
        linear_l2=10.0,
        choose_linear=True,
    )
    choice = chosen.report.blend_choice
    assert fixed.report.blend_choice is None and choice is not None
    assert chosen.linear is not None and chosen.linear.blend == choice.weight
    assert (chosen.report.linear_blend, chosen.report.linear_l2) == (choice.weight, choice.l2)
    assert choice.value == max(c.value for c in choice.candidates)
    # The chosen blend never routes worse out-of-fold than the fixed 0.5/10 it was compared with.
    fixed_value = next(c.value for c in choice.candidates if (c.weight, c.l2) == (0.5, 10.0))
    assert choice.value >= fixed_value


def test_the_final_quality_model_is_the_fold_models_average() -> None:
    X, scores, _ = synthetic(1000, seed=6)
    folds = np.arange(len(X)) % 4
    y = scores[:, 0]
    params = {**TREE_PARAMS, "objective": "cross_entropy", "seed": 0}
    fold_raw = []
    for fold in range(4):
        fit, held = folds != fold, folds == fold
        train = lgb.Dataset(X[fit], y[fit], feature_name=NAMES, free_raw_data=False)
        booster = lgb.train(
            params,
            train,
            num_boost_round=MAX_ROUNDS,
            valid_sets=[lgb.Dataset(X[held], y[held], reference=train)],
            callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
        )
        fold_raw.append(booster.predict(X, num_iteration=booster.best_iteration, raw_score=True))
    models = train_outcome_models(
        X, scores, scores * 1e-3 + 1e-6, folds, models=("a", "b", "c"), feature_names=NAMES, cost_unit_usd=1e-3
    )
    expected = np.mean(fold_raw, axis=0)
    # What the router evaluates (numpy) and what LightGBM loads are both the folds' mean raw score.
    assert np.allclose(TreeEnsemble.from_model_string(models.quality["a"]).raw_scores(X)[:, 0], expected, atol=1e-9)
    assert np.allclose(lgb.Booster(model_str=models.quality["a"]).predict(X, raw_score=True), expected, atol=1e-9)


def test_average_models_of_one_model_is_that_model_and_of_none_an_error() -> None:
    X, scores, _ = synthetic(400, seed=7)
    booster = lgb.train({**TREE_PARAMS, "objective": "cross_entropy"}, lgb.Dataset(X, scores[:, 0]), 15)
    one = average_models([booster.model_to_string()])
    assert np.allclose(lgb.Booster(model_str=one).predict(X, raw_score=True), booster.predict(X, raw_score=True))
    twice = average_models([booster.model_to_string()] * 2)
    assert TreeEnsemble.from_model_string(twice).roots.size == 30
    assert np.allclose(TreeEnsemble.from_model_string(twice).raw_scores(X)[:, 0], booster.predict(X, raw_score=True))
    with pytest.raises(ValueError, match="no models"):
        average_models([])


def test_averaged_logits_are_the_mean_of_the_fold_fits() -> None:
    X, scores, _ = synthetic(800, seed=8)
    X = X * np.array([1.0, 1.0, 3.0, 0.5, 1.0]) + np.array([0.0, 0.0, 2.0, -1.0, 0.0])  # unequal scales
    labels = np.where(np.random.default_rng(9).random(scores.shape) < 0.1, np.nan, scores)  # some labels missing
    folds = np.arange(len(X)) % 5

    def logits(m: lr.LogisticModels) -> np.ndarray:
        p = m.predict(X)
        return np.log(p / (1 - p))

    fits = [lr.fit_logistic(X[folds != f], labels[folds != f], l2=10.0) for f in range(5)]
    averaged = lr.average_fits(X, lr.fold_fits(X, labels, folds, l2=10.0))
    assert np.allclose(logits(averaged), np.mean([logits(m) for m in fits], axis=0), atol=1e-8)


def test_one_fold_and_linear_trees_are_refused_not_averaged_into_nonsense() -> None:
    X, scores, _ = synthetic(300, seed=10)
    with pytest.raises(ValueError, match="at least two folds"):
        lr.fold_fits(X, scores, np.zeros(len(X), dtype=np.int64))
    with pytest.raises(ValueError, match="at least two folds"):
        lr.out_of_fold(X, scores, np.zeros(len(X), dtype=np.int64))
    linear = lgb.train(
        {**TREE_PARAMS, "objective": "cross_entropy", "linear_tree": True}, lgb.Dataset(X, scores[:, 0]), 5
    )
    with pytest.raises(ValueError, match="linear trees"):
        average_models([linear.model_to_string()] * 2)


def test_a_fold_too_big_to_leave_out_gives_no_fake_out_of_fold_predictions() -> None:
    # Fold 0 holds 290 of 300 rows: its complement (10 rows) is too small to fit, so fold 0 has no
    # out-of-fold prediction. Its rows get one uninformative value, and Platt is fitted on the rest.
    X, scores, costs = synthetic(300, seed=11)
    folds = np.where(np.arange(300) < 290, 0, 1)
    models = train_outcome_models(
        X, scores, costs, folds, models=("a", "b", "c"), feature_names=NAMES, cost_unit_usd=1e-3
    )
    q = models.oof_quality[:, 0]
    assert np.unique(q[:290]).size == 1  # one value, not raw 0 pushed through the calibration
    raw_fold1 = TreeEnsemble.from_model_string(models.quality["a"]).raw_scores(X[290:])[:, 0]
    a, b = platt(raw_fold1, np.clip(scores[290:, 0], 0.0, 1.0))
    assert models.calibration["a"] == [round(a, 6), round(b, 6)]
