"""The warehouse sink on the real broker: every valid event once, across a SIGKILL, a rebalance
with writes in flight and failing writes; memory under its byte bound; off when disabled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bifrost.client import Publisher
from bifrost.client.simulator import TrafficConfig, generate
from bifrost.config import Settings
from bifrost.schemas.codec import encode
from bifrost.schemas.events import RoutingEvent
from bifrost.streams.warehouse import sink as sink_module
from bifrost.streams.warehouse.policy import row_cost
from bifrost.streams.warehouse.sink import WarehouseSink
from tests.integration.harness import WorkerProcess, arm_counts, eventually

pytestmark = pytest.mark.kafka


def stored_rows(root: Path, topic: str) -> list[tuple[int, int, str]]:
    rows: list[tuple[int, int, str]] = []
    for path in sorted((root / topic).glob("date=*/hour=*/*.parquet")):
        table = pq.read_table(path, columns=["_partition", "_offset", "request_id"]).to_pydict()
        rows.extend(zip(table["_partition"], table["_offset"], table["request_id"]))
    return rows


async def test_every_valid_event_lands_once_even_across_a_kill(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = Settings.from_env(settings.to_env(), warehouse_flush_seconds=1.0)
    first = start_worker(settings)
    root = Path(first.settings.warehouse_dir)
    topic = settings.topics.routing_events
    await eventually(lambda: len(first.owns_inputs()) == 4, timeout=90, what="worker ready")
    config = TrafficConfig(
        routers=("router-a", "router-b"), rate_per_second=100, duration_seconds=40, start_ts=time.time() - 7200, seed=9
    )  # spans two event hours or more
    events = [g.event for g in generate(config) if g.event is not None]
    half = len(events) // 2
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        for event in events[:half]:
            await publisher.publish(event)
        await publisher.send_raw(topic, b"k", b"{not json")  # dead-lettered by ingest, skipped here
    await eventually(lambda: len(stored_rows(root, topic)) > 0, what="first warehouse files")
    first.kill()
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        for event in events[half:]:
            await publisher.publish(event)
    second = start_worker(settings, web_port=first.settings.web_port, data_dir=first.settings.data_dir)
    await eventually(lambda: len(stored_rows(root, topic)) >= len(events), timeout=120, what="all events stored")
    rows = stored_rows(root, topic)
    assert len(rows) == len(events)
    assert len({(p, o) for p, o, _ in rows}) == len(rows)  # no offset twice
    assert sorted(r for _, _, r in rows) == sorted(e.request_id for e in events)
    assert not list(root.rglob("*.tmp"))
    # Static membership: the sink's member id starts with the worker's instance id.
    members = await group_member_ids(settings.kafka_bootstrap, f"{settings.app_id}-warehouse")
    assert members and all(m.startswith(f"{second.settings.group_instance_id}-") for m in members), members


# --------------------------------------------------------------------------- the sink in-process
#
# These run WarehouseSink in the test's own event loop against the real broker, so they
# can read its counters (peak bytes, write failures) and control its file system.


@contextlib.asynccontextmanager
async def running_sink(settings: Settings, root: Path, **options: Any) -> AsyncIterator[WarehouseSink]:
    sink = WarehouseSink(settings, root, **options)
    task = asyncio.create_task(sink.run())
    try:
        yield sink
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def group_member_ids(bootstrap: str, group: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return [str(member[0]) for response in responses for g in response.groups for member in g[5]]


async def consumer_groups(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {str(group[0]) for group in await admin.list_consumer_groups()}
    finally:
        await admin.close()


def big_events(n: int, *, features: int, seed: int) -> list[RoutingEvent]:
    config = TrafficConfig(
        routers=("router-a",), rate_per_second=100, duration_seconds=n / 100 + 1, start_ts=time.time() - 600, seed=seed
    )
    events = [g.event for g in generate(config) if g.event is not None][:n]
    return [msgspec.structs.replace(e, features=[i / 7 for i in range(features)]) for e in events]


async def test_buffered_bytes_stay_under_the_bound_and_bad_records_are_skipped(
    settings: Settings, tmp_path: Path
) -> None:
    bound = 256 * 1024
    settings = Settings.from_env(settings.to_env(), warehouse_max_buffer_bytes=bound, instance_id="sink-bytes")
    events = big_events(1500, features=200, seed=4)  # ~4 KB each, ~6 MB in all: 24x the bound
    sizes = {e.request_id: row_cost(len(encode(e))) for e in events}
    topic = settings.topics.routing_events
    root = tmp_path / "warehouse"
    # Rows and age never trigger a write here: only bytes (and the hour, not crossed) do.
    async with running_sink(settings, root, max_rows=1_000_000, max_age_s=600) as sink:
        async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
            for i, event in enumerate(events):
                await publisher.publish(event)
                if i % 500 == 0:  # records the sink must skip, never crash on
                    await publisher.send_raw(topic, b"bad", b"{not json")
                    await publisher.send_raw(topic, b"big", b"x" * (settings.max_event_bytes + 1))
                    await publisher.send_raw(topic, b"schema", b'{"request_id": "", "ts": -1}')
                    await publisher.send_raw(settings.topics.feedback, b"fb", b'{"request_id": "r"}')
        # All that is not yet written is under the bound, so at most the bound is missing.
        await eventually(
            lambda: sum(sizes[r] for _, _, r in stored_rows(root, topic)) >= sum(sizes.values()) - bound,
            timeout=90,
            what="files up to the bound",
        )
        # Cancelled before it has read every record, the sink would leave the rest for its
        # next start (uncommitted), not in the files this test reads back.
        await eventually(lambda: sink.records_read >= len(events) + 12, timeout=60, what="every record read")
        assert 0 < sink.peak_bytes <= bound
        assert sink.held_bytes <= bound
    assert sink.records_skipped >= 12
    files = list((root / topic).rglob("*.parquet"))
    # Files are cut by bytes: each holds at most a quarter of the bound (plus one row).
    largest_row = max(sizes.values())
    for path in files:
        ids = pq.read_table(path, columns=["request_id"]).column("request_id").to_pylist()
        assert sum(sizes[r] for r in ids) <= bound // 4 + largest_row, path.name
    assert len(files) >= sum(sizes.values()) // (bound // 4 + largest_row)
    rows = stored_rows(root, topic)
    assert len({(p, o) for p, o, _ in rows}) == len(rows)  # no offset twice
    # On the way out (task cancelled) the sink wrote what it held: nothing is missing.
    assert sorted(r for _, _, r in rows) == sorted(sizes)


async def test_write_errors_are_retried_and_offsets_wait_for_the_files(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bifrost.warehouse")
    settings = Settings.from_env(settings.to_env(), instance_id="sink-errors")
    topic = settings.topics.routing_events
    root = tmp_path / "warehouse"
    root.write_text("a file where the warehouse folder should be")  # every write fails
    events = big_events(400, features=4, seed=5)
    async with running_sink(settings, root, max_age_s=0.2) as sink:
        async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
            for event in events:
                await publisher.publish(event)
        await eventually(lambda: sink.write_failures >= 3, timeout=60, what="failed writes retried")
        assert await committed_offsets(settings.kafka_bootstrap, sink.group_id) == {}
        assert sink.files_written == 0
        failed = [r.getMessage() for r in caplog.records if "event=warehouse.write_failed" in r.getMessage()]
        assert failed and f"path={root}/{topic}/date=" in failed[0]
        root.unlink()  # the disk is back
        await eventually(lambda: len(stored_rows(root, topic)) >= len(events), timeout=60, what="files after recovery")
        ends = await end_offsets(settings.kafka_bootstrap, topic, settings.partitions)
        committed = await eventually(
            lambda: _equal_or_none(committed_offsets(settings.kafka_bootstrap, sink.group_id), ends),
            timeout=30,
            what="offsets committed up to the end",
        )
        assert committed == ends
    rows = stored_rows(root, topic)
    assert len(rows) == len(events) == len({(p, o) for p, o, _ in rows})


async def _equal_or_none(offsets: Awaitable[dict[int, int]], expected: dict[int, int]) -> dict[int, int] | None:
    found = await offsets
    return found if found == expected else None


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items() if offset > 0}


async def test_revocation_waits_for_writes_in_flight(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bifrost.warehouse")
    writer_threads: set[str] = set()
    real_write = sink_module.write_events_file

    def slow_write(*args: Any) -> int:
        writer_threads.add(threading.current_thread().name)
        time.sleep(0.4)  # a slow disk: a rebalance finds writes in flight
        return real_write(*args)

    monkeypatch.setattr(sink_module, "write_events_file", slow_write)
    topic = settings.topics.routing_events
    root = tmp_path / "warehouse"
    events = big_events(4000, features=4, seed=6)
    first = Settings.from_env(settings.to_env(), instance_id="sink-a")
    second = Settings.from_env(settings.to_env(), instance_id="sink-b")
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:

        async def publish_slowly() -> None:
            for i, event in enumerate(events):
                await publisher.publish(event)
                if i % 100 == 99:
                    await publisher.flush()
                    await asyncio.sleep(0.15)

        async with running_sink(first, root, max_age_s=0.2) as sink_a:
            publishing = asyncio.create_task(publish_slowly())
            await eventually(lambda: sink_a.files_written > 0, what="first files of sink A")
            async with running_sink(second, root, max_age_s=0.2) as sink_b:  # rebalance: A gives up half
                await publishing
                await eventually(
                    lambda: len(stored_rows(root, topic)) >= len(events), timeout=90, what="every event stored"
                )
                await asyncio.sleep(1.0)  # late duplicates would show up now
                assert sink_b.files_written > 0
    rows = stored_rows(root, topic)
    assert len({(p, o) for p, o, _ in rows}) == len(rows), "an offset was stored twice"
    assert sorted(r for _, _, r in rows) == sorted(e.request_id for e in events)
    revoked = [r.getMessage() for r in caplog.records if "event=warehouse.revoked" in r.getMessage()]
    assert any("waited_files=0" not in message for message in revoked), revoked
    assert writer_threads and threading.main_thread().name not in writer_threads


async def test_sink_is_off_when_disabled(settings: Settings, start_worker: Callable[..., WorkerProcess]) -> None:
    disabled = Settings.from_env({**settings.to_env(), "BIFROST_WAREHOUSE_ENABLED": "false"})
    assert disabled.warehouse_enabled is False
    worker = start_worker(disabled)
    root = Path(worker.settings.warehouse_dir)
    await eventually(lambda: len(worker.owns_inputs()) == 4, timeout=90, what="worker ready")
    config = TrafficConfig(
        routers=("router-a",), rate_per_second=50, duration_seconds=4, start_ts=time.time() - 60, seed=2
    )
    events = [g.event for g in generate(config) if g.event is not None]
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        for event in events:
            await publisher.publish(event)
    await eventually(lambda: sum(arm_counts(worker, "router-a").values()) == len(events), what="events counted")
    await asyncio.sleep(2.0)  # the sink, were it running, would have joined by now
    groups = await consumer_groups(settings.kafka_bootstrap)
    assert f"{settings.app_id}-ingest" in groups  # the listing works
    assert f"{settings.app_id}-warehouse" not in groups
    assert not root.exists() or not list(root.rglob("*.parquet"))
