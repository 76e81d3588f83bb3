"""Alert rules of the optimizer (pure): SLO breaches, per-task cost +20%, 7-day trend degradation.

Each alert's ``alert_id`` is ``<kind>/<router>/<subject>/<UTC day of the analysis>``: the
same finding on the same day is the same alert, so the six-hourly analysis (and a
restarted worker) never sends it twice. A 7-day degradation also asks for a retrain with
a ``degradation`` training trigger — unless the trainer's own rule (last day vs the six
before, :func:`bifrost.streams.triggers.rules.degradations`) already flags the router; the
trigger reuses that rule's id (``degradation-<router>-<day>``), so the trainer would act on
one of the two at most once anyway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import numpy as np
from scipy.stats import norm

from bifrost.schemas.alerts import Alert, AlertKind, Severity
from bifrost.schemas.triggers import TrainingTrigger
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.optimizer.goals import GoalStatus
from bifrost.streams.optimizer.series import (
    DAY,
    DEGRADATION_METRICS,
    METRICS,
    TREND_FAMILIES,
    WEEK,
    metric_value,
    scope_stats,
)
from bifrost.streams.optimizer.trends import Trend, daily_trend_test, trend_test, worse
from bifrost.streams.rollup.query import MergedStats
from bifrost.streams.triggers.rules import Degradation, degradation_trigger, degradations

HIGHER_IS_WORSE = {m.name: m.higher_is_worse for m in METRICS}
SLO_SEVERITY = {"availability": Severity.CRITICAL, "p95_ms": Severity.CRITICAL}


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Alert thresholds.

    ``BIFROST_ALERT_COST_INCREASE``, ``BIFROST_DEGRADATION_TOLERANCE``, ``BIFROST_ALERT_ALPHA``.
    """

    cost_increase: float = 0.20
    degradation_tolerance: float = 0.05
    alpha: float = 0.001
    trend_alpha: float = 0.01  # a router's 7-day-test budget, shared by its degradation metrics (trend_alpha_of)
    min_samples: int = 200  # requests per side before a cost increase is judged
    min_hour_samples: int = 30  # observations an hour needs to be a trend point
    min_trend_points: int = 72  # hourly points (of 168) a 7-day trend needs


class TrendRow(msgspec.Struct, frozen=True, kw_only=True):
    """One trend of one metric of one scope (router, ``bucket:<b>``, ``model:<m>``) over 24 h or 7 d."""

    scope: str
    metric: str
    window: str  # "24h" or "7d"
    trend: Trend | None
    degraded: bool = False


class CostIncrease(msgspec.Struct, frozen=True, kw_only=True):
    recent: float
    baseline: float
    change: float
    z: float
    recent_count: int
    baseline_count: int


def trends_of(
    hours: Mapping[int, MergedStats], scopes: Sequence[str], clock: int, config: AlertConfig
) -> list[TrendRow]:
    """24-hour (Mann-Kendall on hourly points) and 7-day (least-squares line through the day levels, t test)
    trends of every metric of every scope; 7-day rows of the router scope carry ``degraded``."""
    rows: list[TrendRow] = []
    week = [t for t in sorted(hours) if clock - WEEK <= t < clock]
    for scope in scopes:
        per_hour: dict[int, WindowStats] = {}
        for t in week:
            stats = scope_stats(hours[t], scope)
            if stats is not None:
                per_hour[t] = stats
        for metric in METRICS:
            times, values = [], []
            for t, stats in per_hour.items():
                v = metric_value(stats, metric.name, min_samples=config.min_hour_samples)
                if v is not None:
                    times.append(float(t))
                    values.append(float(v))
            t_arr, v_arr = np.asarray(times), np.asarray(values)
            day = t_arr >= clock - DAY
            daily = trend_test(t_arr[day], v_arr[day], span_days=1.0) if day.sum() >= 6 else None
            rows.append(TrendRow(scope=scope, metric=metric.name, window="24h", trend=daily))
            weekly = (
                daily_trend_test(t_arr, v_arr, origin=float(clock - WEEK), span_days=7.0)
                if len(t_arr) >= config.min_trend_points
                else None
            )
            degraded = (
                scope == "router"
                and metric.name in DEGRADATION_METRICS
                and weekly is not None
                and worse(
                    weekly,
                    higher_is_worse=metric.higher_is_worse,
                    tolerance=config.degradation_tolerance,
                    alpha=trend_alpha_of(metric.name, config.trend_alpha),
                )
            )
            rows.append(TrendRow(scope=scope, metric=metric.name, window="7d", trend=weekly, degraded=degraded))
    return rows


