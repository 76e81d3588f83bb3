"""Recommendation rules (pure): each looks at a router's data and returns findings with evidence.

Rules, by the spec's groups:

* cost — ``cheaper_model`` (per cluster: a cheaper model whose quality there is
  non-inferior, from the counterfactual replay), ``tau_cheap`` (the cheap-bucket threshold,
  counterfactual; only for artifacts whose escalation gate is on), ``thinking_budget``
  (a model spending many output tokens without better quality), ``caching`` (repeated
  prompts within the cache's time to live);
* quality — ``alpha_tuning`` (the quality/cost knob, counterfactual), ``data_refresh``
  (label coverage low, or the artifact's data old);
* performance — ``slow_provider`` (a model behind most of the requests over the P95 goal),
  ``rate_limit_hotspot`` (a model answering 429 often).

Counterfactual impacts come with a confidence interval; evidence-based ones are labelled
with their assumption and are upper bounds. **Ranking**: ``score`` is the largest relative
improvement of one goal (cost saving, quality gain ×2, P95 cut, availability gain ×10),
halved for evidence-based estimates and ×1.5 when the goal it serves is missed; priority 1
needs a counterfactual estimate with a score ≥ 0.05 (an evidence-based estimate is at best
priority 2), priority 2 a score ≥ 0.01. Recommendations are sorted by (priority, −score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from scipy.stats import norm

from bifrost.router.overrides import ClusterOverride, override_choices
from bifrost.schemas.recommendations import (
    Action,
    ActionKind,
    Category,
    Evidence,
    Impact,
    ImpactMethod,
    Recommendation,
    RecommendationKind,
    recommendation_id,
)
from bifrost.streams.aggregates.mergeable import merge_keyed, merged_all
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.optimizer.counterfactual import Difference, Replay, compare, value
from bifrost.streams.optimizer.goals import GoalStatus, share_above
from bifrost.streams.optimizer.series import DAY, WEEK, span_stats
from bifrost.streams.rollup.query import MergedStats


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Thresholds of the rules (defaults documented in the README's "Optimizer" section)."""

    quality_margin: float = 0.05  # non-inferiority margin (absolute, 0..1 quality) on the requests a change affects
    router_quality_margin: float = 0.02  # … and on the router as a whole, relative to its quality (the trainer's −2%)
    confidence: float = 0.9  # of the reported two-sided intervals, and of the one-sided non-inferiority bounds
    min_cluster_rows: int = 300  # logged requests of a cluster before a cheaper model is judged there
    min_saving: float = 0.01  # router-level relative cost saving worth a recommendation
    min_cluster_saving: float = 0.10  # the cheaper model must save at least this much on its cluster
    tau_steps: tuple[float, ...] = (-0.2, -0.1, -0.05, 0.05, 0.1, 0.2)
    lambda_factors: tuple[float, ...] = (0.5, 0.7, 1.4, 2.0)  # α candidates: λ = (1−α)/α times these
    max_cost_increase_for_quality: float = 0.10
    min_label_coverage: float = 0.2
    max_artifact_age_days: float = 14.0
    cache_ttl_seconds: float = 3600.0
    min_repeat_share: float = 0.10
    min_model_share: float = 0.02
    min_slow_share: float = 0.25  # of the router's requests over the P95 goal
    rate_limit_share: float = 0.02
    thinking_ratio: float = 2.0  # mean output tokens vs the router's other models
    thinking_min_tokens: float = 500.0
    min_samples: int = 200


@dataclass(frozen=True)
class RuleInputs:
    """Everything the rules read about one router (pure data)."""

    router_id: str
    clock: int  # event time the analysis looks up to (end, exclusive)
    hours: Mapping[int, MergedStats]
    goals: Sequence[GoalStatus]
    goal_window_seconds: int = DAY
    replay: Replay | None = None
    replay_note: str = ""
    repeats: Repeats | None = None
    artifact_version: str | None = None
    artifact_created_at: float | None = None
    p95_goal_ms: float = 2000.0


