"""Alerts on simulated weeks: stable noisy traffic raises none; a slow +1%/day latency drift is caught."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import msgspec
import numpy as np
import pytest

from bifrost.schemas.alerts import AlertKind
from bifrost.schemas.triggers import TriggerReason
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.optimizer.alerting import AlertConfig, cost_increase, rule_degradations
from bifrost.streams.optimizer.analysis import Analysis, OptimizerConfig, analyze
from bifrost.streams.optimizer.series import metric_value, scope_stats
from bifrost.streams.optimizer.trends import trend_test
from bifrost.streams.rollup.query import MergedStats
from bifrost.streams.triggers.rules import WEEK
from tests.streams.optimizer import day_shapes
from tests.streams.optimizer.traffic import DAY, Profile, two_models, week

SEEDS = range(100)  # the must-show's minimum
RATE = 1000.0  # requests per hour (0.28/s): a small router


@dataclass(frozen=True)
class Case:
    """A simulated week: a day-level latency shape on :func:`week`, with the generator's other knobs."""

    shape: Callable[[np.random.Generator], np.ndarray]
    growth: float = 0.0
    rate: float = RATE
    hour_noise_df: float | None = None
    hour_noise: float = 0.03  # a latency factor every request of an hour shares
    request_sigma: float | None = None  # per-request log-latency sd (None: the generator's 0.4)
    rate_ramp: float = 1.0  # volume × this from the first hour to the last

    def week(self, seed: int) -> tuple[dict[int, MergedStats], int]:
        return week(
            seed,
            rate_per_hour=self.rate,
            latency_growth_per_day=self.growth,
            hour_noise_df=self.hour_noise_df,
            hour_noise=self.hour_noise,
            day_factor=self.shape(np.random.default_rng(10_000 + seed)),
            models=None if self.request_sigma is None else two_models(self.request_sigma),
            rate_ramp=self.rate_ramp,
        )


# Stable weeks: none is a trend. Days share a level (every hour of a day moves together);
# the earlier seasonal test on hourly points called 13% of the 3%-wobble weeks a trend.
STABLE = {
    "wobble 1%": Case(day_shapes.wobble(0.01)),
    "wobble 3%": Case(day_shapes.wobble(0.03)),
    "odd first day -30%": Case(day_shapes.odd_day(0.30, at_start=True)),
    "odd last day +30%": Case(day_shapes.odd_day(0.30, at_start=False)),
    "heavy-tailed hour noise (t, 2 df)": Case(day_shapes.wobble(0.01), hour_noise_df=2.0),
    "100 requests per hour": Case(day_shapes.wobble(0.01), rate=100.0),
    "weekend -10% at the start": Case(day_shapes.weekend(0.10, at_start=True)),  # one level shift, not a line
    "weekend +10% at the end": Case(day_shapes.weekend(0.10, at_start=False)),
    # No shared hour or day noise: every request's latency drawn on its own (log-normal).
    "independent requests, σ 1.0": Case(day_shapes.wobble(0.0), hour_noise=0.0, request_sigma=1.0),
}
# Stable shapes near the goal, bounded at 2 of seeds 0–99 (the must-show's minimum seed
# count, not cherry-picked); their longer runs are in the README:
# * independent requests at σ 1.5 and 100 requests/hour: 0.8% over 1,000 weeks (seeds
#   200–1199, the median at 0.0025), 2 of seeds 0–99 (both median alerts);
# * traffic growing 10× over the week (40 → 400 requests/hour), latency unchanged: with type-7
#   hourly quantiles small early hours read their P95 5–12% low and 18–21% of such weeks
#   alerted (outside test); now 2 of seeds 0–99 (win rate, cost) and 4 of seeds 100–499 (cost
#   3, median 1): quiet early days give noisier cost and win-rate levels than the t test's
#   equal-variance days assume.
NEAR_GOAL = {
    "independent requests, σ 1.5, 100 per hour": Case(
        day_shapes.wobble(0.0), rate=100.0, hour_noise=0.0, request_sigma=1.5
    ),
    "traffic 40 → 400 per hour, σ 0.5": Case(
        day_shapes.wobble(0.0), rate=40.0, hour_noise=0.0, request_sigma=0.5, rate_ramp=10.0
    ),
}
# Stable shapes the 7-day test does not hold to 1% (README, bench/results/optimizer_trends.md):
# bounded just above the rate measured on these seeds (4, 4 and 3 of 100) so that a regression shows.
ABOVE_GOAL = {
    "AR(1) 0.6, 2%": (Case(day_shapes.ar1(0.6, 0.02)), 0.06),
    "weekend -5% at the start": (Case(day_shapes.weekend(0.05, at_start=True)), 0.06),
    "weekend +5% at the end": (Case(day_shapes.weekend(0.05, at_start=False)), 0.06),
}


