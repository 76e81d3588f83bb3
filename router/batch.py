"""Predictions of an artifact's tree models for many rows at once, LightGBM's predictor when it agrees.

The router's own evaluator (:class:`~bifrost.router.gbdt.TreeEnsemble`) is built for one
request at a time without native threads; for a batch of hundreds of thousands of logged
rows (the trainer's retrain, the optimizer's counterfactual replay) LightGBM's C++
predictor walks the same trees an order of magnitude faster. The artifact carries
LightGBM's own model strings, so both evaluate the same trees; every call checks a random
sample of rows against the router's evaluator and, on any disagreement (or without
LightGBM installed), uses the router's evaluator for every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bifrost.router.prompt_models import Predictions, PromptScorer

PARITY_ROWS = 2_000
PARITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class BatchPredictions:
    """The predictions and which evaluator made them (``fallback``: why not LightGBM, empty when it was)."""

    predictions: Predictions
    evaluator: str
    fallback: str = ""


def predict_many(scorer: PromptScorer, X: np.ndarray, *, threads: int = 1, seed: int = 0) -> BatchPredictions:
    """Triage probabilities, q̂ and ĉ of every row of ``X`` (feature vectors in the artifact's schema).

    Batches up to :data:`PARITY_ROWS` rows take the router's evaluator (the check would
    cost as much as the work). ``threads`` is LightGBM's thread count.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if len(X) <= PARITY_ROWS:
        return BatchPredictions(scorer.predict(X), "numpy")
    try:
        import lightgbm as lgb
    except ImportError:
        return BatchPredictions(scorer.predict(X), "numpy", "LightGBM is not installed")
    parts = [
        np.asarray(lgb.Booster(model_str=text).predict(X, raw_score=True, num_threads=threads), dtype=np.float64)
        for text in scorer.strings
    ]
    raw = np.concatenate([part.reshape(len(X), -1) for part in parts], axis=1)
    sample = np.sort(np.random.default_rng(seed).choice(len(X), size=PARITY_ROWS, replace=False))
    reference = scorer.ensemble.raw_scores(X[sample])
    if raw.shape[1] == reference.shape[1] and np.abs(raw[sample] - reference).max() <= PARITY_TOLERANCE:
        return BatchPredictions(scorer.with_raw(raw, X), "lightgbm")
    return BatchPredictions(scorer.predict(X), "numpy", "LightGBM and the router's evaluator disagree")