@dataclass(frozen=True, slots=True)
class Finding:
    """A recommendation before it gets its id, period and rank."""

    kind: RecommendationKind
    category: Category
    subject: str
    title: str
    detail: str
    evidence: Evidence
    impact: Impact
    action: Action
    goals: tuple[str, ...] = field(default=())  # goals it serves, for the missed-goal weight


@dataclass(frozen=True, slots=True)
class Repeats:
    """Repeated prompts in the logs (identical feature vectors within the cache TTL)."""

    rows: int
    hits: int
    hit_cost_usd: float
    total_cost_usd: float
    distinct: int
    days: float


def repeated_prompts(features: np.ndarray, ts: np.ndarray, cost: np.ndarray, *, ttl_seconds: float) -> Repeats:
    """Requests whose feature vector was seen within ``ttl_seconds`` before (a cache would have it).

    Example:
        >>> f = np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0], [1.0, 2.0]])
        >>> repeated_prompts(f, np.array([0.0, 10.0, 20.0, 99999.0]), np.ones(4), ttl_seconds=3600).hits
        1
    """
    n = len(ts)
    if n == 0:
        return Repeats(rows=0, hits=0, hit_cost_usd=0.0, total_cost_usd=0.0, distinct=0, days=0.0)
    rows = np.ascontiguousarray(features, dtype=np.float32)
    _, key = np.unique(
        rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(n)
        if rows.shape[1]
        else np.zeros(n, dtype=np.int64),
        return_inverse=True,
    )
    key = key.reshape(-1)
    order = np.lexsort((ts, key))
    same = key[order][1:] == key[order][:-1]
    close = (ts[order][1:] - ts[order][:-1]) <= ttl_seconds
    hit = np.zeros(n, dtype=bool)
    hit[order[1:][same & close]] = True
    finite = np.nan_to_num(cost, nan=0.0)
    return Repeats(
        rows=n,
        hits=int(hit.sum()),
        hit_cost_usd=float(finite[hit].sum()),
        total_cost_usd=float(finite.sum()),
        distinct=int(key.max()) + 1,
        days=float((ts.max() - ts.min()) / DAY) if n > 1 else 0.0,
    )


# -- ranking --------------------------------------------------------------------------------


def score_of(
    impact: Impact,
    *,
    base_quality: float | None,
    base_p95: float | None,
    base_availability: float | None,
    goal_missed: bool,
) -> float:
    """The ranking score of an impact (see the module docstring)."""
    gains = [0.0]
    if impact.cost_per_task_change is not None:
        gains.append(-impact.cost_per_task_change)
    if impact.quality_change is not None and base_quality:
        gains.append(2.0 * impact.quality_change / base_quality)
    if impact.p95_ms_change is not None and base_p95:
        gains.append(-impact.p95_ms_change / base_p95)
    if impact.availability_change is not None and base_availability is not None:
        gains.append(10.0 * impact.availability_change)
    score = max(gains)
    if impact.method is ImpactMethod.EVIDENCE:
        score *= 0.5
    return score * (1.5 if goal_missed else 1.0)


def priority_of(score: float, method: ImpactMethod) -> int:
    if score >= 0.05 and method is ImpactMethod.COUNTERFACTUAL:
        return 1
    return 2 if score >= 0.01 else 3


def period_label(clock: float, period_seconds: float) -> str:
    """The dedup period a time falls in, as ``<UTC start date or time>/<length>``.

    Example:
        >>> period_label(1_700_000_000, 7 * 86400)
        '2023-11-09/7d'
    """
    start = math.floor(clock / period_seconds) * period_seconds
    when = datetime.fromtimestamp(start, UTC)
    if period_seconds % DAY == 0:
        return f"{when:%Y-%m-%d}/{int(period_seconds // DAY)}d"
    return f"{when:%Y-%m-%dT%H:%M}/{int(period_seconds)}s"


