"""Bootstrap a first artifact from a full-information dataset, before any traffic exists.

Steps (each logged as ``event=trainer.step step=…`` and timed):

1. ``load`` and ``quality``: read the file, raw data-quality checks (stop on failure).
   Rows of the train split whose normalized prompt text appears in another split (the
   evaluation split) are dropped: nothing evaluated on is ever trained on.
2. ``cluster``: hashed TF-IDF IDF weights and spherical k-means on the *fit* rows; a
   stratified-by-task *holdout* of the train split is kept aside for validation. Copies of
   one prompt stay together (holdout and every CV fold are grouped by normalized text).
3. ``features``: every fit row through the router's own feature extractor.
4. ``outcomes``: per-prompt quality and cost models of every LLM
   (:mod:`bifrost.trainer.outcomes`), k-fold CV, out-of-fold predictions.
5. ``buckets``: bucket membership learned from the out-of-fold predictions, triage labels
   from them (:mod:`bifrost.trainer.triage`); class balance joins the quality report.
6. ``cv``: LightGBM triage with stratified k-fold CV, then the final model on all fit rows.
7. ``search``: Optuna TPE over α, τ_cheap, τ_hard on out-of-fold estimates, for the
   cost/quality knob (``SearchObjective``: a cost budget or a quality floor).
8. ``validate``: the assembled artifact routes the holdout from prompt text; it must pass
   (:mod:`bifrost.trainer.validate`: a paired non-inferiority test against the parent)
   or nothing is signed.
9. ``export``: canonical bytes, sha256, Ed25519 signature.

Steps 4–9 are the one pipeline every run takes (:func:`bifrost.trainer.pipeline.run_pipeline`);
:class:`FullInformationSource` is what this data source supplies to it (steps 1–3, the
search on full-information rows, the gate check, validation on the holdout).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import BUCKETS, Artifact, Gbdt, Thresholds
from bifrost.router.features import CHARS_PER_TOKEN, FeatureExtractor, FeatureSchema
from bifrost.router.keys import load_private_key
from bifrost.router.policy import PolicyTables
from bifrost.router.reference import ReferenceRouter
from bifrost.router.text import HashedTfidf, fit_idf
from bifrost.storage.dataset import FullInfoDataset, best_model, load_dataset, prompt_digest, prompt_groups
from bifrost.trainer.clustering import spherical_kmeans
from bifrost.trainer.estimates import normalized_costs, quality_table
from bifrost.trainer.evaluate import LINEAGE_ROOT, TrainedPrompts, lineage_root, trained_prompts
from bifrost.trainer.outcomes import OutcomeModels, OutcomeReport
from bifrost.trainer.pipeline import (
    DECIMALS,
    Block,
    Fitted,
    OutcomeSettings,
    SearchSetup,
    TrainingRows,
    TriageSettings,
    new_version,
    prompt_models_of,
    rounded_timings,
    run_pipeline,
)
from bifrost.trainer.progress import Timings, step
from bifrost.trainer.quality import (
    QualityReport,
    QualityThresholds,
    add_shift_from_parent,
    assess_dataset,
    assess_training_set,
    cost_tails,
    require,
)
from bifrost.trainer.search import SearchObjective, SearchReport, SearchSpace
from bifrost.trainer.triage import BucketReport, CvReport, stratified_folds
from bifrost.trainer.validate import TargetUnreachable, ValidationFailed, ValidationReport, validate_candidate


class BootstrapConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of a bootstrap run; the defaults are the ones the README results use."""

    trials: int = 200
    seed: int = 0
    folds: int = 5
    clusters: int = 48
    dimensions: int = 2048
    holdout_fraction: float = 0.15
    label_tolerance: float = 0.05
    prior_strength: float = 5.0
    train_split: str = "train"
    # The goal is ≤ 50% of the best model's cost on prompts never seen: the search keeps the
    # 95% prediction bound of the held-out cost share ≤ 40% (the bound covers sampling noise;
    # the other 10 points are for a task mix unlike the training rows': the bundled test split
    # cost 3–11 points more than the holdout at 45%, and 45% missed 50% on 7 of 10 bundled and
    # binary runs once the held-out prompts moved), and validation holds the holdout to the goal's
    # 50% (the 40% is a search bound, and a 95% bound is exceeded in about one run in twenty).
    objective: SearchObjective = SearchObjective(max_cost_share=0.40, validate_cost_share=0.50)
    space: SearchSpace = SearchSpace()
    quality: QualityThresholds = QualityThresholds()
    # q̂ = w·LightGBM + (1 − w)·logistic regression on the same features. With choose_blend,
    # w ∈ {0, .25, .5, .75, 1} and the L2 are chosen per run by grouped CV on the fit rows
    # (out-of-fold routing score over cost shares 30–50%; never the test split), 0.5/10
    # kept on ties; None routes with the trees alone.
    linear_blend: float | None = 0.5
    linear_l2: float = 10.0
    choose_blend: bool = True
    quality_tolerance: float = 0.02
    confidence: float = 0.95
    min_validation_rows: int = 100
    decision_slo_ms: float = 5.0