def trend_alpha_of(metric: str, alpha: float) -> float:
    """The 7-day test's one-sided level for ``metric``: ``alpha`` is a router's whole budget.

    It is shared equally by the degradation families (win rate, cost per task, latency), and a
    family's share by its metrics (the P95 and the median): a stable week of a router raises
    a degradation alert with probability at most ``alpha`` (Bonferroni), not ``alpha`` per metric.

    Example:
        >>> round(trend_alpha_of("p50_ms", 0.01), 5), round(trend_alpha_of("cost_per_task", 0.01), 5)
        (0.00167, 0.00333)
    """
    family = TREND_FAMILIES.get(metric, metric)
    families = {TREND_FAMILIES.get(name, name) for name in DEGRADATION_METRICS}
    members = sum(1 for name in DEGRADATION_METRICS if TREND_FAMILIES.get(name, name) == family)
    return alpha / len(families) / members


def cost_increase(recent: WindowStats, baseline: WindowStats, config: AlertConfig) -> CostIncrease | None:
    """The recent cost per task vs the baseline's, when it rose by more than the threshold and beyond noise.

    Example:
        >>> a = WindowStats(count=1000, cost_usd=13.0, cost_sq=0.2)
        >>> b = WindowStats(count=6000, cost_usd=60.0, cost_sq=0.7)
        >>> cost_increase(a, b, AlertConfig()).change
        0.3
    """
    if recent.count < config.min_samples or baseline.count < config.min_samples or baseline.cost_usd <= 0:
        return None
    means, var = [], 0.0
    for s in (recent, baseline):
        mean = s.cost_usd / s.count
        means.append(mean)
        var += max(s.cost_sq / s.count - mean * mean, 0.0) / s.count
    change = (means[0] - means[1]) / means[1]
    z = (means[0] - means[1]) / math.sqrt(var) if var > 0 else math.inf
    if change <= config.cost_increase or z < float(norm.isf(config.alpha)):
        return None
    return CostIncrease(
        recent=means[0],
        baseline=means[1],
        change=round(change, 6),
        z=round(min(z, 1e9), 3),
        recent_count=recent.count,
        baseline_count=baseline.count,
    )


def _day(clock: float) -> str:
    return datetime.fromtimestamp(clock, UTC).strftime("%Y-%m-%d")


