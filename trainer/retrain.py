"""Retrain from logged traffic: a new artifact for the current one's routers, or nothing.

Logged data only shows the served model's outcome, so every policy figure here is an
off-policy estimate (:mod:`bifrost.router.offpolicy`) from the logged propensities.
The candidate keeps the current artifact's feature schema, centroids and context
windows (routers log features in that schema); it re-learns:

* q̂(m | x) and ĉ(m | x) — per-prompt LightGBM quality and cost models of every model
  (:mod:`bifrost.trainer.outcomes`) on the rows where that model was served (a model
  with too few logged rows keeps the current artifact's models);
* the buckets and the triage model — learned from the out-of-fold q̂ and ĉ as in a
  bootstrap (:mod:`bifrost.trainer.triage`);
* α, τ_cheap, τ_hard — Optuna TPE on doubly robust estimates (reward model: the
  out-of-fold q̂), for the knob ``RetrainConfig.objective`` (default: the lowest cost
  at no less estimated quality than the current artifact, at no more cost).

Validation happens on the prompts first seen last in the window (never trained on: a
prompt's requests are all in the holdout or all in training, so repeated prompts cannot
make a candidate look better than it is on new ones) and is a **non-inferiority test**:
per-row doubly robust terms of the candidate and of the current artifact (same rows, same
reward model) are paired, and the one-sided lower confidence bound of the quality
difference must be above −2% of the current's quality; the DR cost must not be higher;
P95 latency of the models the candidate picks within the SLO; with a full-information
evaluation set, a paired bootstrap on its test rows must pass the same test. Too few
labelled holdout rows (``min_decision_rows``) refuse the run with that reason. A candidate
that fails is not signed.

The steps are the one pipeline a bootstrap takes too (:func:`bifrost.trainer.pipeline.run_pipeline`);
:class:`LoggedSource` is what logged data supplies to it (quality checks, the holdout,
the served-model labels, doubly robust search estimates, the successor, validation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

import lightgbm as lgb
import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import BUCKETS, Artifact, Reports, Thresholds
from bifrost.router.offpolicy import Estimate, cell_means, dr_terms, dr_value, estimate
from bifrost.router.policy import PolicyTables, choose
from bifrost.storage.dataset import MAX_COST_USD_PER_CALL, FullInfoDataset, valid_costs
from bifrost.storage.logged import LoggedData
from bifrost.trainer.evaluate import evaluate_artifact
from bifrost.trainer.outcomes import OutcomeModels, OutcomeReport, group_folds
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
from bifrost.trainer.predict import predict_rows
from bifrost.trainer.progress import Timings, step
from bifrost.trainer.quality import (
    Check,
    DataQualityError,
    QualityReport,
    Status,
    at_least,
    at_most,
    class_balance,
)
from bifrost.trainer.search import SearchObjective, SearchReport
from bifrost.trainer.stats import PairedComparison, paired_bootstrap, paired_normal
from bifrost.trainer.triage import BucketReport, CvReport
from bifrost.trainer.validate import ValidationCheck, non_inferiority, not_costlier


class RetrainConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of a retrain from logged data."""

    trials: int = 200
    seed: int = 0
    folds: int = 5
    holdout_fraction: float = 0.2
    max_triage_rows: int = (
        100_000  # outcome models, triage CV and search run on a uniform sample of this many training rows
    )
    max_rounds: int = 150
    label_tolerance: float = 0.05
    prior_strength: float = 20.0
    quality_tolerance: float = 0.02
    confidence: float = 0.95
    min_decision_rows: int = 500  # labelled holdout rows; fewer are too few for a non-inferiority decision
    # Lowest cost whose pessimistic quality (the DR lower bound of the paired difference, scaled to the holdout's
    # size) is no lower than the current artifact's, at no more cost: the margin validation allows (−2%) is left
    # for the winner's curse of picking the best of many trials on the same rows.
    objective: SearchObjective = SearchObjective(max_cost_share=1.0, min_quality_share=1.0)
    slo_p95_ms: float = 2500.0
    min_rows: int = 2_000
    min_label_coverage: float = 0.2
    min_propensity_coverage: float = 0.95
    min_model_rows: int = 30
    min_time_coverage: float = 0.5
    max_invalid_fraction: float = 0.01


class PolicyEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """Off-policy estimates of one policy on the holdout rows."""

    name: str
    quality: Estimate
    cost_usd: Estimate
    latency_p95_ms: float
    shares: dict[str, float]


