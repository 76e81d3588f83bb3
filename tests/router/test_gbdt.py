"""The numpy LightGBM evaluator matches LightGBM's own predictions."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from bifrost.router.gbdt import TreeEnsemble, UnsupportedModel
from tests.router.artifacts import constant_model_string

N_FEATURES = 7


def make_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random rows with many exact zeros (col 1, 2) and NaN (10%, plus always in col 3 for some)."""
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 1] = np.round(X[:, 1] * 2)
    X[:, 2] = np.where(rng.random(n) < 0.3, 0.0, X[:, 2])
    X[rng.random((n, N_FEATURES)) < 0.1] = np.nan
    X[:, 6] = rng.integers(0, 4, size=n)  # a feature LightGBM never sees NaN in when training below
    return X


def labels_of(X: np.ndarray) -> np.ndarray:
    """Three classes that depend on values, zeros and missingness."""
    y = (np.nan_to_num(X[:, 0]) > 0).astype(int) + (np.nan_to_num(X[:, 1]) > 0).astype(int) + np.isnan(X[:, 3])
    return np.minimum(y, 2).astype(int)


def train(params: dict[str, object], X: np.ndarray, y: np.ndarray, rounds: int = 25) -> lgb.Booster:
    base = {
        "objective": "multiclass",
        "num_class": 3,
        "num_leaves": 15,
        "min_data_in_leaf": 5,
        "verbose": -1,
        "num_threads": 1,
        "deterministic": True,
        "seed": 0,
    }
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=rounds)


def edge_rows(rng: np.random.Generator) -> np.ndarray:
    """Rows of all zeros, all NaN, tiny values, negative zero, and NaN where training had none."""
    X = make_rows(rng, 3000)
    X[:10] = 0.0
    X[10:20] = np.nan
    X[20:30] = 1e-40
    X[30:40] = -0.0
    X[40:200, 6] = np.nan
    return X


@pytest.mark.parametrize(
    "params",
    [{}, {"zero_as_missing": True}, {"use_missing": False}, {"max_bin": 7}],
    ids=["nan-missing", "zero-as-missing", "no-missing", "few-bins"],
)
def test_matches_lightgbm_multiclass(params: dict[str, object]) -> None:
    rng = np.random.default_rng(0)
    X = make_rows(rng, 2000)
    X[:, 6] = np.nan_to_num(X[:, 6])  # no NaN in training for this column
    booster = train(params, X, labels_of(X))
    ensemble = TreeEnsemble.from_model_string(booster.model_to_string())
    assert ensemble.num_class == 3 and ensemble.num_features == N_FEATURES
    assert ensemble.objective == "multiclass"
    Xt = edge_rows(rng)
    expected = booster.predict(Xt)
    assert isinstance(expected, np.ndarray)
    got = ensemble.predict_proba(Xt)
    assert got.shape == expected.shape == (len(Xt), 3)
    assert np.abs(got - expected).max() < 1e-9
    assert np.abs(ensemble.raw_scores(Xt) - booster.predict(Xt, raw_score=True)).max() < 1e-9
    for row in Xt:  # the single-row path the router uses
        assert np.abs(ensemble.predict_proba_one(row) - booster.predict(row[None, :])[0]).max() < 1e-9


def test_missing_types_are_parsed() -> None:
    rng = np.random.default_rng(1)
    X = make_rows(rng, 1500)
    X[:, 6] = np.nan_to_num(X[:, 6])
    nan_model = TreeEnsemble.from_model_string(train({}, X, labels_of(X)).model_to_string())
    zero_model = TreeEnsemble.from_model_string(train({"zero_as_missing": True}, X, labels_of(X)).model_to_string())
    assert 2 in set(nan_model.missing_type.tolist())  # NaN-missing splits exist
    assert set(zero_model.missing_type.tolist()) == {1}


def test_binary_model() -> None:
    rng = np.random.default_rng(2)
    X = make_rows(rng, 1500)
    y = (labels_of(X) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), 15)
    ensemble = TreeEnsemble.from_model_string(booster.model_to_string())
    Xt = edge_rows(rng)
    assert np.abs(ensemble.predict_proba(Xt)[:, 0] - booster.predict(Xt)).max() < 1e-9


