"""Looks from the per-router window store: per-window figures, stage sums, history, caching,
and the frontier a future-dated window cannot move."""

from __future__ import annotations

import pytest

from bifrost.schemas.events import Bucket, RoutingEvent
from bifrost.schemas.rollout import RolloutState
from bifrost.streams.aggregates.partial import WindowPartial, encode_partial
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates.dispersion import ArmFigures, WindowSums
from bifrost.streams.rollout.look import LookBuilder
from bifrost.streams.rollup.store import RouterWindows

WS = 60


def arm_stats(n: int, latency: float = 200.0, errors: int = 0) -> WindowStats:
    stats = WindowStats()
    for i in range(n):
        stats.add_event(
            RoutingEvent(
                request_id=str(i),
                ts=1.0,
                router_id="r",
                arm="a",
                model="m",
                provider="p",
                bucket=Bucket.MID,
                latency_ms=latency + i % 5,
                cost_usd=0.01,
                success=i >= errors,
            )
        )
    return stats


def partial(start: int, partition: int, offset: int, arms: dict[str, WindowStats]) -> bytes:
    return encode_partial(
        WindowPartial(
            router_id="r",
            window_start=start,
            window_seconds=WS,
            source_topic="events",
            partition=partition,
            last_offset=offset,
            max_event_ts=start + 30.5,
            arms=arms,
        )
    )


def store() -> RouterWindows:
    return RouterWindows({}, window_seconds=WS, retention_seconds=86400)


def state(since: float) -> RolloutState:
    return RolloutState(router_id="r", canary_version="v2", control_version="v1", since=since)


def test_look_holds_the_stages_windows_sums_and_history() -> None:
    windows = store()
    for start in range(0, 600, WS):  # an hour's worth of history is 0..540 here
        windows.store(partial(start, 0, start, {"v1": arm_stats(20, errors=1)}))
    for start in (600, 660, 720):
        windows.store(partial(start, 0, start, {"v1": arm_stats(19), "v2": arm_stats(1, latency=400.0)}))
        windows.store(partial(start, 1, start, {"v1": arm_stats(10)}))
    builder = LookBuilder(windows, window_seconds=WS, history_seconds=600)
    look = builder.look(state(600.0))
    assert look is not None
    assert [w.start for w in look.windows] == [600, 660, 720]
    assert look.canary.count == 3 and look.control.count == 3 * 29
    assert look.windows[0].control == ArmFigures.of(arm_stats(19)) + ArmFigures.of(arm_stats(10))
    assert look.clock == 750.5  # the newest event time, not a window boundary
    assert look.history is not None
    canary_sums, control_sums = look.history.metric("error_rate")
    assert control_sums.windows == 10 and control_sums.s == 10.0 and canary_sums.windows == 0


def test_only_the_changed_window_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    windows = store()
    windows.store(partial(0, 0, 1, {"v1": arm_stats(10), "v2": arm_stats(2)}))
    windows.store(partial(60, 0, 2, {"v1": arm_stats(10), "v2": arm_stats(2)}))
    builder = LookBuilder(windows, window_seconds=WS)
    first = builder.look(state(0.0))
    reads: list[int] = []
    original = windows.window_partials

    def counting(router_id: str, window_start: int) -> list[WindowPartial]:
        reads.append(window_start)
        return original(router_id, window_start)

    monkeypatch.setattr(windows, "window_partials", counting)
    windows.store(partial(60, 0, 3, {"v1": arm_stats(15), "v2": arm_stats(3)}))
    second = builder.look(state(0.0))
    assert reads == [60]
    assert first is not None and second is not None
    assert second.canary.count == 5 and second.control.count == 25
    assert isinstance(second.history, WindowSums)


def test_frontier_ignores_a_window_ahead_of_the_data() -> None:
    windows = store()
    for start in (0, 60, 120):
        windows.store(partial(start, 0, start, {"v1": arm_stats(5)}))
    assert windows.frontier("r") == 120  # the newest window (120) is still open
    windows.store(partial(3600, 0, 9999, {"v1": arm_stats(5)}))  # dated an hour ahead
    assert windows.frontier("r") == 180 and windows.clock("r") == 3660
    assert list(windows.window_versions("r", 60, 200)) == [60, 120]
    assert LookBuilder(windows, window_seconds=WS).look(state(0.0)) is not None
    assert LookBuilder(windows, window_seconds=WS).look(RolloutState(router_id="r")) is None
