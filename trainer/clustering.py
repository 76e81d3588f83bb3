"""Spherical k-means (cosine) on unit-length rows, seeded k-means++ initialization."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Clustering:
    """Unit-length centroids ``(k, dims)``, the assignment of each row, and the fit."""

    centroids: np.ndarray
    labels: np.ndarray
    mean_similarity: float
    iterations: int


def spherical_kmeans(
    X: np.ndarray, k: int, *, seed: int = 0, n_init: int = 2, max_iter: int = 40, tol: float = 1e-6
) -> Clustering:
    """Cluster unit-length rows by cosine similarity; the best of ``n_init`` seeded runs.

    Empty clusters are re-seeded with the row least similar to its centroid.
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    if n == 0:
        raise ValueError("no rows to cluster")
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    best: Clustering | None = None
    for _ in range(n_init):
        centroids = _plus_plus(X, k, rng)
        previous = -np.inf
        for iteration in range(1, max_iter + 1):  # noqa: B007 - its last value is reported after the loop
            sims = X @ centroids.T
            labels = sims.argmax(axis=1)
            score = float(sims[np.arange(n), labels].mean())
            centroids = _update(X, labels, k, sims)
            if score - previous <= tol:
                break
            previous = score
        sims = X @ centroids.T
        labels = sims.argmax(axis=1)
        score = float(sims[np.arange(n), labels].mean())
        if best is None or score > best.mean_similarity:
            best = Clustering(centroids.astype(np.float64), labels.astype(np.int64), score, iteration)
    assert best is not None
    return best


def _plus_plus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = X.shape[0]
    chosen = [int(rng.integers(n))]
    distance = np.maximum(1.0 - X @ X[chosen[0]], 0.0)
    for _ in range(1, k):
        total = float(distance.sum())
        index = int(rng.choice(n, p=distance / total)) if total > 0 else int(rng.integers(n))
        chosen.append(index)
        distance = np.minimum(distance, np.maximum(1.0 - X @ X[index], 0.0))
    return X[chosen].copy()


def _update(X: np.ndarray, labels: np.ndarray, k: int, sims: np.ndarray) -> np.ndarray:
    onehot = np.zeros((k, X.shape[0]), dtype=np.float32)
    onehot[labels, np.arange(X.shape[0])] = 1.0
    centroids = onehot @ X
    counts = np.bincount(labels, minlength=k)
    own = sims[np.arange(X.shape[0]), labels]
    for empty in np.flatnonzero(counts == 0):
        far = int(own.argmin())
        centroids[empty] = X[far]
        own[far] = np.inf
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return centroids / norms
