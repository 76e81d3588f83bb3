"""Stage-1 state: per-partition window partials, backed by a compacted changelog topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from bifrost.streams.aggregates.partial import WindowPartial, decode_partial

log = logging.getLogger("bifrost.ingest.recovery")


class RecoveryTimeout(RuntimeError):
    """Reading the changelog did not finish in time (the message says how far it got)."""


async def recover_partitions(
    bootstrap: str, changelog: str, partitions: Iterable[int], *, timeout: float = 300.0
) -> dict[str, WindowPartial]:
    """Latest partial of every live key in the given changelog partitions.

    Logs progress with an ETA; raises :class:`RecoveryTimeout` instead of hanging.
    """
    tps = [TopicPartition(changelog, p) for p in sorted(set(partitions))]
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=5000)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        total = sum(ends[tp] - starts[tp] for tp in tps)
        state: dict[str, WindowPartial] = {}
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        began = last_log = time.monotonic()
        read = 0
        while pending:
            now = time.monotonic()
            if now - began > timeout:
                raise RecoveryTimeout(
                    f"changelog {changelog} recovery read {read} of {total} records in {timeout:.0f} s; giving up"
                )
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    if record.value is None:
                        state.pop(key, None)
                    else:
                        state[key] = decode_partial(record.value)
                read += len(records)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if now - last_log >= 2.0 and total:
                last_log = now
                rate = read / max(now - began, 1e-6)
                log.info("event=ingest.recovery.progress read=%d total=%d eta_s=%.1f", read, total,
                         (total - read) / rate if rate else -1)
        log.info("event=ingest.recovery.done partitions=%s records=%d keys=%d seconds=%.2f",
                 [tp.partition for tp in tps], read, len(state), time.monotonic() - began)
        return state
    finally:
        await consumer.stop()
