"""``bifrost-opt worker`` with timing probes around stage 1 (``ingest_bench.py --diagnose``).

Runs exactly the worker (``bifrost.cli.main.main(["worker"])``) after wrapping, at run
time and without changing any source file:

- ``IngestService._fold_and_submit`` (streams/ingest/service.py): wall time, records and
  input partitions of every fetched batch (folded, then handed to the partitions' commit
  lanes, streams/ingest/lanes.py, which run the transactions concurrently);
- ``BatchFolder.fold`` (streams/ingest/fold.py): wall time of each fold;
- ``PartitionWriter.commit`` (streams/ingest/transactions.py): wall time of each
  transaction, split into sends queued / ``send_offsets_to_transaction`` (AddOffsetsToTxn
  + TxnOffsetCommit) / awaiting the deliveries / ``commit_transaction`` (EndTxn);
- an event-loop lag probe (a 10 ms sleep, how late it wakes);
- WARNING records of the ``aiokafka`` loggers (retried produce errors and the like),
  which the worker's logging setup does not show.

Every sample carries ``time.monotonic()`` (the clock the benchmark uses for its phases).
The samples are written as JSON to ``$BIFROST_BENCH_DIAG_OUT`` every 2 s and at exit.
The wrappers cost a few microseconds per batch and transaction, not per event.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import sys
import threading
import time
from typing import Any

OUT = os.environ.get("BIFROST_BENCH_DIAG_OUT", "ingest-diag.json")
samples: dict[str, list[Any]] = {"process": [], "fold": [], "commit": [], "loop_lag": [], "aiokafka_warnings": []}
_lock = threading.Lock()


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        samples["aiokafka_warnings"].append((time.monotonic(), record.name, record.getMessage()[:300]))


def _instrument() -> None:
    from bifrost.streams.ingest import fold, service, transactions

    fold_and_submit = service.IngestService._fold_and_submit

    def timed_fold_and_submit(self: Any, batches: dict[Any, list[Any]]) -> None:
        t0 = time.monotonic()
        fold_and_submit(self, batches)
        samples["process"].append((t0, time.monotonic() - t0, sum(len(r) for r in batches.values()), len(batches)))

    service.IngestService._fold_and_submit = timed_fold_and_submit  # type: ignore[method-assign]

    folder_fold = fold.BatchFolder.fold

    def timed_fold(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.monotonic()
        try:
            return folder_fold(self, *args, **kwargs)
        finally:
            samples["fold"].append((t0, time.monotonic() - t0))

    fold.BatchFolder.fold = timed_fold  # type: ignore[method-assign]

    commit = transactions.PartitionWriter.commit

    async def timed_commit(self: Any, writes: Any) -> None:
        producer = self._producer
        marks: dict[str, float] = {}
        send_offsets, commit_transaction = producer.send_offsets_to_transaction, producer.commit_transaction

        async def timed_send_offsets(*args: Any, **kwargs: Any) -> Any:
            marks["offsets"] = time.monotonic()
            try:
                return await send_offsets(*args, **kwargs)
            finally:
                marks["offsets_done"] = time.monotonic()

        async def timed_commit_transaction(*args: Any, **kwargs: Any) -> Any:
            marks["end"] = time.monotonic()
            try:
                return await commit_transaction(*args, **kwargs)
            finally:
                marks["end_done"] = time.monotonic()

        producer.send_offsets_to_transaction, producer.commit_transaction = timed_send_offsets, timed_commit_transaction
        t0 = time.monotonic()
        ok = False
        try:
            await commit(self, writes)
            ok = True
        finally:
            producer.send_offsets_to_transaction, producer.commit_transaction = send_offsets, commit_transaction
            t1 = time.monotonic()
            phases = None
            if {"offsets", "offsets_done", "end", "end_done"} <= marks.keys():
                phases = (
                    marks["offsets"] - t0,
                    marks["offsets_done"] - marks["offsets"],
                    marks["end"] - marks["offsets_done"],
                    marks["end_done"] - marks["end"],
                )
            samples["commit"].append((t0, t1 - t0, len(writes.snapshots), ok, phases))

    transactions.PartitionWriter.commit = timed_commit  # type: ignore[method-assign]

    run = service.IngestService.run

    async def run_with_probes(self: Any) -> None:
        # Attached here, after Faust configured logging (which would drop an earlier handler).
        handler = _Collect(level=logging.WARNING)
        aiokafka_log = logging.getLogger("aiokafka")
        aiokafka_log.addHandler(handler)
        aiokafka_log.disabled = False
        if aiokafka_log.level == logging.NOTSET or aiokafka_log.level > logging.WARNING:
            aiokafka_log.setLevel(logging.WARNING)

        async def loop_lag() -> None:
            while True:
                t0 = time.monotonic()
                await asyncio.sleep(0.01)
                samples["loop_lag"].append((t0, time.monotonic() - t0 - 0.01))

        lag = asyncio.ensure_future(loop_lag())
        try:
            await run(self)
        finally:
            lag.cancel()

    service.IngestService.run = run_with_probes  # type: ignore[method-assign]


def _dump() -> None:
    with _lock:
        tmp = OUT + ".tmp"
        with open(tmp, "w") as sink:
            json.dump(samples, sink)
        os.replace(tmp, OUT)


def _dump_every(seconds: float) -> None:
    while True:
        time.sleep(seconds)
        _dump()


def main() -> int:
    _instrument()
    atexit.register(_dump)
    threading.Thread(target=_dump_every, args=(2.0,), daemon=True, name="diag-dump").start()
    from bifrost.cli.main import main as cli_main

    sys.argv = ["bifrost-opt", "worker"]
    return cli_main(["worker"])


if __name__ == "__main__":
    sys.exit(main())