@cache
def analysis_of(case: Case, seed: int) -> Analysis:
    """One analysed week, shared by the tests that read the same case (weeks are regenerated, analyses kept)."""
    hours, clock = case.week(seed)
    return analyze("router-a", clock, hours, OptimizerConfig())


def false_alerts(case: Case) -> list[tuple[int, list[str]]]:
    """Seeds whose stable week raised a trend or cost alert or a trigger.

    An SLO breach is not counted: an odd last day 30% slower does breach the P95 goal that day.
    """
    alerted = []
    for seed in SEEDS:
        analysis = analysis_of(case, seed)
        found = [a.alert_id for a in analysis.alerts if a.kind is not AlertKind.SLO_BREACH]
        if found or analysis.trigger is not None:
            alerted.append((seed, found))
    return alerted


@pytest.mark.parametrize("name", list(STABLE))
def test_stable_noisy_weeks_raise_at_most_one_percent_false_alerts(name: str) -> None:
    """100 seeds of a stable week (daily cycles, hour noise, a day-level shape): no trend alert, no trigger in ≥ 99%."""
    alerted = false_alerts(STABLE[name])
    assert len(alerted) / len(SEEDS) <= 0.01, alerted


@pytest.mark.parametrize("name", list(NEAR_GOAL))
def test_quiet_or_growing_weeks_stay_near_one_percent(name: str) -> None:
    alerted = false_alerts(NEAR_GOAL[name])
    assert len(alerted) / len(SEEDS) <= 0.02, alerted


def test_stable_weeks_with_one_percent_wobble_raise_nothing_at_all() -> None:
    for seed in range(30):  # the same weeks as the "wobble 1%" case above
        analysis = analysis_of(STABLE["wobble 1%"], seed)
        assert not analysis.alerts and analysis.trigger is None, (seed, [a.alert_id for a in analysis.alerts])


@pytest.mark.parametrize("name", list(ABOVE_GOAL))
def test_persistent_or_stepped_day_levels_are_where_the_weekly_test_misses_its_goal(name: str) -> None:
    """AR(1) day levels and a 5% weekend step at either end of the window: above 1% (README).

    Seven positively correlated day levels, or two days 5% off the other five (within the
    day noise, so one step does not fit clearly better than a line), look like a +6% rise;
    seven points cannot tell them from a trend without knowing the weekly shape. The bound
    guards the measured rates.
    """
    case, bound = ABOVE_GOAL[name]
    alerted = false_alerts(case)
    assert len(alerted) / len(SEEDS) <= bound, alerted


