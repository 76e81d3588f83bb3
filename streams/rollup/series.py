"""Per-arm time series of one router, point by point, for charts (pure).

A point covers ``step`` seconds of event time (a whole number of windows); its figures
come from merging the partials of its windows, so P50/P95 are the merged sketch's
quantiles, not averages of per-window quantiles. Points are aligned to the end of the
range, so the newest point always ends at the newest window's end. Series are columnar
(one list per figure, ``None`` where a point has no data) — what chart libraries take.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from bifrost.streams.aggregates.partial import WindowPartial
from bifrost.streams.aggregates.stats import WindowStats

MAX_POINTS = 720
DEFAULT_POINTS = 120


class BadStep(ValueError):
    """A step that is not a whole number of windows, or gives too many points."""


class ArmSeries(msgspec.Struct, kw_only=True):
    """One arm's figures per point (same length as :attr:`RouterSeries.ts`).

    ``rate`` is requests per second of event time, ``None`` for a point whose windows are
    not all closed yet (a still-filling window would show as a false dip).
    """

    count: list[int]
    rate: list[float | None]
    errors: list[int]
    error_rate: list[float | None]
    p50_ms: list[float | None]
    p95_ms: list[float | None]
    cost_usd: list[float]
    cost_per_task: list[float | None]
    win_rate: list[float | None]


class RouterSeries(msgspec.Struct, kw_only=True):
    """Points ``ts[i]`` (start of each point, epoch seconds of event time) and per-arm figures.

    ``closed_until`` is the end of the router's newest closed window (None: none closed).
    """

    router_id: str
    from_ts: int
    to_ts: int
    step: int
    window_seconds: int
    closed_until: int | None
    ts: list[int]
    arms: dict[str, ArmSeries]


def series_step(span_seconds: int, window_seconds: int, requested: int | None = None) -> int:
    """The step of a series over ``span_seconds``: ``requested``, or about 120 points.

    Raises:
        BadStep: ``requested`` is not a multiple of the window, or the span would need
            more than :data:`MAX_POINTS` points.

    Example:
        >>> series_step(3600, 60), series_step(86400, 60), series_step(3600, 60, 300)
        (60, 720, 300)
    """
    if requested is not None:
        if requested % window_seconds:
            raise BadStep(f"step {requested}s is not a multiple of the {window_seconds}s window")
        step = requested
    else:
        windows = -(-span_seconds // (DEFAULT_POINTS * window_seconds))  # ceil
        step = max(1, windows) * window_seconds
    points = -(-span_seconds // step)
    if points > MAX_POINTS:
        raise BadStep(
            f"{points} points ({span_seconds}s in steps of {step}s); at most {MAX_POINTS}: give a longer step"
        )
    return step


def aligned_range(to_ts: int, span_seconds: int, *, step: int, window_seconds: int) -> tuple[int, int]:
    """``[from, to)`` of a series: ``to_ts`` rounded up to a window end, ``span`` rounded up to whole steps.

    Example:
        >>> aligned_range(1030, 300, step=60, window_seconds=60)
        (780, 1080)
    """
    to = -(-to_ts // window_seconds) * window_seconds
    return to - -(-span_seconds // step) * step, to


def build_series(
    router_id: str,
    partials: Iterable[WindowPartial],
    *,
    from_ts: int,
    to_ts: int,
    step: int,
    window_seconds: int,
    closed_until: int | None,
) -> RouterSeries:
    """Per-arm series of the partials whose window starts in ``[from_ts, to_ts)``."""
    points = max(0, (to_ts - from_ts) // step)
    merged: dict[str, list[WindowStats | None]] = {}
    for partial in partials:
        if not from_ts <= partial.window_start < to_ts:
            continue
        i = (partial.window_start - from_ts) // step
        for arm, stats in partial.arms.items():
            row = merged.setdefault(arm, [None] * points)
            total = row[i]
            if total is None:
                total = row[i] = WindowStats()
            total.merge(stats)
    ts = [from_ts + i * step for i in range(points)]
    closed = [closed_until is not None and start + step <= closed_until for start in ts]
    return RouterSeries(
        router_id=router_id,
        from_ts=from_ts,
        to_ts=to_ts,
        step=step,
        window_seconds=window_seconds,
        closed_until=closed_until,
        ts=ts,
        arms={arm: _arm_series(row, step, closed) for arm, row in sorted(merged.items())},
    )


def _arm_series(row: list[WindowStats | None], step: int, closed: list[bool]) -> ArmSeries:
    series = ArmSeries(
        count=[], rate=[], errors=[], error_rate=[], p50_ms=[], p95_ms=[], cost_usd=[], cost_per_task=[], win_rate=[]
    )
    for stats, is_closed in zip(row, closed):
        summary = (stats or WindowStats()).summary()
        series.count.append(summary.count)
        series.rate.append(summary.count / step if is_closed else None)
        series.errors.append(summary.errors)
        series.error_rate.append(summary.error_rate)
        series.p50_ms.append(summary.p50_ms)
        series.p95_ms.append(summary.p95_ms)
        series.cost_usd.append(summary.cost_usd)
        series.cost_per_task.append(summary.cost_per_task)
        series.win_rate.append(summary.win_rate)
    return series
