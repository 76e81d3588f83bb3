"""Folding a batch of raw input records into per-partition window partials (pure).

No Faust and no I/O: the ingest loop (:mod:`.service`) hands in raw records and a way
to load existing partials, and gets back what to write, what to delete and what to dead-letter. The same
code runs in unit tests, in the benchmark and in the worker.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bifrost.schemas.codec import EventDecoder, InvalidEvent, Limits
from bifrost.schemas.dlq import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES_CEILING,
    DeadLetter,
    RejectReason,
    dead_letter,
)
from bifrost.schemas.events import FeedbackEvent, RoutingEvent
from bifrost.streams.aggregates.partial import WindowPartial, partial_key, window_start_of
from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One consumed Kafka record, as the fold needs it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    """Event-time windowing: size, lateness allowed, and how long windows are kept."""

    window_seconds: int = 60
    grace_seconds: float = 300.0
    feedback_grace_seconds: float = 86_400.0
    retention_seconds: float = 8 * 86_400.0


@dataclass(slots=True)
class PartitionState:
    """What the fold remembers per input partition between batches.

    ``routers`` holds each router's newest accepted event time in this partition: lateness
    is judged against the event's own router, because routers sharing a partition need not
    share a clock (a replay of last week next to live traffic, a router whose clock is off)
    and one router's events must not make another's "too late". ``watermark`` is the newest
    of them (windows expire by it); ``windows`` maps each live partial key of this partition
    to its window start. Rebuilt from the partials read back from the changelog after a
    rebalance or restart, with :func:`rebuild_partition_state`.
    """

    watermark: float = 0.0
    windows: dict[str, int] = field(default_factory=dict)
    routers: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class FoldResult:
    """What one batch changed; ``accepted`` and ``duplicates`` count records per topic.

    Apply ``changed`` before ``expired``: a key can be in both.
    """

    changed: dict[str, WindowPartial] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    # This batch's routing events summed per (window, arm, model, bucket), as (router,
    # arm, stats): what Prometheus counts per router and arm once the batch commits.
    traffic: list[tuple[str, str, WindowStats]] = field(default_factory=list)


Loader = Callable[[str], WindowPartial | None]


class BatchFolder:
    """Folds batches of routing and feedback records into :class:`WindowPartial` records.

    Every record ends either counted (``accepted``/``duplicates``) or as exactly one dead
    letter: whatever bytes a producer sends, :meth:`fold` does not raise because of them.
    Dead letters keep at most ``dlq_max_payload_bytes`` of the payload
    (``BIFROST_DLQ_MAX_PAYLOAD_BYTES``).

    Example:
        >>> folder = BatchFolder(routing_topic="r", feedback_topic="f")
        >>> result = folder.fold([InputRecord("r", 0, 0, None, b"{}")], load=lambda k: None, states={})
        >>> result.dead_letters[0].reason.value
        'schema'
    """

    def __init__(
        self,
        *,
        routing_topic: str,
        feedback_topic: str,
        policy: WindowPolicy = WindowPolicy(),
        limits: Limits = Limits(),
        dlq_max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if not 0 <= dlq_max_payload_bytes <= MAX_PAYLOAD_BYTES_CEILING:
            raise ValueError(
                f"dlq_max_payload_bytes must be between 0 and {MAX_PAYLOAD_BYTES_CEILING} "
                f"(a dead letter must fit in a Kafka record), got {dlq_max_payload_bytes}"
            )
        self.routing_topic = routing_topic
        self.feedback_topic = feedback_topic
        self.policy = policy
        self.dlq_max_payload_bytes = dlq_max_payload_bytes
        self._routing = EventDecoder(RoutingEvent, limits)
        self._feedback = EventDecoder(FeedbackEvent, limits)

    def fold(
        self,
        records: Iterable[InputRecord],
        *,
        load: Loader,
        states: dict[tuple[str, int], PartitionState],
        now: float | None = None,
    ) -> FoldResult:
        """Fold ``records`` (in offset order per partition) and report the changes.

        ``load`` returns the stored partial for a key (or ``None``); ``states`` is updated
        in place. Records at or below a partial's ``last_offset`` are counted as
        duplicates and not folded again.
        """
        now = time.time() if now is None else now
        policy = self.policy
        size = policy.window_seconds
        result = FoldResult()
        changed = result.changed
        touched: set[tuple[str, int]] = set()
        # Routing events are first folded into one WindowStats per (partial, arm, model,
        # bucket) — a handful per batch — and merged into the partial's three views at
        # the end: one statistics update per event instead of three.
        combos: dict[tuple[str, str, str, str], WindowStats] = {}
        costs: dict[tuple[str, str], list[float]] = {}  # each (window, arm)'s positive costs, sketched at once
        for record in records:
            is_routing = record.topic == self.routing_topic
            tp = (record.topic, record.partition)
            state = states.get(tp)
            if state is None:
                state = states[tp] = PartitionState()
            try:
                if is_routing:
                    event: RoutingEvent | FeedbackEvent = self._routing.decode(record.value, now=now)
                else:
                    event = self._feedback.decode(record.value, now=now)
            except InvalidEvent as exc:
                result.dead_letters.append(
                    dead_letter(record, exc.reason, exc.message, now, max_payload_bytes=self.dlq_max_payload_bytes)
                )
                continue
            start = window_start_of(event.ts, size)
            key = partial_key(record.topic, record.partition, event.router_id, start)
            partial = changed.get(key)
            if partial is None:
                partial = load(key)
                if partial is not None and record.offset <= partial.last_offset:
                    result.duplicates[record.topic] += 1
                    continue
            elif record.offset <= partial.last_offset:
                result.duplicates[record.topic] += 1
                continue
            grace = policy.grace_seconds if is_routing else policy.feedback_grace_seconds
            watermark = max(state.routers.get(event.router_id, 0.0), event.ts)
            late = start + size + grace < watermark
            if late or start < expiry_horizon(state, policy):
                reason = (
                    f"event time {event.ts:.3f} is {watermark - event.ts:.0f} s behind router "
                    f"{event.router_id!r}'s newest event time in this partition; windows close {grace:.0f} s "
                    "after their end (BIFROST_GRACE_SECONDS / BIFROST_FEEDBACK_GRACE_SECONDS)"
                    if late
                    else f"event time {event.ts:.3f} is older than the partition's retention "
                    f"({policy.retention_seconds:.0f} s behind its newest event time): its window is gone"
                )
                result.dead_letters.append(
                    dead_letter(
                        record, RejectReason.TOO_LATE, reason, now, max_payload_bytes=self.dlq_max_payload_bytes
                    )
                )
                continue
            state.routers[event.router_id] = watermark
            if watermark > state.watermark:
                state.watermark = watermark
            if partial is None:
                partial = WindowPartial(
                    router_id=event.router_id,
                    window_start=start,
                    window_seconds=size,
                    source_topic=record.topic,
                    partition=record.partition,
                )
            changed[key] = partial
            state.windows[key] = start
            touched.add(tp)
            partial.last_offset = record.offset
            if event.ts > partial.max_event_ts:
                partial.max_event_ts = event.ts
            if isinstance(event, RoutingEvent):
                combo_key = (key, event.arm, event.model, event.bucket.value)
                combo = combos.get(combo_key)
                if combo is None:
                    combo = combos[combo_key] = WindowStats()
                combo.add_event(event, cost_sketch=False)
                if event.cost_usd > 0:
                    paid = costs.get((key, event.arm))
                    if paid is None:
                        paid = costs[(key, event.arm)] = []
                    paid.append(event.cost_usd)
            else:
                _fold_feedback(partial, event)
            result.accepted[record.topic] += 1
        traffic = result.traffic
        for (key, arm, model, bucket), combo in combos.items():
            partial = changed[key]
            traffic.append((partial.router_id, arm, combo))
            _stats(partial.arms, arm).merge(combo)
            _stats(partial.models, model).merge(combo)
            _stats(partial.buckets, bucket).merge(combo)
        # Only the arms carry the cost sketch: the gates read it there, and in the model and
        # bucket views it would cost every fold, merge and (de)serialization of a partial for
        # nothing (bench/aggregates_bench.py). One batch add per (window, arm), not per event.
        for (key, arm), paid in costs.items():
            stats = changed[key].arms[arm]
            if stats.cost_sketch is None:
                stats.cost_sketch = QuantileSketch()
            stats.cost_sketch.add_batch(paid)
        for tp in touched:
            result.expired.extend(expire(states[tp], policy))
        # A partial that expired in this very batch (a backlog spanning more than the
        # retention) stays in ``changed``: its final snapshot must still reach readers.
        return result


def _stats(table: dict[str, WindowStats], name: str) -> WindowStats:
    stats = table.get(name)
    if stats is None:
        stats = table[name] = WindowStats()
    return stats


def _fold_feedback(partial: WindowPartial, feedback: FeedbackEvent) -> None:
    _stats(partial.arms, feedback.arm).add_feedback(feedback)
    _stats(partial.models, feedback.model).add_feedback(feedback)
    if feedback.bucket is not None:
        _stats(partial.buckets, feedback.bucket.value).add_feedback(feedback)


def expiry_horizon(state: PartitionState, policy: WindowPolicy) -> float:
    """Windows starting before this are expired: they ended the retention period before the watermark."""
    return state.watermark - policy.retention_seconds - policy.window_seconds


def expire(state: PartitionState, policy: WindowPolicy) -> list[str]:
    """Keys of windows that ended more than the retention period before the watermark.

    Routers whose newest event is older than that have no window left: forgotten too.
    """
    horizon = expiry_horizon(state, policy)
    old = [key for key, start in state.windows.items() if start < horizon]
    for key in old:
        del state.windows[key]
    for router in [r for r, mark in state.routers.items() if mark < horizon]:
        del state.routers[router]
    return old


def rebuild_partition_state(partials: Iterable[WindowPartial]) -> dict[tuple[str, int], PartitionState]:
    """Partition states implied by stored partials (after a restart or rebalance)."""
    states: dict[tuple[str, int], PartitionState] = {}
    for partial in partials:
        tp = (partial.source_topic, partial.partition)
        state = states.get(tp)
        if state is None:
            state = states[tp] = PartitionState()
        state.windows[partial.key] = partial.window_start
        state.watermark = max(state.watermark, partial.max_event_ts)
        state.routers[partial.router_id] = max(state.routers.get(partial.router_id, 0.0), partial.max_event_ts)
    return states
