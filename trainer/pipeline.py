"""One training pipeline; the data source is the only difference.

A run from a full-information dataset (:mod:`bifrost.trainer.bootstrap`) and a run from
logged traffic (:mod:`bifrost.trainer.retrain`) take the same steps, in this order, from
:func:`run_pipeline`:

1. the source prepares its rows (:meth:`DataSource.prepare`: load, data-quality checks,
   holdout, feature vectors — and stops there if the data cannot be trained on);
2. per-prompt outcome models of every LLM (:func:`bifrost.trainer.outcomes.train_outcome_models`),
   k-fold CV, out-of-fold predictions;
3. buckets learned from the out-of-fold q̂ and ĉ and each training row's triage label
   (:func:`buckets_and_labels`); the source adds the labels' class balance to its
   data-quality report;
4. the LightGBM triage model, cross-validated on the source's folds;
5. the Optuna search over α, τ_cheap, τ_hard for the source's cost/quality knob;
6. the candidate artifact, validated on the source's holdout — not signed if it fails;
7. the run's reports attached, the candidate signed, the timings recorded.

What differs is the data source (:class:`DataSource`): where the outcome labels come
from (every model's score and cost on a full-information set; on logged traffic only the
served model's, weighted by its logged propensity), hence how it chooses its holdout,
how the search estimates a policy's quality and cost (replay on full-information rows vs
a doubly robust off-policy estimate), how the candidate is assembled (a new artifact vs a
successor of the current one) and how it is validated (full-information paired bootstrap
vs paired doubly robust terms). Steps 2–4 keep each source's own names in the progress
events and timings (:class:`Block`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import lightgbm as lgb
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import Artifact, LinearQuality, PromptModels
from bifrost.router.policy import PolicyTables
from bifrost.trainer import outcomes as outcome_defaults
from bifrost.trainer import triage as triage_defaults
from bifrost.trainer.export import Signed, sign_artifact
from bifrost.trainer.outcomes import OutcomeModels, train_outcome_models
from bifrost.trainer.progress import Timings, step
from bifrost.trainer.search import Estimator, SearchData, SearchObjective, SearchReport, SearchSpace, search_policy
from bifrost.trainer.triage import BucketReport, TriageModel, learn_buckets, train_triage, triage_labels

DECIMALS = 6  # parameters are rounded to this many decimals in the artifact (stable, diff-able JSON)

Phase = Literal["outcomes", "labels", "triage"]


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique artifact version: ``v20250101-030000-1a2b3c``."""
    now = now or datetime.now(UTC)
    return f"v{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def buckets_and_labels(outcomes: OutcomeModels, tolerance: float) -> tuple[BucketReport, np.ndarray]:
    """Buckets learned from the out-of-fold q̂ and ĉ, and each training row's triage label."""
    report = learn_buckets(outcomes.oof_quality, outcomes.oof_cost, outcomes.models)
    labels = triage_labels(outcomes.oof_quality, report.buckets, outcomes.models, tolerance=tolerance)
    return report, labels


def prompt_models_of(outcomes: OutcomeModels) -> PromptModels:
    """The artifact section of trained outcome models."""
    linear = None
    if outcomes.linear is not None:
        lin = outcomes.linear
        linear = LinearQuality(
            mean=[float(v) for v in lin.mean],
            scale=[float(v) for v in lin.scale],
            weights={m: [float(v) for v in lin.weights[:, j]] for j, m in enumerate(outcomes.models)},
            blend=float(lin.blend),
        )
    return PromptModels(
        framework="lightgbm",
        framework_version=lgb.__version__,
        quality=dict(outcomes.quality),
        calibration={m: [round(float(v), DECIMALS) for v in ab] for m, ab in outcomes.calibration.items()},
        cost=dict(outcomes.cost),
        cost_unit_usd=float(outcomes.cost_unit_usd),
        cost_per=outcomes.cost_per,
        linear=linear,
    )


def rounded_timings(timings: Timings) -> dict[str, float]:
    """Seconds per step so far, to the millisecond (what run reports keep)."""
    return {name: round(sec, 3) for name, sec in timings.seconds.items()}


class _RunReport(Protocol):
    sha256: str
    signature: str
    key_id: str
    timings: dict[str, float]


