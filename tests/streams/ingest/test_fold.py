"""The pure batch fold: exact counts, DLQ reasons, re-delivery, lateness, expiry."""

from __future__ import annotations

from typing import Any

import orjson

from bifrost.schemas import RejectReason, RoutingEvent
from bifrost.schemas.codec import EventDecoder
from bifrost.streams.aggregates.partial import WindowPartial, decode_partial
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.ingest.fold import BatchFolder, InputRecord, PartitionState, WindowPolicy, rebuild_partition_state
from tests.streams.ingest.fold_store import DictStore

States = dict[tuple[str, int], PartitionState]  # what BatchFolder.fold keeps between batches

NOW = 1_764_000_000.0
T0 = 1_763_989_980  # a window boundary (divisible by 60)


def routing(ts: float, arm: str = "v1", **extra: object) -> bytes:
    return orjson.dumps(
        {
            "request_id": f"r-{ts}",
            "ts": ts,
            "router_id": "router-a",
            "arm": arm,
            "model": "m1",
            "provider": "p",
            "bucket": "cheap",
            "latency_ms": 100.0,
            "cost_usd": 0.01,
            "success": True,
            **extra,
        }
    )


def feedback(ts: float, arm: str = "v1") -> bytes:
    return orjson.dumps(
        {
            "request_id": "r",
            "ts": ts,
            "router_id": "router-a",
            "arm": arm,
            "model": "m1",
            "outcome": "win",
            "grade": 0.9,
        }
    )


def folder(**policy: Any) -> BatchFolder:
    return BatchFolder(routing_topic="ev", feedback_topic="fb", policy=WindowPolicy(**policy))


def records(values: list[bytes], topic: str = "ev", partition: int = 0, start: int = 0) -> list[InputRecord]:
    return [InputRecord(topic, partition, start + i, None, v) for i, v in enumerate(values)]


def test_counts_and_dlq_account_for_every_record() -> None:
    store, states = DictStore(), States()
    values = [routing(T0 + i, arm="v1" if i % 3 else "v2") for i in range(90)]
    values[7] = b"{oops"
    values[20] = routing(T0, latency_ms=-1)
    result = folder().fold(records(values), load=store.load, states=states, now=NOW)
    store.apply(result.changed, result.expired)
    assert sum(result.accepted.values()) + len(result.dead_letters) == 90
    assert [d.offset for d in result.dead_letters] == [7, 20]
    assert [d.reason for d in result.dead_letters] == [RejectReason.BAD_JSON, RejectReason.SCHEMA]
    assert result.dead_letters[0].original == b"{oops"
    assert store.count("v1") + store.count("v2") == 88
    # 90 seconds from a window boundary: two one-minute windows.
    assert sorted(p.window_start for p in map(decode_partial, store.data.values())) == [T0, T0 + 60]


def test_redelivered_records_are_not_counted_twice() -> None:
    store, states = DictStore(), States()
    batch = records([routing(T0 + i) for i in range(50)])
    first = folder().fold(batch, load=store.load, states=states, now=NOW)
    store.apply(first.changed, first.expired)
    # A crash before the offset commit: the same records arrive again, plus new ones.
    again = batch[30:] + records([routing(T0 + 50 + i) for i in range(5)], start=50)
    second = folder().fold(
        again, load=store.load, states=rebuild_partition_state(map(decode_partial, store.data.values())), now=NOW
    )
    store.apply(second.changed, second.expired)
    assert second.duplicates["ev"] == 20 and second.accepted["ev"] == 5
    assert store.count("v1") == 55


def test_late_events_inside_grace_count_and_beyond_grace_go_to_dlq() -> None:
    store, states = DictStore(), States()
    f = folder(grace_seconds=120)
    head = f.fold(records([routing(T0 + 600)]), load=store.load, states=states, now=NOW)
    store.apply(head.changed, head.expired)
    late_ok = routing(T0 + 600 - 150)  # window ends 90 s before the watermark: inside grace
    too_late = routing(T0 + 600 - 400)  # window ended 340 s before: beyond 120 s grace
    result = f.fold(records([late_ok, too_late], start=1), load=store.load, states=states, now=NOW)
    store.apply(result.changed, result.expired)
    assert result.accepted["ev"] == 1
    assert [d.reason for d in result.dead_letters] == [RejectReason.TOO_LATE]
    assert "behind" in result.dead_letters[0].error
    assert store.count("v1") == 2


def test_feedback_counts_in_the_requests_window_with_its_own_grace() -> None:
    store, states = DictStore(), States()
    f = folder(grace_seconds=60, feedback_grace_seconds=7200)
    fb = [feedback(T0 + 3000), feedback(T0)]  # second arrives ~50 min late: still counts
    result = f.fold(records(fb, topic="fb", partition=2), load=store.load, states=states, now=NOW)
    store.apply(result.changed, result.expired)
    assert result.accepted["fb"] == 2 and not result.dead_letters
    partials = sorted(map(decode_partial, store.data.values()), key=lambda p: p.window_start)
    assert partials[0].window_start == T0 and partials[0].arms["v1"].wins == 1
    assert partials[0].arms["v1"].count == 0  # feedback is not a request
    assert all(p.partition == 2 and p.source_topic == "fb" for p in partials)


