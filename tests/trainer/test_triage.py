"""Cost tiers, triage labels, stratified folds and the cross-validated triage model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.router.gbdt import TreeEnsemble
from bifrost.trainer.triage import bucket_members, cost_tiers, stratified_folds, train_triage, triage_labels

costs_strategy = st.lists(st.floats(1e-7, 1e3), min_size=1, max_size=12)


# -- cost tiers -----------------------------------------------------------------------------


def test_cost_tiers_by_hand() -> None:
    # Three price levels: the two largest log gaps split them.
    assert cost_tiers(np.array([1.0, 1.1, 10.0, 11.0, 100.0])).tolist() == [0, 0, 1, 1, 2]
    # Unsorted input: tiers follow the models, not the order.
    assert cost_tiers(np.array([100.0, 1.0, 10.0])).tolist() == [2, 0, 1]
    # Two price levels: cheap and expensive (no mid tier).
    assert cost_tiers(np.array([0.2, 0.2, 0.9, 0.2, 0.9])).tolist() == [0, 0, 2, 0, 2]
    # One price level: everything is cheap.
    assert cost_tiers(np.array([0.5, 0.5, 0.5])).tolist() == [0, 0, 0]
    assert cost_tiers(np.array([0.5])).tolist() == [0]
    # Zero cost is allowed (clamped before the log).
    assert cost_tiers(np.array([0.0, 1.0, 2.0])).tolist() == [0, 1, 2]


def test_real_price_levels(real_dataset) -> None:  # type: ignore[no-untyped-def]
    tiers = cost_tiers(real_dataset.costs.mean(axis=0))
    costs = real_dataset.costs.mean(axis=0)
    # 0.1, 0.2 and 0.9 USD per million tokens in the catalog: three tiers, ordered by price.
    assert sorted(set(tiers.tolist())) == [0, 1, 2]
    assert costs[tiers == 0].max() < costs[tiers == 1].min() <= costs[tiers == 1].max() < costs[tiers == 2].min()


@settings(max_examples=150, deadline=None)
@given(costs_strategy)
def test_cost_tier_properties(costs: list[float]) -> None:
    c = np.array(costs)
    tiers = cost_tiers(c)
    assert tiers.shape == c.shape and set(tiers.tolist()) <= {0, 1, 2}
    order = np.argsort(c, kind="stable")
    assert np.all(np.diff(tiers[order]) >= 0)  # a cheaper model is never in a higher tier
    for i in range(len(c)):
        for j in range(len(c)):
            if c[i] == c[j]:
                assert tiers[i] == tiers[j]  # equal prices share a tier
    assert tiers[np.argmin(c)] == 0
    logs = np.log(np.sort(np.maximum(c, 1e-12)))
    if len(logs) > 1 and np.diff(logs).max() > 1e-9:  # prices that differ beyond rounding
        assert tiers[np.argmax(c)] == 2  # with two or more prices the most expensive is in the top tier


def test_bucket_members_are_nested() -> None:
    models = ("a", "b", "c", "d")
    buckets = bucket_members(models, np.array([2, 0, 1, 0]))
    assert buckets == {"cheap": ["b", "d"], "mid": ["b", "c", "d"], "hard": ["a", "b", "c", "d"]}


# -- labels ---------------------------------------------------------------------------------


def test_triage_labels_by_hand() -> None:
    tiers = np.array([0, 1, 2])  # models cheap, mid, expensive
    scores = np.array([
        [1.0, 1.0, 1.0],  # cheap matches the best → cheap
        [0.0, 1.0, 1.0],  # mid matches → mid
        [0.0, 0.0, 1.0],  # only the expensive one → hard
        [0.96, 0.0, 1.0],  # within the 0.05 tolerance → cheap
        [0.0, 0.0, 0.0],  # nobody answers → cheap
        [0.5, 0.94, 1.0],  # mid is 0.06 below → hard
    ])
    assert triage_labels(scores, tiers).tolist() == [0, 1, 2, 0, 0, 2]
    assert triage_labels(scores, tiers, tolerance=0.1).tolist() == [0, 1, 2, 0, 0, 1]


def test_triage_labels_without_a_mid_tier() -> None:
    tiers = np.array([0, 2])
    scores = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    assert triage_labels(scores, tiers).tolist() == [0, 2, 0]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**32 - 1), st.floats(0, 0.3))
def test_triage_label_properties(rows: int, seed: int, tolerance: float) -> None:
    rng = np.random.default_rng(seed)
    tiers = np.array([0, 0, 1, 2, 2])
    scores = np.round(rng.random((rows, 5)), 2)
    labels = triage_labels(scores, tiers, tolerance=tolerance)
    best = scores.max(axis=1)
    for i, label in enumerate(labels):
        if best[i] <= 0:
            assert label == 0
            continue
        reach = scores[i, tiers <= label].max()
        assert reach >= best[i] - tolerance  # the label's tier reaches the best
        if label > 0:
            assert scores[i, tiers <= label - 1].max() < best[i] - tolerance  # no cheaper tier does


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
    model = train_triage(X, labels, folds, feature_names=["f0", "f1", "f2", "f3"], seed=0,
                         params={"min_data_in_leaf": 10})
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
