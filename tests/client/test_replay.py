"""Dataset replay: exact propensities, outcomes from the dataset, weights, verified arms only."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.client.simulator import run_simulation
from bifrost.client.simulator.arms import ArmPool, store_loader
from bifrost.client.simulator.model import Generated
from bifrost.client.simulator.replay import (
    FASTEST_MS,
    SLOWEST_MS,
    ReplayConfig,
    ReplayError,
    ReplayTraffic,
    model_profiles,
    price_rank_medians,
    propensity,
    read_catalog,
)
from bifrost.router import Artifact, ReferenceRouter
from bifrost.schemas.codec import EventDecoder, encode
from bifrost.schemas.events import FeedbackEvent, Outcome, RoutingEvent
from bifrost.schemas.topics import Topics
from bifrost.storage.artifact_store import ArtifactStore
from bifrost.storage.dataset import FullInfoDataset
from tests.client import replay_data


@dataclass(frozen=True)
class World:
    dataset: FullInfoDataset
    key: Ed25519PrivateKey
    artifact: Artifact
    router: ReferenceRouter


@pytest.fixture(scope="module")
def world() -> World:
    artifact, key = replay_data.signed_artifact()
    return World(replay_data.load(), key, artifact, ReferenceRouter(artifact))


def events(items: list[Generated]) -> list[RoutingEvent]:
    return [item.event for item in items if item.event is not None]


def replayed(item: Generated) -> tuple[RoutingEvent, int]:
    """A replayed request's event and dataset row (a replay without malformed records sets both)."""
    assert item.event is not None and item.row is not None
    return item.event, item.row


def within(observed: float, expected: float, n: int, sigmas: float = 4.0) -> bool:
    """|observed − expected| within ``sigmas`` binomial standard errors."""
    return abs(observed - expected) <= sigmas * math.sqrt(max(expected * (1 - expected), 1e-12) / n)


# -- propensities ---------------------------------------------------------------------------


