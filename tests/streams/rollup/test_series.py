"""Per-arm chart series from window partials (pure): merged per point, aligned to the newest window."""

from __future__ import annotations

import pytest

from bifrost.streams.aggregates.partial import WindowPartial, encode_partial
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollup.series import MAX_POINTS, BadStep, aligned_range, build_series, series_step
from bifrost.streams.rollup.store import RouterWindows

WS = 60


def stats(
    count: int, *, errors: int = 0, latency: float = 100.0, cost: float = 0.01, wins: int = 0, losses: int = 0
) -> WindowStats:
    s = WindowStats(count=count, errors=errors, cost_usd=cost * count, wins=wins, losses=losses)
    s.latency_ms.add_many([latency] * count)
    return s


def partial(start: int, partition: int, **arms: WindowStats) -> WindowPartial:
    return WindowPartial(
        router_id="web",
        window_start=start,
        window_seconds=WS,
        source_topic="ev",
        partition=partition,
        last_offset=start,
        arms=dict(arms),
    )


def test_points_merge_partitions_and_windows() -> None:
    parts = [
        partial(0, 0, v1=stats(30, errors=3, latency=100, wins=3, losses=1)),
        partial(0, 1, v1=stats(30, errors=0, latency=300, wins=1, losses=3), v2=stats(6, latency=1000)),
        partial(60, 0, v1=stats(12)),
        partial(120, 0, v1=stats(60)),  # the newest window: not closed
        partial(-60, 0, v1=stats(99)),  # before the range: left out
    ]
    series = build_series("web", parts, from_ts=0, to_ts=180, step=60, window_seconds=WS, closed_until=120)
    assert series.ts == [0, 60, 120]
    v1, v2 = series.arms["v1"], series.arms["v2"]
    assert v1.count == [60, 12, 60] and v2.count == [6, 0, 0]
    assert v1.errors == [3, 0, 0] and v1.error_rate[0] == pytest.approx(0.05)
    assert v1.rate == [1.0, 0.2, None]  # requests per second; the open window has no rate
    assert v1.win_rate[0] == pytest.approx(0.5) and v1.win_rate[1] is None
    assert v1.p50_ms[0] == pytest.approx(100, rel=0.02) and v1.p95_ms[0] == pytest.approx(300, rel=0.02)
    assert v2.p95_ms == [pytest.approx(1000, rel=0.02), None, None]
    assert v1.cost_usd[1] == pytest.approx(0.12) and v1.cost_per_task[1] == pytest.approx(0.01)
    assert v2.cost_per_task[1] is None

    wide = build_series("web", parts, from_ts=0, to_ts=180, step=180, window_seconds=WS, closed_until=120)
    assert wide.ts == [0] and wide.arms["v1"].count == [132] and wide.arms["v1"].rate == [None]


def test_step_and_range() -> None:
    assert series_step(900, WS) == 60
    assert series_step(7 * 86400, WS) == 84 * 60  # about 120 points
    assert series_step(3600, WS, 300) == 300
    with pytest.raises(BadStep, match="not a multiple"):
        series_step(3600, WS, 90)
    with pytest.raises(BadStep, match=f"at most {MAX_POINTS}"):
        series_step(86400, WS, 60)
    assert aligned_range(1200, 900, step=60, window_seconds=WS) == (300, 1200)
    assert aligned_range(1201, 100, step=60, window_seconds=WS) == (1140, 1260)


def test_router_windows_series_ends_at_the_newest_window() -> None:
    table: dict[str, bytes] = {}
    windows = RouterWindows(table, window_seconds=WS, retention_seconds=86400)
    for start in (600, 660, 720):
        windows.store(encode_partial(partial(start, 0, v1=stats(6), v2=stats(2))))
    windows.store(encode_partial(partial(360, 1, v1=stats(3))))  # an older window: five empty ones after it
    series = windows.series("web", since_seconds=300)
    assert series is not None
    assert (series.from_ts, series.to_ts, series.step, series.closed_until) == (480, 780, 60, 720)
    assert series.arms["v1"].count == [0, 0, 6, 6, 6]
    assert series.arms["v2"].rate == [0.0, 0.0, pytest.approx(2 / 60), pytest.approx(2 / 60), None]
    # A range reaching before the router's first window starts at that window.
    longer = windows.series("web", since_seconds=3600)
    assert longer is not None and longer.from_ts == 360 and longer.ts[0] == 360 and longer.arms["v1"].count[0] == 3
    stepped = windows.series("web", since_seconds=3600, step=180)
    assert stepped is not None and stepped.ts == [240, 420, 600]
    # The metrics view of the same range agrees with the series' totals.
    metrics = windows.metrics("web", since_seconds=300)
    assert metrics is not None and metrics.arms["v1"].count == sum(series.arms["v1"].count)
    assert windows.series("nobody", since_seconds=300) is None
