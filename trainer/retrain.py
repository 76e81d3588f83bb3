"""Retrain from logged traffic: a new artifact for the current one's routers, or nothing.

Logged data only shows the served model's outcome, so every policy figure here is an
off-policy estimate (:mod:`bifrost.trainer.offpolicy`) from the logged propensities.
The candidate keeps the current artifact's feature schema, centroids, buckets and
context windows (routers log features in that schema); it re-learns:

* Q̂ — shrunken mean logged quality per (model, cluster), the current Q̂ as the prior;
* Ĉ — per-model price per input token from logged cost, normalized;
* the triage model — LightGBM on the logged feature vectors, labelled by the reward
  model (the cheapest bucket whose best model is within tolerance of the best one);
* α, τ_cheap, τ_hard and penalties — Optuna TPE maximizing the doubly robust quality
  estimate at cost, relative to the current artifact's own estimate on the same rows.

Validation happens on the newest part of the window (by event time, never trained on):
DR quality ≥ (1 − 2%) × the current artifact's, DR cost ≤ the current's, P95 latency of
the models the candidate picks within the SLO, and, when a full-information evaluation
set is given, the same two comparisons on it. A candidate that fails is not signed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import lightgbm as lgb
import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import BUCKETS, Artifact, Reports, Thresholds
from bifrost.router.gbdt import TreeEnsemble
from bifrost.router.policy import PolicyTables, choose
from bifrost.router.reference import ReferenceRouter
from bifrost.trainer.bootstrap import new_version
from bifrost.trainer.dataset import FullInfoDataset
from bifrost.trainer.evaluate import evaluate_artifact
from bifrost.trainer.export import sign_artifact
from bifrost.trainer.logged import LoggedData
from bifrost.trainer.offpolicy import Estimate, cell_means, dr_value, estimate
from bifrost.trainer.progress import Timings, step
from bifrost.trainer.quality import Check, DataQualityError, QualityReport, Status
from bifrost.trainer.search import SearchData, SearchObjective, SearchReport, SearchSpace, search_policy
from bifrost.trainer.triage import CvReport, stratified_folds, train_triage, triage_labels
from bifrost.trainer.validate import ValidationCheck

_DECIMALS = 6


class RetrainConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of a retrain from logged data."""

    trials: int = 200
    seed: int = 0
    folds: int = 5
    holdout_fraction: float = 0.2
    max_triage_rows: int = 100_000  # the triage CV and the search run on a uniform sample of this many training rows
    max_rounds: int = 150
    label_tolerance: float = 0.05
    prior_strength: float = 20.0
    quality_tolerance: float = 0.02
    cost_weight: float = 0.05
    slo_p95_ms: float = 2500.0
    min_rows: int = 2_000
    min_label_coverage: float = 0.2
    min_propensity_coverage: float = 0.95
    min_model_rows: int = 30
    min_time_coverage: float = 0.5
    min_class_rows: int = 10
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
    cv: CvReport | None = None
    search: SearchReport | None = None
    candidate: PolicyEstimate | None = None
    current: PolicyEstimate | None = None
    checks: list[ValidationCheck] = []
    full_information: dict[str, float | str] = {}
    timings: dict[str, float] = {}
    sha256: str = ""
    signature: str = ""
    key_id: str = ""

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    def to_markdown(self) -> str:
        verdict = "published" if self.passed else f"NOT published: stopped at {self.stopped_at}: {self.reason}"
        start, end = (datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M") for t in self.window)
        lines = [f"# Retrain {self.version} (parent {self.parent})", "",
                 f"Trigger `{self.trigger_id or '-'}`, router {self.router_id or 'all'}, window {start} → {end} UTC. "
                 f"Verdict: **{verdict}**.", "", f"Rows: {self.rows}", ""]
        if self.quality is not None:
            lines.append(self.quality.to_markdown())
        if self.cv is not None:
            cv = self.cv
            lines += ["## Triage (LightGBM on logged features)", "",
                      f"{cv.folds}-fold CV: log-loss {cv.logloss:.4f}, accuracy {cv.accuracy:.4f} "
                      f"(majority {cv.majority_accuracy:.4f}), macro-F1 {cv.macro_f1:.4f}; labels {cv.label_counts}.", ""]
        if self.search is not None:
            s = self.search
            lines += ["## Search (Optuna TPE, doubly robust estimates)", "",
                      f"{s.trials} trials, seed {s.seed}; best trial {s.best_trial}: α={s.alpha:.4f}, "
                      f"τ_cheap={s.tau_cheap:.4f}, τ_hard={s.tau_hard:.4f}; estimated quality {s.score:.4f} at "
                      f"{s.cost_ratio:.1%} of the current artifact's cost.", ""]
        if self.candidate is not None and self.current is not None:
            lines += ["## Validation (newest part of the window, not trained on)", "",
                      "| policy | DR quality ± se | IPS | SNIPS | DR cost (USD) | P95 latency (ms) |", "|---|---|---|---|---|---|"]
            for p in (self.candidate, self.current):
                q, c = p.quality, p.cost_usd
                lines.append(f"| {p.name} | {q.dr:.4f} ± {q.dr_stderr:.4f} | {q.ips:.4f} | {q.snips:.4f} | "
                             f"{c.dr:.4g} | {p.latency_p95_ms:.0f} |")
            lines += ["", "| check | passed | value | threshold | note |", "|---|---|---|---|---|"]
            lines += [f"| {c.name} | {'yes' if c.passed else 'NO'} | {c.value:.6g} | {c.threshold:.6g} | {c.message} |"
                      for c in self.checks]
            lines.append("")
        if self.full_information:
            lines += ["Full-information evaluation set: " + ", ".join(f"{k}={v}" for k, v in self.full_information.items()), ""]
        lines += ["## Timings (s)", "", "| step | seconds |", "|---|---|",
                  *(f"| {name} | {sec:.2f} |" for name, sec in self.timings.items())]
        return "\n".join(lines) + "\n"


class RetrainStopped(RuntimeError):
    """The run stopped before an artifact was signed; ``report`` says where and why."""

    def __init__(self, report: RetrainReport) -> None:
        self.report = report
        super().__init__(f"retrain stopped at {report.stopped_at}: {report.reason}")


def assess_logged(data: LoggedData, parent: Artifact, config: RetrainConfig) -> tuple[QualityReport, np.ndarray, np.ndarray]:
    """Data-quality checks on logged rows; returns (report, usable row mask, served model index in parent order)."""
    report = QualityReport(source=f"warehouse window {data.window[0]:.0f}–{data.window[1]:.0f} ({data.files} files)",
                           rows=len(data), time_coverage="")
    models = parent.models
    index = {m: j for j, m in enumerate(models)}
    to_parent = np.array([index.get(m, -1) for m in data.models], dtype=np.int64)
    served = to_parent[data.model] if len(data) else np.zeros(0, dtype=np.int64)
    width = len(parent.gbdt.feature_schema.names)
    features_ok = data.features_ok & (data.features.shape[1] == width) if len(data) else np.zeros(0, dtype=bool)
    finite = np.isfinite(data.cost) & (data.cost >= 0) & np.isfinite(data.latency) & (data.latency >= 0)
    known_model = served >= 0
    propensity_ok = np.isfinite(data.propensity) & (data.propensity > 0) & (data.propensity <= 1)
    usable = features_ok & finite & known_model & propensity_ok
    report.usable_rows = int(usable.sum())
    n = max(len(data), 1)

    report.add(_at_least("rows", report.usable_rows, config.min_rows, "usable logged requests in the window"))
    invalid = float((~(finite & features_ok)).sum()) / n
    report.add(Check(name="null_or_out_of_range", status="pass" if invalid <= config.max_invalid_fraction else "fail",
                     value=round(invalid, 4), threshold=f"<= {config.max_invalid_fraction}",
                     message=f"rows with missing/negative cost or latency, or a feature vector not {width} wide "
                             f"(schema {parent.gbdt.feature_schema.name} v{parent.gbdt.feature_schema.version})"))
    unknown = float((~known_model).sum()) / n
    report.add(Check(name="unknown_models", status="warn" if unknown > 0 else "pass", value=round(unknown, 4), threshold="0",
                     message="share of rows served by models the current artifact does not route to (left out)"))
    coverage = float(propensity_ok.sum()) / n
    report.add(Check(name="propensity_coverage", status="pass" if coverage >= config.min_propensity_coverage else "fail",
                     value=round(coverage, 4), threshold=f">= {config.min_propensity_coverage}",
                     message="rows with a logged propensity in (0, 1]; off-policy estimates need them"))
    labelled = usable & np.isfinite(data.quality) & (data.quality >= 0) & (data.quality <= 1)
    label_coverage = float(labelled.sum()) / max(report.usable_rows, 1)
    report.add(Check(name="label_coverage", status="pass" if label_coverage >= config.min_label_coverage else "fail",
                     value=round(label_coverage, 4), threshold=f">= {config.min_label_coverage}",
                     message="usable rows with a quality label (logged or from feedback)"))
    per_model = np.bincount(served[labelled], minlength=len(models)) if labelled.any() else np.zeros(len(models), dtype=np.int64)
    report.per_bucket = {b: int(((data.bucket == i) & usable).sum()) for i, b in enumerate(BUCKETS)}
    report.per_cluster = {str(c): int(k) for c, k in enumerate(np.bincount(data.cluster[usable & (data.cluster >= 0)],
                                                                           minlength=parent.gbdt.feature_schema.clusters))}
    thin = [m for m, k in zip(models, per_model) if k < config.min_model_rows]
    explored = len(models) - len(thin)
    status: Status = "fail" if explored < 2 else ("warn" if thin else "pass")
    report.add(Check(name="samples_per_model", status=status, value=int(per_model.min()) if len(per_model) else 0,
                     threshold=f">= {config.min_model_rows} labelled rows per model (at least 2 models)",
                     message=("thin: " + ", ".join(thin) + "; their Q̂ leans on the current artifact") if thin else "every model explored"))
    arms = {str(a): int(k) for a, k in zip(*np.unique(data.arms[usable], return_counts=True))} if usable.any() else {}
    report.splits = {f"arm {a}": k for a, k in arms.items()}
    # Coverage between the first and the last event: a gap (a sink or router outage)
    # fails; a router younger than the window only gets a warning.
    hours = np.unique((data.ts[usable] // 3600).astype(np.int64)) if usable.any() else np.zeros(0, dtype=np.int64)
    span_hours = int(hours[-1] - hours[0] + 1) if len(hours) else 0
    window_hours = max(1, math.ceil((data.window[1] - data.window[0]) / 3600.0))
    time_coverage = len(hours) / span_hours if span_hours else 0.0
    report.time_coverage = (f"traffic in {len(hours)} of the {span_hours} hours between the first and the last event; "
                            f"the window has {window_hours} hours")
    report.add(Check(name="time_coverage", status="pass" if time_coverage >= config.min_time_coverage else "fail",
                     value=round(time_coverage, 4), threshold=f">= {config.min_time_coverage}", message=report.time_coverage))
    window_share = span_hours / window_hours
    report.add(Check(name="window_coverage", status="pass" if window_share >= 0.5 else "warn", value=round(window_share, 4),
                     threshold=">= 0.5 (warn)", message="share of the trigger's window that the logged traffic spans"))
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
) -> tuple[Artifact, RetrainReport]:
    """Train, validate and sign a successor of ``parent`` from logged traffic.

    Returns:
        The signed artifact (``encode(artifact)`` is the signed bytes) and its report.

    Raises:
        RetrainStopped: data quality or validation failed; the report says why and
            nothing was signed.
    """
    timings = Timings()
    version = version or new_version()
    report = RetrainReport(version=version, parent=parent.version, trigger_id=trigger_id, window=data.window,
                           router_id=router_id)
    step("start", version=version, parent=parent.version, rows=len(data), trials=config.trials)

    def stop(where: str, reason: str) -> RetrainStopped:
        report.stopped_at, report.reason = where, reason
        report.timings = {name: round(sec, 3) for name, sec in timings.seconds.items()}
        step("stopped", at=where, reason=reason)
        return RetrainStopped(report)

    with timings.measure("quality", rows=len(data)):
        quality, usable, served = assess_logged(data, parent, config)
        report.quality = quality
    if not quality.passed:
        raise stop("quality", str(DataQualityError(quality)))

    with timings.measure("prepare"):
        rows = np.flatnonzero(usable)
        order = rows[np.argsort(data.ts[rows], kind="stable")]
        n_hold = int(round(config.holdout_fraction * len(order)))
        train_rows, hold_rows = np.sort(order[: len(order) - n_hold]), np.sort(order[len(order) - n_hold:])
        models = parent.models
        k = parent.gbdt.feature_schema.clusters
        names = list(parent.gbdt.feature_schema.names)
        token_column = names.index("tokens_approx")
        clusters = np.argmax(data.features[:, len(names) - k:], axis=1) if k else np.zeros(len(data), dtype=np.int64)
        prior = np.array([parent.qhat[m] for m in models])
        qhat, cell_counts = cell_means(data.quality[train_rows], served[train_rows], clusters[train_rows], len(models), k,
                                       prior=prior, prior_strength=config.prior_strength)
        price = _price_per_token(data, served, train_rows, len(models))
        tiers = np.array([0 if m in parent.buckets["cheap"] else 1 if m in parent.buckets["mid"] else 2 for m in models])
        report.rows = {"logged": len(data), "usable": int(len(rows)), "train": int(len(train_rows)),
                       "holdout": int(len(hold_rows)), "labelled_train": int(np.isfinite(data.quality[train_rows]).sum())}
        step("prepare", train=len(train_rows), holdout=len(hold_rows), cells_with_data=int((cell_counts > 0).sum()))

    with timings.measure("cv"):
        rng = np.random.default_rng(config.seed)
        triage_rows = train_rows if len(train_rows) <= config.max_triage_rows else np.sort(
            rng.choice(train_rows, size=config.max_triage_rows, replace=False))
        X = data.features[triage_rows]
        rewards = qhat[:, clusters[triage_rows]].T
        labels = triage_labels(rewards, tiers, tolerance=config.label_tolerance)
        counts = np.bincount(labels, minlength=len(BUCKETS))
        if counts.min() < config.min_class_rows:
            quality.add(Check(name="class_balance", status="fail", value=int(counts.min()),
                              threshold=f">= {config.min_class_rows} rows per class",
                              message="triage labels " + ", ".join(f"{b}={int(c)}" for b, c in zip(BUCKETS, counts))))
            raise stop("quality", f"triage labels too unbalanced to train ({dict(zip(BUCKETS, counts.tolist()))})")
        folds = stratified_folds(labels, config.folds, seed=config.seed)
        triage = train_triage(X, labels, folds, feature_names=names, seed=config.seed,
                              params={"num_threads": 2, "learning_rate": 0.1}, max_rounds=config.max_rounds)
        report.cv = triage.cv

    with timings.measure("search", trials=config.trials):
        # Out-of-fold reward model: a row's Q̂ never saw the row, or the search would
        # favour the cells whose few logged outcomes happened to be lucky.
        reward_rows = _out_of_fold_rewards(data, served, clusters, train_rows, triage_rows, prior, config)
        cost_rows = price[None, :] * _tokens(data, triage_rows, token_column)[:, None]
        labelled = np.isfinite(data.quality[triage_rows])
        weight = 1.0 / np.clip(data.propensity[triage_rows], 1e-3, 1.0)
        # Per-row inputs of the DR estimates, sliced once rather than in every trial.
        served_t, cost_t, clusters_t, tokens_t = served[triage_rows], data.cost[triage_rows], clusters[triage_rows], X[:, token_column]
        served_l, weight_l = served_t[labelled], weight[labelled]
        quality_l, reward_l = data.quality[triage_rows][labelled], reward_rows[labelled]
        parent_tables = PolicyTables.from_artifact(parent)
        parent_probabilities = triage_probabilities(parent.gbdt.model, X, seed=config.seed)

        def estimator(tables: PolicyTables, probabilities: np.ndarray = triage.oof,
                      q_rows: np.ndarray | None = reward_rows) -> tuple[float, float, np.ndarray]:
            chosen, buckets, _, _ = choose(tables, probabilities, clusters_t, tokens_t, q_rows=q_rows)
            q = dr_value(chosen[labelled], served_l, weight_l, quality_l, reward_l)
            c = dr_value(chosen, served_t, weight, cost_t, cost_rows)
            return q, c, buckets

        current_q, current_c, _ = estimator(parent_tables, parent_probabilities, None)
        objective = SearchObjective(cost_weight=config.cost_weight, cost_budget=1.0, budget_penalty=10.0,
                                    score_floor=(1.0 - config.quality_tolerance / 2) * current_q)
        base = PolicyTables.from_artifact(msgspec.structs.replace(parent, qhat={m: list(qhat[j]) for j, m in enumerate(models)}))
        search = search_policy(
            SearchData(tables=base, probabilities=triage.oof, q_rows=reward_rows, scores=np.zeros((len(triage_rows), 0)),
                       costs=np.zeros((len(triage_rows), 0)), tokens=tokens_t, tiers=tiers),
            trials=config.trials, seed=config.seed, objective=objective, space=SearchSpace(tau_cheap=(0.0, 1.0), tau_hard=(0.0, 1.0)),
            estimator=estimator, reference=(f"current {parent.version}", current_q, current_c),
            corners=[{"alpha": parent.alpha, "tau_cheap": parent.thresholds.cheap, "tau_hard": parent.thresholds.hard}],
        )
        report.search = search

    with timings.measure("validate", rows=len(hold_rows)):
        chat = price * float(np.nanmean(_tokens(data, train_rows, token_column)))
        chat = chat / chat.max() if chat.max() > 0 else chat
        candidate = _successor(parent, version=version, search=search, qhat=qhat, chat=chat,
                               model_string=triage.model_string)
        holdout = _Holdout.of(data, served, clusters, hold_rows, qhat, price, token_column,
                              _latency_samples(data, served, train_rows, len(models)), config.seed)
        mine = holdout.estimate("candidate " + version, candidate)
        theirs = holdout.estimate("current " + parent.version, parent)
        report.candidate, report.current = mine, theirs
        floor = (1.0 - config.quality_tolerance) * theirs.quality.dr
        report.checks = [
            ValidationCheck(name="quality_non_inferior", passed=mine.quality.dr >= floor, value=mine.quality.dr,
                            threshold=floor, message=f"DR quality vs current ({theirs.quality.dr:.4f}) −{config.quality_tolerance:.0%}"),
            ValidationCheck(name="cost_not_higher", passed=mine.cost_usd.dr <= theirs.cost_usd.dr * (1 + 1e-9),
                            value=mine.cost_usd.dr, threshold=theirs.cost_usd.dr, message="DR mean cost vs current"),
            ValidationCheck(name="latency_slo", passed=mine.latency_p95_ms <= config.slo_p95_ms, value=mine.latency_p95_ms,
                            threshold=config.slo_p95_ms, message="P95 latency of the models the candidate picks (logged latencies)"),
        ]
        if evaluation_set is not None:
            report.checks += _full_information_checks(candidate, parent, evaluation_set, config, report)
        passed = all(c.passed for c in report.checks)
        step("validate", passed=passed, quality=mine.quality.dr, current_quality=theirs.quality.dr,
             cost=mine.cost_usd.dr, current_cost=theirs.cost_usd.dr, p95_ms=mine.latency_p95_ms)
    if not passed:
        failed = "; ".join(f"{c.name} {c.value:.4g} vs {c.threshold:.4g}" for c in report.checks if not c.passed)
        raise stop("validate", f"candidate not better than the current artifact: {failed}")

    with timings.measure("export"):
        report.passed = True
        report.timings = {name: round(sec, 3) for name, sec in timings.seconds.items()}
        training = {"source": "logged", "trigger_id": trigger_id, "window": list(data.window), "rows": report.rows,
                    "quality": msgspec.to_builtins(quality), "cv": msgspec.to_builtins(triage.cv),
                    "search": msgspec.to_builtins(search), "timings_s": report.timings}
        validation = {"passed": True, "candidate": msgspec.to_builtins(mine), "current": msgspec.to_builtins(theirs),
                      "checks": msgspec.to_builtins(report.checks), "full_information": report.full_information}
        signed = sign_artifact(candidate, training=training, validation=validation, key=signing_key)
        artifact, report.sha256, report.signature, report.key_id = signed.artifact, signed.sha256, signed.signature, signed.key_id
    report.timings = {name: round(sec, 3) for name, sec in timings.seconds.items()}
    report.timings["total"] = round(timings.total, 3)
    step("done", version=version, seconds=report.timings["total"])
    return artifact, report


def _out_of_fold_rewards(
    data: LoggedData, served: np.ndarray, clusters: np.ndarray, train_rows: np.ndarray, rows: np.ndarray,
    prior: np.ndarray, config: RetrainConfig,
) -> np.ndarray:
    """``(len(rows), models)``: each row's Q̂ of its cluster, fitted without the row's fold."""
    n_models, k = prior.shape
    fold_of = np.random.default_rng(config.seed + 1).integers(config.folds, size=len(data))
    out = np.zeros((len(rows), n_models))
    for fold in range(config.folds):
        fit = train_rows[fold_of[train_rows] != fold]
        table, _ = cell_means(data.quality[fit], served[fit], clusters[fit], n_models, k, prior=prior,
                              prior_strength=config.prior_strength)
        mine = fold_of[rows] == fold
        out[mine] = table[:, clusters[rows[mine]]].T
    return out


_PARITY_ROWS = 2_000
_PARITY_TOLERANCE = 1e-9
_CHUNK_ROWS = 8_192


def triage_probabilities(
    model_string: str, X: np.ndarray, *, ensemble: TreeEnsemble | None = None, seed: int = 0
) -> np.ndarray:
    """Triage probabilities of many rows, as the routers' evaluator computes them.

    LightGBM's own predictor evaluates the same trees an order of magnitude faster than
    the NumPy evaluator the routers run (:class:`TreeEnsemble`, which matches it within
    1e-9: ``tests/router/test_gbdt.py``). Every call checks a random sample of rows against
    the routers' evaluator and, on any disagreement, uses that evaluator for every row.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    ensemble = ensemble or TreeEnsemble.from_model_string(model_string)
    if len(X) <= _PARITY_ROWS:
        return ensemble.predict_proba(X)
    fast = np.asarray(lgb.Booster(model_str=model_string).predict(X, num_threads=2), dtype=np.float64).reshape(len(X), -1)
    sample = np.sort(np.random.default_rng(seed).choice(len(X), size=_PARITY_ROWS, replace=False))
    reference = ensemble.predict_proba(X[sample])
    if fast.shape[1] == reference.shape[1] and np.abs(fast[sample] - reference).max() <= _PARITY_TOLERANCE:
        return fast
    step("predict", status="fallback", reason="LightGBM and the router's evaluator disagree", rows=len(X))
    return np.concatenate([ensemble.predict_proba(X[lo:lo + _CHUNK_ROWS]) for lo in range(0, len(X), _CHUNK_ROWS)])


def _at_least(name: str, value: int, limit: int, message: str) -> Check:
    return Check(name=name, status="pass" if value >= limit else "fail", value=value, threshold=f">= {limit}", message=message)


def _tokens(data: LoggedData, rows: np.ndarray, token_column: int) -> np.ndarray:
    logged = data.tokens_in[rows]
    approx = data.features[rows, token_column].astype(np.float64)
    return np.where(np.isfinite(logged) & (logged > 0), logged, approx)


def _price_per_token(data: LoggedData, served: np.ndarray, rows: np.ndarray, n_models: int) -> np.ndarray:
    """USD per input token per model (served rows only); unseen models get the dearest seen price."""
    tokens = np.zeros(n_models)
    cost = np.zeros(n_models)
    np.add.at(tokens, served[rows], np.where(np.isfinite(data.tokens_in[rows]), data.tokens_in[rows], 0.0))
    np.add.at(cost, served[rows], data.cost[rows])
    price = np.where(tokens > 0, cost / np.maximum(tokens, 1e-12), np.nan)
    fallback = np.nanmax(price) if np.isfinite(price).any() else 0.0
    return np.where(np.isfinite(price), price, fallback)


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
    clusters: np.ndarray
    tokens: np.ndarray
    served: np.ndarray
    propensity: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    reward_model: np.ndarray
    cost_model: np.ndarray
    latency_samples: list[np.ndarray]
    seed: int

    @classmethod
    def of(cls, data: LoggedData, served: np.ndarray, clusters: np.ndarray, rows: np.ndarray, qhat: np.ndarray,
           price: np.ndarray, token_column: int, latency_samples: list[np.ndarray], seed: int) -> "_Holdout":
        X = data.features[rows].astype(np.float64)
        return cls(X=X, clusters=clusters[rows], tokens=X[:, token_column], served=served[rows],
                   propensity=data.propensity[rows], quality=data.quality[rows], cost=data.cost[rows],
                   reward_model=qhat[:, clusters[rows]].T,
                   cost_model=price[None, :] * _tokens(data, rows, token_column)[:, None],
                   latency_samples=latency_samples, seed=seed)

    def estimate(self, name: str, artifact: Artifact) -> PolicyEstimate:
        """Off-policy estimates of the artifact's routing of these rows."""
        router = ReferenceRouter(artifact)
        probabilities = triage_probabilities(artifact.gbdt.model, self.X, ensemble=router.ensemble, seed=self.seed)
        chosen, _, _, _ = choose(router.tables, probabilities, self.clusters, self.tokens)
        # One logged latency per row, drawn from the chosen model's samples: the same draws
        # as one ``rng.integers(len(samples[m]))`` per row in order, in one call.
        sizes = np.array([len(s) for s in self.latency_samples], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        pool = np.concatenate(self.latency_samples) if len(self.latency_samples) else np.zeros(0)
        drawn = pool[starts[chosen] + np.random.default_rng(self.seed).integers(sizes[chosen])] if len(chosen) else np.zeros(0)
        shares = np.bincount(chosen, minlength=len(router.tables.models)) / max(len(chosen), 1)
        return PolicyEstimate(
            name=name,
            quality=estimate(chosen, self.served, self.propensity, self.quality, self.reward_model),
            cost_usd=estimate(chosen, self.served, self.propensity, self.cost, self.cost_model),
            latency_p95_ms=float(np.percentile(drawn, 95)) if len(drawn) else math.nan,
            shares={m: round(float(s), 4) for m, s in zip(router.tables.models, shares) if s > 0},
        )


def _full_information_checks(
    candidate: Artifact, parent: Artifact, dataset: FullInfoDataset, config: RetrainConfig, report: RetrainReport
) -> list[ValidationCheck]:
    split = "test" if (dataset.splits == "test").any() else "all"
    evaluation = evaluate_artifact(candidate, dataset, split=split, against=parent)
    mine, theirs = evaluation.policy, evaluation.against
    assert theirs is not None
    report.full_information = {"dataset": dataset.source, "split": split, "rows": evaluation.rows,
                               "candidate_score": mine.score, "candidate_cost_usd": mine.cost_usd,
                               "current_score": theirs.score, "current_cost_usd": theirs.cost_usd}
    floor = (1.0 - config.quality_tolerance) * theirs.score
    return [
        ValidationCheck(name="full_information_quality", passed=mine.score >= floor, value=mine.score, threshold=floor,
                        message=f"score on {split} rows of the evaluation set vs current −{config.quality_tolerance:.0%}"),
        ValidationCheck(name="full_information_cost", passed=mine.cost_usd <= theirs.cost_usd * (1 + 1e-9),
                        value=mine.cost_usd, threshold=theirs.cost_usd, message="mean cost on the evaluation set vs current"),
    ]


def _successor(parent: Artifact, *, version: str, search: SearchReport, qhat: np.ndarray, chat: np.ndarray,
               model_string: str) -> Artifact:
    r = _DECIMALS
    models = parent.models
    return msgspec.structs.replace(
        parent,
        version=version,
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        parent=parent.version,
        alpha=round(float(search.alpha), r),
        thresholds=Thresholds(cheap=round(float(search.tau_cheap), r), hard=round(float(search.tau_hard), r)),
        penalties={m: round(float(search.penalties[m]), r) for m in models},
        qhat={m: [round(float(v), r) for v in qhat[j]] for j, m in enumerate(models)},
        chat={m: round(float(chat[j]), r) for j, m in enumerate(models)},
        gbdt=msgspec.structs.replace(parent.gbdt, model=model_string, framework_version=lgb.__version__),
        reports=Reports(),
    ).check()