def test_early_stopped_model_uses_the_saved_iterations() -> None:
    rng = np.random.default_rng(3)
    X = make_rows(rng, 1500)
    y = labels_of(X)
    train_set = lgb.Dataset(X[:1000], y[:1000])
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        train_set,
        300,
        valid_sets=[lgb.Dataset(X[1000:], y[1000:], reference=train_set)],
        callbacks=[lgb.early_stopping(5, verbose=False)],
    )
    ensemble = TreeEnsemble.from_model_string(booster.model_to_string())
    expected = booster.predict(X, num_iteration=booster.best_iteration)
    assert np.abs(ensemble.predict_proba(X) - expected).max() < 1e-9


def test_single_leaf_trees() -> None:
    ensemble = TreeEnsemble.from_model_string(constant_model_string((0.2, 0.5, 0.3), 4))
    assert ensemble.feature.size == 0
    p = ensemble.predict_proba(np.zeros((5, 4)))
    assert np.allclose(p, [0.2, 0.5, 0.3])
    # A class with a constant label makes LightGBM emit single-leaf trees too.
    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, 3))
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, (X[:, 0] > 0).astype(int)),
        5,
    )
    text = booster.model_to_string()
    assert "num_leaves=1\n" in text
    assert np.abs(TreeEnsemble.from_model_string(text).predict_proba(X) - booster.predict(X)).max() < 1e-9


def test_wrong_feature_count() -> None:
    ensemble = TreeEnsemble.from_model_string(constant_model_string((0.2, 0.5, 0.3), 4))
    with pytest.raises(ValueError, match="model expects 4 features, got 3"):
        ensemble.predict_proba(np.zeros((2, 3)))


def test_unsupported_model_strings() -> None:
    with pytest.raises(UnsupportedModel, match="not a LightGBM model string"):
        TreeEnsemble.from_model_string("hello world")
    with pytest.raises(UnsupportedModel, match="not a LightGBM model string"):
        TreeEnsemble.from_model_string("tree\nmax_feature_idx=abc\n")
    base = constant_model_string((0.2, 0.5, 0.3), 4)
    with pytest.raises(UnsupportedModel, match="linear trees"):
        TreeEnsemble.from_model_string(base.replace("is_linear=0", "is_linear=1", 1))
    with pytest.raises(UnsupportedModel, match="categorical"):
        TreeEnsemble.from_model_string(base.replace("num_cat=0", "num_cat=1", 1))


def test_categorical_decision_type_is_refused() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    X[:, 0] = rng.integers(0, 5, size=300)
    y = (X[:, 0] == 2).astype(int) + (X[:, 1] > 0)
    booster = lgb.train(
        {
            "objective": "multiclass",
            "num_class": 3,
            "verbose": -1,
            "num_threads": 1,
            "min_data_per_group": 5,
            "cat_smooth": 1,
        },
        lgb.Dataset(X, y, categorical_feature=[0]),
        10,
    )
    with pytest.raises(UnsupportedModel, match="categorical"):
        TreeEnsemble.from_model_string(booster.model_to_string())


# -- stacked models and the complete-tree walk ----------------------------------------------


def stacked_models(rng: np.random.Generator, *, max_depth: int = 6, nan: bool = False):
    """A multiclass triage, two cross-entropy quality models and a gamma cost model over the same rows."""
    X = rng.normal(size=(1500, N_FEATURES))
    X[:, 1] = np.round(X[:, 1] * 2)  # exact zeros and ties
    if nan:
        X[rng.random(X.shape) < 0.05] = np.nan
    base = {
        "verbose": -1,
        "num_threads": 1,
        "deterministic": True,
        "seed": 0,
        "num_leaves": 31,
        "max_depth": max_depth,
        "min_data_in_leaf": 5,
    }
    labels = labels_of(X)
    boosters = [
        lgb.train({**base, "objective": "multiclass", "num_class": 3}, lgb.Dataset(X, labels), 20),
        lgb.train({**base, "objective": "cross_entropy"}, lgb.Dataset(X, (labels > 0).astype(float)), 25),
        lgb.train(
            {**base, "objective": "cross_entropy"}, lgb.Dataset(X, np.clip(np.nan_to_num(X[:, 0]) / 4 + 0.5, 0, 1)), 25
        ),
        lgb.train({**base, "objective": "gamma"}, lgb.Dataset(X, np.exp(np.nan_to_num(X[:, 2]) / 3)), 25),
    ]
    return X, boosters


def raw_of(boosters: list[lgb.Booster], X: np.ndarray) -> np.ndarray:
    return np.column_stack([np.asarray(b.predict(X, raw_score=True)).reshape(len(X), -1) for b in boosters])


