"""Reading per-router metrics out of stored partials (pure)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from bifrost.streams.aggregates.partial import WindowPartial
from bifrost.streams.aggregates.stats import StatsSummary, WindowStats


class RouterMetrics(msgspec.Struct, kw_only=True):
    """Per-arm, per-model and per-bucket figures of one router over a time range."""

    router_id: str
    from_ts: int
    to_ts: int
    windows: int
    arms: dict[str, StatsSummary]
    models: dict[str, StatsSummary]
    buckets: dict[str, StatsSummary]


def merge_partials(
    router_id: str, partials: Iterable[WindowPartial], *, from_ts: int, to_ts: int
) -> RouterMetrics:
    """Merge the partials whose window starts in ``[from_ts, to_ts)``."""
    arms: dict[str, WindowStats] = {}
    models: dict[str, WindowStats] = {}
    buckets: dict[str, WindowStats] = {}
    windows: set[int] = set()
    for partial in partials:
        if not from_ts <= partial.window_start < to_ts:
            continue
        windows.add(partial.window_start)
        for target, source in ((arms, partial.arms), (models, partial.models), (buckets, partial.buckets)):
            for name, stats in source.items():
                total = target.get(name)
                if total is None:
                    total = target[name] = WindowStats()
                total.merge(stats)
    return RouterMetrics(
        router_id=router_id,
        from_ts=from_ts,
        to_ts=to_ts,
        windows=len(windows),
        arms={name: s.summary() for name, s in sorted(arms.items())},
        models={name: s.summary() for name, s in sorted(models.items())},
        buckets={name: s.summary() for name, s in sorted(buckets.items())},
    )


def time_range(newest_window_end: int, *, since_seconds: int, until_ts: int | None = None) -> tuple[int, int]:
    """``[from, to)`` covering the last ``since_seconds`` up to ``until_ts`` or the newest window."""
    to_ts = newest_window_end if until_ts is None else until_ts
    return to_ts - since_seconds, to_ts
