"""The steps every training run shares, whatever its data source.

A run from a full-information dataset (:mod:`bifrost.trainer.bootstrap`) and a run from
logged traffic (:mod:`bifrost.trainer.retrain`) differ in where their outcome labels come
from (every model's score vs the served model's, weighted by its propensity) and hence in
how they split, estimate and validate. The rest is one pipeline: per-prompt outcome
models → buckets and triage labels from their out-of-fold predictions → triage model →
policy search → validation → the artifact section of the outcome models, a version, the
signature and the run's timings. Those shared steps live here, so both runs take them
from one place.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Protocol

import lightgbm as lgb
import numpy as np

from bifrost.router.artifact import Artifact, LinearQuality, PromptModels
from bifrost.trainer.export import Signed
from bifrost.trainer.outcomes import OutcomeModels
from bifrost.trainer.progress import Timings, step
from bifrost.trainer.triage import BucketReport, learn_buckets, triage_labels

DECIMALS = 6  # parameters are rounded to this many decimals in the artifact (stable, diff-able JSON)


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
