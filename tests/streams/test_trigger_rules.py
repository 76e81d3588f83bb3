"""Retrain rules: weekly ids are idempotent; degradation needs a >5% worse last day."""

from __future__ import annotations

from bifrost.schemas import Bucket, Outcome, RoutingEvent
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.triggers.rules import degradation_trigger, degradations, schedule_trigger


def stats(n: int, *, latency: float = 500.0, cost: float = 0.01, win_every: int = 10) -> WindowStats:
    s = WindowStats()
    for i in range(n):
        s.add_event(
            RoutingEvent(
                request_id=str(i),
                ts=0.0,
                router_id="r",
                arm="v1",
                model="m",
                provider="p",
                bucket=Bucket.MID,
                latency_ms=latency + i % 50,
                cost_usd=cost,
                success=True,
                win=Outcome.LOSS if i % win_every == 0 else Outcome.WIN,
            )
        )
    return s


def test_schedule_trigger_id_is_one_per_iso_week() -> None:
    sunday_3am = 1_764_471_600.0  # 2025-11-30 03:00 UTC
    assert schedule_trigger(sunday_3am).trigger_id == schedule_trigger(sunday_3am + 3600).trigger_id
    assert schedule_trigger(sunday_3am).trigger_id != schedule_trigger(sunday_3am + 7 * 86400).trigger_id


def test_no_degradation_when_stable_or_better() -> None:
    assert degradations(stats(1000), stats(6000)) == []
    assert degradations(stats(1000, latency=400.0, cost=0.009), stats(6000)) == []


def test_each_metric_degrades_separately() -> None:
    assert [d.metric for d in degradations(stats(1000, cost=0.0106), stats(6000))] == ["cost_per_task"]
    assert [d.metric for d in degradations(stats(1000, latency=560.0), stats(6000))] == ["p95_ms"]
    assert [d.metric for d in degradations(stats(1000, win_every=4), stats(6000))] == ["win_rate"]


def test_too_few_samples_are_not_judged() -> None:
    assert degradations(stats(50, cost=1.0), stats(6000)) == []


def test_degradation_trigger_is_idempotent_per_router_and_day() -> None:
    found = degradations(stats(1000, cost=0.02), stats(6000))
    a = degradation_trigger("r", found, now=1_764_000_000.0)
    b = degradation_trigger("r", found, now=1_764_000_000.0 + 3600)
    change = a.details["cost_per_task.change"]
    assert a.trigger_id == b.trigger_id and isinstance(change, float) and change > 0.05