def finish_run(report: _RunReport, signed: Signed, timings: Timings, version: str) -> Artifact:
    """Record the signature and the timings (with their total) in ``report``; the signed artifact."""
    report.sha256, report.signature, report.key_id = signed.sha256, signed.signature, signed.key_id
    report.timings = rounded_timings(timings)
    report.timings["total"] = round(timings.total, 3)
    step("done", version=version, seconds=report.timings["total"])
    return signed.artifact


@dataclass(frozen=True)
class OutcomeSettings:
    """How the outcome models are fitted (arguments of :func:`train_outcome_models` besides the rows)."""

    cost_unit_usd: float
    seed: int
    cost_per: str = "tokens_approx"
    max_rounds: int = outcome_defaults.MAX_ROUNDS
    fallback: dict[str, tuple[str, list[float], str]] | None = None
    min_rows: int = outcome_defaults.MIN_MODEL_ROWS
    linear_blend: float | None = None
    linear_l2: float = 10.0
    choose_linear: bool = False


@dataclass(frozen=True)
class TriageSettings:
    """How the triage model is fitted: its folds come from the source (:meth:`DataSource.triage_folds`)."""

    seed: int
    params: dict[str, object] | None = None
    max_rounds: int = triage_defaults.MAX_ROUNDS


@dataclass(frozen=True)
class Block:
    """One timed block of the model-fitting steps: its progress/timing name, fields and the phases it runs."""

    name: str
    phases: tuple[Phase, ...]
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingRows:
    """What the outcome models, the triage model and the search learn from (aligned ``(rows, …)`` arrays).

    ``scores`` and ``costs`` are ``(rows, models)``: every model's on full-information rows,
    the served model's only (NaN elsewhere) on logged rows. ``folds`` are the outcome
    models' CV folds (copies of one prompt in one fold).
    """

    X: np.ndarray
    scores: np.ndarray
    costs: np.ndarray
    folds: np.ndarray
    models: tuple[str, ...]
    feature_names: list[str]

    @property
    def tokens(self) -> np.ndarray:
        """The prompt-size feature the routing rule's per-token costs read."""
        return self.X[:, self.feature_names.index("tokens_approx")]


@dataclass(frozen=True)
class Fitted:
    """The rows and the models fitted on them: outcome models, buckets and labels, triage."""

    rows: TrainingRows
    outcomes: OutcomeModels
    buckets: BucketReport
    labels: np.ndarray
    triage: TriageModel


@dataclass(frozen=True)
class SearchSetup:
    """How the search scores a policy: replay on full-information ``scores``/``costs``, or ``estimator``."""

    tables: PolicyTables
    objective: SearchObjective
    scores: np.ndarray
    costs: np.ndarray
    space: SearchSpace = SearchSpace()
    holdout_rows: int = 0
    estimator: Estimator | None = None
    reference: tuple[str, float, float] | None = None
    corners: Sequence[Mapping[str, float]] = ()


class DataSource(Protocol):
    """What a data source supplies to :func:`run_pipeline`: everything that differs between runs."""

    timings: Timings
    trials: int
    seed: int
    label_tolerance: float

    @property
    def report(self) -> _RunReport:
        """The run report :func:`finish_run` completes (signature, timings)."""
        ...

    @property
    def blocks(self) -> tuple[Block, ...]:
        """How the outcome, label and triage phases are timed and named (after :meth:`prepare`)."""
        ...

    def prepare(self) -> TrainingRows:
        """Load, check, hold out and featurize the rows (its own timed blocks); raise to stop."""
        ...

    def outcome_settings(self, rows: TrainingRows) -> OutcomeSettings: ...

    def check_labels(self, rows: TrainingRows, buckets: BucketReport, labels: np.ndarray) -> None:
        """Add the labels' class balance (and what else the source checks) to its data-quality report."""
        ...

    def triage_settings(self) -> TriageSettings: ...

    def triage_folds(self, rows: TrainingRows, labels: np.ndarray) -> np.ndarray: ...

    def search_setup(self, fitted: Fitted) -> SearchSetup:
        """The search's starting tables and how it estimates a policy's quality and cost."""
        ...

    def settle(self, fitted: Fitted, search: SearchReport) -> SearchReport:
        """After the search: the searched parameters to assemble (checks of its own, or a refusal)."""
        ...

    def assemble(self, fitted: Fitted, search: SearchReport) -> Artifact:
        """The candidate artifact with the searched parameters."""
        ...

    @property
    def holdout_rows(self) -> int: ...

    def validate(self, fitted: Fitted, search: SearchReport, candidate: Artifact) -> bool:
        """Validate the candidate on the holdout (recorded in the report); whether it passed."""
        ...

    def refusal(self) -> Exception:
        """The error a failed validation raises (the report says why)."""
        ...

    def sections(self, fitted: Fitted, search: SearchReport) -> tuple[dict[str, Any], dict[str, Any]]:
        """The artifact's training and validation reports (called in the ``export`` block)."""
        ...


