"""Per router and arm request figures for Prometheus, from the fold's per-batch statistics (pure).

The ingest fold already sums each batch's routing events per (window, arm, model, bucket)
into a :class:`~bifrost.streams.aggregates.stats.WindowStats`; the worker hands those to
:meth:`TrafficFigures.add` once the batch's transaction committed. So each committed
event is counted exactly once per process, and the cost is per batch and statistics
object, never per event.

Latency is exported as a histogram, not as quantile gauges: histogram buckets add up
across workers and partitions (``sum by (le)``), and ``histogram_quantile`` gives any
quantile over any range, while a P95 gauge from one worker's windows cannot be combined
with another's. The buckets come from the fold's DDSketch bins (relative accuracy 1%):
a sketch bin that straddles a bucket bound counts below it, so a latency up to 2% above
a bound may land in that bound's bucket; counts and sums are exact.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.metrics.labels import LabelBudget

# LLM calls: from a cached 100 ms answer to multi-minute reasoning; dense around the
# SLO (2.5 s) and the goal (P95 < 2 s).
LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)

TrafficItem = tuple[str, str, WindowStats]  # (router, arm, one batch's statistics)


@dataclass(slots=True)
class ArmCounters:
    """Running totals of one (router, arm) since the process started."""

    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    cost_usd: float = 0.0
    latency_sum_seconds: float = 0.0
    # Non-cumulative counts per bucket of LATENCY_BUCKETS_SECONDS, then +Inf.
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_SECONDS) + 1))

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        """``(le, count of latencies ≤ le)`` pairs ending with ``+Inf``, as Prometheus wants."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*map(repr, LATENCY_BUCKETS_SECONDS), "+Inf"), self.latency_buckets):
            running += count
            out.append((bound, running))
        return out


class _BucketMap:
    """Sketch bin index → histogram bucket index, for one sketch accuracy (cached)."""

    def __init__(self, relative_accuracy: float) -> None:
        probe = QuantileSketch(relative_accuracy=relative_accuracy)
        # Bin of each bound (in ms): bins up to and including it count at or below the bound.
        self._bound_bins = [probe.key(bound * 1000.0) for bound in LATENCY_BUCKETS_SECONDS]
        self._cache: dict[int, int] = {}

    def index(self, sketch_bin: int) -> int:
        found = self._cache.get(sketch_bin)
        if found is None:
            found = self._cache[sketch_bin] = bisect.bisect_left(self._bound_bins, sketch_bin)
        return found


class TrafficFigures:
    """Totals per (router, arm), with bounded label values (see :mod:`.labels`).

    Example:
        >>> from bifrost.streams.aggregates.stats import WindowStats
        >>> stats = WindowStats(count=3, errors=1, cost_usd=0.5)
        >>> stats.latency_ms.add_many([80.0, 900.0, 4000.0])
        >>> figures = TrafficFigures(max_routers=10, max_arms_per_router=4)
        >>> figures.add("router-a", "v1", stats)
        >>> row = figures.rows()[0]
        >>> row[:2], row[2].requests, row[2].errors, row[2].latency_buckets[:4]
        (('router-a', 'v1'), 3, 1, [1, 0, 0, 1])
    """

    def __init__(self, *, max_routers: int, max_arms_per_router: int) -> None:
        self.routers = LabelBudget(max_routers)
        self._max_arms = max_arms_per_router
        self._arms: dict[str, LabelBudget] = {}
        self._totals: dict[tuple[str, str], ArmCounters] = {}
        self._maps: dict[float, _BucketMap] = {}

    @property
    def folded_arms(self) -> int:
        """Arm values folded into ``other`` so far (over every router)."""
        return sum(budget.folded for budget in self._arms.values())

    def add(self, router: str, arm: str, stats: WindowStats) -> None:
        """Count one batch's statistics of (router, arm)."""
        if stats.count == 0:
            return  # feedback only: not requests
        router = self.routers.admit(router)
        arms = self._arms.get(router)
        if arms is None:
            arms = self._arms[router] = LabelBudget(self._max_arms)
        key = (router, arms.admit(arm))
        totals = self._totals.get(key)
        if totals is None:
            totals = self._totals[key] = ArmCounters()
        totals.requests += stats.count
        totals.errors += stats.errors
        totals.rate_limited += stats.rate_limited
        totals.cost_usd += stats.cost_usd
        sketch = stats.latency_ms
        totals.latency_sum_seconds += sketch.total / 1000.0
        buckets = totals.latency_buckets
        buckets[0] += sketch.zero_count
        mapping = self._maps.get(sketch.relative_accuracy)
        if mapping is None:
            mapping = self._maps[sketch.relative_accuracy] = _BucketMap(sketch.relative_accuracy)
        for sketch_bin, count in sketch.bins.items():
            buckets[mapping.index(sketch_bin)] += count

    def add_all(self, items: Iterable[TrafficItem]) -> None:
        """Count many (router, arm, statistics) items."""
        for router, arm, stats in items:
            self.add(router, arm, stats)

    def rows(self) -> list[tuple[str, str, ArmCounters]]:
        """``(router, arm, totals)`` of every series, sorted."""
        return [(router, arm, totals) for (router, arm), totals in sorted(self._totals.items())]