def finalize(
    findings: Sequence[Finding], inputs: RuleInputs, *, period_seconds: float, now: float
) -> list[Recommendation]:
    """Ids, period, score and priority; sorted best first."""
    router = merged_all(WindowStats, (h for hour in _window_hours(inputs) for h in hour.arms.values()))
    summary = router.summary()
    missed = {g.goal for g in inputs.goals if g.status in ("missed", "breached")}
    period = period_label(inputs.clock, period_seconds)
    out = []
    for f in findings:
        score = score_of(
            f.impact,
            base_quality=summary.quality,
            base_p95=summary.p95_ms,
            base_availability=1 - summary.error_rate if summary.error_rate is not None else None,
            goal_missed=bool(missed & set(f.goals)),
        )
        out.append(
            Recommendation(
                recommendation_id=recommendation_id(f.kind.value, inputs.router_id, f.subject, period),
                kind=f.kind,
                category=f.category,
                router_id=inputs.router_id,
                subject=f.subject,
                period=period,
                priority=priority_of(score, f.impact.method),
                score=round(score, 6),
                title=f.title,
                detail=f.detail,
                evidence=f.evidence,
                impact=f.impact,
                action=f.action,
                artifact_version=inputs.artifact_version,
                analysis_at=float(inputs.clock),
                created_at=now,
            )
        )
    return sorted(out, key=lambda r: (r.priority, -r.score, r.kind.value, r.subject))


def _window_hours(inputs: RuleInputs) -> list[MergedStats]:
    start = inputs.clock - inputs.goal_window_seconds
    return [h for t, h in inputs.hours.items() if start <= t < inputs.clock]


# -- counterfactual rules -------------------------------------------------------------------


def _replay_evidence(replay: Replay, figures: dict[str, float | int | str | None]) -> Evidence:
    return Evidence(
        window_from=replay.window[0],
        window_to=replay.window[1],
        samples=len(replay),
        figures={"arm": replay.arm, "rows_logged": replay.rows_logged, **figures},
        source="warehouse",
    )


def _impact(diff: Difference, replay: Replay, *, assumption: str) -> Impact:
    per_day = len(replay) / replay.days if replay.days > 0 else None
    scale = replay.rows_logged / len(replay) if len(replay) else 1.0
    return Impact(
        method=ImpactMethod.COUNTERFACTUAL,
        cost_per_task_change=round(diff.cost_change, 6),
        cost_per_task_ci=[round(c / diff.base_cost, 6) for c in diff.cost_ci] if diff.base_cost > 0 else None,
        cost_usd_per_day=round(diff.cost * per_day * scale, 6) if per_day else None,
        quality_change=round(diff.quality, 6),
        quality_ci=[round(q, 6) for q in diff.quality_ci],
        confidence=diff.confidence,
        rows=diff.rows,
        assumption=assumption,
    )


