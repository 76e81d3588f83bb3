"""Simulated requests as the optimizer sees them: hourly window statistics and warehouse rows."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from bifrost.client.simulator.model import Generated
from bifrost.storage.logged import LoggedData
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollup.query import MergedStats


def hours_of(items: Iterable[Generated]) -> dict[int, MergedStats]:
    """Per-hour merged statistics (arms, models, buckets), as the worker's tables would hold them."""
    hours: dict[int, MergedStats] = {}
    for item in items:
        event = item.event
        if event is None:
            continue
        hour = hours.setdefault(int(event.ts // 3600 * 3600), MergedStats())
        for target, key in ((hour.arms, event.arm), (hour.models, event.model), (hour.buckets, event.bucket.value)):
            stats = target.setdefault(key, WindowStats())
            stats.add_event(event)
            if item.feedback is not None:
                stats.add_feedback(item.feedback)
    return hours


def logged_of(items: list[Generated]) -> LoggedData:
    """The rows the warehouse would hold for these requests (what ``storage.logged.load_window`` returns)."""
    events = [item.event for item in items if item.event is not None]
    names = sorted({e.model for e in events})
    index = {m: i for i, m in enumerate(names)}
    ts = np.array([e.ts for e in events])
    return LoggedData(
        models=tuple(names),
        request_ids=np.array([e.request_id for e in events], dtype=object),
        ts=ts,
        router_ids=np.array([e.router_id for e in events], dtype=object),
        arms=np.array([e.arm for e in events], dtype=object),
        model=np.array([index[e.model] for e in events]),
        bucket=np.zeros(len(events), dtype=np.int64),
        cluster=np.array([e.cluster_id for e in events]),
        features=np.array([e.features for e in events], dtype=np.float32),
        features_ok=np.ones(len(events), dtype=bool),
        tokens_in=np.array([e.tokens_in for e in events], dtype=np.float64),
        cost=np.array([e.cost_usd for e in events]),
        latency=np.array([e.latency_ms for e in events]),
        success=np.array([e.success for e in events]),
        propensity=np.array([e.propensity for e in events]),
        quality=np.array([np.nan if e.quality is None else e.quality for e in events]),
        window=(float(ts.min()), float(ts.max()) + 1.0),
    )
