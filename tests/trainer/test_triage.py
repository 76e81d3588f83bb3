"""Learned buckets, triage labels, stratified folds and the cross-validated triage model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.router.gbdt import TreeEnsemble
from bifrost.trainer.triage import (
    learn_buckets,
    route_at,
    stratified_folds,
    train_triage,
    triage_labels,
    weight_for_budget,
)

# -- learned buckets ------------------------------------------------------------------------


def test_weight_for_budget_meets_the_budget_with_the_least_weight() -> None:
    rng = np.random.default_rng(0)
    q = rng.random((400, 4))
    c = np.tile([0.1, 0.3, 1.0, 3.0], (400, 1))
    rows = np.arange(400)
    assert weight_for_budget(q, c, 2.0) == 0.0  # the quality argmax (mean cost 1.1) already fits
    previous = 0.0
    for budget in (1.0, 0.5, 0.2):
        weight = weight_for_budget(q, c, budget)
        assert c[rows, route_at(q, c, weight)].mean() <= budget + 1e-12
        assert c[rows, route_at(q, c, weight * 0.9)].mean() > budget  # a smaller weight would overspend
        assert weight >= previous  # a smaller budget needs a larger weight
        previous = weight


def premium_and_specialist(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """q̂, ĉ of: a decent cheap model, a dominated cheap one, a specialist (great on half the rows),
    a mid model, and a premium model that leads on a fifth of the rows at 15× the mid price."""
    rng = np.random.default_rng(seed)
    models = ("cheap", "dominated", "mid", "premium", "specialist")
    half, fifth = rng.random(n) < 0.5, rng.random(n) < 0.2
    q = np.column_stack(
        [
            np.full(n, 0.6),
            np.full(n, 0.4),
            np.full(n, 0.7),
            np.where(fifth, 0.95, 0.72),
            np.where(half, 0.9, 0.05),
        ]
    ) + rng.normal(0, 0.01, (n, 5))
    c = np.tile([0.1, 0.1, 0.3, 4.5, 0.05], (n, 1))
    return q, c, models


def test_learned_buckets_admit_useful_models_at_each_cost_level() -> None:
    q, c, models = premium_and_specialist()
    report = learn_buckets(q, c, models)
    cheap, mid, hard = (set(report.buckets[b]) for b in ("cheap", "mid", "hard"))
    assert cheap <= mid <= hard == set(models)  # nested; hard is every model
    assert "specialist" in cheap and "cheap" in cheap  # cheap and useful (the specialist on its task)
    assert "dominated" not in mid  # never worth it at any budget
    assert "premium" not in mid  # not affordable below the top level
    assert "mid" in mid
    assert len(report.budgets) == 2 and report.budgets[0] < report.budgets[1]
    assert report.cost_weights[0] >= report.cost_weights[1]


def test_triage_labels_by_hand() -> None:
    models = ("a", "b", "c")
    buckets = {"cheap": ["a"], "mid": ["a", "b"], "hard": ["a", "b", "c"]}
    q = np.array(
        [
            [0.9, 0.9, 0.9],  # cheap matches the best → cheap
            [0.2, 0.9, 0.9],  # mid matches → mid
            [0.2, 0.3, 0.9],  # only c → hard
            [0.86, 0.2, 0.9],  # within the 0.05 tolerance → cheap
            [0.0, 0.0, 0.0],  # nobody is expected to answer → cheap
            [0.5, 0.84, 0.9],  # mid is 0.06 below → hard
        ]
    )
    assert triage_labels(q, buckets, models).tolist() == [0, 1, 2, 0, 0, 2]
    assert triage_labels(q, buckets, models, tolerance=0.1).tolist() == [0, 1, 2, 0, 0, 1]


def test_labels_from_success_probabilities_do_not_collapse_on_pass_fail_outcomes() -> None:
    # Pass/fail outcomes of 11 models: labelling by "some cheap model happened to pass" (a max over
    # noisy draws) makes most prompts look cheap; labelling by expected success does not.
    rng = np.random.default_rng(1)
    n = 3000
    hard_prompt = rng.random(n) < 0.3
    p = np.where(
        hard_prompt[:, None],
        [0.35, 0.35, 0.4, 0.45, 0.5, 0.5, 0.5, 0.55, 0.55, 0.6, 0.9],
        [0.75, 0.75, 0.78, 0.8, 0.8, 0.8, 0.82, 0.82, 0.84, 0.85, 0.86],
    )
    models = tuple(f"m{i:02d}" for i in range(11))
    buckets = {"cheap": list(models[:2]), "mid": list(models[:10]), "hard": list(models)}
    outcomes = (rng.random((n, 11)) < p).astype(float)
    realized = triage_labels(outcomes, buckets, models)
    expected = triage_labels(p, buckets, models)
    assert (realized == 0).mean() > 0.7  # the collapse the outcome-based rule produces
    assert (expected == 2).mean() == pytest.approx(hard_prompt.mean(), abs=0.02)  # the hard prompts, found
    assert np.array_equal(expected == 2, hard_prompt)


# -- folds ----------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=200), st.integers(2, 6), st.integers(0, 1000))
def test_stratified_fold_properties(labels: list[int], k: int, seed: int) -> None:
    y = np.array(labels)
    folds = stratified_folds(y, k, seed=seed)
    assert folds.shape == y.shape and folds.min() >= 0 and folds.max() < k
    for value in set(labels):
        counts = np.bincount(folds[y == value], minlength=k)
        assert counts.max() - counts.min() <= 1  # each class spread evenly
    assert np.array_equal(folds, stratified_folds(y, k, seed=seed))


def test_stratified_folds_depend_on_the_seed() -> None:
    y = np.array([0, 1, 2] * 40)
    assert not np.array_equal(stratified_folds(y, 5, seed=0), stratified_folds(y, 5, seed=1))


# -- model ----------------------------------------------------------------------------------


def learnable(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features that predict the class fairly well."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    X = rng.normal(size=(n, 4))
    X[:, 0] += labels * 1.5
    X[rng.random((n, 4)) < 0.05] = np.nan
    return X, labels


def test_train_triage_cross_validates_and_matches_the_numpy_evaluator() -> None:
    X, labels = learnable()
    folds = stratified_folds(labels, 3, seed=0)
    model = train_triage(
        X, labels, folds, feature_names=["f0", "f1", "f2", "f3"], seed=0, params={"min_data_in_leaf": 10}
    )
    cv = model.cv
    assert cv.folds == 3 and len(cv.per_fold) == 3
    assert sum(f.rows for f in cv.per_fold) == len(labels)
    assert cv.label_counts == {b: int(n) for b, n in zip(("cheap", "mid", "hard"), np.bincount(labels))}
    assert cv.accuracy > cv.majority_accuracy + 0.2  # learned something real
    assert sum(map(sum, cv.confusion)) == len(labels)
    assert cv.rounds >= 1 and cv.params["seed"] == 0 and cv.params["min_data_in_leaf"] == 10
    assert model.oof.shape == (len(labels), 3)
    assert np.allclose(model.oof.sum(axis=1), 1.0)
    assert cv.accuracy == pytest.approx(float((model.oof.argmax(axis=1) == labels).mean()), abs=1e-4)
    ensemble = TreeEnsemble.from_model_string(model.model_string)
    assert np.abs(ensemble.predict_proba(X) - model.booster.predict(X)).max() < 1e-9


def test_train_triage_is_deterministic() -> None:
    X, labels = learnable(300, seed=1)
    folds = stratified_folds(labels, 3, seed=0)
    a = train_triage(X, labels, folds, feature_names=["a", "b", "c", "d"], seed=7)
    b = train_triage(X, labels, folds, feature_names=["a", "b", "c", "d"], seed=7)
    assert a.model_string == b.model_string
    assert np.array_equal(a.oof, b.oof) and a.cv == b.cv
