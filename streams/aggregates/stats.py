"""Per-window statistics of one arm, model or bucket: the unit every view merges.

Follows the aggregation protocol ``initialize / agg / merge / result``: ``WindowStats()``
is the initial value, :meth:`add_event` and :meth:`add_feedback` fold inputs in,
``merge`` combines partials from different partitions, :meth:`summary` gives the
figures operators and gates read. Each field declares its aggregate kind
(:mod:`~bifrost.streams.aggregates.mergeable`) and ``merge`` is derived from them: a new
metric is one annotated field plus the line that folds it in.
"""

from __future__ import annotations

import math

import msgspec

from bifrost.schemas.events import FeedbackEvent, Outcome, RoutingEvent
from bifrost.streams.aggregates.mergeable import Count, Mergeable, OptionalSketch, Sketch, Sum, merged_all
from bifrost.streams.aggregates.sketch import QuantileSketch


class StatsSummary(msgspec.Struct, kw_only=True):
    """Derived figures of a :class:`WindowStats`; ``None`` where there is no data."""

    count: int
    errors: int
    rate_limited: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cost_usd: float
    cost_per_task: float | None
    quality: float | None
    quality_count: int
    wins: int
    losses: int
    ties: int
    win_rate: float | None


class WindowStats(Mergeable, msgspec.Struct, kw_only=True):
    """Counts, sums and a latency sketch for one key in one window (mergeable).

    ``cost_sq`` (sum of squared costs) lets gates estimate the variance of cost per task;
    ``cost_paid``, ``cost_log`` and ``cost_log_sq`` (count, sum and sum of squares of the
    logs of the positive costs) let them test a shift of the whole cost distribution, and
    ``cost_sketch`` (the positive costs, USD; ``None`` until one is added, and kept by the
    worker for the arms only, which the gates read) test it against the width of one price
    tier.
    """

    count: Count = 0
    errors: Count = 0
    rate_limited: Count = 0
    fallbacks: Count = 0
    cost_usd: Sum = 0.0
    cost_sq: Sum = 0.0
    cost_paid: Count = 0
    cost_log: Sum = 0.0
    cost_log_sq: Sum = 0.0
    cost_sketch: OptionalSketch = None
    tokens_in: Count = 0
    tokens_out: Count = 0
    latency_ms: Sketch = msgspec.field(default_factory=QuantileSketch)
    quality_sum: Sum = 0.0
    quality_count: Count = 0
    wins: Count = 0
    losses: Count = 0
    ties: Count = 0
    task_success: Count = 0
    task_feedback: Count = 0

    def add_event(self, event: RoutingEvent, *, cost_sketch: bool = True) -> None:
        """Fold one routing event in.

        ``cost_sketch=False`` leaves the event's cost out of ``cost_sketch`` only: a caller
        folding a batch adds the batch's positive costs at once
        (:meth:`QuantileSketch.add_batch`), which is several times cheaper per event.
        """
        self.count += 1
        if not event.success:
            self.errors += 1
        if event.rate_limited:
            self.rate_limited += 1
        if event.fallback_used:
            self.fallbacks += 1
        self.cost_usd += event.cost_usd
        self.cost_sq += event.cost_usd * event.cost_usd
        if event.cost_usd > 0:
            log_cost = math.log(event.cost_usd)
            self.cost_paid += 1
            self.cost_log += log_cost
            self.cost_log_sq += log_cost * log_cost
            if cost_sketch:
                if self.cost_sketch is None:
                    self.cost_sketch = QuantileSketch()
                self.cost_sketch.add_log(event.cost_usd, log_cost)
        self.tokens_in += event.tokens_in
        self.tokens_out += event.tokens_out
        self.latency_ms.add(event.latency_ms)
        if event.quality is not None:
            self.quality_sum += event.quality
            self.quality_count += 1
        if event.win is not None:
            self._add_outcome(event.win)

    def add_feedback(self, feedback: FeedbackEvent) -> None:
        """Fold one late feedback signal in (it does not count as a request)."""
        if feedback.grade is not None:
            self.quality_sum += feedback.grade
            self.quality_count += 1
        if feedback.outcome is not None:
            self._add_outcome(feedback.outcome)
        if feedback.success is not None:
            self.task_feedback += 1
            self.task_success += int(feedback.success)

    def _add_outcome(self, outcome: Outcome) -> None:
        if outcome is Outcome.WIN:
            self.wins += 1
        elif outcome is Outcome.LOSS:
            self.losses += 1
        else:
            self.ties += 1

    def summary(self) -> StatsSummary:
        """Error rate, latency quantiles, cost per task, quality and win rate.

        Win rate counts a tie as half a win: ``(wins + ties/2) / (wins + losses + ties)``.
        """
        judged = self.wins + self.losses + self.ties
        return StatsSummary(
            count=self.count,
            errors=self.errors,
            rate_limited=self.rate_limited,
            error_rate=self.errors / self.count if self.count else None,
            p50_ms=self.latency_ms.quantile(0.50),
            p95_ms=self.latency_ms.quantile(0.95),
            p99_ms=self.latency_ms.quantile(0.99),
            cost_usd=self.cost_usd,
            cost_per_task=self.cost_usd / self.count if self.count else None,
            quality=self.quality_sum / self.quality_count if self.quality_count else None,
            quality_count=self.quality_count,
            wins=self.wins,
            losses=self.losses,
            ties=self.ties,
            win_rate=(self.wins + 0.5 * self.ties) / judged if judged else None,
        )


def merged(parts: list[WindowStats]) -> WindowStats:
    """A new :class:`WindowStats` holding the sum of ``parts``."""
    return merged_all(WindowStats, parts)