def test_the_seasonal_test_on_hourly_points_is_what_day_level_wobble_fooled() -> None:
    # The reason for testing days: at 3% day-to-day wobble the hourly seasonal Kendall
    # calls a stable week a significant trend far more often than its alpha.
    significant = 0
    for seed in range(40):
        hours, clock = STABLE["wobble 3%"].week(seed)
        t = np.asarray(sorted(hours), dtype=np.float64)
        routers = [scope_stats(hours[int(x)], "router") for x in t]
        assert all(stats is not None for stats in routers)
        v = np.asarray([metric_value(stats, "p95_ms", min_samples=30) for stats in routers if stats is not None])
        trend = trend_test(t, v, seasons=((t // 3600) % 24).astype(np.int64), span_days=7.0)
        assert trend is not None
        significant += min(trend.p_increase, trend.p_decrease) < 0.005
    assert significant >= 10, significant


DRIFTS = {
    "shared 3% hour noise, no day wobble": (Case(day_shapes.wobble(0.0), growth=0.01), 0.85),
    "shared 3% hour noise, 1% day wobble": (Case(day_shapes.wobble(0.01), growth=0.01), 0.35),
    "independent requests, σ 0.5": (
        Case(day_shapes.wobble(0.0), growth=0.01, hour_noise=0.0, request_sigma=0.5),
        0.95,
    ),
    "independent requests, σ 1.0": (
        Case(day_shapes.wobble(0.0), growth=0.01, hour_noise=0.0, request_sigma=1.0),
        0.7,
    ),
}
LATENCY_SUBJECTS = {"router-a/p95_ms", "router-a/p50_ms"}


@pytest.mark.parametrize("name", list(DRIFTS))
def test_a_one_percent_a_day_latency_drift_gives_a_degradation_alert_and_trigger(name: str) -> None:
    """+1%/day latency over 7 days (+7.2%): a degradation alert and a retrain, in most weeks.

    Seven day levels decide, of the P95 and of the median (each at a sixth of the router's
    alpha). With 1% day-to-day wobble the estimated 7-day change falls under 5% in ~15% of
    weeks and the slope's t (5 df) misses in many more (README, "Trend test": 89% and 39.5%
    of 200 weeks); with independent requests the median carries the drift with 2.1× less
    sampling noise than the P95 (σ 1.0: 77.5% against 32% with the P95 alone). Every detected
    week also gets the training trigger, from the optimizer or from the trainer's own last-day rule.
    """
    drift, at_least = DRIFTS[name]
    detected = by_rule = 0
    for seed in range(40):
        hours, clock = drift.week(seed)
        analysis = analyze("router-a", clock, hours, OptimizerConfig())
        latency = [a for a in analysis.alerts if a.kind is AlertKind.DEGRADATION and a.subject in LATENCY_SUBJECTS]
        if drift.request_sigma is None:
            assert not any(a.kind is AlertKind.SLO_BREACH for a in analysis.alerts)
        if not latency:
            continue
        detected += 1
        if rule_degradations(hours, clock, 0.05):  # the trainer's rule fired too: it sends the trigger
            by_rule += 1
            assert analysis.trigger is None
            continue
        trigger = analysis.trigger
        assert trigger is not None and trigger.reason is TriggerReason.DEGRADATION
        assert trigger.router_id == "router-a" and trigger.details["source"] == "optimizer-7d-trend"
        assert trigger.trigger_id.startswith("degradation-router-a-")  # the trainer's rule's id: at most once
        assert trigger.window_to - trigger.window_from == WEEK
        changes = [float(v) for k, v in trigger.details.items() if k in {"p95_ms.change", "p50_ms.change"}]
        assert changes and max(changes) > 0.05, trigger.details
    assert detected >= at_least * 40, detected
    assert by_rule <= detected / 2, (by_rule, detected)  # mostly the trend alone sees a slow drift


def test_no_trigger_when_the_trainers_rule_already_flags_the_router() -> None:
    # A sudden +40% latency on the last day: the trainer's rule fires, so the optimizer
    # alerts on the trend but leaves the retrain to the rule.
    hours, clock = week(5)
    for t, hour in hours.items():
        if t >= clock - DAY:
            for name, stats in list(hour.models.items()):
                sketch = stats.latency_ms
                shifted = msgspec.structs.replace(
                    sketch, bins={k + 17: c for k, c in sketch.bins.items()}, min=sketch.min * 1.4, max=sketch.max * 1.4
                )
                hour.models[name] = msgspec.structs.replace(stats, latency_ms=shifted)
            total = WindowStats()
            for stats in hour.models.values():
                total.merge(stats)
            hour.arms["v1"] = total
    assert [d.metric for d in rule_degradations(hours, clock, 0.05)] == ["p95_ms"]
    analysis = analyze("router-a", clock, hours, OptimizerConfig())
    assert analysis.trigger is None


def test_cost_increase_needs_twenty_percent_and_significance() -> None:
    config = AlertConfig()
    base = WindowStats(count=6000, cost_usd=60.0, cost_sq=0.7)
    assert cost_increase(WindowStats(count=1000, cost_usd=11.5, cost_sq=0.15), base, config) is None  # +15%
    found = cost_increase(WindowStats(count=1000, cost_usd=12.5, cost_sq=0.17), base, config)
    assert found is not None and found.change == pytest.approx(0.25)
    assert cost_increase(WindowStats(count=100, cost_usd=2.0, cost_sq=0.1), base, config) is None  # too few


def test_a_cost_jump_and_a_breached_goal_alert_once_per_day_with_idempotent_ids() -> None:
    profiles = {
        "m-small": (0.6, Profile(latency_median_ms=600.0, cost_mean=0.004, error_rate=0.02)),
        "m-large": (0.4, Profile(latency_median_ms=1000.0, cost_mean=0.02)),
    }
    hours, clock = week(2, models=profiles)
    for t, hour in hours.items():
        if t >= clock - DAY:
            for stats in hour.models.values():
                stats.cost_usd *= 1.5
                stats.cost_sq *= 2.25
            total = WindowStats()
            for stats in hour.models.values():
                total.merge(stats)
            hour.arms["v1"] = total
    first = analyze("router-a", clock, hours, OptimizerConfig())
    ids = sorted(a.alert_id for a in first.alerts)
    assert ids == [
        "cost_increase/router-a/cost_per_task/2023-11-22",  # +50% on the last day: a jump…
        "slo_breach/router-a/availability/2023-11-22",
    ]  # …not a 7-day trend (it rests on the last day)
    assert first.trigger is None  # the trainer's own last-day rule flags this one
    later = analyze("router-a", clock + 6 * 3600, hours, OptimizerConfig())  # same UTC day, six hours later
    assert {a.alert_id for a in later.alerts} <= set(ids)
