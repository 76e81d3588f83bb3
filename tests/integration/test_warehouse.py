"""The warehouse sink on the real broker: every valid event once, across a SIGKILL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bifrost.client import Publisher
from bifrost.client.simulator import TrafficConfig, generate
from bifrost.config import Settings
from tests.integration.harness import WorkerProcess, eventually

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
    config = TrafficConfig(routers=("router-a", "router-b"), rate_per_second=100, duration_seconds=40,
                           start_ts=time.time() - 7200, seed=9)  # spans two event hours or more
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
    del second
