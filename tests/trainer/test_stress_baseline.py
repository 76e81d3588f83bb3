"""Stress variants of a dataset, paired comparisons, and the logistic-regression baseline."""

from __future__ import annotations

import numpy as np
import pytest

from bifrost.storage.dataset import FullInfoDataset
from bifrost.trainer import baseline as lr
from bifrost.trainer.stats import paired_bootstrap, paired_normal
from bifrost.trainer.stress import PREMIUM_PRICE_FACTOR, VARIANTS, stress_variant
from tests.trainer.synthetic import make_dataset


def small() -> FullInfoDataset:
    """Three tasks, three models (cheap, mid, best), train and test rows."""
    rng = np.random.default_rng(0)
    n = 300
    tasks = ["a"] * 150 + ["b"] * 90 + ["c"] * 60
    scores = rng.random((n, 3)) * np.array([0.6, 0.8, 1.0])
    scores[np.array(tasks) == "c", 2] = np.minimum(1.0, scores[np.array(tasks) == "c", 2] + 0.3)  # best leads on c
    costs = np.tile([0.1, 0.3, 1.0], (n, 1)) * rng.uniform(0.5, 1.5, (n, 1))
    splits = ["train" if i % 5 else "test" for i in range(n)]
    return make_dataset(scores, costs, tasks=tasks, splits=splits, models=("cheap", "mid", "best"))


def test_binary_variant() -> None:
    d = small()
    b = stress_variant(d, "binary")
    assert set(np.unique(b.scores).tolist()) == {0.0, 1.0}
    assert np.array_equal(b.scores, (d.scores >= 0.5).astype(float)) and np.array_equal(b.costs, d.costs)
    assert b.source.endswith("#binary")


def test_premium_variant() -> None:
    d = small()
    p = stress_variant(d, "premium")
    best = d.models.index("best")
    assert np.allclose(p.costs[:, best], d.costs[:, best] * PREMIUM_PRICE_FACTOR)
    assert np.array_equal(np.delete(p.costs, best, axis=1), np.delete(d.costs, best, axis=1))
    # Whole tasks, those where it leads most, until ≥ 20% of the rows: there it is at least the best other model.
    minority = np.array(d.tasks) == "c"
    assert minority.mean() >= 0.2
    others = np.delete(d.scores, best, axis=1).max(axis=1)
    assert (p.scores[minority, best] >= others[minority]).all()
    assert np.array_equal(p.scores[~minority], d.scores[~minority])
    assert "×15" in p.source and "c" in p.source


def test_specialist_variant() -> None:
    d = small()
    s = stress_variant(d, "specialist", train_split="train")
    assert s.models == ("best", "cheap", "mid", "specialist-a") or "specialist-a" in s.models
    j = s.models.index("specialist-a")
    on = np.array(d.tasks) == "a"  # the largest task present in both splits
    assert np.allclose(s.scores[on, j], d.scores[on].max(axis=1))
    assert np.allclose(s.scores[~on, j], d.scores[~on].min(axis=1))
    assert np.allclose(s.costs[:, j], 0.5 * d.costs.min(axis=1))
    # The other models keep their columns, by name.
    for m in d.models:
        assert np.array_equal(s.scores[:, s.models.index(m)], d.scores[:, d.models.index(m)])
    with pytest.raises(ValueError, match="unknown stress variant"):
        stress_variant(d, "nope")
    assert VARIANTS == ("binary", "premium", "specialist", "noisy")


def test_noisy_variant_flips_a_share_of_the_binary_outcomes_the_same_way_every_time() -> None:
    d = small()
    d.scores[3, 1] = np.nan  # an unknown outcome stays unknown
    binary, noisy = stress_variant(d, "binary"), stress_variant(d, "noisy")
    known = ~np.isnan(binary.scores)
    assert np.isnan(noisy.scores[3, 1]) and set(np.unique(noisy.scores[known]).tolist()) == {0.0, 1.0}
    flipped = (noisy.scores != binary.scores) & known
    assert 0.12 < flipped.sum() / known.sum() < 0.18  # 15% of 899 outcomes, give or take the draw
    assert np.array_equal(noisy.scores, stress_variant(d, "noisy").scores, equal_nan=True)
    assert np.array_equal(noisy.costs, d.costs) and noisy.source.endswith("#noisy(0.15)")


