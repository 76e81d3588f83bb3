"""Spherical k-means, Q̂/Ĉ estimates and progress logging."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bifrost.trainer.clustering import spherical_kmeans
from bifrost.trainer.estimates import normalized_costs, out_of_fold_quality, quality_table
from bifrost.trainer.progress import Timings, step


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def blobs(seed: int = 0, per: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated directions in 20 dimensions, with noise; (rows, true group)."""
    rng = np.random.default_rng(seed)
    centers = np.eye(20)[[0, 7, 14]] * 5
    truth = np.repeat(np.arange(3), per)
    X = unit(centers[truth] + rng.normal(scale=0.5, size=(3 * per, 20)))
    return X, truth


# -- clustering -----------------------------------------------------------------------------


def test_kmeans_recovers_separated_groups() -> None:
    X, truth = blobs()
    result = spherical_kmeans(X, 3, seed=0)
    assert result.centroids.shape == (3, 20)
    assert np.allclose(np.linalg.norm(result.centroids, axis=1), 1.0)
    # Same partition up to renaming: every true group maps to one cluster, all distinct.
    mapping = {int(t): set(result.labels[truth == t].tolist()) for t in range(3)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len({next(iter(v)) for v in mapping.values()}) == 3
    # Labels are the most similar centroid; mean_similarity is their mean.
    sims = X @ result.centroids.T
    assert np.array_equal(result.labels, sims.argmax(axis=1))
    assert result.mean_similarity == pytest.approx(float(sims.max(axis=1).mean()), abs=1e-5)
    assert 1 <= result.iterations <= 40


def test_kmeans_is_seeded() -> None:
    X, _ = blobs(seed=1)
    a, b = spherical_kmeans(X, 4, seed=3), spherical_kmeans(X, 4, seed=3)
    assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.labels, b.labels)


def test_kmeans_with_more_clusters_than_rows_and_duplicates() -> None:
    X = unit(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    result = spherical_kmeans(X, 10, seed=0)
    assert result.centroids.shape[0] == 3  # k is capped at the number of rows
    assert np.isfinite(result.centroids).all()
    single = spherical_kmeans(X, 0, seed=0)
    assert single.centroids.shape[0] == 1 and set(single.labels.tolist()) == {0}


def test_kmeans_zero_rows_stay_finite() -> None:
    X = np.vstack([unit(np.eye(4)[:3]), np.zeros((2, 4))])  # two empty prompts
    result = spherical_kmeans(X, 3, seed=0)
    assert np.isfinite(result.centroids).all()
    assert np.allclose(np.linalg.norm(result.centroids, axis=1), 1.0)


def test_kmeans_needs_rows() -> None:
    with pytest.raises(ValueError, match="no rows"):
        spherical_kmeans(np.zeros((0, 5)), 3)


# -- estimates ------------------------------------------------------------------------------


def test_quality_table_by_hand() -> None:
    scores = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    clusters = np.array([0, 0, 1, 2])
    q = quality_table(scores, clusters, 4, prior_strength=2.0)
    # overall mean per model is 0.5; cluster 0: (2 + 2·0.5)/(2 + 2) = 0.75 for model 0, (0 + 1)/4 = 0.25 for model 1.
    assert q.shape == (2, 4)
    assert q[:, 0].tolist() == pytest.approx([0.75, 0.25])
    assert q[:, 1].tolist() == pytest.approx([1 / 3, 2 / 3])  # (0 + 1)/3, (1 + 1)/3
    assert q[:, 3].tolist() == pytest.approx([0.5, 0.5])  # an empty cluster is the overall mean
    no_prior = quality_table(scores, clusters, 4, prior_strength=0.0)
    assert no_prior[:, 0].tolist() == [1.0, 0.0]
    assert no_prior[:, 3].tolist() == [0.5, 0.5]  # empty cluster without a prior: the overall mean, not NaN


def test_out_of_fold_quality_never_uses_the_rows_fold() -> None:
    scores = np.array([[1.0], [0.0], [1.0], [0.0]])
    clusters = np.zeros(4, dtype=np.int64)
    folds = np.array([0, 0, 1, 1])
    oof = out_of_fold_quality(scores, clusters, 1, folds, prior_strength=0.0)
    assert oof[:, 0].tolist() == [0.5, 0.5, 0.5, 0.5]
    # A row's own score does not leak: change fold 0's scores, fold 0's estimates stay the same.
    changed = scores.copy()
    changed[:2] = 1.0
    again = out_of_fold_quality(changed, clusters, 1, folds, prior_strength=0.0)
    assert again[:2, 0].tolist() == oof[:2, 0].tolist()
    assert again[2:, 0].tolist() == [1.0, 1.0]


def test_normalized_costs() -> None:
    costs = np.array([[1.0, 2.0, 4.0], [3.0, 2.0, 4.0]])
    assert normalized_costs(costs).tolist() == [0.5, 0.5, 1.0]
    assert normalized_costs(np.zeros((2, 3))).tolist() == [0.0, 0.0, 0.0]


# -- progress -------------------------------------------------------------------------------


def test_step_lines(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bifrost.trainer"):
        step("cv", fold="1/5", logloss=0.123456, label="two words", empty="", eq="a=b")
        step("done")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "event=trainer.step step=cv fold=1/5 logloss=0.1235 label='two words' empty='' eq='a=b'",
        "event=trainer.step step=done",
    ]


def test_timings_accumulate_and_log(caplog: pytest.LogCaptureFixture) -> None:
    timings = Timings()
    with caplog.at_level(logging.INFO, logger="bifrost.trainer"):
        with timings.measure("load", rows=3):
            pass
        with pytest.raises(RuntimeError):
            with timings.measure("load"):
                raise RuntimeError("boom")
    assert list(timings.seconds) == ["load"]
    assert timings.total == pytest.approx(timings.seconds["load"]) and timings.total >= 0
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "event=trainer.step step=load status=start rows=3"
    assert messages[1].startswith("event=trainer.step step=load status=done seconds=")
    assert len(messages) == 4  # a failing block still logs its end
