"""The one pipeline's model-fitting steps: each source names and times them its own way, the steps are the same."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from bifrost.trainer.outcomes import MAX_ROUNDS
from bifrost.trainer.pipeline import Block, OutcomeSettings, TrainingRows, TriageSettings, fit_models
from bifrost.trainer.progress import Timings
from bifrost.trainer.triage import BucketReport

MODELS = ("small", "medium", "large")


def rows(n: int = 600, seed: int = 0) -> TrainingRows:
    """Prompts whose first feature says how hard they are: the small model fails the hard ones, the large costs most."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n)
    tokens = rng.integers(20, 400, n).astype(np.float64)
    X = np.column_stack([hard, rng.random(n), tokens])
    p = np.column_stack([1.0 - hard, 0.9 - 0.4 * hard, np.full(n, 0.9)])
    scores = (rng.random((n, 3)) < p).astype(np.float64)
    costs = tokens[:, None] * np.array([1e-7, 5e-7, 3e-6])
    return TrainingRows(
        X=X,
        scores=scores,
        costs=costs,
        folds=rng.integers(3, size=n),
        models=MODELS,
        feature_names=["hardness", "noise", "tokens_approx"],
    )


@dataclass
class Source:
    """The part of a data source that :func:`fit_models` reads."""

    blocks: tuple[Block, ...]
    timings: Timings = field(default_factory=Timings)
    label_tolerance: float = 0.05
    checked: list[tuple[BucketReport, np.ndarray]] = field(default_factory=list)

    def outcome_settings(self, rows: TrainingRows) -> OutcomeSettings:
        return OutcomeSettings(cost_unit_usd=float(rows.costs[:, 2].mean()), seed=0, max_rounds=MAX_ROUNDS // 4)

    def check_labels(self, rows: TrainingRows, buckets: BucketReport, labels: np.ndarray) -> None:
        self.checked.append((buckets, labels))

    def triage_settings(self) -> TriageSettings:
        return TriageSettings(seed=0, max_rounds=50)

    def triage_folds(self, rows: TrainingRows, labels: np.ndarray) -> np.ndarray:
        return rows.folds


@pytest.mark.parametrize(
    "blocks",
    [
        (Block("outcomes", ("outcomes",), {"folds": 3}), Block("buckets", ("labels",)), Block("cv", ("triage",))),
        (Block("cv", ("outcomes", "labels", "triage")),),
    ],
    ids=["bootstrap-like", "retrain-like"],
)
def test_the_same_steps_in_the_blocks_a_source_names(blocks: tuple[Block, ...]) -> None:
    training = rows()
    source = Source(blocks)
    fitted = fit_models(source, training)  # type: ignore[arg-type]  # the fitting part of a DataSource only
    assert list(source.timings.seconds) == [b.name for b in blocks]
    assert fitted.outcomes.oof_quality.shape == (len(training.X), len(MODELS))
    assert fitted.triage.oof.shape == (len(training.X), 3)
    ((buckets, labels),) = source.checked  # the source saw the labels the triage model was fitted on
    assert buckets is fitted.buckets and labels is fitted.labels and len(labels) == len(training.X)


def test_the_same_rows_give_the_same_models_whatever_the_blocks() -> None:
    one = fit_models(Source((Block("cv", ("outcomes", "labels", "triage")),)), rows())  # type: ignore[arg-type]
    three = fit_models(
        Source((Block("a", ("outcomes",)), Block("b", ("labels",)), Block("c", ("triage",)))),  # type: ignore[arg-type]
        rows(),
    )
    assert np.array_equal(one.outcomes.oof_quality, three.outcomes.oof_quality)
    assert np.array_equal(one.labels, three.labels)
    assert one.triage.model_string == three.triage.model_string


def test_a_triage_block_before_its_labels_is_a_mistake() -> None:
    with pytest.raises(AssertionError, match="labels before triage"):
        fit_models(Source((Block("cv", ("outcomes", "triage")),)), rows())  # type: ignore[arg-type]