class BootstrapReport(msgspec.Struct, kw_only=True):
    """The run report kept with the artifact (JSON and Markdown)."""

    version: str
    parent: str | None
    dataset: str
    config: BootstrapConfig
    rows: dict[str, int]
    quality: QualityReport
    buckets: BucketReport
    clustering: dict[str, float]
    outcomes: OutcomeReport
    cv: CvReport
    search: SearchReport
    validation: ValidationReport
    gate_check: dict[str, float | str] = {}
    timings: dict[str, float]
    sha256: str = ""
    signature: str = ""
    key_id: str = ""

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    def to_markdown(self) -> str:
        s, cv, o, b = self.search, self.cv, self.outcomes, self.buckets
        lines = [
            f"# Training run {self.version}",
            "",
            f"Dataset `{self.dataset}`; rows {self.rows}; parent {self.parent or '—'}; sha256 "
            f"`{self.sha256}`; key {self.key_id}",
            "",
            f"{self.rows.get('dropped_overlap', 0)} rows of the train split share their prompt text with another split "
            "(the evaluation split) and were dropped before anything was fitted; copies of a prompt stay on one side "
            "of the holdout and of every CV fold.",
            "",
            self.quality.to_markdown(),
            "## Per-prompt outcome models (LightGBM, out-of-fold)",
            "",
            f"{o.folds}-fold CV; cost per `{o.cost_per}`, unit {o.cost_unit_usd:.4g} USD (the reference model's mean "
            f"cost). Mean log-loss {o.mean_logloss:.4f}, Brier {o.mean_brier:.4f}, calibration error {o.mean_ece:.4f}."
            + (
                f" q̂ = {o.linear_blend:g}·LightGBM + {1 - o.linear_blend:g}·logistic regression (L2 {o.linear_l2:g}); "
                "the table's figures are the blend's, out-of-fold."
                if o.linear_blend is not None
                else ""
            )
            + (
                " Chosen by grouped CV (out-of-fold routing score over cost shares "
                f"{', '.join(f'{b:.0%}' for b in o.blend_choice.band)}): "
                + ", ".join(f"{c.weight:g}/L2 {c.l2:g}: {c.value:.4f}" for c in o.blend_choice.candidates)
                + "."
                if o.blend_choice is not None
                else ""
            ),
            "",
            "| model | rows | mean label | log-loss | Brier | AUC | ECE | rounds | cost MAPE | cost rounds |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *(
                f"| {m} | {f.rows} | {f.mean_label:.3f} | {f.logloss:.4f} | {f.brier:.4f} | "
                f"{'—' if f.auc is None else f'{f.auc:.3f}'} | {f.ece:.4f} | {f.quality_rounds} | {f.cost_mape:.3f} | "
                f"{f.cost_rounds} |"
                for m, f in o.per_model.items()
            ),
            "",
            "## Buckets (learned) and triage (LightGBM, cheap/mid/hard)",
            "",
            "Buckets: "
            + "; ".join(f"{name}: {', '.join(m)}" for name, m in b.buckets.items())
            + ". Learned at "
            + ", ".join(f"budget {budget:.3g} (λ={w:.3g})" for budget, w in zip(b.budgets, b.cost_weights))
            + ".",
            "",
            f"{cv.folds}-fold CV: log-loss {cv.logloss:.4f}, accuracy {cv.accuracy:.4f} (majority "
            f"class {cv.majority_accuracy:.4f}), "
            f"macro-F1 {cv.macro_f1:.4f}, recall {cv.recall}, final model {cv.rounds} rounds.",
            "",
            "| fold | rows | log-loss | accuracy | macro-F1 | rounds |",
            "|---|---|---|---|---|---|",
            *(
                f"| {f.fold} | {f.rows} | {f.logloss:.4f} | {f.accuracy:.4f} | {f.macro_f1:.4f} | {f.best_iteration} |"
                for f in cv.per_fold
            ),
            "",
            "## Search (Optuna TPE, out-of-fold estimates)",
            "",
            (
                f"Escalation gate {'kept' if s.gate == 'on' else 'OFF (τ_hard = 0: every prompt may use every model)'}"
                ": "
                f"the best gated trial beats the best policy without it by {s.gate_gain:+.4f} (objective), one SE "
                f"{s.gate_gain_se:.4f}."
                if s.gate_gain is not None
                else ""
            ),
            "",
            f"{s.trials} trials, seed {s.seed}; best trial {s.best_trial}: α={s.alpha:.4f}, τ_cheap={s.tau_cheap:.4f}, "
            f"τ_hard={s.tau_hard:.4f}; objective: {s.objective.describe()} "
            f"({'feasible' if s.feasible else 'NOT feasible'}); "
            f"estimated score {s.score:.4f} at {s.cost_ratio:.1%} of {s.reference_model}'s cost "
            f"(its score {s.reference_score:.4f}); buckets {s.bucket_share}; models {s.model_share}." + _bounds_text(s),
            "",
            *(
                [f"Gate check on the holdout (rows the search never saw): {self.gate_check}.", ""]
                if self.gate_check
                else []
            ),
            self.validation.to_markdown(),
            "## Timings (s)",
            "",
            "| step | seconds |",
            "|---|---|",
            *(f"| {name} | {sec:.2f} |" for name, sec in self.timings.items()),
        ]
        return "\n".join(lines) + "\n"


