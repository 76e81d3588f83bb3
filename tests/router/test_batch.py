"""predict_many: LightGBM's predictor for large batches, checked against the router's evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from bifrost.router import batch
from bifrost.router.batch import predict_many
from bifrost.router.prompt_models import Predictions, PromptScorer
from tests.router.artifacts import make_artifact


def _rows(scorer: PromptScorer, n: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.uniform(0.0, 2.0, size=(n, scorer.ensemble.num_features))


def _same(a: Predictions, b: Predictions, tolerance: float) -> bool:
    return all(
        np.abs(getattr(a, name) - getattr(b, name)).max() <= tolerance for name in ("probabilities", "quality", "cost")
    )


def test_a_large_batch_is_predicted_by_lightgbm_and_matches_the_router() -> None:
    scorer = PromptScorer(make_artifact())
    X = _rows(scorer, batch.PARITY_ROWS + 500)
    got = predict_many(scorer, X)
    assert got.evaluator == "lightgbm" and got.fallback == ""
    assert _same(got.predictions, scorer.predict(X), 1e-9)


def test_a_small_batch_takes_the_router_evaluator() -> None:
    scorer = PromptScorer(make_artifact())
    X = _rows(scorer, 10)
    got = predict_many(scorer, X)
    assert got.evaluator == "numpy" and _same(got.predictions, scorer.predict(X), 0.0)


def test_disagreement_falls_back_to_the_router_evaluator_for_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = PromptScorer(make_artifact())
    X = _rows(scorer, batch.PARITY_ROWS + 10)
    # LightGBM sees other trees than the router's evaluator walks: the sample check must catch it.
    monkeypatch.setattr(scorer, "strings", list(reversed(scorer.strings)))
    got = predict_many(scorer, X)
    assert got.evaluator == "numpy" and "disagree" in got.fallback
    assert _same(got.predictions, scorer.predict(X), 0.0)