def test_concatenated_models_match_each_lightgbm_model() -> None:
    rng = np.random.default_rng(6)
    X, boosters = stacked_models(rng)
    parts = [TreeEnsemble.from_model_string(b.model_to_string()) for b in boosters]
    stacked = TreeEnsemble.concat(parts)
    assert stacked.num_class == 3 + 1 + 1 + 1 and stacked.roots.size == sum(p.roots.size for p in parts)
    assert stacked.objective == "multiclass+cross_entropy+cross_entropy+gamma"
    Xt = np.vstack([X[:300], np.zeros((3, N_FEATURES)), np.full((2, N_FEATURES), 1e-40)])
    expected = raw_of(boosters, Xt)
    assert np.abs(stacked.raw_scores(Xt) - expected).max() < 1e-9
    assert stacked.depth <= 6 and stacked._complete is not None  # the one-row walk takes the complete-tree path
    for row, want in zip(Xt, expected):
        assert np.abs(stacked.raw_scores_one(row) - want).max() < 1e-9
    # The links the router applies: softmax, sigmoid, exp — LightGBM's own outputs.
    assert np.abs(1 / (1 + np.exp(-expected[:, 3])) - boosters[1].predict(Xt)).max() < 1e-9
    assert np.abs(np.exp(expected[:, 5]) - boosters[3].predict(Xt)).max() < 1e-9
    with pytest.raises(ValueError, match="different feature counts"):
        TreeEnsemble.concat([parts[0], TreeEnsemble.from_model_string(constant_model_string((0.2, 0.5, 0.3), 2))])


def test_deep_trees_and_missing_values_take_the_general_walk() -> None:
    rng = np.random.default_rng(7)
    # Unlimited depth: deeper than the complete-tree limit → the general walk, still exact.
    X, boosters = stacked_models(rng, max_depth=-1)
    deep = TreeEnsemble.concat([TreeEnsemble.from_model_string(b.model_to_string()) for b in boosters])
    assert deep.depth > 8 and deep._complete is None
    for row, want in zip(X[:100], raw_of(boosters, X[:100])):
        assert np.abs(deep.raw_scores_one(row) - want).max() < 1e-9
    # Models trained with NaN have NaN-missing splits: the general walk handles them.
    X, boosters = stacked_models(rng, nan=True)
    missing = TreeEnsemble.concat([TreeEnsemble.from_model_string(b.model_to_string()) for b in boosters])
    assert missing._complete is None
    Xt = edge_rows(rng)[:300]
    for row, want in zip(Xt, raw_of(boosters, Xt)):
        assert np.abs(missing.raw_scores_one(row) - want).max() < 1e-9
    # A plain model and a row with NaN: the complete-tree path is skipped for that row (LightGBM treats NaN as 0).
    X, boosters = stacked_models(rng)
    plain = TreeEnsemble.concat([TreeEnsemble.from_model_string(b.model_to_string()) for b in boosters])
    row = X[0].copy()
    row[[0, 2]] = np.nan
    assert plain._complete is not None
    assert np.abs(plain.raw_scores_one(row) - raw_of(boosters, row[None, :])[0]).max() < 1e-9


def test_a_batch_mixing_rows_with_and_without_nan_takes_both_walks_and_matches_lightgbm() -> None:
    rng = np.random.default_rng(9)
    X, boosters = stacked_models(rng)
    plain = TreeEnsemble.concat([TreeEnsemble.from_model_string(b.model_to_string()) for b in boosters])
    assert plain._complete is not None
    Xt = X[:200].copy()
    Xt[::3, 1] = np.nan  # every third row goes the general way, the others the complete-tree way
    got = plain.raw_scores(Xt)
    assert np.abs(got - raw_of(boosters, Xt)).max() < 1e-9
    assert all(np.array_equal(plain.raw_scores_one(row), want) for row, want in zip(Xt, got))


def test_batches_are_evaluated_in_chunks() -> None:
    import bifrost.router.gbdt as gbdt

    rng = np.random.default_rng(8)
    X, boosters = stacked_models(rng)
    stacked = TreeEnsemble.concat([TreeEnsemble.from_model_string(b.model_to_string()) for b in boosters])
    whole = stacked.raw_scores(X)
    limit = gbdt._CHUNK_NODES
    try:
        gbdt._CHUNK_NODES = stacked.roots.size * 7  # 7 rows per chunk
        assert np.array_equal(stacked.raw_scores(X), whole)
    finally:
        gbdt._CHUNK_NODES = limit
