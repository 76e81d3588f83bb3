"""Consumer-lag status rules, after Burrow's, over a sliding window of samples (pure: no Kafka, no clock).

Burrow (https://github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules) judges a
partition on its last N *commits*, read from ``__consumer_offsets`` with their commit
times. We sample instead: every ``interval`` the monitor reads each group's committed
offsets, the read_committed log end and the group's live members, and keeps the last
``size`` samples per partition. Kafka does not tell an ordinary client *when* an offset
was committed, so "no commit in the window" is read as "the committed offset did not
move over the whole window", and a consumer that stopped is one whose group has no live
member. The rules, per partition, in order:

1. The window restarts at an offset reset: a committed offset (or log end) that moved
   backwards drops the samples before it (an operator's ``--reset-offsets`` or a
   recreated topic starts a new story; Burrow's REWIND is not alerted).
2. No sample → OK (nothing to judge).
3. Current lag 0 → OK, always.
4. Lag > 0 and the group has no live member → **STOP** (the consumer stopped).
5. Fewer than ``size`` samples → OK: too little evidence (a new partition, a fresh
   monitor). ERR, STALL and WARN need the whole window, so a consumer that commits less
   often than the window is long is never judged on a gap between two commits.
6. Lag 0 anywhere in the window → OK (Burrow rule 1: it caught up recently).
7. Committed offset unchanged over the window: **ERR** when the log end moved meanwhile
   (new records arrive and the consumer does not commit), **STALL** when it did not (the
   consumer is alive but stuck on what is there).
8. Offsets moved but the lag never decreased from one sample to the next → **WARN**
   (the consumer is slower than its input).
9. Otherwise OK.

A group's status is its worst partition's, in the order OK < WARN < STALL < ERR < STOP.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

__all__ = [
    "GroupReport",
    "GroupSnapshot",
    "LagStatus",
    "LagWindows",
    "PartitionLag",
    "PartitionReport",
    "PartitionSample",
    "Verdict",
    "consumable_lag",
    "evaluate_partition",
    "group_status",
    "record_age",
]


class LagStatus(str, enum.Enum):
    """Health of a partition or a group, from best to worst."""

    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    ERR = "ERR"
    STOP = "STOP"

    @property
    def severity(self) -> int:
        """0 for OK up to 4 for STOP."""
        return _SEVERITY[self]

    @property
    def alerting(self) -> bool:
        """Whether this status raises an alert (ERR, STALL, STOP)."""
        return self in (LagStatus.ERR, LagStatus.STALL, LagStatus.STOP)


_SEVERITY = {status: rank for rank, status in enumerate(LagStatus)}


@dataclass(frozen=True, slots=True)
class PartitionSample:
    """One observation of one partition of one group.

    Attributes:
        at: when it was taken (epoch seconds).
        committed: the group's committed offset (None: the group never committed here).
        end: the read_committed log end (last stable offset).
        lag: consumable records behind (0 when caught up; see :func:`consumable_lag`).
        members: live members of the group at that time.
    """

    at: float
    committed: int | None
    end: int
    lag: int
    members: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """A status and the rule that gave it, in words."""

    status: LagStatus
    reason: str


def evaluate_partition(window: Sequence[PartitionSample], size: int) -> Verdict:
    """The status of one partition from its samples, oldest first (rules in the module doc).

    Args:
        window: the partition's most recent samples, oldest first (at most ``size`` are used).
        size: samples a full window holds (≥ 2).

    Example:
        >>> s = lambda t, end: PartitionSample(at=t, committed=5, end=end, lag=end - 5, members=1)
        >>> evaluate_partition([s(0, 9), s(10, 12), s(20, 15)], size=3).status
        <LagStatus.ERR: 'ERR'>
    """
    samples = since_last_reset(list(window)[-size:])
    if not samples:
        return Verdict(LagStatus.OK, "no sample yet")
    last = samples[-1]
    if last.lag <= 0:
        return Verdict(LagStatus.OK, "caught up")
    if last.members == 0:
        return Verdict(LagStatus.STOP, f"lag {last.lag} and the group has no live member")
    if len(samples) < size:
        return Verdict(LagStatus.OK, f"window {len(samples)}/{size} samples: not judged yet")
    if any(s.lag <= 0 for s in samples):
        return Verdict(LagStatus.OK, "caught up within the window")
    first = samples[0]
    span = last.at - first.at
    if all(s.committed == first.committed for s in samples):
        if last.end > first.end:
            return Verdict(
                LagStatus.ERR,
                f"offset {_offset(last.committed)} not committed past for {span:.0f} s "
                f"while {last.end - first.end} records arrived",
            )
        return Verdict(LagStatus.STALL, f"offset {_offset(last.committed)} stuck for {span:.0f} s with lag {last.lag}")
    if all(b.lag >= a.lag for a, b in zip(samples, samples[1:])):
        return Verdict(LagStatus.WARN, f"lag grew from {first.lag} to {last.lag} over {span:.0f} s")
    return Verdict(LagStatus.OK, "consuming")


def since_last_reset(samples: Sequence[PartitionSample]) -> list[PartitionSample]:
    """The samples from the last offset reset on (committed offset or log end moved backwards)."""
    start = 0
    for i in range(1, len(samples)):
        before, now = samples[i - 1], samples[i]
        rewound = before.committed is not None and (now.committed is None or now.committed < before.committed)
        if rewound or now.end < before.end:
            start = i
    return list(samples[start:])


def group_status(statuses: Iterable[LagStatus]) -> LagStatus:
    """The worst of ``statuses`` (OK for none)."""
    return max(statuses, key=lambda s: s.severity, default=LagStatus.OK)


def consumable_lag(
    committed: int | None, log_start: int, log_end: int, *, first_record: int | None = None, counted: int | None = None
) -> int:
    """Records a consumer still has to read, not counting transaction markers.

    On a transactional topic every transaction ends with a commit (or abort) marker that
    occupies an offset but is never delivered. A consumer commits the offset after its
    last *record*, so ``log_end - committed`` stays ≥ 1 forever even when it has read
    everything. The probe therefore reads (read_committed) once from the committed
    offset: ``counted`` is the exact number of deliverable records up to ``log_end`` when
    that read got there (0 when only markers or aborted records were left); otherwise
    ``first_record`` is the offset of the first record it got, and the markers before it
    are not counted (those after it are: a large lag on a transactional topic is
    overstated by at most one offset per transaction).

    Args:
        committed: the committed offset (None: never committed; counts from ``log_start``).
        log_start: first offset still in the log.
        log_end: read_committed log end (last stable offset).
        first_record: offset of the next deliverable record, if one was read.
        counted: exact deliverable records in the range, if the read reached ``log_end``.

    Example:
        >>> consumable_lag(41, 0, 42, counted=0)  # only a commit marker left
        0
        >>> consumable_lag(40, 0, 50, first_record=42)
        8
    """
    position = max(log_start, committed if committed is not None else log_start)
    if log_end <= position:
        return 0
    if counted is not None:
        return min(counted, log_end - position)
    if first_record is not None and position <= first_record < log_end:
        return log_end - first_record
    return log_end - position  # not read in time: markers inside the range still count


def record_age(now: float, timestamp_ms: int | None) -> float | None:
    """Seconds since a record's timestamp (never negative; None when unknown)."""
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    return max(0.0, now - timestamp_ms / 1000.0)


