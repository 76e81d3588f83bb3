"""The traffic model: seeded, in event-time order, never in the future, obeys weights."""

from __future__ import annotations

from collections import Counter

from bifrost.client.simulator import ArmEffect, TrafficConfig, anchored, generate


def test_same_seed_same_traffic() -> None:
    config = TrafficConfig(duration_seconds=20, rate_per_second=10, seed=3)
    assert list(generate(config)) == list(generate(config))


def test_anchored_span_never_reaches_the_future() -> None:
    config = anchored(TrafficConfig(duration_seconds=3600, rate_per_second=2), speed=60, now=1_000_000.0)
    items = list(generate(config))
    assert items[-1].ts <= 1_000_000.0 + 3600 / 60
    assert all(a.ts <= b.ts for a, b in zip(items, items[1:]))


def test_live_weights_override_configured_arms() -> None:
    config = TrafficConfig(duration_seconds=100, rate_per_second=20, arms={"v1": 1.0})
    arms = Counter(g.event.arm for g in generate(config, lambda router: {"v1": 0.5, "v2": 0.5}) if g.event)
    assert 0.4 < arms["v2"] / sum(arms.values()) < 0.6


def test_arm_effects_shift_latency() -> None:
    base = TrafficConfig(duration_seconds=200, rate_per_second=10, arms={"v2": 1.0})
    slow = TrafficConfig(
        duration_seconds=200, rate_per_second=10, arms={"v2": 1.0}, arm_effects={"v2": ArmEffect(latency_factor=2.0)}
    )
    mean = lambda c: sum(g.event.latency_ms for g in generate(c) if g.event) / (200 * 10)  # noqa: E731
    assert 1.9 < mean(slow) / mean(base) < 2.1


def test_malformed_and_feedback_fractions() -> None:
    items = list(
        generate(TrafficConfig(duration_seconds=100, rate_per_second=20, malformed_fraction=0.1, feedback_fraction=0.5))
    )
    malformed = sum(1 for g in items if g.malformed is not None)
    feedback = sum(1 for g in items if g.feedback is not None)
    assert 120 < malformed < 280 and 700 < feedback < 1100
    assert all(g.feedback.request_id == g.event.request_id for g in items if g.feedback and g.event)
