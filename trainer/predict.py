"""Predictions of an artifact's tree models for many rows, as the routers' evaluator computes them.

A thin shell over :func:`bifrost.router.batch.predict_many` (LightGBM's predictor, checked
against the routers' evaluator on a sample of rows) that reports a fallback as a trainer
progress step.
"""

from __future__ import annotations

import numpy as np

from bifrost.router.artifact import Artifact
from bifrost.router.batch import predict_many
from bifrost.router.prompt_models import Predictions, PromptScorer
from bifrost.trainer.progress import step


def predict_rows(
    artifact: Artifact, X: np.ndarray, *, scorer: PromptScorer | None = None, seed: int = 0, threads: int = 2
) -> Predictions:
    """Triage probabilities, q̂ and ĉ of every row (``X``: feature vectors in the artifact's schema)."""
    batch = predict_many(scorer or PromptScorer(artifact), X, threads=threads, seed=seed)
    if batch.fallback:
        step("predict", status="fallback", reason=batch.fallback, rows=len(X))
    return batch.predictions
