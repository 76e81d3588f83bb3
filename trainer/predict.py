"""Predictions of an artifact's tree models for many rows, as the routers' evaluator computes them.

LightGBM's own predictor evaluates the same trees an order of magnitude faster than the
NumPy evaluator the routers run (:class:`~bifrost.router.gbdt.TreeEnsemble`, which
matches it within 1e-9: ``tests/router/test_gbdt.py``). Every call checks a random
sample of rows against the routers' evaluator and, on any disagreement, uses that
evaluator for every row.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from bifrost.router.artifact import Artifact
from bifrost.router.prompt_models import Predictions, PromptScorer
from bifrost.trainer.progress import step

_PARITY_ROWS = 2_000
_PARITY_TOLERANCE = 1e-9


def predict_rows(
    artifact: Artifact, X: np.ndarray, *, scorer: PromptScorer | None = None, seed: int = 0, threads: int = 2
) -> Predictions:
    """Triage probabilities, q̂ and ĉ of every row (``X``: feature vectors in the artifact's schema)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    scorer = scorer or PromptScorer(artifact)
    if len(X) <= _PARITY_ROWS:
        return scorer.predict(X)
    parts = [
        np.asarray(
            lgb.Booster(model_str=text).predict(X, raw_score=True, num_threads=threads), dtype=np.float64
        ).reshape(len(X), -1)
        for text in scorer.strings
    ]
    raw = np.concatenate(parts, axis=1)
    sample = np.sort(np.random.default_rng(seed).choice(len(X), size=_PARITY_ROWS, replace=False))
    reference = scorer.ensemble.raw_scores(X[sample])
    if raw.shape[1] == reference.shape[1] and np.abs(raw[sample] - reference).max() <= _PARITY_TOLERANCE:
        return scorer.with_raw(raw, X)
    step("predict", status="fallback", reason="LightGBM and the router's evaluator disagree", rows=len(X))
    return scorer.predict(X)
