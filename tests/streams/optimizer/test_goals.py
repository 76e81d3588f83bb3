"""Goal tracking: met, missed within noise, breached beyond it, no data."""

from __future__ import annotations

import numpy as np

from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.optimizer.goals import GoalTargets, share_above, track_goals
from tests.streams.optimizer.traffic import sketch_of


def by_goal(stats: WindowStats) -> dict[str, str]:
    return {g.goal: g.status for g in track_goals(stats, GoalTargets())}


def test_every_goal_met() -> None:
    latency = sketch_of(np.full(1000, 500.0))
    stats = WindowStats(
        count=1000,
        errors=2,
        cost_usd=10.0,
        cost_sq=0.12,
        latency_ms=latency,
        quality_sum=900.0,
        quality_count=1000,
        wins=950,
        losses=50,
    )
    assert set(by_goal(stats).values()) == {"met"}


def test_missed_within_noise_is_not_a_breach() -> None:
    stats = WindowStats(
        count=200,
        errors=2,
        cost_usd=2.0,
        cost_sq=0.03,
        latency_ms=sketch_of(np.full(200, 500.0)),
        quality_sum=0.0,
        quality_count=0,
        wins=178,
        losses=22,
    )  # win rate 0.89 on 200 judged
    goals = by_goal(stats)
    assert goals["win_rate"] == "missed" and goals["availability"] == "missed" and goals["quality"] == "no_data"


def test_p95_breach_is_judged_on_the_share_of_slow_requests() -> None:
    values = np.concatenate([np.full(880, 500.0), np.full(120, 3000.0)])  # 12% slower than 2000 ms
    stats = WindowStats(count=1000, cost_usd=1.0, cost_sq=0.002, latency_ms=sketch_of(values))
    goal = next(g for g in track_goals(stats, GoalTargets()) if g.goal == "p95_ms")
    assert goal.status == "breached" and goal.value is not None and goal.value > 2000
    assert share_above(stats.latency_ms, 2000.0) == 0.12


def test_cost_breach_uses_the_sample_variance() -> None:
    stats = WindowStats(count=400, cost_usd=400 * 0.05, cost_sq=400 * (0.05**2 + 0.01**2))
    goal = next(g for g in track_goals(stats, GoalTargets()) if g.goal == "cost_per_task")
    assert goal.status == "breached" and goal.z is not None and goal.z > 15


def test_requests_without_any_latency_are_no_data_for_p95_not_met() -> None:
    stats = WindowStats(count=1000, errors=2, cost_usd=10.0, cost_sq=0.12)  # no latency recorded at all
    goal = next(g for g in track_goals(stats, GoalTargets()) if g.goal == "p95_ms")
    assert goal.status == "no_data" and goal.value is None
