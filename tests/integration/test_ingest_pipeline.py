"""Ingest end to end on the real broker: exact counts, DLQ, lateness, restarts, scale-out."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence

import orjson
import pytest

from bifrost.client import Publisher
from bifrost.client.simulator import TrafficConfig, generate
from bifrost.config import Settings
from bifrost.schemas import RejectReason, encode
from bifrost.schemas.events import Bucket, RoutingEvent
from tests.integration.harness import WorkerProcess, arm_counts, eventually, read_dead_letters

pytestmark = pytest.mark.kafka

MALFORMED = {
    b"{truncated": RejectReason.BAD_JSON,
    b'{"request_id": "x"}': RejectReason.SCHEMA,
    b"[]": RejectReason.SCHEMA,
}


def traffic(
    n: int, routers: tuple[str, ...] = ("router-a",), seed: int = 1, start: float | None = None
) -> list[RoutingEvent]:
    config = TrafficConfig(
        routers=routers,
        arms={"v1": 0.7, "v2": 0.3},
        rate_per_second=50.0,
        duration_seconds=n / 50.0,
        start_ts=time.time() - 3600 if start is None else start,
        seed=seed,
    )
    return [g.event for g in generate(config) if g.event is not None]


def expected_counts(events: list[RoutingEvent], router: str) -> dict[str, int]:
    return dict(Counter(e.arm for e in events if e.router_id == router))


async def publish(settings: Settings, events: list[RoutingEvent], raw: Sequence[bytes] = ()) -> None:
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        for event in events:
            await publisher.publish(event)
        for value in raw:
            await publisher.send_raw(settings.topics.routing_events, b"bad", value)


def one_event(request_id: str, ts: float, router_id: str) -> RoutingEvent:
    """A minimal valid routing event of arm ``v1``."""
    return RoutingEvent(
        request_id=request_id,
        ts=ts,
        router_id=router_id,
        arm="v1",
        model="m",
        provider="p",
        bucket=Bucket.CHEAP,
        latency_ms=100.0,
        cost_usd=0.001,
        success=True,
    )


async def ready(worker: WorkerProcess, partitions: int = 4) -> None:
    await eventually(
        lambda: len(worker.owns_inputs()) == partitions, timeout=90, what="worker to own all input partitions"
    )


async def test_counts_are_exact_and_every_malformed_event_is_in_the_dlq(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(settings)
    await ready(worker)
    events = traffic(3000)
    future = orjson.dumps({**orjson.loads(encode(events[0])), "ts": time.time() + 86400})
    negative = orjson.dumps({**orjson.loads(encode(events[0])), "latency_ms": -3})
    oversized = orjson.dumps({**orjson.loads(encode(events[0])), "pad": "x" * 70_000})
    raw = list(MALFORMED) * 5 + [future, negative, oversized]
    await publish(settings, events, raw)

    want = expected_counts(events, "router-a")
    await eventually(lambda: arm_counts(worker, "router-a") == want, timeout=90, what=f"arm counts {want}")
    letters = await read_dead_letters(settings.kafka_bootstrap, settings.topics.dlq, len(raw))
    assert len(letters) == len(raw)
    assert sum(want.values()) + len(letters) == len(events) + len(raw)
    by_payload = {letter.original: letter for letter in letters}
    for payload, reason in MALFORMED.items():
        assert by_payload[payload].reason is reason and by_payload[payload].error
    assert by_payload[future].reason is RejectReason.INVALID_VALUE and "future" in by_payload[future].error
    assert by_payload[negative].reason is RejectReason.SCHEMA and "latency_ms" in by_payload[negative].error
    assert by_payload[oversized].reason is RejectReason.OVERSIZED
    assert all(letter.source_topic == settings.topics.routing_events for letter in letters)
    # Nothing more is counted once the input is drained (no double counting).
    status, metrics = worker.get("/v1/routers/router-a/metrics?since=30d")
    assert status == 200 and {a: s["count"] for a, s in metrics["arms"].items()} == want
    assert sum(s["count"] for s in metrics["models"].values()) == sum(want.values())
    # The CLI reads the same figures, as JSON and as a table.
    cli = [
        sys.executable,
        "-m",
        "bifrost.cli.main",
        "metrics",
        "--router",
        "router-a",
        "--since",
        "30d",
        "--worker-url",
        worker.url,
    ]
    as_json = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, check=True).stdout)
    assert {a: s["count"] for a, s in as_json["arms"].items()} == want
    table = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    assert "v1 " in table and str(want["v1"]) in table and "p95 ms" in table


async def test_late_events_inside_grace_count_in_their_window(
    kafka_bootstrap: str, start_worker: Callable[..., WorkerProcess], settings: Settings
) -> None:
    settings = Settings.from_env(settings.to_env(), grace_seconds=120, partitions=1)
    worker = start_worker(settings)
    await ready(worker, partitions=1)
    base = (int(time.time()) // 60) * 60 - 3600
    make = lambda ts, i: one_event(f"late-{i}", ts, "router-late")  # noqa: E731
    head = [make(base + 600 + i, i) for i in range(5)]
    await publish(settings, head)
    await eventually(lambda: arm_counts(worker, "router-late") == {"v1": 5}, what="head events")
    inside = make(base + 500, 100)  # its window [480, 540) ended 64 s before the newest event
    beyond = make(base + 200, 101)  # its window [180, 240) ended 364 s before: beyond 120 s grace
    await publish(settings, [inside, beyond])
    await eventually(lambda: arm_counts(worker, "router-late") == {"v1": 6}, what="late event counted")
    window_start = base + 480
    status, body = worker.get(f"/v1/routers/router-late/metrics?since=60s&until={window_start + 60}")
    assert status == 200 and body["arms"]["v1"]["count"] == 1  # counted in its own window
    letters = await read_dead_letters(settings.kafka_bootstrap, settings.topics.dlq, 1)
    assert [letter.reason for letter in letters] == [RejectReason.TOO_LATE]
    assert orjson.loads(letters[0].original)["request_id"] == "late-101"


async def test_router_ids_with_slashes_braces_and_spaces_are_reachable_through_the_views(
    kafka_bootstrap: str, start_worker: Callable[..., WorkerProcess], settings: Settings
) -> None:
    settings = Settings.from_env(settings.to_env(), partitions=1)
    worker = start_worker(settings)
    await ready(worker, partitions=1)
    ids = ["team/web", "x{y}", "sp ace", "ünï-%41", "a{b}/c"]
    now = time.time()
    events = [one_event(f"odd-{i}-{n}", now - n, router) for i, router in enumerate(ids) for n in range(i + 1)]
    await publish(settings, events)
    want = {router: {"v1": i + 1} for i, router in enumerate(ids)}
    await eventually(lambda: {r: arm_counts(worker, r) for r in ids} == want, what="every odd router id counted")
    status, body = worker.get(f"/v1/routers/{urllib.parse.quote('a{b}/c', safe='')}/rollout")
    assert status != 404 or "unknown" in str(body), (status, body)  # routed to the view, not aiohttp's 404
    out = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "metrics", "--router", "a{b}/c", "--since", "30d"]
        + ["--worker-url", worker.url, "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["arms"]["v1"]["count"] == len(ids)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_sigkill_and_restart_recovers_tables_without_double_counting(
    store: str, settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    # The kill lands while batches are in flight; whatever transaction was open is
    # aborted, and the restarted worker resumes from the last committed one.
    settings = Settings.from_env(settings.to_env(), store=store)
    first = start_worker(settings)
    await ready(first)
    before = traffic(4000, seed=2)
    await publish(settings, before)
    await eventually(
        lambda: sum(arm_counts(first, "router-a").values()) >= 2000, timeout=120, what="half the events counted"
    )
    # Kill while it is still working: offsets past the last commit will be re-delivered.
    first.kill()
    during = traffic(1000, seed=3, start=time.time() - 1800)
    await publish(settings, during)
    second = start_worker(settings, web_port=first.settings.web_port, data_dir=first.settings.data_dir)
    want = expected_counts(before + during, "router-a")
    await eventually(lambda: arm_counts(second, "router-a") == want, timeout=120, what=f"recovered counts {want}")


async def test_two_workers_share_partitions_and_figures_stay_exact(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    a = start_worker(settings)
    b = start_worker(settings)
    await eventually(
        lambda: len(a.owns_inputs()) + len(b.owns_inputs()) == 4 and a.owns_inputs() and b.owns_inputs(),
        timeout=120,
        what="both workers to own input partitions",
    )
    routers = tuple(f"router-{i}" for i in range(6))
    events = traffic(6000, routers=routers, seed=4)
    await publish(settings, events)
    for router in routers:
        want = expected_counts(events, router)
        # Ask both workers: the view routes to whichever owns the router's partition.
        for worker in (a, b):

            def counted(w: WorkerProcess = worker, r: str = router, n: dict[str, int] = want) -> bool:
                return arm_counts(w, r) == n

            await eventually(counted, timeout=120, what=f"{router} via {worker.url}")
    assert a.owns_inputs().isdisjoint(b.owns_inputs())
