"""One router's analysis (pure): goals, trends, recommendations, alerts and a retrain trigger.

:func:`analyze` takes what the shell gathered — the router's hourly statistics (from the
worker's windowed tables), the logged requests replayed through the serving artifact (from
the warehouse) and repeated-prompt counts — and returns an :class:`Analysis`. It does no
I/O and reads no clock: the same inputs give the same analysis (``now`` only stamps it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from bifrost.schemas.alerts import Alert
from bifrost.schemas.recommendations import Recommendation
from bifrost.schemas.triggers import TrainingTrigger
from bifrost.streams.optimizer.alerting import (
    AlertConfig,
    TrendRow,
    alerts_of,
    cost_increase,
    rule_degradations,
    trend_trigger,
    trends_of,
)
from bifrost.streams.optimizer.counterfactual import Replay
from bifrost.streams.optimizer.goals import GoalStatus, GoalTargets, track_goals
from bifrost.streams.optimizer.rules import Repeats, RuleConfig, RuleInputs, recommend
from bifrost.streams.optimizer.series import DAY, WEEK, scopes, span_stats
from bifrost.streams.rollup.query import MergedStats

if TYPE_CHECKING:
    from bifrost.config import Settings


@dataclass(frozen=True)
class OptimizerConfig:
    """Targets, alert thresholds, rule thresholds and the dedup period."""

    targets: GoalTargets = field(default_factory=GoalTargets)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    rules: RuleConfig = field(default_factory=RuleConfig)
    goal_window_seconds: int = DAY
    period_seconds: float = float(WEEK)

    @classmethod
    def from_settings(cls, s: Settings) -> OptimizerConfig:
        """From the worker's settings (``BIFROST_GOAL_*``, ``BIFROST_ALERT_*``…)."""
        return cls(
            targets=GoalTargets(
                win_rate=s.goal_win_rate,
                cost_per_task=s.goal_cost_per_task,
                p95_ms=s.goal_p95_ms,
                quality=s.goal_quality,
                availability=s.goal_availability,
            ),
            alerts=AlertConfig(
                cost_increase=s.alert_cost_increase, degradation_tolerance=s.degradation_tolerance, alpha=s.alert_alpha
            ),
            goal_window_seconds=int(s.goal_window_seconds),
            period_seconds=float(s.recommendation_period_seconds),
        )


class Analysis(msgspec.Struct, kw_only=True):
    """The optimizer's view of one router at one point of event time."""

    router_id: str
    analysis_at: int  # event time (end, exclusive) the analysis looked up to
    goal_window: list[int]
    goals: list[GoalStatus]
    trends: list[TrendRow]
    recommendations: list[Recommendation]
    alerts: list[Alert]
    trigger: TrainingTrigger | None = None
    artifact_version: str | None = None
    counterfactual_rows: int = 0
    hours: int = 0
    notes: list[str] = []
    created_at: float = 0.0


def analyze(
    router_id: str,
    clock: int,
    hours: Mapping[int, MergedStats],
    config: OptimizerConfig,
    *,
    replay: Replay | None = None,
    replay_note: str = "",
    repeats: Repeats | None = None,
    artifact_version: str | None = None,
    artifact_created_at: float | None = None,
    now: float = 0.0,
) -> Analysis:
    """Goals over the goal window, 24 h / 7 d trends, ranked recommendations, alerts and a trigger."""
    window_from = clock - config.goal_window_seconds
    recent = span_stats(hours, "router", window_from, clock)
    goals = track_goals(recent, config.targets, alpha=config.alerts.alpha)
    trend_rows = trends_of(hours, scopes(hours), clock, config.alerts)
    baseline = span_stats(hours, "router", clock - WEEK, window_from)
    cost = cost_increase(recent, baseline, config.alerts)
    alerts = alerts_of(router_id, clock, goals=goals, cost=cost, trends=trend_rows, now=now)
    trigger = trend_trigger(
        router_id, clock, trend_rows, rule_degradations(hours, clock, config.alerts.degradation_tolerance)
    )
    inputs = RuleInputs(
        router_id=router_id,
        clock=clock,
        hours=hours,
        goals=goals,
        goal_window_seconds=config.goal_window_seconds,
        replay=replay,
        replay_note=replay_note,
        repeats=repeats,
        artifact_version=artifact_version if replay is None else replay.arm,
        artifact_created_at=artifact_created_at,
        p95_goal_ms=config.targets.p95_ms,
    )
    recommendations = recommend(inputs, config.rules, period_seconds=config.period_seconds, now=now)
    notes = []
    if replay is None:
        notes.append(
            "counterfactual rules (cheaper model, τ_cheap, α) skipped: " + (replay_note or "no logged requests")
        )
    elif replay.router.tables.tau_hard <= 0:
        notes.append(f"τ_cheap not evaluated: artifact {replay.arm} has its escalation gate off (τ_hard = 0)")
    if repeats is None:
        notes.append("repeated prompts not counted: no logged requests")
    return Analysis(
        router_id=router_id,
        analysis_at=clock,
        goal_window=[window_from, clock],
        goals=goals,
        trends=trend_rows,
        recommendations=recommendations,
        alerts=alerts,
        trigger=trigger,
        artifact_version=inputs.artifact_version,
        counterfactual_rows=len(replay) if replay is not None else 0,
        hours=sum(1 for t in hours if clock - WEEK <= t < clock),
        notes=notes,
        created_at=now,
    )