def _bounds_text(s: SearchReport) -> str:
    parts = ([f"cost share ≤ {s.cost_upper:.1%}"] if s.cost_upper is not None else []) + (
        [f"score share ≥ {s.share_lower:.1%}"] if s.share_lower is not None else []
    )
    if not parts or s.objective.confidence is None:
        return ""
    return (
        f" Constraint bounds ({s.objective.confidence:.0%}, a prediction bound for {s.rows} out-of-fold and "
        f"{s.holdout_rows} held-out prompts): " + "; ".join(parts) + "."
    )


def holdout_mask(prompts: Sequence[str], tasks: np.ndarray, fraction: float) -> np.ndarray:
    """Rows kept aside for validation: about ``fraction`` of every task's distinct prompts.

    A prompt is held out when its :func:`~bifrost.storage.dataset.prompt_digest`, read as a
    number in [0, 1), is below ``fraction`` — a property of the text, not of the seed or of
    the other rows. So a retrain with another seed, or on grown or trimmed data, holds out the
    same prompts, and its parent (which never trained on them) is compared with it on all of
    them. Copies of a prompt (same :func:`~bifrost.storage.dataset.prompt_key`) fall on one
    side. Per task (a prompt's task is its first row's): with ≥ 2 distinct prompts, at least
    one is held out (the lowest digest) and at least one is kept (the highest). Tasks of a
    few prompts (under 1/``fraction``) are pooled into one such stratum (an outside test gave
    every prompt its own task: nothing was held out, and validation read the training rows).
    """
    mask = np.zeros(len(tasks), dtype=bool)
    if fraction <= 0 or not len(tasks):
        return mask
    digests = [prompt_digest(p) for p in prompts]
    _, first, inverse = np.unique(np.asarray(digests, dtype=object), return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    position = np.array([int(digests[i], 16) / 2.0**64 for i in first])
    _, strata = np.unique(np.asarray(tasks)[first].astype(str), return_inverse=True)
    strata = strata.reshape(-1)
    # Tasks too small to hold out about ``fraction`` of (fewer than 1/fraction prompts) share one
    # pooled stratum: a 2-prompt task would otherwise hold out half (an outside test: 49% held out).
    strata[np.bincount(strata)[strata] < max(2, math.ceil(1 / fraction))] = -1
    held = position < fraction
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        if len(members) < 2:
            held[members] = False
            continue
        if not held[members].any():
            held[members[np.argmin(position[members])]] = True
        if held[members].all():
            held[members[np.argmax(position[members])]] = False
    return held[inverse]


def bootstrap_artifact(
    dataset: str | Path | FullInfoDataset,
    *,
    trials: int = 200,
    seed: int = 0,
    signing_key: Ed25519PrivateKey | str | Path | None = None,
    parent: Artifact | None = None,
    config: BootstrapConfig | None = None,
    version: str | None = None,
    root: Artifact | None = None,
) -> tuple[Artifact, BootstrapReport]:
    """Train, validate and sign a first artifact from a full-information dataset.

    Args:
        dataset: path of a full-information file, or a loaded (e.g. sampled) dataset.
        trials: Optuna trials (overrides ``config.trials``).
        seed: seed of every random step (overrides ``config.seed``).
        signing_key: Ed25519 key, or a key file; default from ``BIFROST_SIGNING_KEY``.
        parent: the current artifact: validation must show the candidate non-inferior
            in quality and not more expensive, and it becomes the ``parent``.
        config: other knobs (:class:`BootstrapConfig`).
        version: the artifact version (default: time-based, unique).
        root: the first artifact of the parent's lineage (:func:`lineage_root`), when it is
            not the parent: the candidate must be non-inferior to it too, so retrains cannot
            drift from it step by step.

    Returns:
        The signed artifact (``encode(artifact)`` is the signed bytes) and the run report
        (its ``sha256`` and ``signature`` publish it).

    Raises:
        DataQualityError: the data failed a quality check (the report says which).
        ValidationFailed: the candidate failed validation; nothing was signed.
        SigningKeyError: no usable signing key.
    """
    config = msgspec.structs.replace(config or BootstrapConfig(), trials=trials, seed=seed)
    key = signing_key if isinstance(signing_key, Ed25519PrivateKey) else load_private_key(signing_key)
    version = version or new_version()
    step("start", version=version, trials=config.trials, seed=config.seed, clusters=config.clusters)
    source = FullInformationSource(dataset, config=config, parent=parent, version=version, root=root)
    artifact = run_pipeline(source, version=version, key=key)
    return artifact, source.report


class FullInformationSource:
    """A full-information dataset as the pipeline's data source (:class:`bifrost.trainer.pipeline.DataSource`).

    Every model's score and cost is known on every row, so the search replays a policy on
    the out-of-fold rows exactly, the holdout is a stratified-by-task share of the train
    split (copies of a prompt together), the escalation gate is checked once more on it,
    and validation routes the holdout from prompt text (:func:`validate_candidate`).
    """

    def __init__(
        self,
        dataset: str | Path | FullInfoDataset,
        *,
        config: BootstrapConfig,
        parent: Artifact | None,
        version: str,
        root: Artifact | None = None,
    ) -> None:
        self.dataset, self.config, self.parent, self.version = dataset, config, parent, version
        self.root = root if root is not None and parent is not None and root.version != parent.version else None
        self.timings = Timings()
        self.trials, self.seed, self.label_tolerance = config.trials, config.seed, config.label_tolerance
        self._report: BootstrapReport | None = None
        self._gate_check: dict[str, float | str] = {}
        self._validation: ValidationReport | None = None

    # -- prepare: load, quality, holdout, text features and clusters, feature vectors ----------------------------

    def prepare(self) -> TrainingRows:
        config, timings = self.config, self.timings
        with timings.measure("load"):
            full = self.dataset if isinstance(self.dataset, FullInfoDataset) else load_dataset(self.dataset)
        with timings.measure("quality"):
            quality = require(assess_dataset(full, config.quality, train_split=config.train_split))
            if self.parent is not None:
                add_shift_from_parent(quality, self.parent.reports.training)
            # Never train on a prompt that is evaluated on: rows of the train split whose normalized
            # text is in another split are dropped (the quality report's split_overlap counts them).
            train, dropped = full.training_split(config.train_split)
            sizes = np.array([len(p) / CHARS_PER_TOKEN for p in train.prompts])  # the router's tokens_approx
            tails, capped = cost_tails(train.costs, train.models, sizes)
            quality.add(tails)
            if capped is not None:
                train = dataclasses.replace(train, costs=capped)
            step(
                "quality",
                rows=len(full),
                train=len(train),
                dropped_overlap=dropped,
                checks=len(quality.checks),
                passed=quality.passed,
            )

        with timings.measure("cluster"):
            groups = prompt_groups(train.prompts)
            held = holdout_mask(train.prompts, train.tasks, config.holdout_fraction)
            fit, holdout = train.take(~held), train.take(held)
            fit_groups = groups[~held]
            text = fit_idf(fit.prompts, dimensions=config.dimensions)
            dense = HashedTfidf(text).dense(fit.prompts)
            clustering = spherical_kmeans(dense, config.clusters, seed=config.seed)
            k = clustering.centroids.shape[0]
            centroids = np.round(clustering.centroids, DECIMALS)
            step(
                "cluster",
                fit=len(fit),
                holdout=len(holdout),
                k=k,
                mean_similarity=clustering.mean_similarity,
                iterations=clustering.iterations,
            )

        with timings.measure("features"):
            schema = FeatureSchema.build(text, k)
            extractor = FeatureExtractor(schema, centroids)
            extracted = [extractor.extract(p) for p in fit.prompts]
            X = np.asarray([v for v, _ in extracted], dtype=np.float64)
            clusters = np.asarray([c for _, c in extracted], dtype=np.int64)
            models = fit.models
            reference = best_model(fit.scores)
            cost_unit = float(fit.costs[:, reference].mean()) or 1.0
            step("features", rows=len(X), features=X.shape[1], reference=models[reference], cost_unit_usd=cost_unit)

        self.full, self.quality, self.dropped = full, quality, dropped
        self.train, self.fit, self.holdout, self.fit_groups = train, fit, holdout, fit_groups
        self.clustering, self.k, self.centroids, self.schema = clustering, k, centroids, schema
        self.clusters, self.reference, self.cost_unit = clusters, reference, cost_unit
        _, task_codes = np.unique(fit.tasks.astype(str), return_inverse=True)
        return TrainingRows(
            X=X,
            scores=fit.scores,
            costs=fit.costs,
            folds=stratified_folds(task_codes, config.folds, seed=config.seed, groups=fit_groups),
            models=models,
            feature_names=list(schema.names),
        )

    # -- the shared model-fitting steps, with this source's settings ---------------------------------------------

    @property
    def blocks(self) -> tuple[Block, ...]:
        return (
            Block("outcomes", ("outcomes",), {"folds": self.config.folds, "models": len(self.fit.models)}),
            Block("buckets", ("labels",)),
            Block("cv", ("triage",), {"folds": self.config.folds}),
        )

    def outcome_settings(self, rows: TrainingRows) -> OutcomeSettings:
        config = self.config
        return OutcomeSettings(
            cost_unit_usd=self.cost_unit,
            seed=config.seed,
            linear_blend=config.linear_blend,
            linear_l2=config.linear_l2,
            choose_linear=config.choose_blend and config.linear_blend is not None,
        )

    def check_labels(self, rows: TrainingRows, buckets: BucketReport, labels: np.ndarray) -> None:
        config = self.config
        require(
            assess_training_set(
                self.quality, self.clusters, labels, n_clusters=self.k, classes=BUCKETS, thresholds=config.quality
            )
        )
        step(
            "buckets",
            cheap=len(buckets.buckets["cheap"]),
            mid=len(buckets.buckets["mid"]),
            labels=dict(zip(BUCKETS, np.bincount(labels, minlength=3).tolist())),
        )

    def triage_settings(self) -> TriageSettings:
        return TriageSettings(seed=self.config.seed)

    def triage_folds(self, rows: TrainingRows, labels: np.ndarray) -> np.ndarray:
        return stratified_folds(labels, self.config.folds, seed=self.config.seed, groups=self.fit_groups)

    # -- search on full-information rows, the gate check on the holdout -------------------------------------------

    def search_setup(self, fitted: Fitted) -> SearchSetup:
        fit, config = self.fit, self.config
        self.qhat = quality_table(fit.scores, self.clusters, self.k, prior_strength=config.prior_strength)
        self.chat = normalized_costs(fit.costs)
        base = self._assemble(fitted, 1.0, 1.0, 1.0, np.zeros(len(fit.models)))
        return SearchSetup(
            tables=PolicyTables.from_artifact(base),
            objective=config.objective,
            space=config.space,
            scores=fit.scores,
            costs=fit.costs,
            holdout_rows=len(self.holdout),
        )

    def settle(self, fitted: Fitted, search: SearchReport) -> SearchReport:
        if search.gate == "on" and search.ungated_alpha is not None and len(self.holdout):
            with self.timings.measure("gate", rows=len(self.holdout)):
                search, self._gate_check = _check_gate(
                    search,
                    self.holdout,
                    lambda *params: self._assemble(fitted, *params),
                    self.config,
                    self.fit.models,
                )
        if not search.feasible:
            raise TargetUnreachable(_unreachable(search))
        return search

    def assemble(self, fitted: Fitted, search: SearchReport) -> Artifact:
        penalties = np.array([search.penalties[m] for m in self.fit.models])
        return self._assemble(fitted, search.alpha, search.tau_cheap, search.tau_hard, penalties)

    def _assemble(
        self, fitted: Fitted, alpha: float, tau_cheap: float, tau_hard: float, penalties: np.ndarray
    ) -> Artifact:
        return _artifact(
            version=self.version,
            parent=self.parent,
            alpha=alpha,
            tau_cheap=tau_cheap,
            tau_hard=tau_hard,
            penalties=penalties,
            models=self.fit.models,
            qhat=self.qhat,
            chat=self.chat,
            buckets=fitted.buckets.buckets,
            context=self.full.context,
            centroids=self.centroids,
            model_string=fitted.triage.model_string,
            schema=self.schema,
            outcomes=fitted.outcomes,
        )

    # -- validation: the candidate routes the holdout from prompt text ---------------------------------------------

    @property
    def holdout_rows(self) -> int:
        return len(self.holdout)

    def validate(self, fitted: Fitted, search: SearchReport, candidate: Artifact) -> bool:
        config, parent = self.config, self.parent
        validation = validate_candidate(
            ReferenceRouter(candidate),
            self.holdout if len(self.holdout) else self.fit,
            parent=ReferenceRouter(parent) if parent is not None else None,
            parent_trained=trained_prompts(parent) if parent is not None else None,
            root=ReferenceRouter(self.root) if self.root is not None else None,
            root_trained=trained_prompts(self.root) if self.root is not None else None,
            quality_tolerance=config.quality_tolerance,
            decision_slo_ms=config.decision_slo_ms,
            confidence=config.confidence,
            min_rows=config.min_validation_rows,
            seed=config.seed,
            reference=self.fit.models[self.reference],
            max_cost_share=(
                config.objective.max_cost_share
                if config.objective.validate_cost_share is None
                else config.objective.validate_cost_share
            ),
            min_quality_share=config.objective.min_quality_share,
        )
        step(
            "validate",
            passed=validation.passed,
            score=validation.candidate.score,
            cost_vs_best=validation.candidate.cost_vs_best,
            decision_ms_p50=validation.decision_ms["p50"],
        )
        self._validation = validation
        self._report = self._run_report(fitted, search)
        return validation.passed

    def _run_report(self, fitted: Fitted, search: SearchReport) -> BootstrapReport:
        assert self._validation is not None, "validate before the report"
        clustering = self.clustering
        return BootstrapReport(
            version=self.version,
            parent=self.parent.version if self.parent else None,
            dataset=self.full.source,
            config=self.config,
            rows={
                "dataset": len(self.full),
                "train": len(self.train),
                "dropped_overlap": self.dropped,
                "fit": len(self.fit),
                "holdout": len(self.holdout),
            },
            quality=self.quality,
            buckets=fitted.buckets,
            clustering={
                "k": self.k,
                "mean_similarity": round(clustering.mean_similarity, 6),
                "iterations": clustering.iterations,
            },
            outcomes=fitted.outcomes.report,
            cv=fitted.triage.cv,
            search=search,
            validation=self._validation,
            gate_check=self._gate_check,
            timings={},
        )

    @property
    def report(self) -> BootstrapReport:
        assert self._report is not None, "the report exists once the candidate is validated"
        return self._report

    def refusal(self) -> Exception:
        assert self._validation is not None
        self.report.timings = rounded_timings(self.timings)
        return ValidationFailed(self._validation)

    def sections(self, fitted: Fitted, search: SearchReport) -> tuple[dict[str, Any], dict[str, Any]]:
        report = self.report
        training = msgspec.to_builtins(
            {
                "dataset": self.full.source,
                "rows": report.rows,
                "config": self.config,
                "quality": self.quality,
                "buckets": fitted.buckets,
                "clustering": report.clustering,
                "outcomes": fitted.outcomes.report,
                "cv": fitted.triage.cv,
                "search": search,
                "gate_check": self._gate_check,
                "timings_s": rounded_timings(self.timings),
                # What a successor's validation must not compare this artifact on (trainer/validate.py).
                **TrainedPrompts.of(self.fit.prompts).record(),
                LINEAGE_ROOT: lineage_root(self.parent),
            }
        )
        return training, msgspec.to_builtins(self._validation)


def _artifact(
    *,
    version: str,
    parent: Artifact | None,
    alpha: float,
    tau_cheap: float,
    tau_hard: float,
    penalties: np.ndarray,
    models: tuple[str, ...],
    qhat: np.ndarray,
    chat: np.ndarray,
    buckets: dict[str, list[str]],
    context: dict[str, int],
    centroids: np.ndarray,
    model_string: str,
    schema: FeatureSchema,
    outcomes: OutcomeModels,
) -> Artifact:
    r = DECIMALS
    return Artifact(
        version=version,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        parent=parent.version if parent is not None else None,
        alpha=round(float(alpha), r),
        thresholds=Thresholds(cheap=round(float(tau_cheap), r), hard=round(float(tau_hard), r)),
        penalties={m: round(float(p), r) for m, p in zip(models, penalties)},
        qhat={m: [round(float(v), r) for v in qhat[j]] for j, m in enumerate(models)},
        chat={m: round(float(chat[j]), r) for j, m in enumerate(models)},
        buckets=buckets,
        centroids=[[round(float(v), r) for v in row] for row in centroids],
        gbdt=Gbdt(framework="lightgbm", framework_version=lgb.__version__, model=model_string, feature_schema=schema),
        prompt_models=prompt_models_of(outcomes),
        context={m: c for m, c in context.items() if m in models},
    ).check()


def _check_gate(
    search: SearchReport, holdout: FullInfoDataset, assemble, config: BootstrapConfig, models: tuple[str, ...]
) -> tuple[SearchReport, dict[str, float | str]]:
    """Keep the escalation gate only if it beats the best policy without it on the holdout.

    Two candidates, the gated winner and the ungated one, are routed from prompt text on
    rows the search never saw; the gate stays when its objective is higher by more than
    z·SE of the paired per-prompt score difference (one-sided, ``config.confidence``).
    """
    from statistics import NormalDist

    from bifrost.router.policy import choose
    from bifrost.trainer.evaluate import route_dataset

    gated = ReferenceRouter(
        assemble(search.alpha, search.tau_cheap, search.tau_hard, np.array([search.penalties[m] for m in models]))
    )
    columns, batch = route_dataset(gated, holdout)
    assert batch.quality is not None and batch.cost is not None  # route_dataset fills both
    assert search.ungated_alpha is not None  # the caller runs this check only then
    S, C = holdout.scores[:, columns], holdout.costs[:, columns]
    rows = np.arange(len(holdout))
    tokens = batch.features[:, list(gated.artifact.gbdt.feature_schema.names).index("tokens_approx")]
    best = best_model(S)
    ref_s, ref_c = float(S[:, best].mean()), float(C[:, best].mean()) or 1.0
    ungated = gated.tables.with_params(
        alpha=search.ungated_alpha,
        tau_cheap=config.space.tau_cheap[1],
        tau_hard=config.space.tau_hard[0],
        penalty=np.zeros(len(models)),
    )
    outcomes = {}
    for name, tables in (("gated", gated.tables), ("ungated", ungated)):
        chosen, _, _, _ = choose(tables, batch.probabilities, batch.quality, batch.cost, tokens)
        s, c = S[rows, chosen], C[rows, chosen]
        outcomes[name] = (s, config.objective.value(float(s.mean()), float(c.mean()) / ref_c, ref_s))
    diff = outcomes["gated"][0] - outcomes["ungated"][0]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    gain = outcomes["gated"][1] - outcomes["ungated"][1]
    keep = gain > NormalDist().inv_cdf(config.confidence) * se
    check: dict[str, float | str] = {
        "rows": len(holdout),
        "objective_gain": round(gain, 6),
        "score_diff_se": round(se, 6),
        "verdict": "gate kept" if keep else "gate off (not better on the holdout)",
    }
    step("gate", rows=len(holdout), gain=gain, se=se, keep=keep)
    if keep:
        return search, check
    return msgspec.structs.replace(
        search,
        gate="off",
        alpha=search.ungated_alpha,
        tau_cheap=config.space.tau_cheap[1],
        tau_hard=config.space.tau_hard[0],
        best_trial=-1,
        value=search.ungated_value,
        score=search.ungated_score,
        cost_ratio=search.ungated_cost_ratio,
        cost_usd=(search.ungated_cost_ratio or 0.0) * search.reference_cost_usd,
        bucket_share={"cheap": 0.0, "mid": 0.0, "hard": 1.0},
        model_share={},
        cost_upper=search.ungated_cost_upper,
        share_lower=search.ungated_share_lower,
        feasible=bool(search.ungated_feasible),
    ), check


def _reached(
    extreme: str, estimate: float | None, bound: float | None, *, where: str, missing: str, note: str = ""
) -> str:
    """What the search reached on one constraint: its ``extreme`` ("highest"/"lowest") bound and
    estimate among the policies that met the other (``where``), or ``missing`` when none did."""
    if estimate is None:
        return missing
    if bound is not None:
        best = "best" if extreme == "highest" else "lowest"
        return f"the {extreme} bound any policy{where} reached is {bound:.1%} ({best} estimate {estimate:.1%}{note})"
    return f"the {'best' if extreme == 'highest' else 'lowest'} estimate any policy{where} reached is {estimate:.1%}"


def _unreachable(search: SearchReport) -> str:
    """Why the knob's target cannot be met, with the figures the search reached."""
    o, ref = search.objective, search.reference_model
    bounded = o.confidence is not None and (search.best_share_lower is not None or search.lowest_cost_upper is not None)
    how = (
        f" with {o.confidence:.0%} confidence on new prompts (a prediction bound for {search.rows} out-of-fold "
        f"and {search.holdout_rows} held-out prompts)"
        if bounded
        else " (out-of-fold estimates)"
    )
    parts = []
    share = search.score / search.reference_score if search.reference_score > 0 else search.score
    both = o.min_quality_share is not None and o.max_cost_share is not None
    if (
        o.min_quality_share is not None
        and (search.share_lower if search.share_lower is not None else share) < o.min_quality_share
    ):
        within = f" at ≤ {o.max_cost_share:.1%} of its cost" if both and o.max_cost_share is not None else ""
        reached = _reached(
            "highest",
            search.best_share,
            search.best_share_lower if bounded else None,
            where=" within the cost cap" if both else "",
            missing="no searched policy met the cost cap at all",
            note="; the bound is computed for this target",
        )
        parts.append(f"no searched policy scores ≥ {o.min_quality_share:.1%} of {ref}'s score{within}{how}: {reached}")
    upper = search.cost_upper if search.cost_upper is not None else search.cost_ratio
    if o.max_cost_share is not None and upper > o.max_cost_share and not (both and parts):
        reached = _reached(
            "lowest",
            search.lowest_cost_ratio,
            search.lowest_cost_upper if bounded else None,
            where=" at the quality target" if both else "",
            missing="no searched policy met the quality target at all",
        )
        parts.append(f"no searched policy costs ≤ {o.max_cost_share:.1%} of {ref}'s cost{how}: {reached}")
    return (
        "the requested target cannot be met: "
        + "; ".join(parts or ["no feasible policy"])
        + "; nothing was signed (ask for a reachable target, or train on more data)"
    )
