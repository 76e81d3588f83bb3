"""Reading consumer lag from Kafka, without joining any group.

One :meth:`LagProbe.snapshot` costs, per sample: a FindCoordinator, a DescribeGroups and
an OffsetFetch per group, one metadata request for the groups' topics, and — through a
short-lived ``read_committed`` consumer with no group id — the log ends (ListOffsets) of
every partition, plus, for the partitions that lag, their log starts and one small fetch
from the committed offset: the first record there gives the age of the next unconsumed
record (``now - its timestamp``) and tells transaction markers from real lag (see
:func:`~bifrost.streams.lag.rules.consumable_lag`). Nothing is fetched for a partition
that does not lag, so an idle or caught-up system costs a handful of small requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code

from bifrost.streams.lag.rules import GroupSnapshot, PartitionLag, consumable_lag, record_age

log = logging.getLogger("bifrost.lag")

__all__ = ["LagProbe"]

# A fetch from the committed offset needs one record: keep what the broker sends small.
_FETCH_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class NextRecord:
    """What one fetch from a committed offset found.

    Attributes:
        offset: the first deliverable record's offset (None: there was none).
        timestamp_ms: its timestamp.
        counted: deliverable records up to the log end when the fetch got there (exact
            lag; 0 when only transaction markers or aborted records were left), else None.
    """

    offset: int | None
    timestamp_ms: int | None
    counted: int | None


class LagProbe:
    """Reads groups' committed offsets, read_committed log ends and next-record timestamps.

    Use as an async context manager (an admin client lives as long as the probe; each
    snapshot opens and closes its own consumer, which never joins a group).

    Args:
        bootstrap: Kafka bootstrap servers.
        client_options: TLS/SASL options (``Settings.kafka_options()``).
        timeout: bound on each Kafka request, seconds.
        fetch_timeout: how long one snapshot may spend reading next records; partitions
            not read by then report ``lag_seconds=None``.
        clock: epoch seconds (injectable for tests).

    Example:
        >>> async def show(settings):  # doctest: +SKIP
        ...     async with LagProbe(settings.kafka_bootstrap, settings.kafka_options()) as probe:
        ...         for group in await probe.snapshot(["bifrost-optimizer-ingest"]):
        ...             print(group.group, sum(p.lag for p in group.partitions))
    """

    def __init__(
        self,
        bootstrap: str,
        client_options: Mapping[str, Any],
        *,
        timeout: float = 10.0,
        fetch_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bootstrap = bootstrap
        self._options = dict(client_options)
        self._timeout = timeout
        self._fetch_timeout = fetch_timeout
        self._clock = clock
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect the admin client."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap,
            client_id="bifrost-lag",
            request_timeout_ms=int(self._timeout * 1000),
            **self._options,
        )
        await asyncio.wait_for(admin.start(), self._timeout)
        self._admin = admin

    async def close(self) -> None:
        """Disconnect (idempotent)."""
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def known_groups(self) -> list[str]:
        """Every consumer group the cluster knows, sorted."""
        listed = await asyncio.wait_for(self._require().list_consumer_groups(), self._timeout)
        return sorted(str(g[0]) for g in listed)

    async def snapshot(self, groups: Sequence[str]) -> list[GroupSnapshot]:
        """Lag of every partition each of ``groups`` has committed offsets for, now.

        A group the broker does not know comes back with ``exists=False`` and no partition.
        Raises what aiokafka raises when Kafka does not answer (callers decide).
        """
        admin = self._require()
        groups = list(dict.fromkeys(groups))
        described, offsets = await asyncio.wait_for(
            asyncio.gather(self._describe(admin, groups), self._offsets(admin, groups)), self._timeout * 2
        )
        wanted = {tp for committed in offsets.values() for tp in committed}
        existing = await self._existing(admin, {tp.topic for tp in wanted})
        wanted &= existing
        ends, starts, first, at = await self._read_partitions(wanted, offsets)
        snapshots = []
        for group in groups:
            state, members = described.get(group, ("Dead", 0))
            committed = offsets.get(group, {})
            partitions = []
            for tp in sorted(committed, key=lambda tp: (tp.topic, tp.partition)):
                if tp not in wanted or tp not in ends:
                    continue
                position = committed[tp]
                record = first.get((group, tp))
                lag = consumable_lag(
                    position,
                    starts.get(tp, 0),
                    ends[tp],
                    first_record=record.offset if record else None,
                    counted=record.counted if record else None,
                )
                if lag == 0:
                    age: float | None = 0.0
                else:
                    age = record_age(at, record.timestamp_ms) if record else None  # the age at the moment of the sample
                partitions.append(
                    PartitionLag(
                        topic=tp.topic,
                        partition=tp.partition,
                        committed=position,
                        log_end=ends[tp],
                        lag=lag,
                        lag_seconds=age,
                    )
                )
            exists = state != "Dead" or bool(committed)
            snapshots.append(
                GroupSnapshot(
                    group=group,
                    at=at,
                    state=state if exists else "unknown",
                    members=members,
                    exists=exists,
                    partitions=tuple(partitions),
                )
            )
        return snapshots

    # ------------------------------------------------------------------ Kafka reads

    def _require(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise RuntimeError("LagProbe is not started (use `async with LagProbe(...)`)")
        return self._admin

    async def _describe(self, admin: AIOKafkaAdminClient, groups: list[str]) -> dict[str, tuple[str, int]]:
        # One group per request: aiokafka 0.14 decodes a DescribeGroups v3 answer with the v2
        # schema, which has no per-group authorized_operations field; with two groups or more
        # the second is read misaligned ("Buffer underrun") and the connection is dropped.
        responses = await asyncio.gather(*(admin.describe_consumer_groups([g]) for g in groups))
        described: dict[str, tuple[str, int]] = {}
        for response in (r for per_group in responses for r in per_group):
            for entry in response.groups:
                error_code, group, state, members = entry[0], entry[1], entry[2], entry[5]
                if error_code:
                    raise for_code(error_code)(f"cannot describe consumer group {group!r}")
                described[group] = (state, len(members))
        return described

    async def _offsets(
        self, admin: AIOKafkaAdminClient, groups: list[str]
    ) -> dict[str, dict[TopicPartition, int | None]]:
        fetched = await asyncio.gather(*(admin.list_consumer_group_offsets(g) for g in groups))
        return {
            group: {tp: (meta.offset if meta.offset >= 0 else None) for tp, meta in committed.items()}
            for group, committed in zip(groups, fetched)
        }

    async def _existing(self, admin: AIOKafkaAdminClient, topics: set[str]) -> set[TopicPartition]:
        if not topics:
            return set()
        described = await admin.describe_topics(sorted(topics))
        return {
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if not d.get("error_code")
            for p in d.get("partitions") or ()
        }

    async def _read_partitions(
        self,
        wanted: set[TopicPartition],
        offsets: dict[str, dict[TopicPartition, int | None]],
    ) -> tuple[
        dict[TopicPartition, int], dict[TopicPartition, int], dict[tuple[str, TopicPartition], NextRecord], float
    ]:
        """(log ends, log starts of lagging partitions, first records, when the ends were read).

        The first records are :meth:`_first_records`'s.
        """
        if not wanted:
            return {}, {}, {}, self._clock()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            client_id="bifrost-lag",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=_FETCH_BYTES,
            fetch_max_bytes=16 * _FETCH_BYTES,
            request_timeout_ms=int(self._timeout * 1000),
            **self._options,
        )
        await asyncio.wait_for(consumer.start(), self._timeout)
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(sorted(wanted)), self._timeout)
            at = self._clock()
            lagging = {
                (group, tp): position
                for group, committed in offsets.items()
                for tp, position in committed.items()
                if tp in ends and ends[tp] > (position if position is not None else 0)
            }
            starts: dict[TopicPartition, int] = {}
            if lagging:
                starts = await asyncio.wait_for(
                    consumer.beginning_offsets(sorted({tp for _, tp in lagging})), self._timeout
                )
            first = await self._first_records(consumer, lagging, starts, ends)
            return ends, starts, first, at
        finally:
            await consumer.stop()

    async def _first_records(
        self,
        consumer: AIOKafkaConsumer,
        lagging: dict[tuple[str, TopicPartition], int | None],
        starts: dict[TopicPartition, int],
        ends: dict[TopicPartition, int],
    ) -> dict[tuple[str, TopicPartition], NextRecord]:
        """The first deliverable record at or after each committed offset (one fetch each).

        Absent: not read within the fetch timeout. Groups sharing a partition at the same
        position share one read.
        """
        result: dict[tuple[str, TopicPartition], NextRecord] = {}
        # One read per (partition, position); several groups may want the same one.
        wanted: dict[tuple[TopicPartition, int], list[str]] = {}
        for (group, tp), position in lagging.items():
            start = max(starts.get(tp, 0), position if position is not None else 0)
            if start < ends[tp]:
                wanted.setdefault((tp, start), []).append(group)
            else:
                result[(group, tp)] = NextRecord(offset=None, timestamp_ms=None, counted=0)
        found: dict[tuple[TopicPartition, int], NextRecord] = {}
        deadline = time.monotonic() + self._fetch_timeout
        # A consumer holds one position per partition: read distinct positions of a
        # partition in rounds.
        rounds: list[dict[TopicPartition, int]] = []
        for tp, start in sorted(wanted, key=lambda k: (k[0].topic, k[0].partition, k[1])):
            for round_ in rounds:
                if tp not in round_:
                    round_[tp] = start
                    break
            else:
                rounds.append({tp: start})
        for round_ in rounds:
            consumer.assign(list(round_))
            for tp, start in round_.items():
                consumer.seek(tp, start)
            pending = set(round_)
            while pending and (remaining := deadline - time.monotonic()) > 0:
                batch = await consumer.getmany(*pending, timeout_ms=int(min(remaining, 0.1) * 1000))
                for tp, records in batch.items():
                    if records and tp in pending:
                        # Exact when this one fetch got to the log end, else only the first record counts.
                        reached = await consumer.position(tp) >= ends[tp]
                        counted = sum(1 for r in records if r.offset < ends[tp]) if reached else None
                        found[(tp, round_[tp])] = NextRecord(
                            offset=records[0].offset, timestamp_ms=records[0].timestamp, counted=counted
                        )
                        pending.discard(tp)
                        consumer.pause(tp)
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:  # only markers or aborted records were left
                        found[(tp, round_[tp])] = NextRecord(offset=None, timestamp_ms=None, counted=0)
                        pending.discard(tp)
            if pending:
                log.debug("event=lag.fetch_timeout partitions=%d", len(pending))
        for key, groups in wanted.items():
            for group in groups:
                if key in found:
                    result[(group, key[0])] = found[key]
        return result