def fit_models(source: DataSource, rows: TrainingRows) -> Fitted:
    """Outcome models → buckets and triage labels → triage model, timed in the source's blocks."""
    outcomes: OutcomeModels | None = None
    bucket_report: BucketReport | None = None
    labels: np.ndarray | None = None
    triage: TriageModel | None = None
    for block in source.blocks:
        with source.timings.measure(block.name, **block.fields):
            for phase in block.phases:
                if phase == "outcomes":
                    outcomes = _train_outcomes(rows, source.outcome_settings(rows))
                elif phase == "labels":
                    assert outcomes is not None, "outcomes before labels"
                    bucket_report, labels = buckets_and_labels(outcomes, source.label_tolerance)
                    source.check_labels(rows, bucket_report, labels)
                else:
                    assert labels is not None, "labels before triage"
                    settings = source.triage_settings()
                    triage = train_triage(
                        rows.X,
                        labels,
                        source.triage_folds(rows, labels),
                        feature_names=rows.feature_names,
                        seed=settings.seed,
                        params=settings.params,
                        max_rounds=settings.max_rounds,
                    )
    assert outcomes is not None and bucket_report is not None and labels is not None and triage is not None
    return Fitted(rows=rows, outcomes=outcomes, buckets=bucket_report, labels=labels, triage=triage)


def search(source: DataSource, fitted: Fitted) -> SearchReport:
    """The seeded policy search on the out-of-fold estimates, scored as the source says."""
    setup = source.search_setup(fitted)
    data = SearchData(
        tables=setup.tables,
        probabilities=fitted.triage.oof,
        quality=fitted.outcomes.oof_quality,
        cost=fitted.outcomes.oof_cost,
        scores=setup.scores,
        costs=setup.costs,
        tokens=fitted.rows.tokens,
        holdout_rows=setup.holdout_rows,
    )
    return search_policy(
        data,
        trials=source.trials,
        seed=source.seed,
        objective=setup.objective,
        space=setup.space,
        estimator=setup.estimator,
        reference=setup.reference,
        corners=setup.corners,
    )


def run_pipeline(source: DataSource, *, version: str, key: Ed25519PrivateKey) -> Artifact:
    """Every step of a training run (module docstring); the signed artifact, or the source's error."""
    rows = source.prepare()
    fitted = fit_models(source, rows)
    timings = source.timings
    with timings.measure("search", trials=source.trials):
        searched = search(source, fitted)
    searched = source.settle(fitted, searched)
    with timings.measure("validate", rows=source.holdout_rows):
        candidate = source.assemble(fitted, searched)
        passed = source.validate(fitted, searched, candidate)
    if not passed:
        raise source.refusal()
    with timings.measure("export"):
        training, validation = source.sections(fitted, searched)
        signed = sign_artifact(candidate, training=training, validation=validation, key=key)
    return finish_run(source.report, signed, timings, version)


def _train_outcomes(rows: TrainingRows, settings: OutcomeSettings) -> OutcomeModels:
    return train_outcome_models(
        rows.X,
        rows.scores,
        rows.costs,
        rows.folds,
        models=rows.models,
        feature_names=rows.feature_names,
        cost_per=settings.cost_per,
        cost_unit_usd=settings.cost_unit_usd,
        seed=settings.seed,
        max_rounds=settings.max_rounds,
        fallback=settings.fallback,
        min_rows=settings.min_rows,
        linear_blend=settings.linear_blend,
        linear_l2=settings.linear_l2,
        choose_linear=settings.choose_linear,
    )