def _offset(committed: int | None) -> str:
    return "none" if committed is None else str(committed)


# ---------------------------------------------------------------------------- reports


class PartitionLag(msgspec.Struct, frozen=True, kw_only=True):
    """Lag of one partition of one group, as read from Kafka.

    ``lag_seconds`` is the age of the next unconsumed record (0 when ``lag`` is 0, None
    when it could not be read in time).
    """

    topic: str
    partition: int
    committed: int | None
    log_end: int
    lag: int
    lag_seconds: float | None


class GroupSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Every partition of one group at one moment, and the group's membership.

    ``exists`` is False for a group the broker knows nothing about (no member and no
    committed offset).
    """

    group: str
    at: float
    state: str
    members: int
    exists: bool
    partitions: tuple[PartitionLag, ...] = ()


class PartitionReport(msgspec.Struct, frozen=True, kw_only=True):
    """A partition's lag and its status over the window."""

    topic: str
    partition: int
    committed: int | None
    log_end: int
    lag: int
    lag_seconds: float | None
    status: LagStatus
    reason: str


class GroupReport(msgspec.Struct, frozen=True, kw_only=True):
    """A group's partitions with their statuses, and the group's status (the worst).

    ``samples`` is how many samples the fullest partition window holds, out of ``window``.
    """

    group: str
    at: float
    state: str
    members: int
    exists: bool
    status: LagStatus
    lag: int
    lag_seconds: float | None
    samples: int
    window: int
    partitions: tuple[PartitionReport, ...] = ()


class LagWindows:
    """Sliding windows of samples per group and partition, and their evaluation.

    State only, no I/O: feed it snapshots in time order, get reports back.

    Example:
        >>> windows = LagWindows(size=3)
        >>> snap = GroupSnapshot(group="g", at=0.0, state="Empty", members=0, exists=True,
        ...     partitions=(PartitionLag(topic="t", partition=0, committed=5, log_end=9, lag=4, lag_seconds=3.0),))
        >>> windows.add(snap).status
        <LagStatus.STOP: 'STOP'>
    """

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError(f"a lag window holds at least 2 samples, not {size}")
        self.size = size
        self._windows: dict[str, dict[tuple[str, int], deque[PartitionSample]]] = {}

    def add(self, snapshot: GroupSnapshot) -> GroupReport:
        """Record ``snapshot`` and evaluate the group. Partitions it no longer lists are forgotten."""
        windows = self._windows.setdefault(snapshot.group, {})
        seen = set()
        reports = []
        for p in snapshot.partitions:
            key = (p.topic, p.partition)
            seen.add(key)
            window = windows.setdefault(key, deque(maxlen=self.size))
            window.append(
                PartitionSample(
                    at=snapshot.at, committed=p.committed, end=p.log_end, lag=p.lag, members=snapshot.members
                )
            )
            verdict = evaluate_partition(window, self.size)
            reports.append(
                PartitionReport(
                    topic=p.topic,
                    partition=p.partition,
                    committed=p.committed,
                    log_end=p.log_end,
                    lag=p.lag,
                    lag_seconds=p.lag_seconds,
                    status=verdict.status,
                    reason=verdict.reason,
                )
            )
        for key in set(windows) - seen:
            del windows[key]
        ages = [r.lag_seconds for r in reports if r.lag_seconds is not None]
        return GroupReport(
            group=snapshot.group,
            at=snapshot.at,
            state=snapshot.state,
            members=snapshot.members,
            exists=snapshot.exists,
            status=group_status(r.status for r in reports),
            lag=sum(r.lag for r in reports),
            lag_seconds=max(ages, default=None if reports and not ages else 0.0),
            samples=max((len(w) for w in windows.values()), default=0),
            window=self.size,
            partitions=tuple(sorted(reports, key=lambda r: (r.topic, r.partition))),
        )

    def forget(self, group: str) -> None:
        """Drop a group's history."""
        self._windows.pop(group, None)
