"""Ground truth and observation for the chaos suite: what was in the input, what was counted.

- :func:`ground_truth` re-reads the input topic from the beginning, partition by
  partition, and decodes every offset with the project's own ``EventDecoder``: each
  valid offset is expected once in a window partial, each invalid one once in the DLQ.
- :func:`observe_partials` reads ``window-partials`` (``read_committed``), keeps per
  partial key the snapshot with the highest ``last_offset`` and sums the arm counts.
- :func:`read_dead_letters` reads the DLQ (``read_committed``) and counts every
  (source topic, partition, offset) it holds — duplicates count double.
- :func:`compare` puts them side by side, per (router, arm, partition) and window.

Counts are compared per (router, arm, partition, window): a loss in one window cannot
hide behind a duplicate in another. Within one such cell a loss and a duplicate would
cancel; the DLQ is compared offset by offset.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bifrost.schemas.codec import EventDecoder, InvalidEvent, Limits
from bifrost.schemas.events import RoutingEvent
from bifrost.streams.aggregates.partial import decode_partial, window_start_of

Cell = tuple[str, str, int, int]  # router, arm, partition, window_start
Row = tuple[str, str, int]  # router, arm, partition
Offset = tuple[str, int, int]  # source topic, partition, offset


class _DlqRecord(msgspec.Struct, kw_only=True):
    """The fields of a dead letter the suite needs (tolerant of newer/older versions)."""

    source_topic: str
    partition: int
    offset: int
    reason: str = ""
    error: str = ""


_dlq_decoder = msgspec.json.Decoder(_DlqRecord)


def _consumer(bootstrap: str, *, isolation: str = "read_uncommitted") -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation,
        max_poll_records=20_000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        request_timeout_ms=30_000,
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str, wait: float = 30.0) -> list[TopicPartition]:
    """The topic's partitions (refreshing metadata: a consumer that is only assigned knows no topics)."""
    deadline = time.monotonic() + wait
    while True:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - no public way for assign()-only consumers
        parts = consumer.partitions_for_topic(topic)
        if parts or time.monotonic() > deadline:
            return [TopicPartition(topic, p) for p in sorted(parts or ())]
        await asyncio.sleep(0.5)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    # aiokafka 0.14: stop() right after start() (no await between) raises CancelledError
    # from its coordinator's not-yet-started task; one loop turn avoids it.
    await asyncio.sleep(0)
    await consumer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, isolation: str = "read_uncommitted", timeout: float = 180.0, idle_polls: int = 2
) -> dict[int, list[Any]]:
    """Every record of ``topic`` up to its end (the LSO under read_committed), per partition."""
    consumer = _consumer(bootstrap, isolation=isolation)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        if not tps:
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[int, list[Any]] = {tp.partition: [] for tp in tps}
        pending = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach its end offsets in {timeout:.0f} s")
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batches.items():
                out[tp.partition].extend(records)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return out
    finally:
        await _stop(consumer)


async def end_offsets(bootstrap: str, topic: str, *, isolation: str = "read_uncommitted") -> dict[int, int]:
    consumer = _consumer(bootstrap, isolation=isolation)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        ends = await consumer.end_offsets(tps) if tps else {}
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await _stop(consumer)


# --------------------------------------------------------------------------- ground truth


@dataclass(slots=True)
class GroundTruth:
    topic: str
    ends: dict[int, int]
    records: int = 0
    valid: Counter[Cell] = field(default_factory=Counter)
    invalid: dict[Offset, str] = field(default_factory=dict)  # offset -> reason (decoder's)
    decoder_crashes: dict[Offset, str] = field(default_factory=dict)  # offsets where decode raised something else
    tracked: dict[tuple[bytes | None, bytes | None], list[Offset]] = field(default_factory=dict)  # records asked for
    keys: Counter[bytes] = field(default_factory=Counter)  # record keys with the asked-for prefix

    @property
    def valid_total(self) -> int:
        return sum(self.valid.values())


def classify(decoder: EventDecoder[RoutingEvent], value: bytes | None, now: float) -> tuple[RoutingEvent | None, str]:
    """(event, "") for a valid record, (None, reason) for an invalid one.

    A decoder that raises anything but ``InvalidEvent`` (e.g. ``RecursionError`` on deep
    nesting) would crash a fold; such records count as invalid, reason ``crash:<type>``.
    """
    try:
        return decoder.decode(value, now=now), ""
    except InvalidEvent as exc:
        return None, exc.reason.value
    except Exception as exc:  # noqa: BLE001 - exactly what the suite must report
        return None, f"crash:{type(exc).__name__}"