@pytest.mark.parametrize("exploration", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("n", [1, 2, 3, 9])
def test_propensities_sum_to_one_over_the_eligible_models(n: int, exploration: float) -> None:
    models = [f"m{i}" for i in range(n)]
    total = sum(propensity(m, "m0", n, exploration) for m in models)
    assert total == pytest.approx(1.0, abs=1e-12)
    assert all(0 < propensity(m, "m0", n, exploration) <= 1 for m in models if exploration > 0 or m == "m0")


def test_logged_propensity_is_the_probability_of_the_served_model(world: World) -> None:
    epsilon = 0.3
    traffic = ReplayTraffic(world.dataset, {"a": world.router}, split="test", error_rate=0.0)
    config = ReplayConfig(arms={"a": 1.0}, exploration=epsilon, rate_per_second=100, duration_seconds=200)
    items = list(traffic.generate(config))
    decisions = {row: world.router.route(world.dataset.prompts[row]) for row in {replayed(i)[1] for i in items}}
    greedy_hits: dict[int, list[bool]] = defaultdict(list)
    ips_terms, greedy_values = [], []
    for item in items:
        event, row = replayed(item)
        decision = decisions[row]
        eligible = list(decision.scores)
        assert event.features == decision.features and event.bucket.value == decision.bucket
        assert event.model in eligible
        assert event.propensity == propensity(event.model, decision.model, len(eligible), epsilon)
        greedy_hits[len(eligible)].append(event.model == decision.model)
        served_greedy = event.model == decision.model
        assert event.propensity is not None and event.quality is not None  # no errors in this replay
        ips_terms.append(served_greedy / event.propensity * event.quality)
        greedy_values.append(world.dataset.scores[row, world.dataset.models.index(decision.model)])
    for n, hits in greedy_hits.items():
        expected = 1.0 if n == 1 else (1 - epsilon) + epsilon / n
        assert within(float(np.mean(hits)), expected, len(hits)), (n, np.mean(hits), expected)
    assert any(n > 1 for n in greedy_hits), "the artifact never had a choice to explore"
    # The logged propensities make IPS unbiased for the greedy policy's value.
    standard_error = float(np.std(ips_terms)) / math.sqrt(len(ips_terms))
    assert abs(np.mean(ips_terms) - np.mean(greedy_values)) < 4 * standard_error


def test_exploration_serves_every_eligible_model_uniformly(world: World) -> None:
    traffic = ReplayTraffic(world.dataset, {"a": world.router}, split="test")
    config = ReplayConfig(arms={"a": 1.0}, exploration=1.0, rate_per_second=100, duration_seconds=200)
    by_size: dict[int, Counter[str]] = defaultdict(Counter)
    counts: Counter[int] = Counter()
    for item in traffic.generate(config):
        event, row = replayed(item)
        routed = traffic.routed("a", row)
        by_size[len(routed.eligible)][str(routed.eligible.index(event.model))] += 1
        counts[len(routed.eligible)] += 1
    for n, served in by_size.items():
        for position in range(n):
            assert within(served[str(position)] / counts[n], 1 / n, counts[n]), (n, position, served)


# -- outcomes -------------------------------------------------------------------------------


def test_outcomes_are_looked_up_in_the_dataset(world: World) -> None:
    dataset = world.dataset
    traffic = ReplayTraffic(dataset, {"a": world.router}, split="test", error_rate=0.05)
    items = list(traffic.generate(ReplayConfig(arms={"a": 1.0}, rate_per_second=50, duration_seconds=100)))
    catalog = read_catalog(dataset.source)
    failed = 0
    for item in items:
        event, row = replayed(item)
        column = dataset.models.index(event.model)
        assert dataset.splits[row] == "test"
        assert event.cost_usd == dataset.costs[row, column]
        assert event.tokens_in == max(1, round(len(dataset.prompts[row]) / 4))
        assert event.provider == catalog.get(event.model, {}).get("provider", "dataset")
        assert event.arm == "a" and event.latency_ms > 0
        if event.success:
            assert event.quality == min(1.0, max(0.0, dataset.scores[row, column]))
        else:
            failed += 1
            assert event.quality is None and event.http_status in (429, 502)
    assert 0 < failed < len(items) * 0.15


def test_rows_cycle_through_the_split_before_repeating(world: World) -> None:
    traffic = ReplayTraffic(world.dataset, {"a": world.router}, split="test")
    n = len(traffic.rows)
    rows = [
        replayed(item)[1]
        for item in traffic.generate(ReplayConfig(arms={"a": 1.0}, rate_per_second=1, duration_seconds=2 * n))
    ]
    assert sorted(rows[:n]) == sorted(traffic.rows.tolist()) == sorted(rows[n:])
    assert rows[:n] != rows[n:]


def test_feedback_compares_with_the_baseline_in_the_dataset(world: World) -> None:
    dataset = world.dataset
    traffic = ReplayTraffic(dataset, {"a": world.router}, split="test")
    baseline = traffic.baseline()
    means = dataset.split("test").scores.mean(axis=0)
    assert means[dataset.models.index(baseline)] == means.max()
    config = ReplayConfig(arms={"a": 1.0}, rate_per_second=50, duration_seconds=100, feedback_fraction=0.5)
    with_feedback = [item for item in traffic.generate(config) if item.feedback is not None]
    assert 0.4 * 5000 < len(with_feedback) < 0.6 * 5000
    for item in with_feedback:
        feedback, (event, row) = item.feedback, replayed(item)
        assert feedback is not None
        served = dataset.scores[row, dataset.models.index(event.model)]
        base = dataset.scores[row, dataset.models.index(baseline)]
        expected = Outcome.WIN if served > base else Outcome.LOSS if served < base else Outcome.TIE
        assert feedback.outcome is expected and feedback.grade is None
        assert (feedback.request_id, feedback.arm, feedback.model) == (event.request_id, "a", event.model)


def test_latency_medians_follow_price_rank_unless_the_catalog_has_them(world: World) -> None:
    medians = price_rank_medians({"cheap": 0.1, "mid": 0.2, "dear": 0.9, "dear-too": 0.9})
    assert medians["cheap"] == FASTEST_MS and medians["dear"] == medians["dear-too"] == SLOWEST_MS
    assert medians["mid"] == pytest.approx(math.sqrt(FASTEST_MS * SLOWEST_MS))
    first, second = world.dataset.models[:2]
    profiles = model_profiles(world.dataset, {first: {"latency_ms": 42, "provider": "acme", "error_rate": 0.2}})
    assert (profiles[first].latency_median_ms, profiles[first].provider) == (42.0, "acme")
    assert profiles[first].error_rate + profiles[first].rate_limit_rate == pytest.approx(0.2)
    assert profiles[second].provider == "dataset"


# -- arms -----------------------------------------------------------------------------------


def test_arms_obey_live_weights_and_fall_back_to_configured_ones(world: World) -> None:
    routers = {"a": world.router, "b": world.router}
    traffic = ReplayTraffic(world.dataset, routers, split="test")
    config = ReplayConfig(arms={"a": 1.0}, routers=("r1", "r2"), rate_per_second=100, duration_seconds=100)
    live = {"r1": {"a": 0.7, "b": 0.3}}
    served = Counter((e.router_id, e.arm) for e in events(list(traffic.generate(config, live.get))))
    r1 = served[("r1", "a")] + served[("r1", "b")]
    assert within(served[("r1", "a")] / r1, 0.7, r1)
    assert served[("r2", "b")] == 0 and served[("r2", "a")] == 5000


def test_unverifiable_or_missing_arms_are_never_routed_with(world: World, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    good = replay_data.publish(store, world.artifact, world.key)
    forged = replay_data.publish(
        store, world.artifact, Ed25519PrivateKey.generate(), version="forged", make_current=False
    )
    tampered = replay_data.publish(store, world.artifact, world.key, version="tampered", make_current=False)
    path = store.root / tampered / "artifact.json"
    path.write_bytes(path.read_bytes().replace(b'"alpha":', b'"alpha": ', 1))
    pool = ArmPool(load=store_loader(store, world.key.public_key()))
    traffic = ReplayTraffic(world.dataset, pool, split="test")
    weights = {good: 0.25, forged: 0.25, tampered: 0.25, "ghost": 0.25}
    config = ReplayConfig(arms={good: 1.0}, rate_per_second=100, duration_seconds=100)
    served = Counter(e.arm for e in events(list(traffic.generate(config, lambda router: weights))))
    assert served == Counter({good: 10_000})
    assert set(pool.failures) == {forged, tampered, "ghost"}
    assert "verification" in pool.failures[forged] and "verification" in pool.failures[tampered]
    assert "ghost" in pool.failures["ghost"]
    assert within(sum(pool.rerouted.values()) / 10_000, 0.75, 10_000)


def test_a_missing_arm_is_used_once_it_is_published(world: World, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    clock = [0.0]
    pool = ArmPool(load=store_loader(store, world.key.public_key()), retry_seconds=30, clock=lambda: clock[0])
    assert pool.get("later") is None
    replay_data.publish(store, world.artifact, world.key, version="later")
    clock[0] = 10.0
    assert pool.get("later") is None  # not looked up again before the retry interval
    clock[0] = 31.0
    assert pool.get("later") is not None and pool.failures == {}


def test_an_arm_routing_to_models_without_outcomes_is_refused(world: World) -> None:
    dataset = world.dataset
    narrow = replace(dataset, models=dataset.models[1:], scores=dataset.scores[:, 1:], costs=dataset.costs[:, 1:])
    traffic = ReplayTraffic(narrow, {"a": world.router}, split="test")
    with pytest.raises(ReplayError, match=dataset.models[0]):
        next(traffic.generate(ReplayConfig(arms={"a": 1.0}, duration_seconds=1)))


# -- determinism and the runner -------------------------------------------------------------


def test_same_seed_same_traffic(world: World) -> None:
    def run(seed: int) -> list[Generated]:
        traffic = ReplayTraffic(world.dataset, {"a": world.router, "b": world.router}, split="test")
        config = ReplayConfig(
            arms={"a": 0.5, "b": 0.5},
            rate_per_second=20,
            duration_seconds=50,
            seed=seed,
            feedback_fraction=0.3,
            malformed_fraction=0.05,
        )
        return list(traffic.generate(config))

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_replayed_events_pass_the_workers_validation(world: World) -> None:
    traffic = ReplayTraffic(world.dataset, {"a": world.router}, split="test", error_rate=0.1)
    config = ReplayConfig(
        arms={"a": 1.0}, rate_per_second=10, duration_seconds=100, feedback_fraction=0.5, start_ts=1.7e9
    )
    routing, feedback = EventDecoder(RoutingEvent), EventDecoder(FeedbackEvent)
    for item in traffic.generate(config):
        event, _ = replayed(item)
        assert routing.decode(encode(event), now=item.ts) == event
        if item.feedback is not None:
            assert feedback.decode(encode(item.feedback), now=item.ts) == item.feedback


class RecordingPublisher:
    """Stands in for :class:`Publisher`: keeps what would be sent."""

    topics = Topics()

    def __init__(self) -> None:
        self.events: list[RoutingEvent] = []
        self.feedback: list[FeedbackEvent] = []
        self.raw: list[bytes] = []

    async def publish(self, event: RoutingEvent) -> None:
        self.events.append(event)

    async def publish_feedback(self, feedback: FeedbackEvent) -> None:
        self.feedback.append(feedback)

    async def send_raw(self, topic: str, key: bytes, value: bytes) -> None:
        self.raw.append(value)

    async def flush(self) -> None:
        return None


async def test_run_simulation_publishes_a_replay_unchanged(world: World) -> None:
    traffic = ReplayTraffic(world.dataset, {"a": world.router}, split="test")
    config = ReplayConfig(arms={"a": 1.0}, rate_per_second=20, duration_seconds=30, feedback_fraction=0.5)
    publisher = RecordingPublisher()
    report = await run_simulation(
        publisher,
        config,
        speed=0,
        source=lambda weights: traffic.generate(config, weights),
    )
    assert publisher.events == events(list(traffic.generate(config)))
    assert report.events == 600 and report.feedback == len(publisher.feedback) > 0
    assert report.per_arm == Counter({"router-a/a": 600})
