"""When to retrain (pure): the weekly schedule and 7-day degradation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
from bifrost.streams.aggregates.stats import WindowStats

DAY = 86_400.0
WEEK = 7 * DAY


def schedule_trigger(now: float, *, lookback: float = WEEK) -> TrainingTrigger:
    """The weekly trigger; one id per ISO week, so a repeated timer firing is harmless."""
    year, week, _ = datetime.fromtimestamp(now, UTC).isocalendar()
    return TrainingTrigger(
        trigger_id=f"schedule-{year}-W{week:02d}",
        reason=TriggerReason.SCHEDULE,
        window_from=now - lookback,
        window_to=now,
        created_at=now,
    )


@dataclass(frozen=True, slots=True)
class Degradation:
    """A metric of the last day worse than the week before it by more than the tolerance."""

    metric: str
    recent: float
    baseline: float
    change: float


def _relative_noise(metric: str, recent: WindowStats, baseline: WindowStats) -> float:
    """Standard error of the relative change (0 where we have no variance: P95)."""
    if metric == "cost_per_task":
        parts = []
        for s in (recent, baseline):
            mean = s.cost_usd / s.count
            parts.append(max(s.cost_sq / s.count - mean * mean, 0.0) / s.count)
        return math.sqrt(sum(parts)) / (baseline.cost_usd / baseline.count)
    if metric == "win_rate":
        parts = []
        for s in (recent, baseline):
            judged = s.wins + s.losses + s.ties
            p = (s.wins + 0.5 * s.ties) / judged
            parts.append(p * (1 - p) / judged)
        base = baseline.summary().win_rate or 1.0
        return math.sqrt(sum(parts)) / base
    return 0.0


def degradations(
    recent: WindowStats, baseline: WindowStats, *, tolerance: float = 0.05, min_samples: int = 200, noise_z: float = 2.0
) -> list[Degradation]:
    """Compare the last day with the six days before it: win rate down, cost or P95 up.

    Only metrics with at least ``min_samples`` on both sides are judged, and a change
    must exceed the tolerance by ``noise_z`` standard errors, so day-to-day noise on a
    small router does not retrain it.
    """
    found: list[Degradation] = []
    r, b = recent.summary(), baseline.summary()
    checks: list[tuple[str, float | None, float | None, bool]] = [
        ("win_rate", r.win_rate, b.win_rate, False),
        ("cost_per_task", r.cost_per_task, b.cost_per_task, True),
        ("p95_ms", r.p95_ms, b.p95_ms, True),
    ]
    judged_recent, judged_base = (
        recent.wins + recent.losses + recent.ties,
        baseline.wins + baseline.losses + baseline.ties,
    )
    for metric, now_value, before, higher_is_worse in checks:
        enough = (judged_recent, judged_base) if metric == "win_rate" else (recent.count, baseline.count)
        if now_value is None or not before or min(enough) < min_samples:
            continue
        change = (now_value - before) / before
        margin = tolerance + noise_z * _relative_noise(metric, recent, baseline)
        if (change > margin) if higher_is_worse else (change < -margin):
            found.append(Degradation(metric, now_value, before, change))
    return found


def degradation_trigger(router_id: str, found: list[Degradation], *, now: float) -> TrainingTrigger:
    """One trigger per router and day, whatever metrics degraded (idempotent id)."""
    day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    details: dict[str, float | str] = {}
    for d in found:
        details[f"{d.metric}.recent"] = d.recent
        details[f"{d.metric}.baseline"] = d.baseline
        details[f"{d.metric}.change"] = round(d.change, 4)
    return TrainingTrigger(
        trigger_id=f"degradation-{router_id}-{day}",
        reason=TriggerReason.DEGRADATION,
        router_id=router_id,
        window_from=now - WEEK,
        window_to=now,
        details=details,
        created_at=now,
    )