def alerts_of(
    router_id: str,
    clock: int,
    *,
    goals: Sequence[GoalStatus],
    cost: CostIncrease | None,
    trends: Sequence[TrendRow],
    now: float,
) -> list[Alert]:
    """The alerts an analysis raises (ids are idempotent per router, subject and UTC day)."""
    day = _day(clock)
    out: list[Alert] = []
    for goal in goals:
        if goal.status != "breached":
            continue
        out.append(
            Alert(
                alert_id=f"{AlertKind.SLO_BREACH.value}/{router_id}/{goal.goal}/{day}",
                kind=AlertKind.SLO_BREACH,
                severity=SLO_SEVERITY.get(goal.goal, Severity.WARNING),
                subject=f"{router_id}/{goal.goal}",
                message=(
                    f"router {router_id}: {goal.goal} {_fmt(goal.value)} misses its goal ({goal.direction} "
                    f"{_fmt(goal.target)}) over the last day, beyond noise (z={goal.z}, n={goal.samples})"
                ),
                evidence={
                    "value": _num(goal.value),
                    "target": goal.target,
                    "samples": goal.samples,
                    "z": _num(goal.z),
                    "analysis_at": clock,
                },
                created_at=now,
            )
        )
    if cost is not None:
        out.append(
            Alert(
                alert_id=f"{AlertKind.COST_INCREASE.value}/{router_id}/cost_per_task/{day}",
                kind=AlertKind.COST_INCREASE,
                severity=Severity.WARNING,
                subject=f"{router_id}/cost_per_task",
                message=(
                    f"router {router_id}: cost per task ${cost.recent:.6f} over the last day is {cost.change:+.0%} "
                    f"against the six days before (${cost.baseline:.6f}), beyond noise (z={cost.z})"
                ),
                evidence={
                    "recent": cost.recent,
                    "baseline": cost.baseline,
                    "change": cost.change,
                    "z": cost.z,
                    "recent_count": cost.recent_count,
                    "baseline_count": cost.baseline_count,
                    "analysis_at": clock,
                },
                created_at=now,
            )
        )
    for row in trends:
        if not row.degraded or row.trend is None:
            continue
        t = row.trend
        out.append(
            Alert(
                alert_id=f"{AlertKind.DEGRADATION.value}/{router_id}/{row.metric}/{day}",
                kind=AlertKind.DEGRADATION,
                severity=Severity.WARNING,
                subject=f"{router_id}/{row.metric}",
                message=(
                    f"router {router_id}: {row.metric} trends {t.change:+.1%} over 7 days (slope of the "
                    f"{t.days} day levels {t.slope:+.4g}/day, {t.confidence:.0%} CI {t.slope_ci[0]:+.4g}…"
                    f"{t.slope_ci[1]:+.4g}; t={t.z:.3g}, p={min(t.p_increase, t.p_decrease):.2g}, "
                    f"{t.points} hourly points)"
                ),
                evidence={
                    "change": round(t.change, 6),
                    "slope_per_day": t.slope,
                    "slope_lo": t.slope_ci[0],
                    "slope_hi": t.slope_ci[1],
                    "z": round(t.z, 3),
                    "points": t.points,
                    "days": t.days,
                    "level": t.level,
                    "p": min(t.p_increase, t.p_decrease),
                    "analysis_at": clock,
                },
                created_at=now,
            )
        )
    return out


def trend_trigger(
    router_id: str, clock: int, trends: Sequence[TrendRow], rule_found: Sequence[Degradation]
) -> TrainingTrigger | None:
    """A ``degradation`` training trigger for 7-day trends — only when the trainer's rule found nothing."""
    if rule_found:
        return None
    found = [
        Degradation(
            metric=row.metric,
            recent=row.trend.level * (1 + row.trend.change / 2),
            baseline=row.trend.level * (1 - row.trend.change / 2),
            change=row.trend.change,
        )
        for row in trends
        if row.degraded and row.trend is not None
    ]
    if not found:
        return None
    trigger = degradation_trigger(router_id, found, now=float(clock))
    return msgspec.structs.replace(
        trigger, details={**trigger.details, "source": "optimizer-7d-trend"}, requested_by="optimizer"
    )


def rule_degradations(hours: Mapping[int, MergedStats], clock: int, tolerance: float) -> list[Degradation]:
    """The trainer's own rule on the same data: the last day against the six days before it."""
    recent, baseline = WindowStats(), WindowStats()
    for t, hour in hours.items():
        stats = scope_stats(hour, "router")
        if stats is None:
            continue
        if clock - DAY <= t < clock:
            recent.merge(stats)
        elif clock - WEEK <= t < clock - DAY:
            baseline.merge(stats)
    return degradations(recent, baseline, tolerance=tolerance)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _num(value: float | None) -> float | str:
    return "n/a" if value is None else value