class RetrainReport(msgspec.Struct, kw_only=True):
    """The run report kept with the run (JSON and Markdown), published or not."""

    version: str
    parent: str
    trigger_id: str | None
    window: tuple[float, float]
    router_id: str | None
    passed: bool = False
    stopped_at: str = ""
    reason: str = ""
    rows: dict[str, int] = {}
    quality: QualityReport | None = None
    outcomes: OutcomeReport | None = None
    buckets: BucketReport | None = None
    cv: CvReport | None = None
    search: SearchReport | None = None
    candidate: PolicyEstimate | None = None
    current: PolicyEstimate | None = None
    difference: PairedComparison | None = None
    full_information_difference: PairedComparison | None = None
    checks: list[ValidationCheck] = []
    full_information: dict[str, float | str] = {}
    timings: dict[str, float] = {}
    catalog_prices: dict[
        str, dict[str, float | int | str]
    ] = {}  # model → the catalog price its logged costs were re-priced at
    sha256: str = ""
    signature: str = ""
    key_id: str = ""

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    def to_markdown(self) -> str:
        verdict = "published" if self.passed else f"NOT published: stopped at {self.stopped_at}: {self.reason}"
        start, end = (datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M") for t in self.window)
        lines = [
            f"# Retrain {self.version} (parent {self.parent})",
            "",
            f"Trigger `{self.trigger_id or '-'}`, router {self.router_id or 'all'}, window {start} → {end} UTC. "
            f"Verdict: **{verdict}**.",
            "",
            f"Rows: {self.rows}",
            "",
        ]
        if self.catalog_prices:
            lines += [
                "## Catalog prices (logged costs re-priced from tokens)",
                "",
                "| model | catalog entry | in / out USD per 1M | rows re-priced | logged mean USD | "
                "re-priced mean USD |",
                "|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {m} | {p.get('entry')} | {p.get('price_in')} / {p.get('price_out')} | {p.get('repriced')} of "
                f"{p.get('rows')} | {float(p.get('logged_mean_usd', 0)):.3g} | "
                f"{float(p.get('repriced_mean_usd', 0)):.3g} |"
                for m, p in sorted(self.catalog_prices.items())
            ]
            lines.append("")
        if self.quality is not None:
            lines.append(self.quality.to_markdown())
        if self.outcomes is not None:
            o = self.outcomes
            lines += [
                "## Per-prompt outcome models (LightGBM on logged rows of each served model)",
                "",
                f"Mean out-of-fold log-loss {o.mean_logloss:.4f}, Brier {o.mean_brier:.4f}, calibration error "
                f"{o.mean_ece:.4f}. "
                + "; ".join(
                    f"{m}: {f.rows} rows" + (f" ({f.fallback})" if f.fallback else "") for m, f in o.per_model.items()
                ),
                "",
            ]
        if self.buckets is not None:
            lines += ["Buckets: " + "; ".join(f"{b}: {', '.join(m)}" for b, m in self.buckets.buckets.items()), ""]
        if self.cv is not None:
            cv = self.cv
            lines += [
                "## Triage (LightGBM on logged features)",
                "",
                f"{cv.folds}-fold CV: log-loss {cv.logloss:.4f}, accuracy {cv.accuracy:.4f} "
                f"(majority {cv.majority_accuracy:.4f}), macro-F1 {cv.macro_f1:.4f}; labels "
                f"{cv.label_counts}.",
                "",
            ]
        if self.search is not None:
            s = self.search
            lines += [
                "## Search (Optuna TPE, doubly robust estimates)",
                "",
                f"{s.trials} trials, seed {s.seed}; best trial {s.best_trial}: α={s.alpha:.4f}, "
                f"τ_cheap={s.tau_cheap:.4f}, τ_hard={s.tau_hard:.4f}; estimated quality {s.score:.4f} at "
                f"{s.cost_ratio:.1%} of the current artifact's cost.",
                "",
            ]
        if self.candidate is not None and self.current is not None:
            lines += [
                "## Validation (newest part of the window, not trained on)",
                "",
                "| policy | DR quality ± se | IPS | SNIPS | DR cost (USD) | P95 latency (ms) |",
                "|---|---|---|---|---|---|",
            ]
            for p in (self.candidate, self.current):
                q, c = p.quality, p.cost_usd
                lines.append(
                    f"| {p.name} | {q.dr:.4f} ± {q.dr_stderr:.4f} | {q.ips:.4f} | {q.snips:.4f} | "
                    f"{c.dr:.4g} | {p.latency_p95_ms:.0f} |"
                )
            if self.difference is not None:
                lines += ["", f"DR quality difference candidate − current: {self.difference.describe()}."]
            if self.full_information_difference is not None:
                lines += ["", f"Full-information score difference: {self.full_information_difference.describe()}."]
            lines += ["", "| check | passed | value | threshold | note |", "|---|---|---|---|---|"]
            lines += [
                f"| {c.name} | {'yes' if c.passed else 'NO'} | {c.value:.6g} | {c.threshold:.6g} | {c.message} |"
                for c in self.checks
            ]
            lines.append("")
        if self.full_information:
            lines += [
                "Full-information evaluation set: " + ", ".join(f"{k}={v}" for k, v in self.full_information.items()),
                "",
            ]
        lines += [
            "## Timings (s)",
            "",
            "| step | seconds |",
            "|---|---|",
            *(f"| {name} | {sec:.2f} |" for name, sec in self.timings.items()),
        ]
        return "\n".join(lines) + "\n"


class RetrainStopped(RuntimeError):
    """The run stopped before an artifact was signed; ``report`` says where and why."""

    def __init__(self, report: RetrainReport) -> None:
        self.report = report
        super().__init__(f"retrain stopped at {report.stopped_at}: {report.reason}")


def assess_logged(
    data: LoggedData, parent: Artifact, config: RetrainConfig
) -> tuple[QualityReport, np.ndarray, np.ndarray]:
    """Data-quality checks on logged rows; returns (report, usable row mask, served model index in parent order)."""
    report = QualityReport(
        source=f"warehouse window {data.window[0]:.0f}–{data.window[1]:.0f} ({data.files} files)",
        rows=len(data),
        time_coverage="",
    )
    models = parent.models
    index = {m: j for j, m in enumerate(models)}
    to_parent = np.array([index.get(m, -1) for m in data.models], dtype=np.int64)
    served = to_parent[data.model] if len(data) else np.zeros(0, dtype=np.int64)
    width = len(parent.gbdt.feature_schema.names)
    features_ok = data.features_ok & (data.features.shape[1] == width) if len(data) else np.zeros(0, dtype=bool)
    finite = valid_costs(data.cost) & np.isfinite(data.latency) & (data.latency >= 0)
    known_model = served >= 0
    propensity_ok = np.isfinite(data.propensity) & (data.propensity > 0) & (data.propensity <= 1)
    usable = features_ok & finite & known_model & propensity_ok
    report.usable_rows = int(usable.sum())
    n = max(len(data), 1)

    report.add(at_least("rows", report.usable_rows, config.min_rows, "usable logged requests in the window"))
    invalid = float((~(finite & features_ok)).sum()) / n
    report.add(
        at_most(
            "null_or_out_of_range",
            invalid,
            config.max_invalid_fraction,
            f"rows with missing/negative latency, a cost missing, negative or above {MAX_COST_USD_PER_CALL:g} USD "
            f"per call, or a feature vector not {width} wide "
            f"(schema {parent.gbdt.feature_schema.name} v{parent.gbdt.feature_schema.version})",
        )
    )
    unknown = float((~known_model).sum()) / n
    report.add(
        Check(
            name="unknown_models",
            status="warn" if unknown > 0 else "pass",
            value=round(unknown, 4),
            threshold="0",
            message="share of rows served by models the current artifact does not route to (left out)",
        )
    )
    coverage = float(propensity_ok.sum()) / n
    report.add(
        at_least(
            "propensity_coverage",
            coverage,
            config.min_propensity_coverage,
            "rows with a logged propensity in (0, 1]; off-policy estimates need them",
        )
    )
    labelled = usable & np.isfinite(data.quality) & (data.quality >= 0) & (data.quality <= 1)
    label_coverage = float(labelled.sum()) / max(report.usable_rows, 1)
    report.add(
        at_least(
            "label_coverage",
            label_coverage,
            config.min_label_coverage,
            "usable rows with a quality label (logged or from feedback)",
        )
    )
    per_model = (
        np.bincount(served[labelled], minlength=len(models))
        if labelled.any()
        else np.zeros(len(models), dtype=np.int64)
    )
    report.per_bucket = {b: int(((data.bucket == i) & usable).sum()) for i, b in enumerate(BUCKETS)}
    report.per_cluster = {
        str(c): int(k)
        for c, k in enumerate(
            np.bincount(data.cluster[usable & (data.cluster >= 0)], minlength=parent.gbdt.feature_schema.clusters)
        )
    }
    thin = [m for m, k in zip(models, per_model) if k < config.min_model_rows]
    explored = len(models) - len(thin)
    status: Status = "fail" if explored < 2 else ("warn" if thin else "pass")
    report.add(
        Check(
            name="samples_per_model",
            status=status,
            value=int(per_model.min()) if len(per_model) else 0,
            threshold=f">= {config.min_model_rows} labelled rows per model (at least 2 models)",
            message=("thin: " + ", ".join(thin) + "; their Q̂ leans on the current artifact")
            if thin
            else "every model explored",
        )
    )
    arms = {str(a): int(k) for a, k in zip(*np.unique(data.arms[usable], return_counts=True))} if usable.any() else {}
    report.splits = {f"arm {a}": k for a, k in arms.items()}
    # Coverage between the first and the last event: a gap (a sink or router outage)
    # fails; a router younger than the window only gets a warning.
    hours = np.unique((data.ts[usable] // 3600).astype(np.int64)) if usable.any() else np.zeros(0, dtype=np.int64)
    span_hours = int(hours[-1] - hours[0] + 1) if len(hours) else 0
    window_hours = max(1, math.ceil((data.window[1] - data.window[0]) / 3600.0))
    time_coverage = len(hours) / span_hours if span_hours else 0.0
    report.time_coverage = (
        f"traffic in {len(hours)} of the {span_hours} hours between the first and the last event; "
        f"the window has {window_hours} hours"
    )
    report.add(at_least("time_coverage", time_coverage, config.min_time_coverage, report.time_coverage))
    window_share = span_hours / window_hours
    report.add(
        Check(
            name="window_coverage",
            status="pass" if window_share >= 0.5 else "warn",
            value=round(window_share, 4),
            threshold=">= 0.5 (warn)",
            message="share of the trigger's window that the logged traffic spans",
        )
    )
    return report, usable, served


def retrain_from_logs(
    data: LoggedData,
    parent: Artifact,
    *,
    signing_key: Ed25519PrivateKey,
    config: RetrainConfig = RetrainConfig(),
    version: str | None = None,
    trigger_id: str | None = None,
    router_id: str | None = None,
    evaluation_set: FullInfoDataset | None = None,
    catalog_prices: dict[str, dict[str, float | int | str]] | None = None,
) -> tuple[Artifact, RetrainReport]:
    """Train, validate and sign a successor of ``parent`` from logged traffic.

    Returns:
        The signed artifact (``encode(artifact)`` is the signed bytes) and its report.

    Raises:
        RetrainStopped: data quality or validation failed; the report says why and
            nothing was signed.
    """
    version = version or new_version()
    report = RetrainReport(
        version=version,
        parent=parent.version,
        trigger_id=trigger_id,
        window=data.window,
        router_id=router_id,
        catalog_prices=dict(catalog_prices or {}),
    )
    step("start", version=version, parent=parent.version, rows=len(data), trials=config.trials)
    source = LoggedSource(data, parent, config=config, report=report, evaluation_set=evaluation_set)
    artifact = run_pipeline(source, version=version, key=signing_key)
    return artifact, report


class LoggedSource:
    """A window of logged traffic as the pipeline's data source (:class:`bifrost.trainer.pipeline.DataSource`).

    Only the served model's outcome is known, so the outcome models learn each model from
    the rows it served (falling back to the current artifact's), the search scores a policy
    by a pessimistic doubly robust estimate against the current artifact, the holdout is
    the prompts first seen last in the window, and validation pairs the DR terms of the
    candidate and of the current artifact on it (module docstring).
    """

    def __init__(
        self,
        data: LoggedData,
        parent: Artifact,
        *,
        config: RetrainConfig,
        report: RetrainReport,
        evaluation_set: FullInfoDataset | None,
    ) -> None:
        self.data, self.parent, self.config, self.evaluation_set = data, parent, config, evaluation_set
        self.report = report
        self.timings = Timings()
        self.trials, self.seed, self.label_tolerance = config.trials, config.seed, config.label_tolerance
        self.blocks = (Block("cv", ("outcomes", "labels", "triage")),)
        self.models = tuple(parent.models)

    def stop(self, where: str, reason: str) -> RetrainStopped:
        """The run stops here: the report says where and why, with the timings so far."""
        report = self.report
        report.stopped_at, report.reason = where, reason
        report.timings = rounded_timings(self.timings)
        step("stopped", at=where, reason=reason)
        return RetrainStopped(report)

    # -- prepare: quality, the newest prompts held out, Q̂ cells, a sample of the training rows ---------------------

    def prepare(self) -> TrainingRows:
        data, parent, config, report, timings = self.data, self.parent, self.config, self.report, self.timings
        with timings.measure("quality", rows=len(data)):
            quality, usable, served = assess_logged(data, parent, config)
            report.quality = quality
        if not quality.passed:
            raise self.stop("quality", str(DataQualityError(quality)))

        with timings.measure("prepare"):
            rows = np.flatnonzero(usable)
            train_rows, hold_rows = newest_prompts_holdout(data.features[rows], data.ts[rows], config.holdout_fraction)
            train_rows, hold_rows = rows[train_rows], rows[hold_rows]
            models = self.models
            k = parent.gbdt.feature_schema.clusters
            names = list(parent.gbdt.feature_schema.names)
            token_column = names.index("tokens_approx")
            clusters = (
                np.argmax(data.features[:, len(names) - k :], axis=1) if k else np.zeros(len(data), dtype=np.int64)
            )
            prior = np.array([parent.qhat[m] for m in models])
            qhat, _ = cell_means(
                data.quality[train_rows],
                served[train_rows],
                clusters[train_rows],
                len(models),
                k,
                prior=prior,
                prior_strength=config.prior_strength,
            )
            held_labelled = int(np.isfinite(data.quality[hold_rows]).sum())
            report.rows = {
                "logged": len(data),
                "usable": int(len(rows)),
                "train": int(len(train_rows)),
                "holdout": int(len(hold_rows)),
                "labelled_train": int(np.isfinite(data.quality[train_rows]).sum()),
                "labelled_holdout": held_labelled,
            }
            step("prepare", train=len(train_rows), holdout=len(hold_rows), labelled_holdout=held_labelled)
        if held_labelled < config.min_decision_rows:
            raise self.stop(
                "validate",
                f"too few rows for a decision: {held_labelled} labelled rows in the newest "
                f"{config.holdout_fraction:.0%} of the window, a non-inferiority test needs "
                f"{config.min_decision_rows}",
            )
        self.served, self.train_rows, self.hold_rows = served, train_rows, hold_rows
        self.token_column, self.qhat, self.held_labelled = token_column, qhat, held_labelled

        # The outcome models, the triage CV and the search run on a uniform sample of the training rows; a
        # model's scores and costs are known only where it was served.
        rng = np.random.default_rng(config.seed)
        sample = (
            train_rows
            if len(train_rows) <= config.max_triage_rows
            else np.sort(rng.choice(train_rows, size=config.max_triage_rows, replace=False))
        )
        X = data.features[sample].astype(np.float64)
        n = len(sample)
        scores = np.full((n, len(models)), np.nan)
        costs = np.full((n, len(models)), np.nan)
        quality_s, served_s = data.quality[sample], served[sample]
        known = np.isfinite(quality_s)
        scores[np.flatnonzero(known), served_s[known]] = quality_s[known]
        costs[np.arange(n), served_s] = data.cost[sample]
        self.sample = sample
        return TrainingRows(
            X=X,
            scores=scores,
            costs=costs,
            folds=group_folds(X, config.folds, seed=config.seed + 1),
            models=models,
            feature_names=names,
        )

    # -- the shared model-fitting steps, with this source's settings ---------------------------------------------

    def outcome_settings(self, rows: TrainingRows) -> OutcomeSettings:
        pm = self.parent.prompt_models
        return OutcomeSettings(
            cost_per=pm.cost_per,
            cost_unit_usd=pm.cost_unit_usd,
            seed=self.config.seed,
            max_rounds=self.config.max_rounds,
            fallback={m: (pm.quality[m], pm.calibration[m], pm.cost[m]) for m in self.models},
            min_rows=self.config.min_model_rows,
        )

    def check_labels(self, rows: TrainingRows, buckets: BucketReport, labels: np.ndarray) -> None:
        assert self.report.quality is not None
        self.report.quality.add(class_balance(np.bincount(labels, minlength=len(BUCKETS)), BUCKETS))

    def triage_settings(self) -> TriageSettings:
        return TriageSettings(seed=self.config.seed, params={"learning_rate": 0.1}, max_rounds=self.config.max_rounds)

    def triage_folds(self, rows: TrainingRows, labels: np.ndarray) -> np.ndarray:
        # The outcome models' prompt-grouped folds: a prompt logged again must not make the triage look accurate.
        return rows.folds

    # -- search on doubly robust estimates against the current artifact ------------------------------------------

    def search_setup(self, fitted: Fitted) -> SearchSetup:
        data, parent, config = self.data, self.parent, self.config
        outcomes, triage, X = fitted.outcomes, fitted.triage, fitted.rows.X
        sample, served = self.sample, self.served
        n = len(sample)
        unit = parent.prompt_models.cost_unit_usd
        quality_s, served_s = data.quality[sample], served[sample]
        labelled = np.isfinite(quality_s)
        weight = 1.0 / np.clip(data.propensity[sample], 1e-3, 1.0)
        cost_t, tokens_t = data.cost[sample], fitted.rows.tokens
        served_l, weight_l = served_s[labelled], weight[labelled]
        quality_l, reward_l = quality_s[labelled], outcomes.oof_quality[labelled]
        cost_rows = outcomes.oof_cost * unit
        parent_predicted = predict_rows(parent, X, seed=config.seed)

        rows_l = np.arange(int(labelled.sum()))
        z = NormalDist().inv_cdf(config.confidence)
        # The search is pessimistic, as validation will be: a policy's quality is the current
        # artifact's DR estimate plus the lower confidence bound of the paired DR difference,
        # its standard error scaled to the holdout's size (what the validation test will see).
        inflate = math.sqrt(max(len(rows_l), 1) / max(self.held_labelled, 1))

        def quality_terms(chosen_l: np.ndarray) -> np.ndarray:
            correction = np.where(chosen_l == served_l, weight_l * (quality_l - reward_l[rows_l, served_l]), 0.0)
            return reward_l[rows_l, chosen_l] + correction

        parent_chosen, _, _, _ = choose(
            PolicyTables.from_artifact(parent),
            parent_predicted.probabilities,
            parent_predicted.quality,
            parent_predicted.cost,
            tokens_t,
        )
        current_terms = quality_terms(parent_chosen[labelled])
        current_q = float(current_terms.mean())
        current_c = dr_value(parent_chosen, served_s, weight, cost_t, cost_rows)

        def estimator(tables: PolicyTables) -> tuple[float, float, np.ndarray, np.ndarray]:
            chosen, buckets, _, _ = choose(tables, triage.oof, outcomes.oof_quality, outcomes.oof_cost, tokens_t)
            d = quality_terms(chosen[labelled]) - current_terms
            se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
            return (
                current_q + float(d.mean()) - z * se * inflate,
                dr_value(chosen, served_s, weight, cost_t, cost_rows),
                buckets,
                chosen,
            )

        return SearchSetup(
            tables=PolicyTables.from_artifact(msgspec.structs.replace(parent, buckets=fitted.buckets.buckets)),
            objective=config.objective,
            scores=np.zeros((n, 0)),
            costs=np.zeros((n, 0)),
            estimator=estimator,
            reference=(f"current {parent.version}", current_q, current_c),
            corners=[{"alpha": parent.alpha, "tau_cheap": parent.thresholds.cheap, "tau_hard": parent.thresholds.hard}],
        )

    def settle(self, fitted: Fitted, search: SearchReport) -> SearchReport:
        report = self.report
        report.outcomes, report.buckets, report.cv = fitted.outcomes.report, fitted.buckets, fitted.triage.cv
        report.search = search
        return search

    def assemble(self, fitted: Fitted, search: SearchReport) -> Artifact:
        return _successor(
            self.parent,
            version=self.report.version,
            search=search,
            qhat=self.qhat,
            buckets=fitted.buckets.buckets,
            model_string=fitted.triage.model_string,
            outcomes=fitted.outcomes,
        )

    # -- validation: paired DR terms on the newest prompts (and the evaluation set, if any) ----------------------

    @property
    def holdout_rows(self) -> int:
        return len(self.hold_rows)

    def validate(self, fitted: Fitted, search: SearchReport, candidate: Artifact) -> bool:
        data, parent, config, report = self.data, self.parent, self.config, self.report
        holdout = _Holdout.of(
            data,
            self.served,
            self.hold_rows,
            self.token_column,
            _latency_samples(data, self.served, self.train_rows, len(self.models)),
            config.seed,
        )
        reward = holdout.reward(candidate)
        mine, mine_terms = holdout.estimate("candidate " + report.version, candidate, reward)
        theirs, their_terms = holdout.estimate("current " + parent.version, parent, reward)
        report.candidate, report.current = mine, theirs
        difference = paired_normal(
            mine_terms, their_terms, confidence=config.confidence, method="paired doubly robust terms"
        )
        report.difference = difference
        report.checks = [
            non_inferiority(
                "quality_non_inferior",
                difference,
                theirs.quality.dr,
                config.quality_tolerance,
                measured=f"{config.confidence:.0%} lower bound of the paired DR quality difference vs current",
                bound=f"≥ −{config.quality_tolerance:.0%} of its DR quality ({theirs.quality.dr:.4f})",
            ),
            not_costlier("cost_not_higher", mine.cost_usd.dr, theirs.cost_usd.dr, "DR mean cost vs current"),
            ValidationCheck(
                name="latency_slo",
                passed=mine.latency_p95_ms <= config.slo_p95_ms,
                value=mine.latency_p95_ms,
                threshold=config.slo_p95_ms,
                message="P95 latency of the models the candidate picks (logged latencies)",
            ),
        ]
        if self.evaluation_set is not None:
            report.checks += _full_information_checks(candidate, parent, self.evaluation_set, config, report)
        passed = all(c.passed for c in report.checks)
        step(
            "validate",
            passed=passed,
            quality=mine.quality.dr,
            current_quality=theirs.quality.dr,
            difference=difference.difference,
            lower=difference.lower,
            cost=mine.cost_usd.dr,
            current_cost=theirs.cost_usd.dr,
            p95_ms=mine.latency_p95_ms,
        )
        return passed

    def refusal(self) -> Exception:
        failed = "; ".join(f"{c.name} {c.value:.4g} vs {c.threshold:.4g}" for c in self.report.checks if not c.passed)
        return self.stop("validate", f"candidate not shown non-inferior to the current artifact: {failed}")

    def sections(self, fitted: Fitted, search: SearchReport) -> tuple[dict[str, Any], dict[str, Any]]:
        report = self.report
        report.passed = True
        report.timings = rounded_timings(self.timings)
        training = {
            "source": "logged",
            "trigger_id": report.trigger_id,
            "window": list(self.data.window),
            "rows": report.rows,
            "quality": msgspec.to_builtins(report.quality),
            "outcomes": msgspec.to_builtins(fitted.outcomes.report),
            "buckets": msgspec.to_builtins(fitted.buckets),
            "cv": msgspec.to_builtins(fitted.triage.cv),
            "search": msgspec.to_builtins(search),
            "timings_s": report.timings,
            "catalog_prices": report.catalog_prices,
        }
        validation = {
            "passed": True,
            "candidate": msgspec.to_builtins(report.candidate),
            "current": msgspec.to_builtins(report.current),
            "difference": msgspec.to_builtins(report.difference),
            "checks": msgspec.to_builtins(report.checks),
            "full_information": report.full_information,
        }
        return training, validation


def newest_prompts_holdout(features: np.ndarray, ts: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout) row indices: the holdout is the prompts first seen last, with every row of theirs.

    A prompt (an identical feature vector) is in the holdout or in training, never both:
    a candidate trained on a prompt's other requests would be judged on what it has seen.
    Prompts are taken from the newest first appearance backwards until the holdout has
    ``fraction`` of the rows, so on traffic of mostly new prompts this is the newest part
    of the window (drift shows), and on replayed or repeated prompts it is still disjoint.
    """
    n = len(ts)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    X = np.ascontiguousarray(features)
    _, group = np.unique(X.view(np.dtype((np.void, X.dtype.itemsize * X.shape[1]))).ravel(), return_inverse=True)
    group = group.reshape(-1)
    first = np.full(int(group.max()) + 1, np.inf)
    np.minimum.at(first, group, ts)
    sizes = np.bincount(group)
    newest_first = np.argsort(-first, kind="stable")
    taken = np.cumsum(sizes[newest_first])
    k = int(np.searchsorted(taken, fraction * n)) + 1 if fraction > 0 else 0
    held = np.zeros(len(sizes), dtype=bool)
    held[newest_first[:k]] = True
    mask = held[group]
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _tokens(data: LoggedData, rows: np.ndarray, token_column: int) -> np.ndarray:
    logged = data.tokens_in[rows]
    approx = data.features[rows, token_column].astype(np.float64)
    return np.where(np.isfinite(logged) & (logged > 0), logged, approx)


def _latency_samples(data: LoggedData, served: np.ndarray, rows: np.ndarray, n_models: int) -> list[np.ndarray]:
    everything = data.latency[rows]
    out = []
    for m in range(n_models):
        own = data.latency[rows][served[rows] == m]
        out.append(own if len(own) else everything)
    return out


@dataclass(frozen=True)
class _Holdout:
    """The validation rows and everything about them that does not depend on the policy."""

    X: np.ndarray
    tokens: np.ndarray
    served: np.ndarray
    propensity: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    latency_samples: list[np.ndarray]
    seed: int

    @classmethod
    def of(
        cls,
        data: LoggedData,
        served: np.ndarray,
        rows: np.ndarray,
        token_column: int,
        latency_samples: list[np.ndarray],
        seed: int,
    ) -> _Holdout:
        X = data.features[rows].astype(np.float64)
        return cls(
            X=X,
            tokens=X[:, token_column],
            served=served[rows],
            propensity=data.propensity[rows],
            quality=data.quality[rows],
            cost=data.cost[rows],
            latency_samples=latency_samples,
            seed=seed,
        )

    def reward(self, candidate: Artifact) -> tuple[np.ndarray, np.ndarray]:
        """The reward and cost models of the DR estimates: the candidate's q̂ and ĉ (USD), fitted on train rows only."""
        predicted = predict_rows(candidate, self.X, seed=self.seed)
        return predicted.quality, predicted.cost * candidate.prompt_models.cost_unit_usd

    def estimate(
        self, name: str, artifact: Artifact, models: tuple[np.ndarray, np.ndarray]
    ) -> tuple[PolicyEstimate, np.ndarray]:
        """Off-policy estimates of the artifact's routing of these rows, and its per-row DR quality terms."""
        reward_model, cost_model = models
        tables = PolicyTables.from_artifact(artifact)
        predicted = predict_rows(artifact, self.X, seed=self.seed)
        chosen, _, _, _ = choose(tables, predicted.probabilities, predicted.quality, predicted.cost, self.tokens)
        # One logged latency per row, drawn from the chosen model's samples: the same draws
        # as one ``rng.integers(len(samples[m]))`` per row in order, in one call.
        sizes = np.array([len(s) for s in self.latency_samples], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        pool = np.concatenate(self.latency_samples) if len(self.latency_samples) else np.zeros(0)
        drawn = (
            pool[starts[chosen] + np.random.default_rng(self.seed).integers(sizes[chosen])]
            if len(chosen)
            else np.zeros(0)
        )
        shares = np.bincount(chosen, minlength=len(tables.models)) / max(len(chosen), 1)
        labelled = np.isfinite(self.quality) & np.isfinite(self.propensity)
        terms = dr_terms(
            chosen[labelled],
            self.served[labelled],
            self.propensity[labelled],
            self.quality[labelled],
            reward_model[labelled],
        )
        return PolicyEstimate(
            name=name,
            quality=estimate(chosen, self.served, self.propensity, self.quality, reward_model),
            cost_usd=estimate(chosen, self.served, self.propensity, self.cost, cost_model),
            latency_p95_ms=float(np.percentile(drawn, 95)) if len(drawn) else math.nan,
            shares={m: round(float(s), 4) for m, s in zip(tables.models, shares) if s > 0},
        ), terms


def _full_information_checks(
    candidate: Artifact, parent: Artifact, dataset: FullInfoDataset, config: RetrainConfig, report: RetrainReport
) -> list[ValidationCheck]:
    split = "test" if (dataset.splits == "test").any() else "all"
    evaluation = evaluate_artifact(candidate, dataset, split=split, against=parent, seed=config.seed)
    mine, theirs, difference = evaluation.policy, evaluation.against, evaluation.against_difference
    assert theirs is not None and difference is not None
    difference = paired_bootstrap(np.zeros(0), np.zeros(0)) if difference is None else difference
    report.full_information_difference = difference
    report.full_information = {
        "dataset": dataset.source,
        "split": split,
        "rows": evaluation.rows,
        "candidate_score": mine.score,
        "candidate_cost_usd": mine.cost_usd,
        "current_score": theirs.score,
        "current_cost_usd": theirs.cost_usd,
        "difference": round(difference.difference, 6),
        "lower": round(difference.lower, 6),
    }
    return [
        non_inferiority(
            "full_information_quality",
            difference,
            theirs.score,
            config.quality_tolerance,
            measured=f"{config.confidence:.0%} lower bound of the paired score difference on {split} rows of "
            "the evaluation set",
            bound=f"≥ −{config.quality_tolerance:.0%} of the current's score",
            unresolved=f"its {evaluation.rows} rows cannot resolve a difference that small (too few rows for a "
            "decision)",
        ),
        not_costlier(
            "full_information_cost", mine.cost_usd, theirs.cost_usd, "mean cost on the evaluation set vs current"
        ),
    ]


def _successor(
    parent: Artifact,
    *,
    version: str,
    search: SearchReport,
    qhat: np.ndarray,
    buckets: dict[str, list[str]],
    model_string: str,
    outcomes: OutcomeModels,
) -> Artifact:
    r = DECIMALS
    models = parent.models
    pm = prompt_models_of(outcomes)
    chat = np.array([float(np.mean(outcomes.oof_cost[:, j])) for j in range(len(models))])
    chat = chat / chat.max() if chat.max() > 0 else chat
    return msgspec.structs.replace(
        parent,
        version=version,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        parent=parent.version,
        alpha=round(float(search.alpha), r),
        thresholds=Thresholds(cheap=round(float(search.tau_cheap), r), hard=round(float(search.tau_hard), r)),
        penalties={m: round(float(search.penalties[m]), r) for m in models},
        qhat={m: [round(float(v), r) for v in qhat[j]] for j, m in enumerate(models)},
        chat={m: round(float(chat[j]), r) for j, m in enumerate(models)},
        buckets=buckets,
        gbdt=msgspec.structs.replace(parent.gbdt, model=model_string, framework_version=lgb.__version__),
        prompt_models=msgspec.structs.replace(pm, cost_per=parent.prompt_models.cost_per),
        reports=Reports(),
    ).check()
