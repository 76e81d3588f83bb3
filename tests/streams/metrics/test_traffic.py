"""Per router and arm figures: exact counts from the fold, histogram buckets, bounded labels."""

from __future__ import annotations

import math
import random

import orjson

from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.ingest.fold import BatchFolder, InputRecord
from bifrost.streams.metrics.labels import OTHER, LabelBudget
from bifrost.streams.metrics.traffic import LATENCY_BUCKETS_SECONDS, TrafficFigures

NOW = 1_764_000_000.0
T0 = 1_763_989_980


def event(
    i: int,
    router: str,
    arm: str,
    *,
    latency: float,
    success: bool = True,
    cost: float = 0.01,
    rate_limited: bool = False,
) -> bytes:
    return orjson.dumps(
        {
            "request_id": f"r-{i}",
            "ts": T0 + i % 200,
            "router_id": router,
            "arm": arm,
            "model": f"m{i % 3}",
            "provider": "p",
            "bucket": ("cheap", "mid", "hard")[i % 3],
            "latency_ms": latency,
            "cost_usd": cost,
            "success": success,
            "rate_limited": rate_limited,
        }
    )


def test_fold_traffic_counts_every_accepted_routing_event_once_per_router_and_arm() -> None:
    rng = random.Random(3)
    expected: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], int] = {}
    values = []
    for i in range(3000):
        router, arm = rng.choice(["a", "b"]), rng.choice(["v1", "v2", "v3"])
        latency = rng.lognormvariate(6.5, 1.0)
        success = rng.random() > 0.1
        values.append(event(i, router, arm, latency=latency, success=success, rate_limited=not success))
        expected.setdefault((router, arm), []).append(latency)
        errors[(router, arm)] = errors.get((router, arm), 0) + (not success)
    bad = orjson.loads(values[11])
    values[11] = b"{not json"  # a dead letter is not a request
    key = (bad["router_id"], bad["arm"])
    expected[key].remove(bad["latency_ms"])
    errors[key] -= not bad["success"]
    folder = BatchFolder(routing_topic="ev", feedback_topic="fb")
    figures = TrafficFigures(max_routers=10, max_arms_per_router=10)
    states: dict = {}
    partials: dict = {}
    # Two batches, like two commits.
    for start, chunk in ((0, values[:1500]), (1500, values[1500:])):
        inputs = [InputRecord("ev", 0, start + j, None, v) for j, v in enumerate(chunk)]
        result = folder.fold(inputs, load=partials.get, states=states, now=NOW)
        partials.update(result.changed)
        figures.add_all(result.traffic)
    rows = {(r, a): c for r, a, c in figures.rows()}
    assert set(rows) == set(expected)
    for key, latencies in expected.items():
        counters = rows[key]
        assert counters.requests == len(latencies)
        assert counters.errors == errors[key] == counters.rate_limited
        assert math.isclose(counters.cost_usd, 0.01 * len(latencies), rel_tol=1e-9)
        assert math.isclose(counters.latency_sum_seconds, sum(latencies) / 1000, rel_tol=1e-9)
        assert sum(counters.latency_buckets) == len(latencies)
        # Each bucket holds the latencies within its bounds, up to the sketch's 1% (2% at a bound).
        cumulative = dict(counters.cumulative_buckets())
        for bound in LATENCY_BUCKETS_SECONDS:
            low = sum(1 for v in latencies if v <= bound * 1000 * 0.98)
            high = sum(1 for v in latencies if v <= bound * 1000 * 1.02)
            assert low <= cumulative[repr(bound)] <= high, (key, bound)
        assert cumulative["+Inf"] == len(latencies)


def test_latencies_exactly_on_a_bound_count_in_that_bucket() -> None:
    stats = WindowStats(count=len(LATENCY_BUCKETS_SECONDS))
    stats.latency_ms.add_many([bound * 1000 for bound in LATENCY_BUCKETS_SECONDS])
    figures = TrafficFigures(max_routers=1, max_arms_per_router=1)
    figures.add("r", "a", stats)
    ((_, _, counters),) = figures.rows()
    assert counters.latency_buckets == [1] * len(LATENCY_BUCKETS_SECONDS) + [0]


def test_zero_and_huge_latencies_land_in_the_first_and_the_inf_bucket() -> None:
    stats = WindowStats(count=2)
    stats.latency_ms.add_many([0.0, 10_000_000.0])
    figures = TrafficFigures(max_routers=1, max_arms_per_router=1)
    figures.add("r", "a", stats)
    ((_, _, counters),) = figures.rows()
    assert counters.latency_buckets[0] == 1 and counters.latency_buckets[-1] == 1


def test_feedback_only_statistics_are_not_requests() -> None:
    figures = TrafficFigures(max_routers=1, max_arms_per_router=1)
    figures.add("r", "a", WindowStats(wins=3, quality_count=2, quality_sum=1.5))
    assert figures.rows() == []


def test_a_flood_of_router_and_arm_names_folds_into_other_and_keeps_totals() -> None:
    figures = TrafficFigures(max_routers=3, max_arms_per_router=2)
    for i in range(1000):
        stats = WindowStats(count=1, cost_usd=1.0)
        stats.latency_ms.add(100.0)
        figures.add(f"router-{i}", f"arm-{i % 7}", stats)
    rows = figures.rows()
    routers = {r for r, _, _ in rows}
    assert routers == {"router-0", "router-1", "router-2", OTHER}
    assert len(rows) <= (3 + 1) * (2 + 1)  # bounded: each router (and other) has 2 arms and other
    assert sum(c.requests for _, _, c in rows) == 1000
    assert figures.routers.folded == 997
    assert {a for r, a, _ in rows if r == OTHER} == {"arm-3", "arm-4", OTHER}  # the first two arms seen, then other


def test_label_budget_keeps_known_values_after_it_is_full() -> None:
    budget = LabelBudget(2)
    assert [budget.admit(v) for v in ["x", "y", "z", "x", "y", "z"]] == ["x", "y", OTHER, "x", "y", OTHER]
    assert budget.folded == 2 and len(budget) == 2
