"""Evidence-based rules, ids and periods, ranking — on synthetic hourly statistics (no Kafka)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from bifrost.schemas.recommendations import ImpactMethod, Recommendation, RecommendationKind, recommendation_id
from bifrost.streams.optimizer.analysis import Analysis, OptimizerConfig, analyze
from bifrost.streams.optimizer.goals import GoalTargets
from bifrost.streams.optimizer.rules import Repeats, period_label, priority_of, repeated_prompts
from bifrost.streams.optimizer.service import serving_arm
from bifrost.streams.rollup.query import MergedStats
from tests.streams.optimizer.traffic import Profile, week

DAY = 86_400


def kinds(
    hours: Mapping[int, MergedStats], clock: int, **kw: Any
) -> tuple[dict[tuple[RecommendationKind, str], Recommendation], Analysis]:
    analysis = analyze("web", clock, hours, OptimizerConfig(**kw), now=1.0)
    return {(r.kind, r.subject): r for r in analysis.recommendations}, analysis


def test_a_slow_model_and_a_rate_limited_one_are_named_with_evidence() -> None:
    models = {
        "m-small": (0.6, Profile(latency_median_ms=600.0, cost_mean=0.004, rate_limit_rate=0.05)),
        "m-large": (0.4, Profile(latency_median_ms=2600.0, cost_mean=0.02)),
    }
    hours, clock = week(1, models=models)
    found, analysis = kinds(hours, clock)
    slow = found[(RecommendationKind.SLOW_PROVIDER, "model=m-large")]
    assert slow.impact.method is ImpactMethod.EVIDENCE and slow.impact.p95_ms_change is not None
    assert slow.impact.p95_ms_change < -1000 and "upper bound" in slow.impact.assumption
    share = slow.evidence.figures["share_of_slow_requests"]
    assert isinstance(share, (int, float)) and share > 0.9 and slow.evidence.source == "windows"
    limited = found[(RecommendationKind.RATE_LIMIT_HOTSPOT, "model=m-small")]
    change = limited.impact.availability_change
    assert change is not None and 0.02 < change < 0.04  # 5% of 60% of requests
    assert limited.priority == 2  # evidence-based: never priority 1
    assert {g.goal: g.status for g in analysis.goals}["p95_ms"] == "breached"
    msgspec.json.decode(msgspec.json.encode(analysis.recommendations), type=list[Recommendation])  # plain JSON


def test_thinking_budget_and_data_refresh() -> None:
    models = {
        "m-small": (0.6, Profile(cost_mean=0.004, tokens_out=150.0, quality_mean=0.9)),
        "m-think": (0.4, Profile(cost_mean=0.02, tokens_out=3000.0, quality_mean=0.85, feedback_share=0.05)),
    }
    hours, clock = week(2, models=models)
    found, _ = kinds(hours, clock)
    thinking = found[(RecommendationKind.THINKING_BUDGET, "model=m-think")]
    assert thinking.action.parameters["max_output_tokens"] == 150
    assert thinking.impact.cost_per_task_change is not None and thinking.impact.cost_per_task_change < -0.3
    assert (RecommendationKind.DATA_REFRESH, "training data") not in found  # label coverage ≈ 20%
    sparse = {name: (share, Profile(**{**p.__dict__, "feedback_share": 0.05})) for name, (share, p) in models.items()}
    hours, clock = week(2, models=sparse)
    found, _ = kinds(hours, clock)
    refresh = found[(RecommendationKind.DATA_REFRESH, "training data")]
    coverage = refresh.evidence.figures["label_coverage"]
    assert refresh.action.kind.value == "retrain" and isinstance(coverage, (int, float)) and coverage < 0.1


def test_stable_traffic_within_goals_recommends_nothing() -> None:
    hours, clock = week(3)
    found, analysis = kinds(hours, clock)
    assert found == {} and analysis.alerts == []
    assert {g.status for g in analysis.goals} == {"met"}


def test_ids_are_deterministic_per_kind_router_subject_and_period() -> None:
    a = recommendation_id("slow_provider", "web", "model=m", "2025-06-05/7d")
    assert a == recommendation_id("slow_provider", "web", "model=m", "2025-06-05/7d")
    assert a != recommendation_id("slow_provider", "web", "model=m", "2025-06-12/7d")
    assert a != recommendation_id("slow_provider", "api", "model=m", "2025-06-05/7d")
    # Two analyses six hours apart in one period give the same ids.
    models = {"m-small": (0.6, Profile(rate_limit_rate=0.05)), "m-large": (0.4, Profile())}
    hours, clock = week(4, models=models, days=8)
    first = analyze("web", clock - 6 * 3600, hours, OptimizerConfig())
    second = analyze("web", clock - 12 * 3600, hours, OptimizerConfig())
    assert first.recommendations and {r.recommendation_id for r in first.recommendations} == {
        r.recommendation_id for r in second.recommendations
    }
    assert period_label(clock - 6 * 3600, 7 * DAY) == period_label(clock - 12 * 3600, 7 * DAY)


def test_period_labels_and_priorities() -> None:
    assert period_label(1_700_000_000, 7 * DAY) == "2023-11-09/7d"
    assert period_label(1_700_000_000, 6 * 3600) == "2023-11-14T18:00/21600s"
    assert priority_of(0.2, ImpactMethod.COUNTERFACTUAL) == 1
    assert priority_of(0.2, ImpactMethod.EVIDENCE) == 2
    assert priority_of(0.001, ImpactMethod.COUNTERFACTUAL) == 3


def test_repeated_prompts_count_only_repeats_within_the_ttl() -> None:
    features = np.array([[1, 2], [1, 2], [3, 4], [1, 2], [3, 4]], dtype=np.float32)
    ts = np.array([0.0, 100.0, 200.0, 10_000.0, 250.0])
    cost = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    found = repeated_prompts(features, ts, cost, ttl_seconds=3600)
    assert found == Repeats(rows=5, hits=2, hit_cost_usd=7.0, total_cost_usd=15.0, distinct=2, days=10_000 / DAY)


def test_caching_is_recommended_from_repeats_as_an_upper_bound() -> None:
    hours, clock = week(5)
    repeats = Repeats(rows=10_000, hits=3_000, hit_cost_usd=30.0, total_cost_usd=100.0, distinct=7_000, days=7.0)
    analysis = analyze("web", clock, hours, OptimizerConfig(), repeats=repeats)
    (caching,) = [r for r in analysis.recommendations if r.kind is RecommendationKind.CACHING]
    assert caching.impact.cost_per_task_change == -0.3 and caching.impact.cost_usd_per_day == round(-30.0 / 7, 6)
    assert "upper bound" in caching.impact.assumption


def test_goal_targets_come_from_the_config() -> None:
    hours, clock = week(6)
    strict = OptimizerConfig(targets=GoalTargets(p95_ms=500.0))
    analysis = analyze("web", clock, hours, strict)
    assert {g.goal: g.status for g in analysis.goals}["p95_ms"] == "breached"
    assert any(
        a.alert_id == f"slo_breach/web/p95_ms/{analysis.alerts[0].alert_id.rsplit('/', 1)[1]}" for a in analysis.alerts
    )


def test_the_serving_arm_is_the_one_with_most_requests() -> None:
    hours, clock = week(7)
    for hour in list(hours.values())[:10]:
        hour.arms["v0"] = hour.arms["v1"]
    assert serving_arm(hours, clock - 7 * DAY, clock) == "v1"
    assert serving_arm({}, 0, 1) is None