async def ground_truth(
    bootstrap: str,
    topic: str,
    *,
    limits: Limits,
    window_seconds: int,
    track: Iterable[tuple[bytes | None, bytes | None]] = (),
    key_prefix: bytes | None = None,
) -> GroundTruth:
    """Decode every offset of the input topic with the project's decoder.

    ``track``: (key, value) pairs whose offsets to note in ``tracked`` (e.g. poison records);
    ``key_prefix``: count the keys starting with it in ``keys`` (to check the publisher's acks).
    """
    records = await read_topic(bootstrap, topic)
    decoder = EventDecoder(RoutingEvent, limits)
    now = time.time()
    wanted = set(track)
    truth = GroundTruth(topic=topic, ends={})
    for partition, recs in records.items():
        expected_offset = None
        for r in recs:
            if expected_offset is not None and r.offset != expected_offset:
                # Input topics are not transactional: offsets are dense.
                raise AssertionError(f"{topic}:{partition} offset gap {expected_offset} -> {r.offset}")
            expected_offset = r.offset + 1
            truth.records += 1
            off = (topic, partition, r.offset)
            if key_prefix is not None and r.key is not None and r.key.startswith(key_prefix):
                truth.keys[r.key] += 1
            if wanted and (r.key, r.value) in wanted:
                truth.tracked.setdefault((r.key, r.value), []).append(off)
            event, reason = classify(decoder, r.value, now)
            if event is None:
                truth.invalid[off] = reason
                if reason.startswith("crash:"):
                    truth.decoder_crashes[off] = reason
            else:
                truth.valid[(event.router_id, event.arm, partition, window_start_of(event.ts, window_seconds))] += 1
        truth.ends[partition] = expected_offset or 0
    return truth


# --------------------------------------------------------------------------- observation


@dataclass(slots=True)
class Observed:
    counted: Counter[Cell] = field(default_factory=Counter)
    snapshots: int = 0
    partial_keys: int = 0
    dlq: Counter[Offset] = field(default_factory=Counter)
    dlq_reasons: dict[Offset, list[tuple[str, str]]] = field(default_factory=dict)
    dlq_records: int = 0


async def observe_partials(bootstrap: str, topic: str, source_topic: str, into: Observed | None = None) -> Observed:
    """Counts per cell from the newest (highest ``last_offset``) snapshot of every partial."""
    obs = into if into is not None else Observed()
    records = await read_topic(bootstrap, topic, isolation="read_committed")
    newest: dict[tuple[str, int, str, int], Any] = {}
    for recs in records.values():
        for r in recs:
            if r.value is None:
                continue
            obs.snapshots += 1
            partial = decode_partial(r.value)
            if partial.source_topic != source_topic:
                continue
            key = (partial.source_topic, partial.partition, partial.router_id, partial.window_start)
            held = newest.get(key)
            if held is None or partial.last_offset > held.last_offset:
                newest[key] = partial
    obs.partial_keys = len(newest)
    for partial in newest.values():
        for arm, stats in partial.arms.items():
            obs.counted[(partial.router_id, arm, partial.partition, partial.window_start)] += stats.count
    return obs


async def read_dead_letters(bootstrap: str, topic: str, into: Observed | None = None) -> Observed:
    obs = into if into is not None else Observed()
    records = await read_topic(bootstrap, topic, isolation="read_committed")
    for recs in records.values():
        for r in recs:
            obs.dlq_records += 1
            letter = _dlq_decoder.decode(r.value)
            off = (letter.source_topic, letter.partition, letter.offset)
            obs.dlq[off] += 1
            obs.dlq_reasons.setdefault(off, []).append((letter.reason, letter.error[:200]))
    return obs


# --------------------------------------------------------------------------- draining


