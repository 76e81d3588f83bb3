"""One commit lane per input partition: its transactions in order, overlapped with the fold.

The ingest loop folds a batch and hands each partition's writes to that partition's
lane, then goes straight back to fetching. A lane runs one transaction at a time (a
transactional producer cannot do more); writes that arrive meanwhile are merged into
the next transaction (:meth:`PartitionWrites.absorb`), so a slow commit makes the next
transaction bigger instead of stalling every partition behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bifrost.streams.ingest.transactions import PartitionWriter, PartitionWrites


class CommitLane:
    """The transactions of one input partition, committed in offset order."""

    def __init__(
        self,
        writer: PartitionWriter,
        *,
        on_committed: Callable[[CommitLane, PartitionWrites, float], None],
        on_failed: Callable[[CommitLane, BaseException], None],
        min_interval: float = 0.0,
    ) -> None:
        self.writer = writer
        self._min_interval = min_interval
        self._last_start = 0.0
        self.tp = writer.tp
        self.failed: BaseException | None = None
        self._on_committed = on_committed
        self._on_failed = on_failed
        self._pending: PartitionWrites | None = None
        self._in_flight = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def backlog(self) -> int:
        """Records folded but not yet committed."""
        return self._in_flight + (self._pending.records if self._pending is not None else 0)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The running commit loop, if any."""
        return self._task

    def submit(self, writes: PartitionWrites) -> None:
        """Queue ``writes`` (later offsets than anything queued before) for commit."""
        if self.failed is not None:
            return
        if self._pending is None:
            self._pending = writes
        else:
            self._pending.absorb(writes)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while self._pending is not None:
                # At most one transaction per interval: what arrives meanwhile joins it, so
                # the changelog and stage 2 see one snapshot per key per interval, not per batch.
                wait = self._last_start + self._min_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last_start = time.monotonic()
                if self._pending is None:
                    break
                writes, self._pending = self._pending, None
                self._in_flight = writes.records
                started = time.perf_counter()
                try:
                    await self.writer.commit(writes)
                except BaseException as exc:  # reported to the owner, which restores the partition
                    self.failed = exc
                    self._pending = None
                    if not self._closing:
                        self._on_failed(self, exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    return
                finally:
                    self._in_flight = 0
                self._on_committed(self, writes, time.perf_counter() - started)
        finally:
            self._task = None

    async def drain(self, timeout: float) -> bool:
        """Wait until everything submitted is committed; False on failure or timeout."""
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except (TimeoutError, Exception):  # noqa: BLE001 - the outcome is in self.failed
                return False
        return self.failed is None and self._pending is None

    async def close(self) -> None:
        """Stop committing (an open transaction aborts) and disconnect."""
        self._closing = True
        self.failed = self.failed or RuntimeError("lane closed")
        self._pending = None
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.writer.close()
