"""The warehouse sink: its own consumer group, atomic Parquet files, commit after write.

How it keeps "every valid event exactly once" while files are written off the event loop:

- Each input partition has at most one open buffer: the raw values and offsets of one
  contiguous offset range of one event hour. A buffer becomes a *write job* when it is full
  (rows or bytes), old, the hour changes, or memory is short; the job's file name carries
  its offset range (one file per topic, partition and span, see ``layout.py``).
- One writer task hands jobs, in order, to one worker thread (Arrow table build, Parquet
  write, fsync, rename). A failed write is logged with its path and retried with backoff;
  later jobs wait behind it, so a partition's files appear in offset order.
- Only the writer advances ``stored`` (the highest offset a partition's files cover), and
  only after a rename; commits read ``stored``. A commit therefore never runs ahead of a
  file. When partitions are revoked, their buffers are written and the revocation waits
  for those writes before committing (bounded by the rebalance timeout: past it, the
  remaining jobs are abandoned, and their offsets are left uncommitted for the next owner).
- Memory: buffered plus in-flight bytes (each row costs its value's length plus a small
  overhead) stay under ``BIFROST_WAREHOUSE_MAX_BUFFER_BYTES``; when a record would not
  fit, the biggest buffers are written first and consumption waits for the writer.
- A record that fails to decode is skipped (ingest dead-letters it); it never stops the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from array import array
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from bifrost.config import Settings
from bifrost.kafka.topics import ensure_topics
from bifrost.schemas.codec import EventDecoder
from bifrost.schemas.events import FeedbackEvent, RoutingEvent
from bifrost.streams.ingest.service import ingest_topics
from bifrost.streams.warehouse.files import write_atomically, write_events_file
from bifrost.streams.warehouse.layout import FileSpan, file_path, hour_of, stored_through, temp_files
from bifrost.streams.warehouse.policy import (
    buffer_expired,
    buffer_full,
    buffers_to_flush,
    offsets_to_commit,
    retry_delay,
    row_cost,
)

__all__ = ["WarehouseSink", "write_atomically"]

log = logging.getLogger("bifrost.warehouse")

_SECONDS_PER_HOUR = 3600


@dataclass(slots=True)
class _Buffer:
    """Raw values of one partition's contiguous offset range within one event hour."""

    hour: int  # hours since the epoch
    first_offset: int
    last_offset: int = -1
    values: list[bytes] = field(default_factory=list)
    offsets: array[int] = field(default_factory=lambda: array("q"))
    nbytes: int = 0
    opened_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True, eq=False)
class _WriteJob:
    """One file to write; ``done`` resolves True once it exists, False if abandoned."""

    tp: TopicPartition
    path: Path
    event_type: type[msgspec.Struct]
    values: list[bytes]
    offsets: array[int]
    last_offset: int
    nbytes: int
    done: asyncio.Future[bool]
    abandoned: asyncio.Event = field(default_factory=asyncio.Event)