async def committed_offsets(admin: AIOKafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def wait_drained(
    bootstrap: str,
    group: str,
    topic: str,
    partials_topic: str,
    *,
    timeout: float,
    settle: float = 3.0,
    anyone_alive: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Wait until the ingest group committed the input's end offsets and no transaction is open.

    Gives up early when ``anyone_alive`` says no worker is left (15 s grace). Returns what
    was seen: drained or not, seconds waited, lag left per partition.
    """
    began = time.monotonic()
    ends = await end_offsets(bootstrap, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    lag: dict[int, int] = {}
    nobody_since: float | None = None
    gave_up = False
    try:
        while time.monotonic() - began < timeout:
            if anyone_alive is not None and not anyone_alive():
                nobody_since = nobody_since or time.monotonic()
                if time.monotonic() - nobody_since > 15:
                    gave_up = True
                    break
            else:
                nobody_since = None
            try:
                committed = await committed_offsets(admin, group, topic)
            except Exception:  # noqa: BLE001 - coordinator moving; try again
                await asyncio.sleep(1.0)
                continue
            lag = {p: end - committed.get(p, 0) for p, end in ends.items()}
            if all(v <= 0 for v in lag.values()):
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    drained = bool(lag) and all(v <= 0 for v in lag.values())
    # Outputs are visible to read_committed readers only once no transaction is open
    # before them: wait until the LSO reaches the high watermark (bounded).
    stable = False
    while time.monotonic() - began < timeout + 60 and not gave_up:
        lso = await end_offsets(bootstrap, partials_topic, isolation="read_committed")
        hw = await end_offsets(bootstrap, partials_topic)
        if lso == hw:
            stable = True
            break
        await asyncio.sleep(1.0)
    await asyncio.sleep(settle if drained else 0)
    return {
        "drained": drained,
        "seconds": round(time.monotonic() - began, 1),
        "lag": {p: v for p, v in lag.items() if v > 0},
        "partials_stable": stable,
        "gave_up_no_worker_alive": gave_up,
    }


# --------------------------------------------------------------------------- verdict


@dataclass(slots=True)
class Verdict:
    rows: list[dict[str, Any]]  # non-zero rows per (router, arm, partition)
    lost: int
    doubled: int
    counted_total: int
    expected_valid: int
    invalid: int
    dlq_lost: list[Offset]
    dlq_dup: int
    dlq_dup_offsets: list[Offset]
    valid_in_dlq: list[Offset]
    unknown_cells: int
    by_window: dict[int, dict[str, int]] = field(default_factory=dict)  # window start -> expected/lost/double

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.dlq_lost or self.dlq_dup or self.valid_in_dlq)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "expected_valid": self.expected_valid,
            "counted": self.counted_total,
            "lost": self.lost,
            "double_counted": self.doubled,
            "invalid": self.invalid,
            "dlq_lost": len(self.dlq_lost),
            "dlq_duplicates": self.dlq_dup,
            "valid_in_dlq": len(self.valid_in_dlq),
            "rows": self.rows,
            "dlq_lost_sample": [list(o) for o in self.dlq_lost[:20]],
            "dlq_dup_sample": [list(o) for o in self.dlq_dup_offsets[:20]],
            "valid_in_dlq_sample": [list(o) for o in self.valid_in_dlq[:20]],
            "by_window": {str(w): v for w, v in sorted(self.by_window.items())},
        }


def compare(truth: GroundTruth, obs: Observed) -> Verdict:
    lost_rows: Counter[Row] = Counter()
    dup_rows: Counter[Row] = Counter()
    exp_rows: Counter[Row] = Counter()
    got_rows: Counter[Row] = Counter()
    by_window: dict[int, dict[str, int]] = {}
    for cell in set(truth.valid) | set(obs.counted):
        expected, got = truth.valid.get(cell, 0), obs.counted.get(cell, 0)
        w = by_window.setdefault(cell[3], {"expected": 0, "counted": 0, "lost": 0, "double": 0})
        w["expected"] += expected
        w["counted"] += got
        w["lost"] += max(0, expected - got)
        w["double"] += max(0, got - expected)
        row = cell[:3]
        exp_rows[row] += expected
        got_rows[row] += got
        if got < expected:
            lost_rows[row] += expected - got
        elif got > expected:
            dup_rows[row] += got - expected
    rows = [
        {
            "router": r,
            "arm": a,
            "partition": p,
            "expected": exp_rows[(r, a, p)],
            "counted": got_rows[(r, a, p)],
            "lost": lost_rows[(r, a, p)],
            "double": dup_rows[(r, a, p)],
        }
        for (r, a, p) in sorted(set(lost_rows) | set(dup_rows))
    ]
    dlq_lost = sorted(off for off in truth.invalid if obs.dlq.get(off, 0) == 0)
    dup_offsets = sorted(off for off, n in obs.dlq.items() if n > 1)
    valid_in_dlq = sorted(off for off in obs.dlq if off[0] == truth.topic and off not in truth.invalid)
    return Verdict(
        rows=rows,
        lost=sum(lost_rows.values()),
        doubled=sum(dup_rows.values()),
        counted_total=sum(obs.counted.values()),
        expected_valid=truth.valid_total,
        invalid=len(truth.invalid),
        dlq_lost=dlq_lost,
        dlq_dup=sum(obs.dlq[o] - 1 for o in dup_offsets),
        dlq_dup_offsets=dup_offsets,
        valid_in_dlq=valid_in_dlq,
        unknown_cells=len(set(obs.counted) - set(truth.valid)),
        by_window=by_window,
    )
