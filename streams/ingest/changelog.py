"""Stage-1 state: per-partition window partials, backed by a compacted changelog topic.

Reads are ``read_committed``: only partials whose transaction committed (together with
the input offsets they cover) are ever recovered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bifrost.streams.aggregates.partial import WindowPartial, decode_partial

log = logging.getLogger("bifrost.ingest.recovery")

T = TypeVar("T")


class RecoveryFailed(RuntimeError):
    """State could not be recovered in time; the message says how far it got and why."""


async def retry_until(deadline: float, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run ``attempt`` until it succeeds, backing off on Kafka and network errors.

    Raises :class:`RecoveryFailed` once ``deadline`` (``time.monotonic()``) has passed:
    a broker that stays away is a loud failure, never a silent one.
    """
    delay = 0.2
    while True:
        try:
            return await attempt()
        except (TimeoutError, KafkaError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                raise RecoveryFailed(f"{what}: gave up at the recovery deadline; last error {exc!r}") from exc
            log.warning("event=ingest.recovery.retry step=%s error=%r retry_in_s=%.1f", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def recover_partitions(
    bootstrap: str,
    changelog: str,
    partitions: Iterable[int],
    *,
    keep: Callable[[WindowPartial], bool],
    deadline: float,
    client_options: dict[str, object] | None = None,
) -> dict[str, WindowPartial]:
    """Latest committed partial of every live key in the given changelog partitions.

    Only partials for which ``keep`` is true are returned. Reading stops at each
    partition's high watermark as it was when recovery began: a ``read_committed``
    reader's own end offset (the last stable offset) can lie *before* committed records
    of ours when another producer's transaction on the same changelog partition is still
    open, so the LSO alone is not a safe stopping point. Logs progress (records/s, ETA);
    raises :class:`RecoveryFailed` at ``deadline``.
    """
    tps = [TopicPartition(changelog, p) for p in sorted(set(partitions))]
    if not tps:
        return {}
    options = dict(client_options or {})
    ends = await retry_until(deadline, "changelog end offsets", lambda: _high_watermarks(bootstrap, tps, options))

    async def read() -> dict[str, WindowPartial]:
        return await _read_committed(bootstrap, changelog, tps, ends, keep, deadline, options)

    return await retry_until(deadline, "changelog read", read)


async def _high_watermarks(
    bootstrap: str, tps: list[TopicPartition], options: dict[str, object]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_uncommitted",
        **options,
    )
    await consumer.start()
    try:
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def _read_committed(
    bootstrap: str,
    changelog: str,
    tps: list[TopicPartition],
    ends: dict[TopicPartition, int],
    keep: Callable[[WindowPartial], bool],
    deadline: float,
    options: dict[str, object],
) -> dict[str, WindowPartial]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=5000,
        **options,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        starts = await consumer.beginning_offsets(tps)
        total = sum(max(0, ends[tp] - starts[tp]) for tp in tps)
        latest: dict[str, bytes] = {}  # only the newest version of a key is decoded, at the end
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        began = last_log = time.monotonic()
        read = 0
        while pending:
            now = time.monotonic()
            if now > deadline:
                raise RecoveryFailed(
                    f"changelog {changelog} recovery read {read} of {total} records before the deadline "
                    "(BIFROST_RECOVERY_TIMEOUT_SECONDS); an open transaction of a dead producer holds "
                    "read_committed readers back until BIFROST_TRANSACTION_TIMEOUT_SECONDS"
                )
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for records in batches.values():
                for record in records:
                    key = record.key.decode("utf-8", "replace") if record.key else ""
                    if record.value is None:
                        latest.pop(key, None)
                    else:
                        latest[key] = record.value
                read += len(records)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if now - last_log >= 2.0 and total:
                last_log = now
                rate = read / max(now - began, 1e-6)
                log.info(
                    "event=ingest.recovery.progress read=%d total=%d records_per_s=%.0f eta_s=%.1f",
                    read,
                    total,
                    rate,
                    (total - read) / rate if rate else -1,
                )
        state: dict[str, WindowPartial] = {}
        for key, value in latest.items():
            _apply(state, key, value, keep)
        log.info(
            "event=ingest.recovery.read partitions=%s records=%d keys=%d seconds=%.2f",
            [tp.partition for tp in tps],
            read,
            len(state),
            time.monotonic() - began,
        )
        return state
    finally:
        await consumer.stop()


def _apply(state: dict[str, WindowPartial], text: str, value: bytes, keep: Callable[[WindowPartial], bool]) -> None:
    try:
        partial = decode_partial(value)
    except Exception as exc:  # noqa: BLE001 - one foreign record must not stop recovery
        log.error("event=ingest.recovery.bad_record key=%r error=%r", text[:200], exc)
        return
    if keep(partial):
        state[text] = partial