def cheaper_model(inputs: RuleInputs, config: RuleConfig) -> list[Finding]:
    """Per cluster, the cheapest-saving model whose quality there is non-inferior (counterfactual)."""
    replay = inputs.replay
    if replay is None:
        return []
    z = float(norm.ppf(config.confidence))  # one-sided
    labelled = np.isfinite(replay.quality)
    findings: list[Finding] = []
    for cluster in np.unique(replay.cluster).tolist():
        in_cluster = replay.cluster == cluster
        n_c, n_lab = int(in_cluster.sum()), int((in_cluster & labelled).sum())
        if n_c < config.min_cluster_rows or n_lab < config.min_cluster_rows // 2:
            continue
        best: tuple[float, str, Difference, float, float] | None = None
        for model in replay.models:
            candidate = override_choices(
                replay.chosen, replay.cluster, replay.models, [ClusterOverride(cluster, model)]
            )
            if (candidate == replay.chosen).all():
                continue
            diff = compare(replay, candidate, confidence=config.confidence, within=in_cluster)
            # Cluster-level figures: the router-level difference is zero outside the cluster.
            q_scale = diff.labelled_rows / n_lab
            cluster_cost = float(replay.c_model[in_cluster, replay.chosen[in_cluster]].mean())
            cluster_saving = -diff.cost * len(replay) / n_c / cluster_cost if cluster_cost > 0 else 0.0
            q_lower = (diff.quality - z * diff.quality_se) * q_scale
            if (
                diff.cost_change <= -config.min_saving
                and cluster_saving >= config.min_cluster_saving
                and q_lower >= -config.quality_margin
                and _router_non_inferior(diff, config)
            ):
                if best is None or diff.cost < best[2].cost:
                    best = (diff.cost, model, diff, q_lower, cluster_saving)
        if best is None:
            continue
        _, model, diff, q_lower, cluster_saving = best
        current = np.bincount(replay.chosen[in_cluster], minlength=len(replay.models))
        top = [replay.models[i] for i in np.argsort(-current)[:3] if current[i] > 0]
        explored = int((in_cluster & (replay.served == replay.models.index(model)) & labelled).sum())
        candidate_value = value(
            replay, override_choices(replay.chosen, replay.cluster, replay.models, [ClusterOverride(cluster, model)])
        )
        findings.append(
            Finding(
                kind=RecommendationKind.CHEAPER_MODEL,
                category=Category.COST,
                goals=("cost_per_task",),
                subject=f"cluster={cluster} model={model}",
                title=f"route cluster {cluster} to {model}: {-diff.cost_change:.1%} cheaper per task, "
                "quality non-inferior",
                detail=(
                    f"On cluster {cluster} ({n_c / len(replay):.1%} of requests) the router picks {', '.join(top)}; "
                    f"{model} is {cluster_saving:.0%} cheaper there and non-inferior: the one-sided "
                    f"{config.confidence:.0%} bound of the quality difference is {q_lower:+.3f} on the cluster (margin "
                    f"−{config.quality_margin:.2f}, from {explored} labelled requests it served) and within "
                    f"−{config.router_quality_margin:.0%} of the router's quality. Apply: retrain (the "
                    f"logs show it), or OverriddenRouter(router, [ClusterOverride({cluster}, {model!r})]) in a Python "
                    "router now."
                ),
                evidence=_replay_evidence(
                    replay,
                    {
                        "cluster": cluster,
                        "cluster_rows": n_c,
                        "cluster_share": round(n_c / len(replay), 4),
                        "model": model,
                        "model_labelled_rows_in_cluster": explored,
                        "current_models": ",".join(top),
                        "cluster_cost_saving": round(cluster_saving, 4),
                        "cluster_quality_lower_bound": round(q_lower, 4),
                        "base_cost_per_task": diff.base_cost,
                        "base_quality": round(diff.base_quality, 4),
                        "dr_quality": round(candidate_value.quality.dr, 4),
                        "ips_quality": round(candidate_value.quality.ips, 4),
                        "snips_quality": round(candidate_value.quality.snips, 4),
                        "dr_cost_per_task": candidate_value.cost.dr,
                    },
                ),
                impact=_impact(
                    diff,
                    replay,
                    assumption="doubly robust estimate over the logged requests of the window; same traffic mix",
                ),
                action=Action(kind=ActionKind.RETRAIN, parameters={"cluster": int(cluster), "model": model}),
            )
        )
    return findings


def _router_non_inferior(diff: Difference, config: RuleConfig) -> bool:
    """The one-sided bound of the router-level quality difference within −``router_quality_margin`` of its quality."""
    return diff.quality_lower(config.confidence) >= -config.router_quality_margin * abs(diff.base_quality)


def _non_inferior(diff: Difference, config: RuleConfig) -> bool:
    """Router-level non-inferiority, and on the changed requests at most ``quality_margin`` worse."""
    if not _router_non_inferior(diff, config) or diff.changed_rows == 0:
        return False
    scale = diff.rows / diff.changed_rows  # the mean difference on the requests that change model
    return diff.quality_lower(config.confidence) * scale >= -config.quality_margin


