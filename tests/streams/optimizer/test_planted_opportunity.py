"""Must-show: a cheap model planted as good as the chosen one on one cluster.

Real prompts (the bundled full-information set) are replayed through a real artifact for a
simulated week with ε-greedy exploration and logged propensities. On one cluster the
cheapest model is made exactly as good as whatever the router picks there (per prompt), so
routing that cluster to it saves cost at no quality loss. The optimizer must name that
model and cluster in its top recommendation, and the cost impact it expects (from the
counterfactual replay of the logs) must be within 10% of the effect measured when the
recommendation is applied in the simulator (``OverriddenRouter``, same prompts, same seed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import msgspec
import numpy as np
import pytest

from bifrost.client.simulator.replay import ReplayConfig, ReplayTraffic
from bifrost.router import ReferenceRouter
from bifrost.router.overrides import ClusterOverride, OverriddenRouter
from bifrost.schemas.recommendations import ActionKind, ImpactMethod, Recommendation, RecommendationKind
from bifrost.storage.dataset import FullInfoDataset
from bifrost.streams.optimizer.analysis import Analysis, OptimizerConfig, analyze
from bifrost.streams.optimizer.counterfactual import build_replay
from bifrost.streams.optimizer.rules import repeated_prompts
from tests.client import replay_data
from tests.streams.optimizer.logged import hours_of, logged_of

WEEK = 7 * 86_400
START = 1_700_006_400  # a UTC midnight
LOGGED_REQUESTS = 200_000  # a week at 0.33 requests per second
EXPLORATION = 0.3
MEASURED_REQUESTS = 60_000
SEED = 11


@dataclass(frozen=True)
class Planted:
    dataset: FullInfoDataset
    router: ReferenceRouter
    cluster: int
    model: str


def plant(dataset: FullInfoDataset, router: ReferenceRouter) -> Planted:
    """Make the cheapest model as good as the router's choice, prompt by prompt, on one cluster.

    The cluster is the one (of those with at most a quarter of the prompts) where that
    swap saves the most.
    """
    rows = np.flatnonzero((dataset.splits == "train") & dataset.valid_rows())
    decisions = router.route_many([dataset.prompts[r] for r in rows])
    column = {m: j for j, m in enumerate(dataset.models)}
    chosen_col = np.array([column[decisions.models[i]] for i in decisions.chosen])
    cheapest = min(decisions.models, key=lambda m: float(np.nanmean(dataset.costs[rows, column[m]])))
    y = column[cheapest]
    saving = dataset.costs[rows, chosen_col] - dataset.costs[rows, y]
    clusters = decisions.clusters
    candidates = [c for c in np.unique(clusters).tolist() if (clusters == c).mean() <= 0.25]
    cluster = max(candidates, key=lambda c: float(saving[clusters == c].sum()))
    scores = dataset.scores.copy()
    in_cluster = rows[clusters == cluster]
    scores[in_cluster, y] = dataset.scores[in_cluster, chosen_col[clusters == cluster]]
    return Planted(replace(dataset, scores=scores), router, int(cluster), cheapest)


def mean_cost_and_quality(planted: Planted, router: object, *, seed: int) -> tuple[float, float]:
    """Greedy replay (no exploration, no failures) through ``router``: mean cost and quality per request."""
    traffic = ReplayTraffic(planted.dataset, {"v1": router}, split="train", error_rate=0.0)  # type: ignore[dict-item]
    config = ReplayConfig(
        arms={"v1": 1.0}, exploration=0.0, rate_per_second=1.0, duration_seconds=MEASURED_REQUESTS, seed=seed
    )
    events = [item.event for item in traffic.generate(config) if item.event is not None]
    return float(np.mean([e.cost_usd for e in events])), float(np.mean([e.quality for e in events]))


@pytest.fixture(scope="module")
def world() -> tuple[Planted, Analysis]:
    artifact, _ = replay_data.signed_artifact()
    planted = plant(replay_data.load(), ReferenceRouter(artifact))
    traffic = ReplayTraffic(planted.dataset, {artifact.version: planted.router}, split="train")
    config = ReplayConfig(
        arms={artifact.version: 1.0},
        routers=("router-a",),
        exploration=EXPLORATION,
        rate_per_second=LOGGED_REQUESTS / WEEK,
        duration_seconds=WEEK,
        start_ts=START,
        feedback_fraction=0.3,
        seed=SEED,
    )
    items = list(traffic.generate(config))
    data = logged_of(items)
    replay = build_replay(data, planted.router)
    analysis = analyze(
        "router-a",
        START + WEEK,
        hours_of(items),
        OptimizerConfig(),
        replay=replay,
        repeats=repeated_prompts(data.features, data.ts, data.cost, ttl_seconds=3600),
        now=0.0,
    )
    return planted, analysis


def test_the_top_recommendation_names_the_planted_cheaper_model(world: tuple[Planted, Analysis]) -> None:
    planted, analysis = world
    top = analysis.recommendations[0]
    assert top.kind is RecommendationKind.CHEAPER_MODEL, [r.title for r in analysis.recommendations]
    assert top.subject == f"cluster={planted.cluster} model={planted.model}"
    assert top.priority == 1 and top.impact.method is ImpactMethod.COUNTERFACTUAL
    assert top.action.kind is ActionKind.RETRAIN
    assert top.action.parameters == {"cluster": planted.cluster, "model": planted.model}
    assert top.evidence.samples > 0.9 * LOGGED_REQUESTS  # logged requests replayed through the artifact
    assert top.impact.cost_per_task_change is not None and top.impact.cost_per_task_change < -0.03
    assert msgspec.json.decode(msgspec.json.encode(top), type=Recommendation) == top  # plain JSON, no numpy values
    msgspec.json.encode(analysis)


def test_expected_impact_is_within_ten_percent_of_the_effect_measured_in_the_simulator(
    world: tuple[Planted, Analysis],
) -> None:
    planted, analysis = world
    top = analysis.recommendations[0]
    applied = OverriddenRouter(planted.router, [ClusterOverride(planted.cluster, planted.model)])
    base_cost, base_quality = mean_cost_and_quality(planted, planted.router, seed=5)
    new_cost, new_quality = mean_cost_and_quality(planted, applied, seed=5)
    measured = (new_cost - base_cost) / base_cost
    expected = top.impact.cost_per_task_change
    assert expected is not None
    print(
        f"cost per task: expected {expected:+.4f}, measured {measured:+.4f}; quality: expected "
        f"{top.impact.quality_change:+.4f} CI {top.impact.quality_ci}, measured {new_quality - base_quality:+.4f}"
    )
    assert abs(expected - measured) <= 0.10 * abs(measured)
    ci = top.impact.quality_ci
    assert ci is not None and ci[0] <= new_quality - base_quality <= ci[1]