def test_paired_bootstrap_and_normal_agree_on_a_simple_difference() -> None:
    rng = np.random.default_rng(1)
    a = (rng.random(2000) < 0.62).astype(float)
    b = np.where(rng.random(2000) < 0.8, a, 1 - a)  # correlated with a
    boot = paired_bootstrap(a, b, resamples=3000, seed=0)
    normal = paired_normal(a, b)
    assert boot.difference == normal.difference == pytest.approx(a.mean() - b.mean())
    assert boot.standard_error == pytest.approx(normal.standard_error, rel=0.1)
    assert boot.lower == pytest.approx(normal.lower, abs=0.005) and boot.lower < boot.difference < boot.upper
    assert boot.rows == 2000 and boot.confidence == 0.95
    # Pairing matters: the SE of the difference is far below that of two independent means.
    independent = np.sqrt(a.var(ddof=1) / 2000 + b.var(ddof=1) / 2000)
    assert normal.standard_error < 0.8 * independent
    assert np.isnan(paired_bootstrap(np.zeros(0), np.zeros(0)).difference)
    assert "± " in boot.describe() and "paired bootstrap" in boot.describe()


def test_logistic_regression_fits_soft_labels_and_skips_missing_ones() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 3))
    p = 1 / (1 + np.exp(-(2 * X[:, 0] - X[:, 1])))
    Y = np.column_stack([(rng.random(3000) < p).astype(float), p])  # pass/fail and graded (soft) labels
    Y[::3, 0] = np.nan  # a third unlabelled for the first model
    model = lr.fit_logistic(X, Y, l2=0.1)
    predicted = model.predict(X)
    assert np.corrcoef(predicted[:, 0], p)[0, 1] > 0.98 and np.abs(predicted[:, 1] - p).max() < 0.05
    folds = np.arange(3000) % 5
    oof = lr.out_of_fold(X, np.nan_to_num(Y), folds)
    assert oof.shape == Y.shape


def test_a_feature_at_1e200_scales_like_any_other() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 2))
    Y = (rng.random((2000, 1)) < 1 / (1 + np.exp(-2 * X[:, :1]))).astype(float)
    huge = X * np.array([1e200, 1.0])  # squares overflow in a plain std()
    with np.errstate(all="raise"):
        plain, scaled = lr.fit_logistic(X, Y).predict(X), lr.fit_logistic(huge, Y).predict(huge)
        folds = np.arange(2000) % 5
        averaged = lr.average_fits(huge, lr.fold_fits(huge, Y, folds)).predict(huge)
    assert np.isfinite(scaled).all() and np.abs(scaled - plain).max() < 1e-6
    assert np.isfinite(averaged).all() and np.corrcoef(averaged[:, 0], plain[:, 0])[0, 1] > 0.999


def test_lambda_for_a_cost_share() -> None:
    rng = np.random.default_rng(3)
    q = rng.random((500, 3)) * [0.5, 0.7, 0.9]
    c = np.tile([0.1, 0.3, 1.0], (500, 1))
    weight, share = lr.weight_for_share(q, c, c, 1.0, 0.4)
    assert share <= 0.4 + 1e-12
    rows = np.arange(500)
    assert c[rows, lr.route(q, c, weight)].mean() == pytest.approx(share)
    assert weight > 0 and c[rows, lr.route(q, c, 0.0)].mean() > 0.4  # λ = 0 would overspend
    curve = lr.frontier(q, c, q, c, np.array([0.0, 0.1, 1.0, 10.0]))
    costs = [point[2] for point in curve]
    assert costs == sorted(costs, reverse=True)  # a larger λ never costs more here
    assert lr.price_per_unit(np.array([10.0, 20.0]), np.array([[1.0], [2.0]])).tolist() == [0.1]