def tau_cheap(inputs: RuleInputs, config: RuleConfig) -> list[Finding]:
    """Another cheap-bucket threshold with lower cost at non-inferior quality (gate-on artifacts only)."""
    replay = inputs.replay
    if replay is None or replay.router.tables.tau_hard <= 0:
        return []
    current = replay.router.tables.tau_cheap
    best: tuple[float, Difference] | None = None
    for step in config.tau_steps:
        tau = round(min(max(current + step, 0.0), 1.0), 4)
        if tau == current:
            continue
        diff = compare(replay, replay.rechoose(tau_cheap=tau), confidence=config.confidence)
        if diff.cost_change <= -config.min_saving and _non_inferior(diff, config):
            if best is None or diff.cost < best[1].cost:
                best = (tau, diff)
    if best is None:
        return []
    tau, diff = best
    direction = "down" if tau < current else "up"
    return [
        Finding(
            kind=RecommendationKind.TAU_CHEAP,
            category=Category.COST,
            goals=("cost_per_task",),
            subject=f"tau_cheap:{direction}",
            title=f"move τ_cheap from {current:.2f} to {tau:.2f}: {-diff.cost_change:.1%} cheaper per task",
            detail=(
                f"Replaying the logged requests through artifact {replay.arm} with τ_cheap={tau:.2f} sends "
                f"{diff.changed_rows / diff.rows:.1%} of them elsewhere; quality difference {diff.quality:+.4f} "
                f"({config.confidence:.0%} CI {diff.quality_ci[0]:+.4f}…{diff.quality_ci[1]:+.4f})."
            ),
            evidence=_replay_evidence(
                replay, {"tau_cheap": current, "suggested_tau_cheap": tau, "changed_rows": diff.changed_rows}
            ),
            impact=_impact(
                diff, replay, assumption="doubly robust estimate over the logged requests; same traffic mix"
            ),
            action=Action(kind=ActionKind.RETRAIN, parameters={"tau_cheap": tau}),
        )
    ]


def alpha_tuning(inputs: RuleInputs, config: RuleConfig) -> list[Finding]:
    """Another α: a significant quality gain at a bounded cost, or a non-inferior saving."""
    replay = inputs.replay
    if replay is None:
        return []
    alpha = replay.router.tables.alpha
    if not 0 < alpha < 1:
        return []
    lam = (1 - alpha) / alpha
    quality_missed = any(g.goal == "quality" and g.status in ("missed", "breached") for g in inputs.goals)
    best: tuple[float, float, Difference, str] | None = None
    for factor in config.lambda_factors:
        candidate_alpha = round(1.0 / (1.0 + lam * factor), 6)
        diff = compare(replay, replay.rechoose(alpha=candidate_alpha), confidence=config.confidence)
        if diff.changed_rows == 0:
            continue
        gain = diff.quality / diff.base_quality if diff.base_quality else 0.0
        # A gain must show in the reported two-sided interval (its lower end above 0).
        if diff.quality_ci[0] > 0 and diff.cost_change <= config.max_cost_increase_for_quality:
            key, why = 2.0 * gain, "quality"
        elif diff.cost_change <= -config.min_saving and _non_inferior(diff, config):
            key, why = -diff.cost_change, "cost"
        else:
            continue
        if why == "cost" and quality_missed:
            continue  # do not trade quality away while the quality goal is missed
        if best is None or key > best[0]:
            best = (key, candidate_alpha, diff, why)
    if best is None:
        return []
    _, new_alpha, diff, why = best
    title = (
        f"raise α from {alpha:.3f} to {new_alpha:.3f}: quality {diff.quality:+.3f}"
        if why == "quality"
        else f"lower α from {alpha:.3f} to {new_alpha:.3f}: {-diff.cost_change:.1%} cheaper per task"
    )
    return [
        Finding(
            kind=RecommendationKind.ALPHA_TUNING,
            category=Category.QUALITY if why == "quality" else Category.COST,
            goals=("quality", "win_rate") if why == "quality" else ("cost_per_task",),
            subject=f"alpha:{why}",
            title=title,
            detail=(
                f"Replaying the logged requests through artifact {replay.arm} with α={new_alpha:.3f}: quality "
                f"{diff.quality:+.4f} ({config.confidence:.0%} CI "
                f"{diff.quality_ci[0]:+.4f}…{diff.quality_ci[1]:+.4f}), "
                f"cost per task {diff.cost_change:+.1%}; {diff.changed_rows / diff.rows:.1%} of "
                "requests change model."
            ),
            evidence=_replay_evidence(
                replay, {"alpha": alpha, "suggested_alpha": new_alpha, "changed_rows": diff.changed_rows}
            ),
            impact=_impact(
                diff, replay, assumption="doubly robust estimate over the logged requests; same traffic mix"
            ),
            action=Action(kind=ActionKind.RETRAIN, parameters={"alpha": new_alpha}),
        )
    ]