class WarehouseSink:
    """Copies valid routing events and feedback into Parquet, exactly once per offset.

    Invalid records are skipped here (ingest dead-letters them). A partition's buffer is
    written when it reaches ``max_rows`` rows or ``max_file_bytes`` bytes, is older than
    ``max_age_s``, the next event belongs to another hour, or the sink's buffered and
    in-flight bytes would exceed ``max_buffer_bytes``. Offsets are committed only after
    the files covering them exist. The consumer uses static membership
    (``settings.group_instance_id``) and the configured session timeout.

    Counters for tests and logs: ``records_read`` (buffered or skipped), ``files_written``,
    ``records_skipped``, ``write_failures``, ``peak_bytes`` (highest buffered + in-flight
    estimate seen).
    """

    def __init__(
        self,
        settings: Settings,
        root: Path,
        *,
        max_rows: int = 50_000,
        max_age_s: float = 60.0,
        max_buffer_bytes: int | None = None,
        max_file_bytes: int | None = None,
    ) -> None:
        """Describe the sink; nothing runs until :meth:`run`.

        Args:
            settings: Bootstrap, topics, app id, limits, session timeout, instance id.
            root: Warehouse folder.
            max_rows: Rows per file at most.
            max_age_s: Longest a buffer waits before it is written.
            max_buffer_bytes: Bound on buffered + in-flight bytes; default
                ``settings.warehouse_max_buffer_bytes``.
            max_file_bytes: A buffer this big is written as a file; default a quarter of
                ``max_buffer_bytes`` (also bounds a write's transient memory).
        """
        self.settings = settings
        self.root = root
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.max_buffer_bytes = (
            max_buffer_bytes if max_buffer_bytes is not None else settings.warehouse_max_buffer_bytes
        )
        self.max_file_bytes = max_file_bytes if max_file_bytes is not None else max(1, self.max_buffer_bytes // 4)
        topics = settings.topics
        self._decoders: dict[str, EventDecoder[Any]] = {
            topics.routing_events: EventDecoder(RoutingEvent, settings.limits),
            topics.feedback: EventDecoder(FeedbackEvent, settings.limits),
        }
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._stored: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._owned: set[TopicPartition] = set()
        self._generation = 0  # bumped by every revocation and assignment
        self._jobs: deque[_WriteJob] = deque()
        self._running: _WriteJob | None = None
        self._job_queued = asyncio.Event()
        self._job_finished = asyncio.Event()
        self._buffered_bytes = 0
        self._in_flight_bytes = 0
        self._executor: ThreadPoolExecutor | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.records_read = 0
        self.files_written = 0
        self.records_skipped = 0
        self.write_failures = 0
        self.peak_bytes = 0

    @property
    def held_bytes(self) -> int:
        """Estimated bytes held now: open buffers plus files being written."""
        return self._buffered_bytes + self._in_flight_bytes

    @property
    def group_id(self) -> str:
        """The sink's consumer group, ``<app_id>-warehouse``."""
        return f"{self.settings.app_id}-warehouse"

    # ---------------------------------------------------------------- main loop

    async def run(self) -> None:
        """Consume until cancelled; on the way out, write what is buffered and commit it."""
        s = self.settings
        # Subscribing before the input topics exist would leave this group with nothing
        # assigned until the next metadata refresh (minutes).
        options = s.kafka_options()  # TLS/SASL, as every client of the worker
        await ensure_topics(
            s.kafka_bootstrap, ingest_topics(s), replication_factor=s.replication_factor, client_options=options
        )
        session_ms = int(s.session_timeout_seconds * 1000)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=self.group_id,
            client_id=self.group_id,
            group_instance_id=s.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=10_000,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=int(min(3.0, s.session_timeout_seconds / 3) * 1000),
            # Prefetched records live outside the byte bound: keep the fetch buffer small.
            fetch_max_bytes=max(1 << 20, min(50 << 20, self.max_buffer_bytes // 4)),
            **options,
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse-writer")
        writer = asyncio.create_task(self._write_loop(), name="warehouse-writer")
        try:
            await self._consumer.start()
            self._consumer.subscribe(list(self._decoders), listener=_Rebalance(self))
            while True:
                if writer.done():
                    writer.result()  # the writer never ends by itself: surface its error
                    raise RuntimeError("the warehouse writer stopped")
                batches = await self._consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    await self._consume(tp, records)
                self._flush_expired(time.monotonic())
                await self._commit()
        finally:
            await self._close(writer)

    async def _consume(self, tp: TopicPartition, records: list[Any]) -> None:
        generation = self._generation
        decoder = self._decoders[tp.topic]
        for record in records:
            if self._generation != generation or tp not in self._owned:
                return  # revoked (and maybe re-assigned) meanwhile: these records are stale
            offset = record.offset
            if offset <= self._stored.get(tp, -1):
                continue  # already in a file from before a restart
            value = record.value
            try:
                hour = int(decoder.decode(value).ts // _SECONDS_PER_HOUR)
            except Exception as exc:  # noqa: BLE001 - any bad record is skipped, never a crash
                self._skip(tp, offset, exc)
                self.records_read += 1
                continue
            cost = row_cost(len(value))
            if self.held_bytes + cost > self.max_buffer_bytes:
                await self._make_room(cost)
                if self._generation != generation or tp not in self._owned:
                    return
            self._append(tp, offset, value, hour, cost)
            self.records_read += 1

    def _append(self, tp: TopicPartition, offset: int, value: bytes, hour: int, cost: int) -> None:
        buffer = self._buffers.get(tp)
        if buffer is not None and buffer.hour != hour:
            self._submit(tp)
            buffer = None
        if buffer is None:
            buffer = self._buffers[tp] = _Buffer(hour=hour, first_offset=offset)
        buffer.values.append(value)
        buffer.offsets.append(offset)
        buffer.last_offset = offset
        buffer.nbytes += cost
        self._buffered_bytes += cost
        self.peak_bytes = max(self.peak_bytes, self.held_bytes)
        if buffer_full(len(buffer.values), buffer.nbytes, max_rows=self.max_rows, max_file_bytes=self.max_file_bytes):
            self._submit(tp)

    def _skip(self, tp: TopicPartition, offset: int, error: Exception) -> None:
        self.records_skipped += 1
        log.debug(
            "event=warehouse.skip topic=%s partition=%d offset=%d error=%s", tp.topic, tp.partition, offset, error
        )
        # The skipped offset ends up inside the open buffer's file range (it is in the DLQ).
        buffer = self._buffers.get(tp)
        if buffer is not None:
            buffer.last_offset = offset

    async def _make_room(self, incoming: int) -> None:
        """Write the biggest buffers and wait for the writer until ``incoming`` bytes fit."""
        while self.held_bytes + incoming > self.max_buffer_bytes:
            sizes = {tp: buffer.nbytes for tp, buffer in self._buffers.items()}
            for tp in buffers_to_flush(
                sizes, in_flight=self._in_flight_bytes, incoming=incoming, limit=self.max_buffer_bytes
            ):
                self._submit(tp)
            if not self._jobs:
                return  # nothing held: a single record bigger than the bound goes through
            self._job_finished.clear()
            await self._job_finished.wait()

    def _flush_expired(self, now: float) -> None:
        for tp, buffer in list(self._buffers.items()):
            if buffer_expired(buffer.opened_at, now, max_age_s=self.max_age_s):
                self._submit(tp)

    def _submit(self, tp: TopicPartition) -> None:
        """Turn the partition's open buffer into a write job."""
        buffer = self._buffers.pop(tp)
        self._buffered_bytes -= buffer.nbytes
        span = FileSpan(tp.partition, buffer.first_offset, buffer.last_offset)
        job = _WriteJob(
            tp=tp,
            path=file_path(self.root, tp.topic, hour_of(buffer.hour * _SECONDS_PER_HOUR), span),
            event_type=self._decoders[tp.topic].event_type,
            values=buffer.values,
            offsets=buffer.offsets,
            last_offset=buffer.last_offset,
            nbytes=buffer.nbytes,
            done=asyncio.get_running_loop().create_future(),
        )
        self._in_flight_bytes += job.nbytes
        self._jobs.append(job)
        self._job_queued.set()

    async def _commit(self) -> None:
        offsets = offsets_to_commit(self._stored, self._committed, self._owned)
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # rebalance in progress, coordinator moved: next round retries
            log.warning("event=warehouse.commit_failed offsets=%d error=%r", len(offsets), exc)
            return
        for tp, offset in offsets.items():
            if tp in self._owned:  # not revoked while the commit was on its way
                self._committed[tp] = offset - 1

    # ---------------------------------------------------------------- writer

    async def _write_loop(self) -> None:
        """Write jobs one at a time, in order, in the writer thread; retry failures forever."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._jobs:
                self._job_queued.clear()
                await self._job_queued.wait()
                continue
            job = self._running = self._jobs[0]
            written = False
            attempt = 0
            while not job.abandoned.is_set():
                try:
                    started = time.monotonic()
                    rows = await loop.run_in_executor(
                        self._executor,
                        write_events_file,
                        job.path,
                        job.event_type,
                        job.tp.partition,
                        job.values,
                        job.offsets,
                    )
                except Exception as exc:  # noqa: BLE001 - logged, retried, never dropped
                    attempt += 1
                    self.write_failures += 1
                    delay = retry_delay(attempt)
                    log.error(
                        "event=warehouse.write_failed path=%s attempt=%d retry_in=%.1fs error=%r",
                        job.path,
                        attempt,
                        delay,
                        exc,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(job.abandoned.wait(), delay)
                    continue
                written = True
                self.files_written += 1
                log.debug(
                    "event=warehouse.file path=%s rows=%d bytes=%d took=%.3fs",
                    job.path,
                    rows,
                    job.nbytes,
                    time.monotonic() - started,
                )
                break
            self._finish(job, written=written and not job.abandoned.is_set())

    def _finish(self, job: _WriteJob, *, written: bool) -> None:
        if self._running is job:
            self._running = None
        with contextlib.suppress(ValueError):
            self._jobs.remove(job)
        self._in_flight_bytes -= job.nbytes
        if written:
            self._stored[job.tp] = max(self._stored.get(job.tp, -1), job.last_offset)
        if not job.done.done():
            job.done.set_result(written)
        self._job_finished.set()

    def _abandon(self, job: _WriteJob) -> None:
        """Stop retrying a job; one not yet started is dropped at once."""
        job.abandoned.set()
        if job is not self._running:
            self._finish(job, written=False)

    async def _wait_for_jobs(self, jobs: list[_WriteJob], timeout: float) -> bool:
        """Wait until ``jobs`` are written; past ``timeout``, abandon the rest. True if all were written."""
        if not jobs:
            return True
        _, pending = await asyncio.wait([job.done for job in jobs], timeout=timeout)
        if pending:
            log.error(
                "event=warehouse.writes_abandoned files=%d waited=%.1fs paths=%s "
                "(their offsets stay uncommitted and are read again)",
                len(pending),
                timeout,
                [str(job.path) for job in jobs if not job.done.done()][:5],
            )
            for job in jobs:
                if not job.done.done():
                    self._abandon(job)
            # A write already running in the thread cannot be interrupted; give it a moment.
            await asyncio.wait([job.done for job in jobs], timeout=min(5.0, timeout / 2))
        return all(job.done.done() and job.done.result() for job in jobs)

    # ---------------------------------------------------------------- rebalancing

    def _revoke_wait_s(self) -> float:
        # The group waits for this member's rejoin for the rebalance timeout (= session
        # timeout); waiting for writes takes at most 1.5x this (see _wait_for_jobs).
        return max(1.0, 0.5 * self.settings.session_timeout_seconds)

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Write the revoked partitions' buffers, wait for their files, commit, forget them."""
        revoked_set = set(revoked)
        self._generation += 1
        self._owned -= revoked_set
        for tp in revoked:
            if tp in self._buffers:
                self._submit(tp)
        jobs = [job for job in self._jobs if job.tp in revoked_set]
        started = time.monotonic()
        await self._wait_for_jobs(jobs, self._revoke_wait_s())
        offsets = offsets_to_commit(self._stored, self._committed, revoked_set)
        log.info(
            "event=warehouse.revoked partitions=%d waited_files=%d waited=%.2fs commits=%d",
            len(revoked_set),
            len(jobs),
            time.monotonic() - started,
            len(offsets),
        )
        if offsets and self._consumer is not None:
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("event=warehouse.commit_failed on=revoke offsets=%d error=%r", len(offsets), exc)
        for tp in revoked:
            self._stored.pop(tp, None)
            self._committed.pop(tp, None)

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Read what the files already cover, so stored offsets are skipped, not duplicated.

        Deliberately without an ``await``: aiokafka runs this right after setting the
        assignment, and records of these partitions must not reach ``_consume`` before
        they count as owned (it drops records of partitions it does not own).
        """
        self._generation += 1
        for topic in {tp.topic for tp in assigned}:
            stored = stored_through(self.root, topic)
            partitions = {tp.partition for tp in assigned if tp.topic == topic}
            for tp in assigned:
                self._committed.pop(tp, None)  # unknown: the files say what is stored
                if tp.topic == topic and tp.partition in stored:
                    self._stored[tp] = stored[tp.partition]
            for temp in temp_files(self.root, topic, partitions):
                # Left by a writer that died before its rename; the range is read again.
                with contextlib.suppress(OSError):
                    temp.unlink()
        self._owned |= set(assigned)
        log.info("event=warehouse.assigned partitions=%s", sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))

    # ---------------------------------------------------------------- shutdown

    async def _close(self, writer: asyncio.Task[None]) -> None:
        """Best effort on the way out: write the buffers, commit what got written, stop."""
        try:
            if self._consumer is not None and self._owned:
                for tp in list(self._buffers):
                    self._submit(tp)
                # Not a rebalance (a static member does not leave the group): up to 10 s.
                await self._wait_for_jobs(list(self._jobs), _CLOSE_WAIT_S)
                await self._commit()
        except Exception as exc:  # noqa: BLE001 - shutting down anyway; offsets not committed are re-read
            log.warning("event=warehouse.close_incomplete error=%r", exc)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            if self._consumer is not None:
                await self._consumer.stop()
            if self._executor is not None:
                self._executor.shutdown(wait=False)


_CLOSE_WAIT_S = 10.0


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, sink: WarehouseSink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._sink.on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._sink.on_assigned(list(assigned))
