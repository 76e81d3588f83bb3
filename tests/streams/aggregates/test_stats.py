"""Window statistics: folding, merging and the derived figures."""

from __future__ import annotations

import math

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.schemas import Bucket, FeedbackEvent, Outcome, RoutingEvent
from bifrost.streams.aggregates.stats import WindowStats, merged


def event(
    latency: float = 100.0,
    *,
    success: bool = True,
    cost: float = 0.01,
    rate_limited: bool = False,
    quality: float | None = None,
    win: Outcome | None = None,
) -> RoutingEvent:
    return RoutingEvent(
        request_id="r",
        ts=1.0,
        router_id="a",
        arm="v1",
        model="m",
        provider="p",
        bucket=Bucket.MID,
        latency_ms=latency,
        cost_usd=cost,
        success=success,
        rate_limited=rate_limited,
        quality=quality,
        win=win,
    )


def test_summary_figures() -> None:
    stats = WindowStats()
    for i in range(100):
        stats.add_event(event(latency=float(i + 1), success=i % 10 != 0, rate_limited=i == 5, cost=0.02))
    stats.add_feedback(
        FeedbackEvent(request_id="r", ts=1.0, router_id="a", arm="v1", model="m", grade=0.5, outcome=Outcome.WIN)
    )
    stats.add_feedback(
        FeedbackEvent(request_id="r", ts=1.0, router_id="a", arm="v1", model="m", grade=1.0, outcome=Outcome.TIE)
    )
    stats.add_feedback(FeedbackEvent(request_id="r", ts=1.0, router_id="a", arm="v1", model="m", outcome=Outcome.LOSS))
    summary = stats.summary()
    assert summary.count == 100 and summary.errors == 10 and summary.rate_limited == 1
    assert summary.error_rate == 0.1
    assert abs((summary.p95_ms or 0) - 95) <= 1.0
    assert abs((summary.cost_per_task or 0) - 0.02) < 1e-12
    assert summary.quality == 0.75 and summary.quality_count == 2
    assert summary.win_rate == 0.5  # (1 win + 0.5 tie) / 3


def test_empty_summary_has_no_rates() -> None:
    summary = WindowStats().summary()
    assert summary.error_rate is None and summary.p95_ms is None and summary.win_rate is None


latencies = st.lists(st.floats(min_value=0.1, max_value=1e5, allow_nan=False), max_size=50)


@settings(max_examples=100, deadline=None)
@given(st.lists(latencies, min_size=1, max_size=6))
def test_merge_is_order_independent(groups: list[list[float]]) -> None:
    parts = []
    for group in groups:
        stats = WindowStats()
        for latency in group:
            stats.add_event(event(latency=latency, success=latency > 50))
        parts.append(stats)
    forward, backward = merged(parts), merged(list(reversed(parts)))
    assert forward.count == backward.count == sum(len(g) for g in groups)
    assert forward.errors == backward.errors
    assert forward.latency_ms.bins == backward.latency_ms.bins
    assert forward.summary().p99_ms == backward.summary().p99_ms


def test_log_cost_moments_count_only_positive_costs_and_merge() -> None:
    a, b = WindowStats(), WindowStats()
    for cost in (0.0, 0.01, 0.04):
        a.add_event(event(cost=cost))
    b.add_event(event(cost=0.02))
    assert a.cost_paid == 2 and a.count == 3
    assert math.isclose(a.cost_log, math.log(0.01) + math.log(0.04))
    assert math.isclose(a.cost_log_sq, math.log(0.01) ** 2 + math.log(0.04) ** 2)
    both = merged([a, b])
    assert both.cost_paid == 3 and math.isclose(both.cost_log, a.cost_log + math.log(0.02))


def test_positive_costs_go_to_the_cost_sketch_and_old_records_decode_without_it() -> None:
    stats = WindowStats()
    assert stats.cost_sketch is None  # nothing to fold, merge or store until a cost arrives
    for cost in (0.002, 0.02, 0.0, 0.2):
        stats.add_event(event(cost=cost))
    sketch = stats.cost_sketch
    assert sketch is not None and stats.cost_paid == 3 and sketch.count == 3
    assert sketch.min == 0.002 and sketch.max == 0.2
    both = merged([stats, stats]).cost_sketch
    assert both is not None and both.count == 6 and both.bins == {k: 2 * c for k, c in sketch.bins.items()}
    assert merged([WindowStats(), stats]).cost_sketch == sketch == merged([stats, WindowStats()]).cost_sketch
    # A window stored before the field existed: no sketch, nothing else lost.
    raw = msgspec.json.decode(msgspec.json.encode(stats))
    del raw["cost_sketch"]
    old = msgspec.json.decode(msgspec.json.encode(raw), type=WindowStats)
    assert old.cost_sketch is None and old.cost_paid == 3 and old.cost_usd == stats.cost_usd