# -- evidence rules -------------------------------------------------------------------------


def data_refresh(inputs: RuleInputs, config: RuleConfig) -> list[Finding]:
    """Retrain when few requests carry labels, or the artifact was trained long ago.

    Label coverage is counted on the week up to one day before the analysis: feedback
    arrives late (up to ``BIFROST_FEEDBACK_GRACE_SECONDS``), so the last day is not judged.
    """
    start, end = inputs.clock - WEEK, inputs.clock - DAY
    stats = span_stats(inputs.hours, "router", start, end)
    if stats.count < config.min_samples:
        return []
    coverage = stats.quality_count / stats.count
    age = ((inputs.clock - inputs.artifact_created_at) / DAY) if inputs.artifact_created_at else None
    reasons = []
    if coverage < config.min_label_coverage:
        reasons.append(
            f"only {coverage:.1%} of the week's requests carry a quality label "
            f"(the trainer needs ≥ {config.min_label_coverage:.0%})"
        )
    if age is not None and age > config.max_artifact_age_days:
        reasons.append(f"artifact {inputs.artifact_version} was trained {age:.0f} days before this traffic")
    if not reasons:
        return []
    return [
        Finding(
            kind=RecommendationKind.DATA_REFRESH,
            category=Category.QUALITY,
            goals=("quality", "win_rate"),
            subject="training data",
            title="refresh the training data: " + "; ".join(reasons),
            detail=(
                "Retrain on the last 7 days"
                + ("; send feedback (grades) for more requests first" if coverage < config.min_label_coverage else "")
                + ". Impact is not estimated: it depends on what the new data teach."
            ),
            evidence=Evidence(
                window_from=start,
                window_to=end,
                samples=stats.count,
                source="windows",
                figures={
                    "label_coverage": round(coverage, 4),
                    "labelled": stats.quality_count,
                    "artifact_age_days": round(age, 1) if age is not None else None,
                },
            ),
            impact=Impact(
                method=ImpactMethod.EVIDENCE,
                rows=stats.count,
                assumption="not estimated: the effect of fresh data is known only after the retrain's validation",
            ),
            action=Action(kind=ActionKind.RETRAIN, parameters={"window_days": 7}),
        )
    ]


def caching(inputs: RuleInputs, config: RuleConfig) -> list[Finding]:
    """Repeated prompts within the cache TTL: what a response cache would save (upper bound)."""
    r = inputs.repeats
    if r is None or r.rows < config.min_samples or r.hits / r.rows < config.min_repeat_share:
        return []
    share = r.hits / r.rows
    saving = r.hit_cost_usd / r.total_cost_usd if r.total_cost_usd > 0 else 0.0
    return [
        Finding(
            kind=RecommendationKind.CACHING,
            category=Category.COST,
            goals=("cost_per_task", "p95_ms"),
            subject="repeated prompts",
            title=f"cache responses: {share:.0%} of requests repeat a prompt seen within "
            f"{config.cache_ttl_seconds / 3600:g} h",
            detail=(
                f"{r.hits} of {r.rows} logged requests carry a feature vector identical to one seen less than "
                f"{config.cache_ttl_seconds:.0f} s before ({r.distinct} distinct prompts). A response "
                "cache keyed by the "
                "prompt would have answered them without a model call."
            ),
            evidence=Evidence(
                window_from=inputs.clock - WEEK,
                window_to=inputs.clock,
                samples=r.rows,
                source="warehouse",
                figures={
                    "repeat_share": round(share, 4),
                    "repeat_cost_usd": round(r.hit_cost_usd, 6),
                    "distinct_prompts": r.distinct,
                },
            ),
            impact=Impact(
                method=ImpactMethod.EVIDENCE,
                cost_per_task_change=round(-saving, 6),
                rows=r.rows,
                cost_usd_per_day=round(-r.hit_cost_usd / r.days, 6) if r.days > 0 else None,
                assumption="upper bound: every repeat within the TTL is a cache hit and cacheable "
                "(identical feature vectors taken as identical prompts)",
            ),
            action=Action(kind=ActionKind.ACKNOWLEDGE, parameters={"ttl_seconds": int(config.cache_ttl_seconds)}),
        )
    ]