def test_old_windows_expire_after_retention() -> None:
    store, states = DictStore(), States()
    f = folder(retention_seconds=600, grace_seconds=30)
    first = f.fold(records([routing(T0)]), load=store.load, states=states, now=NOW)
    store.apply(first.changed, first.expired)
    later = f.fold(records([routing(T0 + 3600)], start=1), load=store.load, states=states, now=NOW)
    store.apply(later.changed, later.expired)
    assert len(later.expired) == 1
    assert [p.window_start for p in map(decode_partial, store.data.values())] == [T0 + 3600]


def test_partitions_keep_separate_partials_and_watermarks() -> None:
    store, states = DictStore(), States()
    batch = records([routing(T0 + 1000)], partition=0) + records([routing(T0)], partition=1)
    result = folder(grace_seconds=10).fold(batch, load=store.load, states=states, now=NOW)
    assert result.accepted["ev"] == 2  # partition 1's old event is not late for partition 1
    assert {p.partition for p in result.changed.values()} == {0, 1}
    assert states[("ev", 0)].watermark == T0 + 1000 and states[("ev", 1)].watermark == T0


def test_rebuild_partition_state_from_partials() -> None:
    p = WindowPartial(
        router_id="a", window_start=60, window_seconds=60, source_topic="ev", partition=3, max_event_ts=99.0
    )
    states = rebuild_partition_state([p])
    assert states[("ev", 3)] == PartitionState(watermark=99.0, windows={p.key: 60}, routers={"a": 99.0})


def test_lateness_is_judged_per_router_within_a_partition() -> None:
    # A replay of last week next to live traffic in one partition: the live router's clock
    # must not make the replay's events "too late" (an outside test saw a whole replay DLQ'd).
    store, states = DictStore(), States()
    f = folder(grace_seconds=60, retention_seconds=8 * 86_400)
    live = routing(T0 + 4 * 86_400, router_id="live")
    replay = [routing(T0 + i) for i in range(0, 600, 60)]
    result = f.fold(records([live, *replay]), load=store.load, states=states, now=NOW + 4 * 86_400)
    assert result.accepted["ev"] == 11 and not result.dead_letters
    assert states[("ev", 0)].routers == {"live": T0 + 4 * 86_400, "router-a": T0 + 540}
    assert states[("ev", 0)].watermark == T0 + 4 * 86_400
    # Each router's own late events are still late.
    late = f.fold(records([routing(T0)], start=11), load=store.load, states=states, now=NOW + 4 * 86_400)
    assert [d.reason for d in late.dead_letters] == [RejectReason.TOO_LATE]
    assert "behind router 'router-a'" in late.dead_letters[0].error


def test_an_event_older_than_the_partitions_retention_is_too_late_and_its_router_forgotten() -> None:
    store, states = DictStore(), States()
    f = folder(grace_seconds=60, retention_seconds=3600)
    first = f.fold(records([routing(T0)]), load=store.load, states=states, now=NOW)
    store.apply(first.changed, first.expired)
    later = f.fold(records([routing(T0 + 7200, router_id="other")], start=1), load=store.load, states=states, now=NOW)
    store.apply(later.changed, later.expired)
    assert len(later.expired) == 1 and states[("ev", 0)].routers == {"other": T0 + 7200}
    # router-a's next event would land in a window that is already gone: refused, not re-created.
    old = f.fold(records([routing(T0 + 120)], start=2), load=store.load, states=states, now=NOW)
    assert [d.reason for d in old.dead_letters] == [RejectReason.TOO_LATE] and not old.changed
    assert "older than the partition's retention" in old.dead_letters[0].error


def test_a_backlog_longer_than_retention_still_reports_every_window() -> None:
    store, states = DictStore(), States()
    f = folder(retention_seconds=600, grace_seconds=30)
    values = [routing(T0 + 60 * i) for i in range(60)]  # one hour of windows in one batch
    result = f.fold(records(values), load=store.load, states=states, now=NOW)
    # Every window's final snapshot is reported (for the per-router view) ...
    assert sum(p.arms["v1"].count for p in result.changed.values()) == 60
    # ... and the ones past retention are also marked for deletion from stage 1.
    assert set(result.expired) <= set(result.changed) and len(result.expired) > 40
    store.apply(result.changed, result.expired)
    assert len(store.data) == 60 - len(result.expired)


def test_the_fold_sketches_every_positive_cost_of_an_arm_as_add_event_would() -> None:
    store, states = DictStore(), States()
    values = [routing(T0 + i % 60, cost_usd=0.0 if i % 7 == 0 else 0.001 * (1 + i % 13)) for i in range(200)]
    result = folder().fold(records(values), load=store.load, states=states, now=NOW)
    store.apply(result.changed, result.expired)
    (partial,) = map(decode_partial, store.data.values())
    expected = WindowStats()
    decoder = EventDecoder(RoutingEvent)
    for value in values:
        expected.add_event(decoder.decode(value, now=NOW))
    (arm,) = partial.arms.values()
    assert arm.cost_sketch is not None and expected.cost_sketch is not None
    assert arm.cost_sketch.bins == expected.cost_sketch.bins
    assert arm.cost_sketch.count == arm.cost_paid == expected.cost_paid
    # The model and bucket views do not carry it (the gates read arms only).
    for table in (partial.models, partial.buckets):
        (stats,) = table.values()
        assert stats.cost_sketch is None and stats.cost_paid == expected.cost_paid
