"""Reading per-router metrics out of stored partials (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from bifrost.streams.aggregates.mergeable import Distinct, Keyed, Mergeable, merge_keyed
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


@dataclass(slots=True)
class MergedStats(Mergeable):
    """Merged statistics of a set of partials (mergeable further: ``merge`` is derived)."""

    arms: Keyed[WindowStats] = field(default_factory=dict)
    models: Keyed[WindowStats] = field(default_factory=dict)
    buckets: Keyed[WindowStats] = field(default_factory=dict)
    windows: Distinct = field(default_factory=set)


def merge_stats(partials: Iterable[WindowPartial], *, from_ts: int, to_ts: int) -> MergedStats:
    """Merge the partials whose window starts in ``[from_ts, to_ts)``."""
    merged = MergedStats()
    for partial in partials:
        if not from_ts <= partial.window_start < to_ts:
            continue
        merged.windows.add(partial.window_start)
        merge_keyed(merged.arms, partial.arms)
        merge_keyed(merged.models, partial.models)
        merge_keyed(merged.buckets, partial.buckets)
    return merged


def summarize(router_id: str, merged: MergedStats, *, from_ts: int, to_ts: int) -> RouterMetrics:
    """Operator-facing figures of merged statistics."""
    return RouterMetrics(
        router_id=router_id,
        from_ts=from_ts,
        to_ts=to_ts,
        windows=len(merged.windows),
        arms={name: s.summary() for name, s in sorted(merged.arms.items())},
        models={name: s.summary() for name, s in sorted(merged.models.items())},
        buckets={name: s.summary() for name, s in sorted(merged.buckets.items())},
    )


def time_range(newest_window_end: int, *, since_seconds: int, until_ts: int | None = None) -> tuple[int, int]:
    """``[from, to)`` covering the last ``since_seconds`` up to ``until_ts`` or the newest window."""
    to_ts = newest_window_end if until_ts is None else until_ts
    return to_ts - since_seconds, to_ts