def _goal_window(inputs: RuleInputs) -> MergedStats:
    """Per arm and per model statistics over the goal window (the hours of the windowed tables)."""
    merged = MergedStats()
    for hour in _window_hours(inputs):
        merge_keyed(merged.arms, hour.arms)
        merge_keyed(merged.models, hour.models)
    return merged


def _goal_window_evidence(inputs: RuleInputs, samples: int, figures: dict[str, float | int | str | None]) -> Evidence:
    """Evidence from the windowed tables over the goal window."""
    return Evidence(
        window_from=inputs.clock - inputs.goal_window_seconds,
        window_to=inputs.clock,
        samples=samples,
        source="windows",
        figures=figures,
    )


def slow_provider(inputs: RuleInputs, config: RuleConfig) -> list[Finding]:
    """A model behind a large share of the requests over the P95 goal (upper-bound impact)."""
    window = _goal_window(inputs)
    router = merged_all(WindowStats, window.arms.values())
    if router.count < config.min_samples:
        return []
    slow_total = share_above(router.latency_ms, inputs.p95_goal_ms) * router.count
    p95 = router.latency_ms.quantile(0.95) or 0.0
    if p95 <= inputs.p95_goal_ms or slow_total <= 0:
        return []
    findings = []
    for model, stats in sorted(window.models.items()):
        share = stats.count / router.count
        slow = share_above(stats.latency_ms, inputs.p95_goal_ms) * stats.count
        if share < config.min_model_share or slow / slow_total < config.min_slow_share:
            continue
        rest = merged_all(WindowStats, (s for m, s in window.models.items() if m != model))
        without = rest.latency_ms.quantile(0.95)
        model_p95 = stats.latency_ms.quantile(0.95)
        if without is None or model_p95 is None or without >= p95:
            continue
        findings.append(
            Finding(
                kind=RecommendationKind.SLOW_PROVIDER,
                category=Category.PERFORMANCE,
                goals=("p95_ms",),
                subject=f"model={model}",
                title=f"{model} serves {slow / slow_total:.0%} of the requests over "
                f"{inputs.p95_goal_ms:.0f} ms (its P95 "
                f"{model_p95:.0f} ms)",
                detail=(
                    f"The router's P95 is {p95:.0f} ms against a goal of {inputs.p95_goal_ms:.0f} ms; "
                    f"without {model}'s "
                    f"requests it would be {without:.0f} ms. Ask its provider for a faster tier or "
                    "region, add a latency "
                    "penalty for it, or prefer a faster model of similar quality."
                ),
                evidence=_goal_window_evidence(
                    inputs,
                    stats.count,
                    {
                        "model_p95_ms": round(model_p95, 1),
                        "router_p95_ms": round(p95, 1),
                        "share_of_requests": round(share, 4),
                        "share_of_slow_requests": round(slow / slow_total, 4),
                    },
                ),
                impact=Impact(
                    method=ImpactMethod.EVIDENCE,
                    p95_ms_change=round(without - p95, 1),
                    rows=router.count,
                    assumption="upper bound: the router's P95 if this model's requests were as fast as the rest",
                ),
                action=Action(kind=ActionKind.ACKNOWLEDGE, parameters={"model": model}),
            )
        )
    return findings


def rate_limit_hotspot(inputs: RuleInputs, config: RuleConfig) -> list[Finding]:
    """A model answering 429 for more than the threshold share of its requests (beyond noise)."""
    window = _goal_window(inputs)
    router = merged_all(WindowStats, window.arms.values())
    if router.count < config.min_samples:
        return []
    findings = []
    z = float(norm.ppf(0.5 + config.confidence / 2.0))
    for model, stats in sorted(window.models.items()):
        if stats.count < config.min_samples:
            continue
        rate = stats.rate_limited / stats.count
        bound = config.rate_limit_share
        if rate <= bound or (rate - bound) / math.sqrt(bound * (1 - bound) / stats.count) < z:
            continue
        findings.append(
            Finding(
                kind=RecommendationKind.RATE_LIMIT_HOTSPOT,
                category=Category.PERFORMANCE,
                goals=("availability",),
                subject=f"model={model}",
                title=f"{model} is rate-limited on {rate:.1%} of its requests (429)",
                detail=(
                    f"{stats.rate_limited} of {stats.count} requests to {model} got 429 in the last "
                    f"{inputs.goal_window_seconds / 3600:.0f} h. Raise the quota, spread the traffic over more keys or "
                    "regions, or add a fallback model."
                ),
                evidence=_goal_window_evidence(
                    inputs,
                    stats.count,
                    {
                        "rate_limited": stats.rate_limited,
                        "requests": stats.count,
                        "rate_limited_share": round(rate, 4),
                    },
                ),
                impact=Impact(
                    method=ImpactMethod.EVIDENCE,
                    availability_change=round(stats.rate_limited / router.count, 6),
                    rows=router.count,
                    assumption="upper bound: every 429 of this model avoided",
                ),
                action=Action(kind=ActionKind.ACKNOWLEDGE, parameters={"model": model}),
            )
        )
    return findings


def thinking_budget(inputs: RuleInputs, config: RuleConfig) -> list[Finding]:
    """A model spending far more output tokens than the others without better quality."""
    window = _goal_window(inputs)
    router = merged_all(WindowStats, window.arms.values())
    if router.count < config.min_samples or router.cost_usd <= 0:
        return []
    outs = {m: s.tokens_out / s.count for m, s in window.models.items() if s.count >= config.min_samples}
    if len(outs) < 2:
        return []
    findings = []
    router_quality = router.quality_sum / router.quality_count if router.quality_count else None
    for model, mean_out in sorted(outs.items()):
        others = float(np.median([v for m, v in outs.items() if m != model]))
        stats = window.models[model]
        if mean_out < config.thinking_min_tokens or mean_out < config.thinking_ratio * max(others, 1.0):
            continue
        quality = stats.quality_sum / stats.quality_count if stats.quality_count else None
        if quality is not None and router_quality is not None and quality > router_quality:
            continue
        tokens = stats.tokens_in + stats.tokens_out
        cut = (stats.tokens_out - others * stats.count) / tokens if tokens else 0.0
        saving = stats.cost_usd * max(cut, 0.0) / router.cost_usd
        findings.append(
            Finding(
                kind=RecommendationKind.THINKING_BUDGET,
                category=Category.COST,
                goals=("cost_per_task",),
                subject=f"model={model}",
                title=f"cap {model}'s thinking budget: {mean_out:.0f} output tokens per request vs "
                f"{others:.0f} for the others",
                detail=(
                    f"{model}'s quality ({quality if quality is not None else float('nan'):.3f}) is not above the "
                    f"router's ({router_quality if router_quality is not None else float('nan'):.3f}); a reasoning/"
                    f"thinking budget near {others:.0f} tokens would cut its cost."
                ),
                evidence=_goal_window_evidence(
                    inputs,
                    stats.count,
                    {
                        "mean_tokens_out": round(mean_out, 1),
                        "others_median_tokens_out": round(others, 1),
                        "model_cost_usd": round(stats.cost_usd, 6),
                    },
                ),
                impact=Impact(
                    method=ImpactMethod.EVIDENCE,
                    cost_per_task_change=round(-saving, 6),
                    rows=stats.count,
                    assumption="cost proportional to tokens; quality unchanged by the lower budget",
                ),
                action=Action(
                    kind=ActionKind.ACKNOWLEDGE, parameters={"model": model, "max_output_tokens": int(max(others, 1))}
                ),
            )
        )
    return findings


RULES = (
    cheaper_model,
    tau_cheap,
    alpha_tuning,
    data_refresh,
    caching,
    slow_provider,
    rate_limit_hotspot,
    thinking_budget,
)


def recommend(inputs: RuleInputs, config: RuleConfig, *, period_seconds: float, now: float) -> list[Recommendation]:
    """Every rule's findings, ranked (see the module docstring)."""
    findings = [finding for rule in RULES for finding in rule(inputs, config)]
    return finalize(findings, inputs, period_seconds=period_seconds, now=now)
