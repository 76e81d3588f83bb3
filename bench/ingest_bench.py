"""Ingest throughput of real ``bifrost-opt worker`` processes against a raw aiokafka baseline.

One run does everything against one freshly produced topic (``<prefix>routing-events``):

1. generate N simulated routing events (``bifrost.client.simulator``), encode them once,
   produce them (keyed by request id) to a topic with ``--partitions`` partitions;
2. **raw baseline**: a plain ``AIOKafkaConsumer`` (no group) reads all N from the
   beginning with ``getmany`` and ``orjson.loads`` every value;
3. **ingest alone**: ``bifrost-opt worker`` with ``BIFROST_WAREHOUSE_ENABLED=false``
   (stage 1 with its per-partition Kafka transactions, stage 2, views). Timed from
   "ready" (``/health`` 200, owning every input partition) until the consumer group
   ``<app_id>-ingest`` has committed offsets equal to the end offsets (in stage 1 a
   record's offset is committed in the same transaction as what was folded from it, so
   this is "folded N"), then until ``/v1/routers/<router>/metrics`` sums to N;
4. optionally the default configuration again under ``python -m cProfile`` (fresh group);
5. **default configuration**: ``bifrost-opt worker`` with nothing but the bench's topic
   prefix, app id, web port (and partitions if not the default) set: ingest, stage 2
   and the warehouse sink (``BIFROST_WAREHOUSE_ENABLED=true``, into its own folder).
   Timed like 3, and separately until the sink's group ``<app_id>-warehouse`` has
   committed the end offsets (the sink is a second consumer of the same input). Then
   **end-to-end latency under load**: a child process (``bench/ingest_load.py``)
   publishes at half the measured ingest rate for ``--load-seconds`` while this process
   publishes probes (``bifrost.client.Publisher`` defaults: acks=all, idempotent,
   linger 10 ms), each with its own router id, and times publish → that router's
   snapshot arriving on ``<prefix>window-partials`` to a ``read_committed`` consumer
   (the stage-1 output, visible once its transaction committed); every
   ``--view-probe-every``-th probe is also timed publish → ``/v1/routers/<router>/metrics``
   shows it (stage 2, what a user reads);
6. optionally (``--memory-check``) the default configuration on another topic with
   ``--memory-events`` (5,000,000) events: RSS when N and when all were folded;
7. **fold only**: ``BatchFolder.fold`` in-process over the same bytes (and under cProfile).

Every configuration is a separate subprocess with a fresh app id (consumer groups) and
its own working directory, so relative defaults (``var/worker``, ``var/warehouse``)
land there. Configurations run one after another, never concurrently; the load phase
runs last because its events stay in the topic. CPU is read from ``/proc/<pid>/stat``,
RSS from ``/proc/<pid>/status`` (VmRSS, sampled every 0.2 s).

Results: a table on stdout, ``bench/results/ingest.json`` and ``bench/results/ingest.md``.

    .venv/bin/python bench/ingest_bench.py [--events N | --quick] [--memory-check] [--partitions P]

Uses ``BIFROST_KAFKA_BOOTSTRAP`` when set, otherwise starts its own ``LocalBroker``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as a script: make `tests.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import array
import asyncio
import cProfile
import itertools
import json
import logging
import math
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiokafka
import faust
import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench import machine
from bench.profiling import top_functions
from bifrost.client import Publisher
from bifrost.client.simulator import TrafficConfig, generate
from bifrost.config import Settings
from bifrost.devkafka import DEFAULT_KAFKA_VERSION, LocalBroker
from bifrost.kafka.preflight import probe_kafka
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.schemas import Bucket, RoutingEvent, Topics, encode
from bifrost.streams.ingest.fold import BatchFolder, InputRecord, PartitionState
from tests.integration.harness import (
    Samples,
    WorkerProcess,
    free_port,
    input_partitions,
    metric_samples,
    metric_sum,
)
from tests.streams.ingest.fold_store import DictStore

log = logging.getLogger("bench.ingest")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent
DEFAULTS = Settings()

ROUTERS = ("router-a", "router-b", "router-c", "router-d")
ARMS = {"v12": 0.80, "v13": 0.15, "v14-canary": 0.05}
SIM_RATE_PER_SECOND = 500.0  # simulated aggregate request rate (event time), all routers
FOLD_BATCH = 10_000
QUICK_EVENTS = 100_000

GOAL_DEFAULT_RATE = 50_000.0  # default configuration, ev/s
GOAL_DEFAULT_FRACTION = 0.50  # default configuration, of the raw baseline
GOAL_ALONE_FRACTION = 0.60  # ingest alone (sink off), of the raw baseline
GOAL_VIEWS_AFTER_DRAIN_S = 2.0  # input fully consumed → views sum to N
GOAL_E2E_P99_S = 0.250  # publish → visible, under load
GOAL_RSS_DRIFT = 0.10  # RSS at 5M within ±10% of RSS at 1M
VIEWS_TIMEOUT_S = 60.0  # give up waiting for the views this long after the drain


# --------------------------------------------------------------------------- data


@dataclass(slots=True)
class Workload:
    """The encoded events and where each one landed in Kafka (filled by the producer)."""

    keys: list[bytes]
    values: list[bytes]
    partitions: array.array = field(default_factory=lambda: array.array("i"))
    offsets: array.array = field(default_factory=lambda: array.array("q"))

    def __len__(self) -> int:
        return len(self.values)

    @property
    def mean_bytes(self) -> float:
        return sum(map(len, self.values)) / max(1, len(self.values))

    def end_offsets(self) -> dict[int, int]:
        """Next offset per partition after the produce (what "all consumed" means)."""
        ends: dict[int, int] = {}
        for partition, offset in zip(self.partitions, self.offsets):
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        return ends


def traffic_config(n: int, now: float, seed: int) -> TrafficConfig:
    """Several routers and arms, event times ending two minutes before ``now``."""
    duration = (n + 1) / SIM_RATE_PER_SECOND
    return TrafficConfig(
        routers=ROUTERS,
        arms=dict(ARMS),
        rate_per_second=SIM_RATE_PER_SECOND,
        duration_seconds=duration,
        start_ts=now - duration - 120.0,
        seed=seed,
    )


def generate_chunks(n: int, seed: int, chunk: int) -> Iterator[tuple[list[bytes], list[bytes]]]:
    """``n`` simulated routing events, encoded, as (keys, values) chunks."""
    items = itertools.islice(generate(traffic_config(n, time.time(), seed)), n)
    while True:
        keys: list[bytes] = []
        values: list[bytes] = []
        for item in itertools.islice(items, chunk):
            assert item.event is not None
            keys.append(item.event.request_id.encode())
            values.append(encode(item.event))
        if not values:
            return
        yield keys, values


def build_workload(n: int, seed: int) -> Workload:
    """Generate ``n`` routing events with the simulator and encode each once."""
    keys: list[bytes] = []
    values: list[bytes] = []
    for chunk_keys, chunk_values in generate_chunks(n, seed, 200_000):
        keys += chunk_keys
        values += chunk_values
        log.info("generate: %d/%d events encoded", len(values), n)
    if len(values) != n:
        raise RuntimeError(f"simulator produced {len(values)} events, wanted {n}")
    return Workload(keys, values)


# --------------------------------------------------------------------------- kafka


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` with ``partitions`` partitions (replication 1), once its partitions have leaders."""
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])


async def delete_topics_with(bootstrap: str, markers: Sequence[str]) -> list[str]:
    """Delete every topic whose name contains one of ``markers`` (cleanup on a shared broker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if any(m in t for m in markers)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


def bench_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        client_id="bench-producer",
    )


async def produce(bootstrap: str, topic: str, workload: Workload, chunk: int = 50_000) -> float:
    """Produce every event (keyed by request id); record partition/offset; return seconds."""
    producer = bench_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    try:
        n = len(workload)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            futures = [
                await producer.send(topic, value=workload.values[i], key=workload.keys[i]) for i in range(lo, hi)
            ]
            for meta in await asyncio.gather(*futures):
                workload.partitions.append(meta.partition)
                workload.offsets.append(meta.offset)
            elapsed = time.perf_counter() - started
            if hi == n or (hi // chunk) % 4 == 0:
                log.info("produce: %d/%d acknowledged (%.0f ev/s)", hi, n, hi / elapsed)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def produce_streaming(bootstrap: str, topic: str, n: int, seed: int) -> tuple[dict[int, int], float]:
    """Generate and produce ``n`` events chunk by chunk (nothing kept); (end offsets, seconds)."""
    producer = bench_producer(bootstrap)
    await producer.start()
    started = time.perf_counter()
    ends: dict[int, int] = {}
    done = 0
    try:
        for keys, values in generate_chunks(n, seed, 50_000):
            futures = [await producer.send(topic, value=v, key=k) for k, v in zip(keys, values)]
            for meta in await asyncio.gather(*futures):
                ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
            done += len(values)
            if done % 500_000 == 0 or done == n:
                log.info(
                    "memory-check produce: %d/%d (%.0f ev/s incl. generating)",
                    done,
                    n,
                    done / (time.perf_counter() - started),
                )
        return ends, time.perf_counter() - started
    finally:
        await producer.stop()


@dataclass(slots=True)
class BaselineResult:
    """Raw consumer: how long reading and JSON-parsing all N events took."""

    events: int
    seconds: float
    events_per_second: float
    max_records: int
    parsed_bytes: int
    consumer_cpu_cores: float | None = None
    broker_cpu_cores: float | None = None


async def raw_baseline(
    bootstrap: str, topic: str, partitions: int, n: int, max_records: int, broker_pid: int | None
) -> BaselineResult:
    """Read all ``n`` records from the beginning with ``getmany`` and ``orjson.loads`` each."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="bench-baseline",
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        loads = orjson.loads
        seen = parsed = 0
        cpu0, broker0 = time.process_time(), cpu_seconds(broker_pid)
        started = last_log = time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            for records in batches.values():
                for record in records:
                    loads(record.value)
                    parsed += len(record.value)
                seen += len(records)
            if time.perf_counter() - last_log >= 2.0:
                last_log = time.perf_counter()
                log.info("baseline: %d/%d consumed+parsed (%.0f ev/s)", seen, n, seen / (last_log - started))
        seconds = time.perf_counter() - started
        cpu = (time.process_time() - cpu0) / seconds
        broker_cpu = cpu_share(broker0, cpu_seconds(broker_pid), seconds)
    finally:
        await consumer.stop()
    return BaselineResult(seen, seconds, seen / seconds, max_records, parsed, cpu, broker_cpu)


async def warm_up_broker(bootstrap: str, marker: str) -> float:
    """Create the broker's internal topics before anything is timed; return seconds.

    The first transactional producer on a fresh broker makes it create
    ``__transaction_state`` (50 partitions) and the first group commit
    ``__consumer_offsets``: a one-time cost that a running cluster has long paid and
    that would otherwise land in whichever configuration runs first.
    """
    started = time.perf_counter()
    topic = f"{marker}warmup"
    await create_topic(bootstrap, topic, 1)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{marker}warmup", client_id="bench-warmup"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"{}")
            await producer.send_offsets_to_transaction({TopicPartition(topic, 0): 1}, f"{marker}warmup")
    finally:
        await producer.stop()
    return time.perf_counter() - started


class KafkaWatch:
    """Committed offsets of consumer groups and end offsets of a topic, as seen by the broker."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.topic = topic
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-watch")
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, client_id="bench-watch")
        self._coordinators: dict[str, int] = {}

    async def __aenter__(self) -> KafkaWatch:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def committed(self, group: str) -> dict[int, int]:
        """Next offset committed by ``group`` per input partition (0 where none)."""
        try:
            if group not in self._coordinators:
                self._coordinators[group] = await self._admin.find_coordinator(group)
            found = await self._admin.list_consumer_group_offsets(group, self._coordinators[group], self.tps)
        except Exception as exc:  # noqa: BLE001 - coordinator moved / not yet loaded: ask again next time
            self._coordinators.pop(group, None)
            log.debug("watch: offsets of %s: %r", group, exc)
            return {}
        return {tp.partition: max(0, meta.offset) for tp, meta in found.items() if tp.topic == self.topic}

    async def end_offsets(self) -> dict[int, int]:
        ends = await self._consumer.end_offsets(self.tps)
        return {tp.partition: offset for tp, offset in ends.items()}


def progress(committed: dict[int, int], ends: dict[int, int]) -> int:
    """Records at or below the committed offsets, counting only up to ``ends``."""
    return sum(min(committed.get(p, 0), end) for p, end in ends.items())


def caught_up(committed: dict[int, int], ends: dict[int, int]) -> bool:
    return all(committed.get(p, 0) >= end for p, end in ends.items())


def kafka_version(bootstrap: str, broker: LocalBroker | None) -> str:
    """The broker's version when we started it, else what the API negotiation says."""
    if broker is not None:
        return broker.version

    async def check() -> str:
        client = aiokafka.AIOKafkaClient(bootstrap_servers=bootstrap)
        await client.bootstrap()
        try:
            found = await client.check_version()
            return "external, API ≥ " + ".".join(map(str, found))
        finally:
            await client.close()

    try:
        return asyncio.run(check())
    except Exception as exc:  # noqa: BLE001 - informational only
        return f"external (unknown: {exc})"


# --------------------------------------------------------------------------- process figures


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU cores used on average between two :func:`cpu_seconds` readings."""
    return None if before is None or after is None or seconds <= 0 else (after - before) / seconds


def vmrss_mib(pid: int | None) -> float | None:
    """Resident set size of ``pid`` from ``/proc/<pid>/status`` (VmRSS), in MiB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


class RssSampler:
    """VmRSS of one process every ``interval`` seconds, in a daemon thread."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (perf_counter, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = vmrss_mib(self.pid)
            if rss is None:
                return
            self.samples.append((time.perf_counter(), rss))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def now(self) -> float | None:
        rss = vmrss_mib(self.pid)
        if rss is not None:
            self.samples.append((time.perf_counter(), rss))
        return rss

    def peak(self) -> float | None:
        return max((rss for _, rss in self.samples), default=None)


@dataclass(slots=True)
class CpuMark:
    """CPU seconds of the worker and the broker at one moment."""

    at: float
    worker: float | None
    broker: float | None

    @classmethod
    def take(cls, worker_pid: int | None, broker_pid: int | None) -> CpuMark:
        return cls(time.perf_counter(), cpu_seconds(worker_pid), cpu_seconds(broker_pid))

    def cores_until(self, later: CpuMark) -> tuple[float | None, float | None]:
        seconds = later.at - self.at
        return cpu_share(self.worker, later.worker, seconds), cpu_share(self.broker, later.broker, seconds)


# --------------------------------------------------------------------------- worker process


def histogram_quantile(metrics: Samples, name: str, q: float) -> float | None:
    """Prometheus-style quantile from cumulative ``<name>_bucket`` series (linear in a bucket)."""
    buckets = sorted((float(labels["le"]), value) for labels, value in metrics.get(f"{name}_bucket", []))
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return None


@dataclass(frozen=True, slots=True)
class Configuration:
    """One way of running the worker: the exact ``BIFROST_*`` environment it gets."""

    name: str
    title: str
    env: dict[str, str]
    cwd: Path
    profile: bool = False
    diagnose: bool = False  # run under bench/ingest_worker_diag.py (timing probes around stage 1)

    @property
    def settings(self) -> Settings:
        """What the worker will parse from ``env`` (same code path as the worker)."""
        return Settings.from_env(self.env)

    @property
    def warehouse(self) -> bool:
        return self.settings.warehouse_enabled

    def effective(self) -> dict[str, str]:
        """Settings that matter for ingest, as the worker will see them (defaults included)."""
        s = self.settings
        keys = [
            "partitions",
            "store",
            "batch_max",
            "batch_within_seconds",
            "commit_interval_seconds",
            "session_timeout_seconds",
            "transaction_timeout_seconds",
            "warehouse_enabled",
        ]
        if s.warehouse_enabled:
            keys += ["warehouse_dir", "warehouse_flush_seconds", "warehouse_max_buffer_bytes"]
        keys += ["data_dir", "log_level"]
        return {Settings.__dataclass_fields__[k].metadata["env"]: str(getattr(s, k)) for k in keys}


async def create_stage2_sources(bootstrap: str, topics: Topics, partitions: int) -> list[str]:
    """Create the topics stage 2 subscribes to, as they exist after a worker's first start.

    A worker started on a prefix whose ``window-partials`` / ``rollout-commands`` do not
    exist yet logs "Ignoring missing topic" for them and its router loop stays unassigned
    until a metadata refresh (seen in this benchmark: views empty for > 5 min), while
    stage 1 creates them a moment later. That first-start race is reported, not
    benchmarked: every configuration here starts with the topics in place.
    """
    specs = [TopicSpec(topics.window_partials, partitions), TopicSpec(topics.rollout_commands, partitions)]
    await ensure_topics(bootstrap, specs)
    return [spec.name for spec in specs]


def make_configuration(
    name: str,
    title: str,
    *,
    bootstrap: str,
    prefix: str,
    app_id: str,
    partitions: int,
    warehouse: bool,
    run_dir: Path,
    profile: bool = False,
    diagnose: bool = False,
) -> Configuration:
    """Only what a benchmark must set; everything else stays at the defaults a user gets."""
    env = {
        "BIFROST_KAFKA_BOOTSTRAP": bootstrap,
        "BIFROST_TOPIC_PREFIX": prefix,
        "BIFROST_APP_ID": app_id,
        "BIFROST_WEB_PORT": str(free_port()),
        "BIFROST_WAREHOUSE_ENABLED": "true" if warehouse else "false",
    }
    if partitions != DEFAULTS.partitions:
        env["BIFROST_PARTITIONS"] = str(partitions)
    cwd = run_dir / name
    # The worker's default BIFROST_DATA_DIR is var/worker and Faust creates only its last
    # component: without var/ the worker exits at start (FileNotFoundError: 'var/worker').
    (cwd / "var").mkdir(parents=True, exist_ok=True)
    return Configuration(name, title, env, cwd, profile, diagnose)


def worker_command(profile_path: Path | None, diagnose: bool = False) -> list[str]:
    """``bifrost-opt worker`` (the console script), or the module under cProfile, or with timing probes."""
    if diagnose:
        return [sys.executable, str(BENCH_DIR / "ingest_worker_diag.py")]
    if profile_path is not None:
        return [sys.executable, "-m", "cProfile", "-o", str(profile_path), "-m", "bifrost.cli.main", "worker"]
    script = Path(sys.executable).with_name("bifrost-opt")
    return [str(script), "worker"] if script.is_file() else [sys.executable, "-m", "bifrost.cli.main", "worker"]


class BenchWorker(WorkerProcess):
    """The test harness's worker process, started at once in the configuration's working directory
    with only its environment, plus what the benchmark reads: spawn time, RSS, async HTTP, log counts."""

    def __init__(self, config: Configuration, profile_path: Path | None = None) -> None:
        self.config = config
        self.profile_path = profile_path
        self.diag_path = config.cwd / "diag.json" if config.diagnose else None
        env = dict(config.env)
        if self.diag_path is not None:
            env["BIFROST_BENCH_DIAG_OUT"] = str(self.diag_path)
        super().__init__(
            config.settings,
            config.cwd / "worker.log",
            command=worker_command(profile_path, config.diagnose),
            env=env,
            cwd=config.cwd,
        )
        self.start()
        assert self.process is not None
        self.pid = self.process.pid
        self.spawned_at = time.perf_counter()
        self.rss = RssSampler(self.pid)

    async def fetch(self, http: aiohttp.ClientSession, path: str) -> tuple[int, bytes]:
        """(status, body) of a GET; status 0 when nothing answers."""
        try:
            async with http.get(self.url + path) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError):
            return 0, b""

    async def metrics(self, http: aiohttp.ClientSession) -> Samples:
        status, body = await self.fetch(http, "/metrics")
        return metric_samples(body.decode()) if status == 200 else {}

    async def owned_inputs(self, http: aiohttp.ClientSession) -> int:
        """Input partitions assigned, once recovered (``/health`` is 200), else 0."""
        status, body = await self.fetch(http, "/health")
        return len(input_partitions(self.settings, orjson.loads(body))) if status == 200 else 0

    async def router_count(self, http: aiohttp.ClientSession, router: str) -> int:
        """Requests of ``router`` in the per-router view (0 while it does not exist)."""
        status, body = await self.fetch(http, f"/v1/routers/{router}/metrics?since=30d")
        if status != 200:
            return 0
        return sum(stats["count"] for stats in orjson.loads(body)["arms"].values())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """The harness's stop (with a longer wait by default), then the RSS sampler's."""
        try:
            return super().stop(sig, timeout)
        finally:
            self.rss.stop()

    def log_counts(self) -> dict[str, int]:
        """How often trouble shows in the worker's log (honesty check for the report)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return {}
        lines = text.splitlines()
        return {
            "txn_failed": text.count("event=ingest.txn.failed"),
            "recoveries": text.count("event=ingest.recovery.done"),
            "tracebacks": text.count("Traceback (most recent call last)"),
            "error_lines": sum(1 for line in lines if "[ERROR]" in line or "[CRITICAL]" in line),
            "warning_lines": sum(1 for line in lines if "[WARNING]" in line),
        }


async def wait_until(probe: Any, *, timeout: float, interval: float, what: str, worker: BenchWorker) -> Any:
    """Await ``probe()`` until truthy; fail with the worker's log tail on timeout or death."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = await probe()
        if value:
            return value
        if not worker.alive():
            code = worker.process.returncode if worker.process is not None else None
            raise RuntimeError(f"worker exited (code {code}) while waiting for {what}:\n{worker.log_tail()}")
        await asyncio.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}:\n{worker.log_tail()}")


# --------------------------------------------------------------------------- drain


@dataclass(slots=True)
class DrainResult:
    """One configuration draining the backlog: ingest, views, and (if on) the warehouse sink."""

    events: int
    startup_seconds: float = 0.0
    ingest_done_before_ready: int = 0
    ingest_seconds: float = 0.0
    ingest_events_per_second: float = 0.0
    spawn_to_ingest_done_seconds: float = 0.0
    worker_cpu_cores: float | None = None
    broker_cpu_cores: float | None = None
    folded_metric: int = 0
    dlq: int = 0
    duplicates: int = 0
    batches: int = 0
    mean_batch_records: float | None = None
    batch_seconds_mean: float | None = None
    batch_seconds_p50: float | None = None
    batch_seconds_p99: float | None = None
    live_partials: int | None = None
    views_total: int = 0
    views_after_drain_seconds: float | None = None
    warehouse: bool = False
    sink_done_before_ready: int | None = None
    sink_seconds: float | None = None
    sink_events_per_second: float | None = None
    spawn_to_sink_done_seconds: float | None = None
    sink_timeline: list[tuple[float, int]] = field(default_factory=list)  # (s after ready, committed)
    rss_ready_mib: float | None = None
    rss_drained_mib: float | None = None
    window_monotonic: tuple[float, float] | None = None  # (ready, ingest done), time.monotonic()


async def drain(
    worker: BenchWorker,
    watch: KafkaWatch,
    http: aiohttp.ClientSession,
    ends: dict[int, int],
    broker_pid: int | None,
    *,
    timeout: float,
    views: bool = True,
    sink: bool = True,
) -> DrainResult:
    """Ready → ingest group committed the end offsets → views sum to N; sink group likewise (if on)."""
    s = worker.settings
    n = sum(ends.values())
    ingest_group, sink_group = f"{s.app_id}-ingest", f"{s.app_id}-warehouse"
    warehouse = s.warehouse_enabled and sink
    result = DrainResult(events=n, warehouse=warehouse)
    partitions = len(ends)

    async def owns_all() -> bool:
        return await worker.owned_inputs(http) == partitions

    await wait_until(
        owns_all, timeout=180, interval=0.05, what=f"worker to own all {partitions} input partitions", worker=worker
    )
    ready = CpuMark.take(worker.pid, broker_pid)
    result.startup_seconds = ready.at - worker.spawned_at
    ready_monotonic = time.monotonic()
    result.rss_ready_mib = worker.rss.now()
    result.ingest_done_before_ready = progress(await watch.committed(ingest_group), ends)
    if warehouse:
        result.sink_done_before_ready = progress(await watch.committed(sink_group), ends)
    log.info(
        "%s: ready %.1f s after spawn (%d already committed by ingest), RSS %.0f MiB",
        worker.config.name,
        result.startup_seconds,
        result.ingest_done_before_ready,
        result.rss_ready_mib or 0,
    )
    deadline = ready.at + timeout
    ingest_done = asyncio.Event()
    done_at: dict[str, float] = {}

    async def watch_ingest() -> None:
        last_log = time.perf_counter()
        while True:
            committed = await watch.committed(ingest_group)
            now = time.perf_counter()
            if caught_up(committed, ends):
                mark = CpuMark.take(worker.pid, broker_pid)
                done_at["ingest"] = mark.at
                result.window_monotonic = (ready_monotonic, time.monotonic())
                result.worker_cpu_cores, result.broker_cpu_cores = ready.cores_until(mark)
                result.rss_drained_mib = worker.rss.now()
                ingest_done.set()
                return
            if now > deadline or not worker.alive():
                raise RuntimeError(
                    f"ingest committed {progress(committed, ends)}/{n} (worker alive: {worker.alive()}):\n"
                    f"{worker.log_tail()}"
                )
            if now - last_log >= 2.0:
                last_log = now
                done = progress(committed, ends)
                log.info(
                    "%s: ingest committed %d/%d (%.0f ev/s since ready)",
                    worker.config.name,
                    done,
                    n,
                    (done - result.ingest_done_before_ready) / (now - ready.at),
                )
            await asyncio.sleep(0.05)

    async def watch_views() -> None:
        await ingest_done.wait()
        total = 0
        views_deadline = time.perf_counter() + VIEWS_TIMEOUT_S
        while time.perf_counter() < views_deadline:
            total = sum([await worker.router_count(http, router) for router in ROUTERS])
            if total >= n:
                result.views_after_drain_seconds = time.perf_counter() - done_at["ingest"]
                break
            await asyncio.sleep(0.05)
        result.views_total = total

    async def watch_sink() -> None:
        sink_deadline = deadline + s.warehouse_flush_seconds + 60
        last_log = time.perf_counter()
        while True:
            committed = await watch.committed(sink_group)
            now = time.perf_counter()
            done = progress(committed, ends)
            if not result.sink_timeline or result.sink_timeline[-1][1] != done:
                result.sink_timeline.append((round(now - ready.at, 2), done))
            if caught_up(committed, ends):
                done_at["sink"] = now
                return
            if now > sink_deadline or not worker.alive():
                raise RuntimeError(f"warehouse sink committed {done}/{n}:\n{worker.log_tail()}")
            if now - last_log >= 5.0:
                last_log = now
                log.info("%s: warehouse sink committed %d/%d", worker.config.name, done, n)
            await asyncio.sleep(0.1)

    tasks = [watch_ingest()]
    if views:
        tasks.append(watch_views())
    if warehouse:
        tasks.append(watch_sink())
    await asyncio.gather(*tasks)

    measured = n - result.ingest_done_before_ready
    result.ingest_seconds = done_at["ingest"] - ready.at
    result.ingest_events_per_second = measured / result.ingest_seconds if result.ingest_seconds > 0 else float("nan")
    result.spawn_to_ingest_done_seconds = done_at["ingest"] - worker.spawned_at
    if warehouse:
        assert result.sink_done_before_ready is not None
        result.sink_seconds = done_at["sink"] - ready.at
        result.sink_events_per_second = (n - result.sink_done_before_ready) / result.sink_seconds
        result.spawn_to_sink_done_seconds = done_at["sink"] - worker.spawned_at
    metrics = await worker.metrics(http)
    result.folded_metric = int(metric_sum(metrics, "bifrost_ingest_events_total"))
    result.dlq = int(metric_sum(metrics, "bifrost_dlq_events_total"))
    result.duplicates = int(metric_sum(metrics, "bifrost_ingest_duplicates_total"))
    result.batches = int(metric_sum(metrics, "bifrost_ingest_batch_seconds_count"))
    if result.batches:
        result.mean_batch_records = metric_sum(metrics, "bifrost_ingest_batch_records_sum") / result.batches
        result.batch_seconds_mean = metric_sum(metrics, "bifrost_ingest_batch_seconds_sum") / result.batches
    result.batch_seconds_p50 = histogram_quantile(metrics, "bifrost_ingest_batch_seconds", 0.50)
    result.batch_seconds_p99 = histogram_quantile(metrics, "bifrost_ingest_batch_seconds", 0.99)
    partials = [
        v for labels, v in metrics.get("bifrost_live_window_partials", []) if labels.get("stage") == "partition"
    ]
    result.live_partials = int(partials[0]) if partials else None
    log.info(
        "%s: ingest folded %d in %.2f s after ready (%.0f ev/s); views %s after the drain%s",
        worker.config.name,
        measured,
        result.ingest_seconds,
        result.ingest_events_per_second,
        fmt_ms(result.views_after_drain_seconds),
        f"; sink committed all {result.sink_seconds:.1f} s after ready" if warehouse else "",
    )
    return result


# --------------------------------------------------------------------------- latency under load


@dataclass(slots=True)
class LoadResult:
    """End-to-end latency of probes published while a paced load runs."""

    target_rate: float
    seconds: float
    load: dict[str, Any] = field(default_factory=dict)
    probes_sent: int = 0
    partials_latencies_s: list[float] = field(default_factory=list)
    partials_missing: int = 0
    view_latencies_s: list[float] = field(default_factory=list)
    view_probes: int = 0
    view_missing: int = 0
    worker_cpu_cores: float | None = None
    broker_cpu_cores: float | None = None
    lag_at_load_end: int | None = None
    catch_up_seconds: float | None = None
    dlq_during_load: int | None = None
    lag_timeline: list[tuple[float, int]] = field(default_factory=list)  # (s after go, records behind)
    batches: int | None = None
    mean_batch_records: float | None = None
    batch_seconds_mean: float | None = None
    batch_seconds_p50: float | None = None
    batch_seconds_p99: float | None = None
    partials_merged: int | None = None
    window_monotonic: tuple[float, float] | None = None  # (go, load end), time.monotonic()


def histogram_delta(
    before: Samples,
    after: Samples,
    name: str,
) -> Samples:
    """``after - before`` of one histogram's series (for quantiles over an interval)."""
    old = {tuple(sorted(labels.items())): v for labels, v in before.get(name, [])}
    return {name: [(labels, v - old.get(tuple(sorted(labels.items())), 0.0)) for labels, v in after.get(name, [])]}


def probe_event(k: int) -> RoutingEvent:
    """One probe, stamped now, for its own router (so its snapshot identifies it)."""
    return RoutingEvent(
        request_id=f"probe-{k}",
        ts=time.time(),
        router_id=f"probe-{k:05d}",
        arm="v12",
        model="mid-general",
        provider="acme",
        bucket=Bucket.MID,
        latency_ms=500.0,
        cost_usd=0.001,
        success=True,
    )


def start_load_process(
    bootstrap: str, topic: str, rate: float, seconds: float, log_path: Path
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        str(BENCH_DIR / "ingest_load.py"),
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--rate",
        f"{rate:.0f}",
        "--seconds",
        f"{seconds:g}",
    ]
    with log_path.open("a") as errors:
        return subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True
        )


async def read_json_line(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout)
    if not line:
        raise RuntimeError(f"load process exited (code {process.poll()}) without output")
    return json.loads(line)


async def latency_under_load(
    worker: BenchWorker,
    watch: KafkaWatch,
    http: aiohttp.ClientSession,
    bootstrap: str,
    rate: float,
    seconds: float,
    probes: int,
    view_every: int,
    broker_pid: int | None,
    run_dir: Path,
) -> LoadResult:
    """Paced load in a child process; probes from here, timed to their window-partials snapshot and view."""
    s = worker.settings
    topics = s.topics
    result = LoadResult(target_rate=rate, seconds=seconds)
    load = start_load_process(bootstrap, topics.routing_events, rate, seconds, run_dir / "load.log")
    try:
        ready = await read_json_line(load, timeout=300)
        log.info(
            "load: child ready (%s events pre-generated); probes every %.0f ms",
            ready.get("events"),
            1000 * seconds / probes,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            isolation_level="read_committed",
            fetch_max_wait_ms=20,
            client_id="bench-probe-watch",
        )
        await consumer.start()
        sent: dict[bytes, float] = {}
        seen: dict[bytes, float] = {}
        view_tasks: list[asyncio.Task[None]] = []
        try:
            partials = [TopicPartition(topics.window_partials, p) for p in range(s.partitions)]
            consumer.assign(partials)
            await consumer.seek_to_end(*partials)
            for tp in partials:
                await consumer.position(tp)
            stop_consuming = asyncio.Event()

            async def consume() -> None:
                while not stop_consuming.is_set():
                    batches = await consumer.getmany(timeout_ms=50)
                    now = time.perf_counter()
                    for records in batches.values():
                        for record in records:
                            key = record.key
                            if key in sent and key not in seen:
                                seen[key] = now - sent[key]

            async def view_probe(router: str, started: float) -> None:
                deadline = started + 15.0
                while time.perf_counter() < deadline:
                    if await worker.router_count(http, router) >= 1:
                        result.view_latencies_s.append(time.perf_counter() - started)
                        return
                    await asyncio.sleep(0.01)
                result.view_missing += 1

            consumer_task = asyncio.create_task(consume())
            ingest_group = f"{s.app_id}-ingest"
            stop_lag = asyncio.Event()

            async def sample_lag(t0: float) -> None:
                while not stop_lag.is_set():
                    ends_now, committed_now = await watch.end_offsets(), await watch.committed(ingest_group)
                    behind = sum(max(0, e - committed_now.get(p, 0)) for p, e in ends_now.items())
                    result.lag_timeline.append((round(time.perf_counter() - t0, 1), behind))
                    await asyncio.sleep(0.5)

            async with Publisher(bootstrap, topics, client_id="bench-probes") as publisher:
                metrics_before = await worker.metrics(http)
                dlq_before = metric_sum(metrics_before, "bifrost_dlq_events_total")
                assert load.stdin is not None
                load.stdin.write("go\n")
                load.stdin.flush()
                start = CpuMark.take(worker.pid, broker_pid)
                go_monotonic = time.monotonic()
                lag_task = asyncio.create_task(sample_lag(start.at))
                interval = seconds / probes
                for k in range(probes):
                    delay = start.at + k * interval - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    event = probe_event(k)
                    key = orjson.dumps(event.router_id)  # window-partials are keyed by the router id's JSON
                    t0 = time.perf_counter()
                    sent[key] = t0
                    await publisher.publish(event)
                    if view_every and k % view_every == 0:
                        result.view_probes += 1
                        view_tasks.append(asyncio.create_task(view_probe(event.router_id, t0)))
                result.probes_sent = probes
                result.load = (await read_json_line(load, timeout=seconds + 120)).get("result", {})
                end = CpuMark.take(worker.pid, broker_pid)
                result.window_monotonic = (go_monotonic, time.monotonic())
                result.worker_cpu_cores, result.broker_cpu_cores = start.cores_until(end)
                stop_lag.set()
                await lag_task
                metrics_after = await worker.metrics(http)
            delta = {}
            for name in (
                "bifrost_ingest_batch_seconds_bucket",
                "bifrost_ingest_batch_seconds_count",
                "bifrost_ingest_batch_seconds_sum",
                "bifrost_ingest_batch_records_sum",
                "bifrost_rollup_partials_total",
            ):
                delta.update(histogram_delta(metrics_before, metrics_after, name))
            result.batches = int(metric_sum(delta, "bifrost_ingest_batch_seconds_count"))
            if result.batches:
                result.mean_batch_records = metric_sum(delta, "bifrost_ingest_batch_records_sum") / result.batches
                result.batch_seconds_mean = metric_sum(delta, "bifrost_ingest_batch_seconds_sum") / result.batches
            result.batch_seconds_p50 = histogram_quantile(delta, "bifrost_ingest_batch_seconds", 0.5)
            result.batch_seconds_p99 = histogram_quantile(delta, "bifrost_ingest_batch_seconds", 0.99)
            result.partials_merged = int(metric_sum(delta, "bifrost_rollup_partials_total"))
            ends = await watch.end_offsets()
            committed = await watch.committed(f"{s.app_id}-ingest")
            result.lag_at_load_end = sum(max(0, e - committed.get(p, 0)) for p, e in ends.items())
            catch_up_deadline = time.perf_counter() + 120
            while time.perf_counter() < catch_up_deadline:
                if caught_up(await watch.committed(f"{s.app_id}-ingest"), ends):
                    result.catch_up_seconds = time.perf_counter() - end.at
                    break
                await asyncio.sleep(0.05)
            wait_deadline = time.perf_counter() + 15
            while len(seen) < len(sent) and time.perf_counter() < wait_deadline:
                await asyncio.sleep(0.05)
            await asyncio.gather(*view_tasks)
            stop_consuming.set()
            await consumer_task
            result.dlq_during_load = int(
                metric_sum(await worker.metrics(http), "bifrost_dlq_events_total") - dlq_before
            )
        finally:
            for task in view_tasks:
                task.cancel()
            await consumer.stop()
        result.partials_latencies_s = [seen[k] for k in sent if k in seen]
        result.partials_missing = len(sent) - len(result.partials_latencies_s)
    finally:
        if load.poll() is None:
            load.kill()
        load.wait(timeout=10)
    log.info(
        "load: %s; probes p50 %s p99 %s (%d/%d seen); views p50 %s p99 %s (%d)",
        fmt_load(result.load),
        fmt_ms(quantile(result.partials_latencies_s, 0.5)),
        fmt_ms(quantile(result.partials_latencies_s, 0.99)),
        len(result.partials_latencies_s),
        result.probes_sent,
        fmt_ms(quantile(result.view_latencies_s, 0.5)),
        fmt_ms(quantile(result.view_latencies_s, 0.99)),
        len(result.view_latencies_s),
    )
    return result


def median(values: Sequence[float]) -> float:
    """Median (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile (no interpolation: the p99 of 240 probes is the 238th value)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --------------------------------------------------------------------------- configurations


@dataclass(slots=True)
class ConfigurationResult:
    name: str
    title: str
    command: list[str]
    cwd: str
    env: dict[str, str]
    effective: dict[str, str]
    drain: dict[str, Any]
    load: dict[str, Any] | None = None
    rss_start_mib: float | None = None
    rss_end_mib: float | None = None
    rss_peak_mib: float | None = None
    fraction_of_baseline: float | None = None
    exit_code: int | None = None
    stop_seconds: float | None = None
    log: dict[str, int] = field(default_factory=dict)
    loadavg_before: tuple[float, float, float] | None = None
    diagnosis: dict[str, Any] | None = None


async def run_configuration(
    config: Configuration,
    *,
    bootstrap: str,
    topic: str,
    ends: dict[int, int],
    broker_pid: int | None,
    drain_timeout: float,
    load: dict[str, Any] | None,
    run_dir: Path,
    sink: bool = True,
) -> ConfigurationResult:
    """Spawn the worker, drain, (optionally) measure latency under load, stop it."""
    loadavg = os.getloadavg()
    worker = BenchWorker(config)
    log.info(
        "%s: pid %d, %s, cwd %s, env %s",
        config.name,
        worker.pid,
        " ".join(worker.command),
        config.cwd,
        " ".join(f"{k}={v}" for k, v in config.env.items()),
    )
    out = ConfigurationResult(
        config.name,
        config.title,
        worker.command,
        str(config.cwd),
        dict(config.env),
        config.effective(),
        {},
        loadavg_before=loadavg,
    )
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, KafkaWatch(bootstrap, topic, len(ends)) as watch:
            drained = await drain(worker, watch, http, ends, broker_pid, timeout=drain_timeout, sink=sink)
            out.drain = asdict(drained)
            if load is not None:
                rate = load.get("rate") or load["fraction"] * drained.ingest_events_per_second
                log.info(
                    "%s: latency under load at %.0f ev/s (%.0f%% of its ingest rate) for %.0f s",
                    config.name,
                    rate,
                    100 * rate / drained.ingest_events_per_second if drained.ingest_events_per_second else 0,
                    load["seconds"],
                )
                loaded = await latency_under_load(
                    worker,
                    watch,
                    http,
                    bootstrap,
                    rate,
                    load["seconds"],
                    load["probes"],
                    load["view_every"],
                    broker_pid,
                    run_dir,
                )
                out.load = asdict(loaded)
            out.rss_end_mib = worker.rss.now()
    finally:
        stopping = time.perf_counter()
        out.exit_code = worker.stop()
        out.stop_seconds = time.perf_counter() - stopping
        out.log = worker.log_counts()
    out.rss_start_mib = out.drain.get("rss_ready_mib")
    out.rss_peak_mib = worker.rss.peak()
    if worker.diag_path is not None:
        windows = {"drain": out.drain.get("window_monotonic")}
        if out.load:
            windows["load"] = out.load.get("window_monotonic")
        out.diagnosis = diagnose_samples(worker.diag_path, windows)
    return out


def diagnose_samples(path: Path, windows: dict[str, tuple[float, float] | None]) -> dict[str, Any]:
    """Summaries of ``bench/ingest_worker_diag.py``'s samples within each phase window."""
    try:
        samples = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"error": f"no diagnostic samples: {exc!r}"}

    def stats(values: list[float]) -> dict[str, float | int | None]:
        return {
            "n": len(values),
            "p50_ms": ms(quantile(values, 0.5)),
            "p90_ms": ms(quantile(values, 0.9)),
            "p99_ms": ms(quantile(values, 0.99)),
            "max_ms": ms(max(values) if values else None),
        }

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    out: dict[str, Any] = {}
    for name, window in windows.items():
        if not window:
            continue
        lo, hi = window
        inside = {k: [row for row in rows if lo <= row[0] <= hi] for k, rows in samples.items()}
        process, commits = inside["process"], inside["commit"]
        with_phases = [row[4] for row in commits if row[4]]
        warnings: dict[str, int] = {}
        for _, _, message in inside["aiokafka_warnings"]:
            kind = re.search(r"<class '[\w.]*?(\w+)'>|\[Error \d+\] (\w+)", message)
            key = (kind.group(1) or kind.group(2)) if kind else message[:60]
            warnings[key] = warnings.get(key, 0) + 1
        out[name] = {
            "seconds": round(hi - lo, 2),
            "batches": stats([row[1] for row in process]),
            "records_per_batch_p50": quantile([row[2] for row in process], 0.5),
            "input_partitions_per_batch_p50": quantile([row[3] for row in process], 0.5),
            "fold": stats([row[1] for row in inside["fold"]]),
            "transactions": stats([row[1] for row in commits]),
            "transactions_failed": sum(1 for row in commits if not row[3]),
            "txn_phase_sends_queued": stats([p[0] for p in with_phases]),
            "txn_phase_send_offsets": stats([p[1] for p in with_phases]),
            "txn_phase_deliveries": stats([p[2] for p in with_phases]),
            "txn_phase_end_txn": stats([p[3] for p in with_phases]),
            "event_loop_lag": stats([row[1] for row in inside["loop_lag"]]),
            "aiokafka_warnings": warnings,
        }
    return out


# --------------------------------------------------------------------------- memory check


async def memory_check(
    config: Configuration, *, bootstrap: str, events: int, checkpoint: int, seed: int, broker_pid: int | None
) -> dict[str, Any]:
    """Default configuration over ``events`` events: RSS when ``checkpoint`` and when all were folded."""
    topic = config.settings.topics.routing_events
    partitions = config.settings.partitions
    await create_topic(bootstrap, topic, partitions)
    ends, produce_seconds = await produce_streaming(bootstrap, topic, events, seed)
    worker = BenchWorker(config)
    log.info("memory-check: pid %d on %s (%d events)", worker.pid, topic, events)
    out: dict[str, Any] = {
        "events": events,
        "checkpoint": checkpoint,
        "topic": topic,
        "env": dict(config.env),
        "produce_seconds": produce_seconds,
    }
    ingest_group = f"{config.settings.app_id}-ingest"
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, KafkaWatch(bootstrap, topic, partitions) as watch:

            async def owns_all() -> bool:
                return await worker.owned_inputs(http) == partitions

            await wait_until(owns_all, timeout=180, interval=0.05, what="memory-check worker ready", worker=worker)
            ready = CpuMark.take(worker.pid, broker_pid)
            out["rss_ready_mib"] = worker.rss.now()
            deadline = ready.at + max(600.0, events / 2_000)
            last_log = ready.at
            while True:
                committed = await watch.committed(ingest_group)
                done = progress(committed, ends)
                now = time.perf_counter()
                if done >= checkpoint and "rss_checkpoint_mib" not in out:
                    out["rss_checkpoint_mib"] = worker.rss.now()
                    out["checkpoint_seconds"] = now - ready.at
                    out["checkpoint_committed"] = done
                    metrics = await worker.metrics(http)
                    out["live_partials_checkpoint"] = int(metric_sum(metrics, "bifrost_live_window_partials"))
                    log.info("memory-check: %d folded, RSS %.0f MiB", done, out["rss_checkpoint_mib"])
                if caught_up(committed, ends):
                    out["rss_end_mib"] = worker.rss.now()
                    out["seconds"] = now - ready.at
                    out["events_per_second"] = events / out["seconds"]
                    out["worker_cpu_cores"], out["broker_cpu_cores"] = ready.cores_until(
                        CpuMark.take(worker.pid, broker_pid)
                    )
                    metrics = await worker.metrics(http)
                    out["live_partials_end"] = int(metric_sum(metrics, "bifrost_live_window_partials"))
                    break
                if now > deadline or not worker.alive():
                    raise RuntimeError(f"memory-check: ingest committed {done}/{events}:\n{worker.log_tail()}")
                if now - last_log >= 5.0:
                    last_log = now
                    log.info("memory-check: %d/%d folded, RSS %.0f MiB", done, events, worker.rss.now() or 0)
                await asyncio.sleep(0.1)
    finally:
        out["exit_code"] = worker.stop()
        out["rss_peak_mib"] = worker.rss.peak()
        out["rss_samples"] = [(round(t - worker.spawned_at, 1), round(r, 1)) for t, r in worker.rss.samples[::25]]
        out["log"] = worker.log_counts()
    if out.get("rss_checkpoint_mib") and out.get("rss_end_mib"):
        out["rss_change"] = out["rss_end_mib"] / out["rss_checkpoint_mib"] - 1.0
    return out


# --------------------------------------------------------------------------- worker profile


@dataclass(slots=True)
class WorkerProfile:
    """The default configuration under ``python -m cProfile`` (fresh consumer groups)."""

    ok: bool
    note: str
    seconds: float | None = None
    events_per_second: float | None = None
    exit_code: int | None = None
    profiled_seconds: float | None = None
    top_tottime: list[dict[str, Any]] = field(default_factory=list)
    top_bifrost_cumulative: list[dict[str, Any]] = field(default_factory=list)
    by_package: list[dict[str, Any]] = field(default_factory=list)


async def profile_worker(
    config: Configuration,
    *,
    bootstrap: str,
    topic: str,
    ends: dict[int, int],
    broker_pid: int | None,
    timeout: float,
    run_dir: Path,
) -> WorkerProfile:
    """Drain the backlog with a profiled worker; SIGINT it and read its profile."""
    profile_path = run_dir / "worker.prof"
    worker = BenchWorker(config, profile_path=profile_path)
    log.info("profile: pid %d under cProfile -> %s", worker.pid, profile_path)
    seconds = rate = None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            KafkaWatch(bootstrap, topic, len(ends)) as watch,
        ):
            drained = await drain(worker, watch, http, ends, broker_pid, timeout=timeout, views=False, sink=False)
        seconds, rate = drained.ingest_seconds, drained.ingest_events_per_second
        log.info("profile: ingest drained in %.2f s under cProfile (%.0f ev/s)", seconds, rate)
    finally:
        code = worker.stop(signal.SIGINT, timeout=90)
    if not profile_path.is_file() or profile_path.stat().st_size == 0:
        return WorkerProfile(False, f"no profile written (exit code {code})", seconds, rate, code)
    stats = pstats.Stats(str(profile_path))
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    return WorkerProfile(
        True,
        f"profile written on SIGINT (exit code {code}); covers start-up, the drain (ingest and, as "
        f"configured, the warehouse sink's consumption), and shutdown",
        seconds,
        rate,
        code,
        profiled_seconds=total,
        top_tottime=top_functions(stats, "tottime", 20),
        top_bifrost_cumulative=top_functions(stats, "cumulative", 15, only=is_bifrost),
        by_package=tottime_by_package(stats),
    )


# --------------------------------------------------------------------------- pure fold


def input_batches(workload: Workload, topic: str, size: int) -> list[list[InputRecord]]:
    """The produced records, in produce order (offset order per partition), in batches."""
    records = [
        InputRecord(topic, workload.partitions[i], workload.offsets[i], workload.keys[i], workload.values[i])
        for i in range(len(workload))
    ]
    return [records[lo : lo + size] for lo in range(0, len(records), size)]


@dataclass(slots=True)
class FoldRun:
    """One pass of the pure fold over all batches."""

    events: int
    accepted: int
    fold_seconds: float
    store_seconds: float
    partials: int

    @property
    def fold_events_per_second(self) -> float:
        return self.events / self.fold_seconds

    @property
    def with_store_events_per_second(self) -> float:
        return self.events / (self.fold_seconds + self.store_seconds)


def fold_pass(batches: list[list[InputRecord]], topic: str, profiler: cProfile.Profile | None = None) -> FoldRun:
    """Fold every batch; time ``fold`` and the store write-back (encode) separately."""
    folder = BatchFolder(routing_topic=topic, feedback_topic=topic + ".feedback")
    store = DictStore()
    states: dict[tuple[str, int], PartitionState] = {}
    fold_seconds = store_seconds = 0.0
    accepted = events = 0
    if profiler is not None:
        profiler.enable()
    try:
        for batch in batches:
            t0 = time.perf_counter()
            result = folder.fold(batch, load=store.load, states=states)
            t1 = time.perf_counter()
            store.apply(result.changed, result.expired)
            t2 = time.perf_counter()
            fold_seconds += t1 - t0
            store_seconds += t2 - t1
            events += len(batch)
            accepted += sum(result.accepted.values())
    finally:
        if profiler is not None:
            profiler.disable()
    return FoldRun(events, accepted, fold_seconds, store_seconds, len(store.data))


def package_of(filename: str, name: str) -> str:
    """Coarse owner of a profiled function, for the own-time-by-package view."""
    if filename == "~":
        return "idle: waiting in epoll" if "epoll" in name else "C builtins (msgspec, dict, socket, ...)"
    site = re.search(r"site-packages/([A-Za-z0-9_]+)", filename)
    if site:
        return site.group(1)
    own = re.search(r"(?:^|/)bifrost/([a-z_]+)/", filename)
    repo = str(REPO_DIR) + os.sep
    if own or filename.startswith(repo):
        folder = own.group(1) if own else filename[len(repo) :].split(os.sep, 1)[0]
        return f"bifrost.{folder}"
    if "asyncio" in filename:
        return "stdlib asyncio"
    return "stdlib (other)"


def is_bifrost(filename: str) -> bool:
    """Whether a profiled file is this project's code."""
    return package_of(filename, "").startswith("bifrost.")


def tottime_by_package(stats: pstats.Stats) -> list[dict[str, Any]]:
    """Own time summed by package, largest first."""
    totals: dict[str, float] = {}
    for (filename, _, name), (_, _, tt, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        owner = package_of(filename, name)
        totals[owner] = totals.get(owner, 0.0) + tt
    grand = sum(totals.values()) or 1.0
    return [
        {"package": name, "tottime": round(t, 3), "share": round(t / grand, 3)}
        for name, t in sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:14]
    ]


def run_fold_benchmark(workload: Workload, topic: str) -> dict[str, Any]:
    """Timed pass (no profiler), then a cProfile pass; the profile's top lists."""
    batches = input_batches(workload, topic, FOLD_BATCH)
    timed = fold_pass(batches, topic)
    log.info(
        "fold: %d events, fold-only %.0f ev/s, fold+encode %.0f ev/s, %d partials",
        timed.events,
        timed.fold_events_per_second,
        timed.with_store_events_per_second,
        timed.partials,
    )
    profiler = cProfile.Profile()
    profiled = fold_pass(batches, topic, profiler)
    log.info("fold: under cProfile %.0f ev/s (fold only)", profiled.fold_events_per_second)
    stats = pstats.Stats(profiler)
    return {
        "batch_size": FOLD_BATCH,
        "events": timed.events,
        "accepted": timed.accepted,
        "partials": timed.partials,
        "fold_seconds": timed.fold_seconds,
        "store_encode_seconds": timed.store_seconds,
        "fold_only_events_per_second": timed.fold_events_per_second,
        "fold_plus_encode_events_per_second": timed.with_store_events_per_second,
        "profiled_fold_events_per_second": profiled.fold_events_per_second,
        "top_cumulative": top_functions(stats, "cumulative", 10),
        "top_tottime": top_functions(stats, "tottime", 10),
    }


# --------------------------------------------------------------------------- output


def code_state() -> dict[str, Any]:
    """HEAD, and files of the installed (editable) package that differ from it: the workers run those."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_DIR, capture_output=True, text=True
    ).stdout.splitlines()
    code_dirs = ("streams/", "schemas/", "config/", "client/", "cli/", "devkafka/", "router/", "trainer/")
    dirty = sorted(line[3:] for line in status if line[3:].startswith(code_dirs) and line[3:].endswith(".py"))
    return {"commit": machine.commit(), "uncommitted_package_files": dirty}


def machine_info(kafka: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    return machine.describe(
        kafka=kafka,
        aiokafka=aiokafka.__version__,
        faust_streaming=faust.__version__,
        msgspec=msgspec.__version__,
        orjson=orjson.__version__,
        git_commit=machine.commit(),
    )


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ev/s"


def fmt_cores(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:,.0f} ms" if value >= 0.1 else f"{value * 1000:.1f} ms"


def fmt_mib(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} MiB"


def fmt_load(load: dict[str, Any]) -> str:
    if not load:
        return "no result from the load process"
    return (
        f"target {load.get('target_rate', 0):,.0f} ev/s, achieved {load.get('achieved_rate') or 0:,.0f} ev/s "
        f"({load.get('events', 0):,} events, load process {fmt_cores(load.get('cpu_cores'))} cores"
        f"{', ' + str(load['error_count']) + ' send errors' if load.get('error_count') else ''})"
    )


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "**NOT met**")


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal with its measured value and whether it was met (None: not measured)."""
    configs = report["configurations"]
    out: list[dict[str, Any]] = []
    default, alone = configs.get("default"), configs.get("ingest-alone")
    repeats = report.get("repeats", 1)
    of = f" (median of {repeats})" if repeats > 1 else ""

    def views_goal(label: str, c: dict[str, Any]) -> dict[str, Any]:
        worst = c["views_after_drain_worst_seconds"]
        return {
            "goal": f"{label}, views complete ≤ {GOAL_VIEWS_AFTER_DRAIN_S:.0f} s after the input is consumed"
            + (f" (worst of {repeats})" if repeats > 1 else ""),
            "measured": fmt_ms(worst) if worst is not None else f"not within {VIEWS_TIMEOUT_S:.0f} s",
            "met": worst is not None and worst <= GOAL_VIEWS_AFTER_DRAIN_S,
        }

    if default:
        rate, fraction = default["ingest_events_per_second_median"], default["fraction_of_baseline_median"]
        out.append(
            {
                "goal": f"default configuration ≥ {GOAL_DEFAULT_RATE:,.0f} ev/s (ingest folded N){of}",
                "measured": fmt_rate(rate),
                "met": rate >= GOAL_DEFAULT_RATE,
            }
        )
        out.append(
            {
                "goal": f"default configuration ≥ {GOAL_DEFAULT_FRACTION:.0%} of the raw baseline (ingest "
                f"folded N){of}",
                "measured": f"{fraction:.1%}",
                "met": fraction >= GOAL_DEFAULT_FRACTION,
            }
        )
        out.append(views_goal("default configuration", default))
    if alone:
        fraction = alone["fraction_of_baseline_median"]
        out.append(
            {
                "goal": f"ingest alone ≥ {GOAL_ALONE_FRACTION:.0%} of the raw baseline{of}",
                "measured": f"{fraction:.1%}",
                "met": fraction >= GOAL_ALONE_FRACTION,
            }
        )
        out.append(views_goal("ingest alone", alone))
    if default and default.get("load"):
        lat = default["load"]
        p99 = quantile(lat["partials_latencies_s"], 0.99)
        complete = lat["partials_missing"] == 0
        out.append(
            {
                "goal": f"p99 end-to-end under load < {GOAL_E2E_P99_S * 1000:.0f} ms (default configuration, "
                "publish → window-partials snapshot, read_committed)",
                "measured": fmt_ms(p99) + ("" if complete else f" ({lat['partials_missing']} probes never seen)"),
                "met": None if p99 is None else (p99 < GOAL_E2E_P99_S and complete),
            }
        )
    mem = report.get("memory_check")
    if mem and mem.get("rss_change") is not None:
        out.append(
            {
                "goal": f"RSS flat ±{GOAL_RSS_DRIFT:.0%} from {mem['checkpoint']:,} to {mem['events']:,} "
                "events (default configuration)",
                "measured": f"{mem['rss_change']:+.1%}",
                "met": abs(mem["rss_change"]) <= GOAL_RSS_DRIFT,
            }
        )
    else:
        out.append(
            {
                "goal": f"RSS flat ±{GOAL_RSS_DRIFT:.0%} from 1M to 5M events",
                "measured": "not run (--memory-check)",
                "met": None,
            }
        )
    return out


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, note) rows shared by the console table and the Markdown file."""
    b = report["baseline"]
    rows = [
        (
            "events",
            f"{report['events']:,}",
            f"{report['partitions']} partitions, {len(ROUTERS)} routers, {len(ARMS)} arms, "
            f"{report['mean_event_bytes']:.0f} B/event, simulated {SIM_RATE_PER_SECOND:.0f} req/s "
            "of event time",
        ),
        (
            "produce (setup, not a result)",
            fmt_rate(report["produce"]["events_per_second"]),
            f"{report['produce']['seconds']:.1f} s, aiokafka acks=1, linger 50 ms",
        ),
        (
            "raw baseline: getmany + orjson.loads",
            fmt_rate(b["median_events_per_second"]),
            (
                f"median of {report['repeats']} runs: "
                + ", ".join(fmt_rate(x) for x in b["runs_events_per_second"])
                + "; last: "
                if report["repeats"] > 1
                else ""
            )
            + f"{b['seconds']:.2f} s, max_records={b['max_records']}; CPU cores: consumer "
            f"{fmt_cores(b['consumer_cpu_cores'])}, "
            f"broker {fmt_cores(b['broker_cpu_cores'])}",
        ),
    ]
    for name in ("default", "ingest-alone"):
        c = report["configurations"].get(name)
        if not c:
            continue
        d = c["drain"]
        label = "(a) default configuration" if name == "default" else "(b) ingest alone (sink off)"
        runs = c["runs"]
        rows.append(
            (
                f"{label}: ingest folded N",
                fmt_rate(c["ingest_events_per_second_median"]),
                f"{c['fraction_of_baseline_median']:.1%} of baseline"
                + (
                    f" (medians of {len(runs)} runs: "
                    + ", ".join(
                        f"{fmt_rate(x['ingest_events_per_second'])} = {x['fraction_of_baseline']:.0%}" for x in runs
                    )
                    + "; last run: "
                    if len(runs) > 1
                    else "; "
                )
                + f"{d['ingest_seconds']:.2f} s from ready until group "
                f"`<app>-ingest` committed the end offsets (ready {d['startup_seconds']:.1f} s after spawn, "
                f"{d['ingest_done_before_ready']:,} committed before); CPU cores: worker "
                f"{fmt_cores(d['worker_cpu_cores'])}, "
                f"broker {fmt_cores(d['broker_cpu_cores'])}; {d['batches']} batches of "
                f"{d['mean_batch_records'] or 0:,.0f} "
                f"records, {fmt_ms(d['batch_seconds_mean'])} each on average",
            )
        )
        if d["warehouse"]:
            rows.append(
                (
                    f"{label}: warehouse sink committed N",
                    fmt_rate(d["sink_events_per_second"]),
                    f"{d['sink_seconds']:.1f} s from ready until group `<app>-warehouse` committed the "
                    "end offsets "
                    f"(a second consumer of the input; files are written at 50,000 rows or after "
                    f"BIFROST_WAREHOUSE_FLUSH_SECONDS={c['effective'].get('BIFROST_WAREHOUSE_FLUSH_SECONDS')} s); "
                    f"committed over time (s after ready: records): "
                    + ", ".join(f"{t:g}: {v:,}" for t, v in d["sink_timeline"][:8]),
                )
            )
        rows.append(
            (
                f"{label}: views complete after drain",
                fmt_ms(d["views_after_drain_seconds"])
                if d["views_after_drain_seconds"] is not None
                else f"> {VIEWS_TIMEOUT_S:.0f} s",
                f"input fully consumed (ingest offsets = end offsets) → `/v1/routers/<r>/metrics` sums to N "
                f"(shows {d['views_total']:,})"
                + (
                    " (all runs: " + ", ".join(fmt_ms(x["views_after_drain_seconds"]) for x in runs) + ")"
                    if len(runs) > 1
                    else ""
                )
                + f"; DLQ {d['dlq']}, duplicates {d['duplicates']}, folded metric {d['folded_metric']:,}",
            )
        )
        rows.append(
            (
                f"{label}: RSS",
                f"{fmt_mib(c['rss_start_mib'])} → {fmt_mib(c['rss_end_mib'])}",
                f"VmRSS at ready → at the end of the run (drained: {fmt_mib(d['rss_drained_mib'])}, peak "
                f"{fmt_mib(c['rss_peak_mib'])}); exit code {c['exit_code']} after SIGTERM "
                f"({c['stop_seconds']:.1f} s)",
            )
        )
        lat = c.get("load")
        if lat:
            p = lat["partials_latencies_s"]
            v = lat["view_latencies_s"]
            rows.append(
                (
                    f"{label}: end-to-end under load, p50 / p99",
                    f"{fmt_ms(quantile(p, 0.5))} / {fmt_ms(quantile(p, 0.99))}",
                    f"publish → the probe router's window-partials snapshot seen by a read_committed consumer; "
                    f"{len(p)}/{lat['probes_sent']} probes over {lat['seconds']:.0f} s (max "
                    f"{fmt_ms(max(p) if p else None)}); "
                    f"load {fmt_load(lat['load'])}; CPU cores: worker "
                    f"{fmt_cores(lat['worker_cpu_cores'])}, broker "
                    f"{fmt_cores(lat['broker_cpu_cores'])}; ingest batches during the load: "
                    f"{lat['batches'] or 0:,}, "
                    f"{lat['mean_batch_records'] or 0:,.0f} records and "
                    f"{fmt_ms(lat['batch_seconds_mean'])} each on average "
                    f"(p99 {fmt_ms(lat['batch_seconds_p99'])}, histogram); ingest lag (records behind, "
                    "every 0.5 s): "
                    + ", ".join(f"{v:,}" for _, v in lat["lag_timeline"][:40])
                    + f"; at load end {lat['lag_at_load_end'] or 0:,}, caught up "
                    f"{fmt_ms(lat['catch_up_seconds'])} later",
                )
            )
            rows.append(
                (
                    f"{label}: end-to-end under load via the view, p50 / p99",
                    f"{fmt_ms(quantile(v, 0.5))} / {fmt_ms(quantile(v, 0.99))}",
                    f"publish → `/v1/routers/<probe>/metrics` counts it (stage 2, polled every 10 ms); "
                    f"{len(v)}/{lat['view_probes']} probes (every {report['load']['view_every']}th)",
                )
            )
    mem = report.get("memory_check")
    if mem:
        rows.append(
            (
                "memory check (default configuration): RSS",
                f"{fmt_mib(mem.get('rss_checkpoint_mib'))} → {fmt_mib(mem.get('rss_end_mib'))}",
                f"VmRSS when {mem['checkpoint']:,} and when all {mem['events']:,} events were folded "
                f"({'%+.1f%%' % (100 * mem['rss_change']) if mem.get('rss_change') is not None else '—'}); ready "
                f"{fmt_mib(mem.get('rss_ready_mib'))}, peak {fmt_mib(mem.get('rss_peak_mib'))}; stage-1 partials "
                f"{mem.get('live_partials_checkpoint', '—')} → {mem.get('live_partials_end', '—')}; "
                f"{fmt_rate(mem.get('events_per_second'))}",
            )
        )
    f = report.get("fold")
    if f:
        rows.append(
            (
                "fold only (in-process, no Kafka)",
                fmt_rate(f["fold_only_events_per_second"]),
                f"BatchFolder.fold, batches of {f['batch_size']:,}; with encoding the changed partials "
                f"{fmt_rate(f['fold_plus_encode_events_per_second'])}; under cProfile "
                f"{fmt_rate(f['profiled_fold_events_per_second'])}",
            )
        )
    wp = report.get("worker_profile")
    if wp:
        rows.append(("default configuration under cProfile", fmt_rate(wp.get("events_per_second")), wp["note"]))
    return rows


def print_table(rows: list[tuple[str, str, str]], goal_rows: list[dict[str, Any]]) -> None:
    """A plain fixed-width table on stdout."""
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    print()
    for name, value, note in rows:
        print(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {note}")
    print()
    width = max(len(g["goal"]) for g in goal_rows)
    for g in goal_rows:
        print(f"{g['goal']:<{width}}  {g['measured']:>12}  {verdict(g['met']).replace('*', '')}")
    print()


def profile_markdown(title: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"**{title}**", "", "| function | ncalls | tottime s | cumtime s |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['function']}` | {r['ncalls']:,} | {r['tottime']:.3f} | {r['cumtime']:.3f} |" for r in rows]
    return lines + [""]


def write_markdown(
    report: dict[str, Any], rows: list[tuple[str, str, str]], goal_rows: list[dict[str, Any]], path: Path
) -> None:
    """``ingest.md``: goals, the table, what ran, the profiles, and the interpretation."""
    m = report["machine"]
    code = report["code"]
    lines = [
        "# Ingest benchmark",
        "",
        f"{m['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}) · {m['platform']} · Python {m['python']} · "
        f"Kafka {m['kafka']} · aiokafka {m['aiokafka']} · faust-streaming "
        f"{m['faust_streaming']} · msgspec {m['msgspec']} · "
        f"commit {code['commit']}",
        "",
        f"Command: `{report['command']}`",
        "",
    ]
    if report["events"] < 1_000_000:
        lines += [
            f"**Development run ({report['events']:,} events): a check that the benchmark works, "
            "not the reference "
            f"figures** (those come from the default 1,000,000 events).",
            "",
        ]
    if code["uncommitted_package_files"]:
        lines += [
            f"The workers ran the working tree (editable install): commit {code['commit']} plus "
            "uncommitted changes "
            f"to {', '.join('`' + p + '`' for p in code['uncommitted_package_files'])}.",
            "",
        ]
    lines += [
        f"Load average before the run: {' / '.join(f'{x:.2f}' for x in report['loadavg_start'])} "
        "(other processes on this machine share the 2 cores; figures are noisy).",
        "",
    ]
    lines += ["## Goals", "", "| goal | measured | |", "|---|---:|---|"]
    lines += [f"| {g['goal']} | {g['measured']} | {verdict(g['met'])} |" for g in goal_rows]
    lines += ["", "## Results", "", "| measure | value | note |", "|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", "## What ran", ""]
    lines += [
        "Every configuration is one `bifrost-opt worker` process, started by the benchmark with the environment below "
        "(any other `BIFROST_*` variable of the benchmark's own environment removed) in its own working directory, so "
        "every setting not listed takes the default a user gets (`bifrost-opt config`) and "
        "relative paths resolve there. "
        "Each has a fresh app id, hence fresh consumer groups `<app>-ingest`, `<app>` (stage 2) and `<app>-warehouse`, "
        "and reads the same pre-produced topic from the beginning. Stage 1 commits every "
        "batch per input partition in a "
        "Kafka transaction (there is no other mode).",
        "",
        f"Before any configuration ran, one transactional commit made the broker create its internal topics "
        "(`__transaction_state`, `__consumer_offsets`; "
        f"{report.get('broker_warmup_seconds', 0):.1f} s, a one-time cost a "
        f"running cluster has paid), and the topics stage 2 subscribes to were created "
        f"({', '.join('`' + t + '`' for t in report.get('precreated_topics', []))}) as they "
        "exist after a worker's first "
        f'start: a worker that starts before they exist logs "Ignoring missing topic" and its router loop stays '
        f"unassigned (views empty for more than 5 minutes here). Order: "
        + (
            f"{report['repeats']} repeats of [raw baseline, (b), (a)], each on fresh consumer groups; the last repeat "
            f"also runs (a) under cProfile before (a), waits for (a)'s warehouse sink and measures latency under load"
            if report["repeats"] > 1
            else "raw baseline, (b), (a) under cProfile (unless --no-worker-profile), (a) with its "
            "warehouse wait and the load phase"
        )
        + ". Nothing else of the benchmark runs while a worker is measured.",
        "",
    ]
    for c in report["configurations"].values():
        lines += [f"**{c['title']}** — `{' '.join(c['command'])}` in `{c['cwd']}`", "", "```"]
        lines += [f"{k}={v}" for k, v in c["env"].items()]
        lines += [
            "```",
            "",
            "Effective ingest-relevant settings (defaults unless set above): "
            + ", ".join(f"`{k}={v}`" for k, v in c["effective"].items()),
            "",
        ]
        if c.get("loadavg_before"):
            lines += [f"Load average when it started: {' / '.join(f'{x:.2f}' for x in c['loadavg_before'])}.", ""]
        if c.get("log"):
            lines += [f"Worker log: {', '.join(f'{k} {v}' for k, v in c['log'].items())}.", ""]
    if report.get("load"):
        ld = report["load"]
        lines += [
            "**Latency under load** (default configuration, after its drain): "
            "`bench/ingest_load.py` (a child process, "
            f"one aiokafka producer, acks=1, linger 5 ms, events with event time = wall time, routers "
            f"{', '.join(ROUTERS)}) publishes at {ld['fraction']:.0%} of that configuration's measured ingest rate for "
            f"{ld['seconds']:.0f} s; meanwhile {ld['probes']} probes (one event each, each with its own router id "
            f"`probe-NNNNN`, evenly spaced) are published from the benchmark process with `bifrost.client.Publisher` "
            f"(acks=all, idempotent, linger 10 ms: the publisher defaults). A probe is visible when a `read_committed` "
            "consumer of `<prefix>window-partials` (assigned all partitions, fetch wait 20 ms) "
            "receives a record with its "
            f"router id: the stage-1 transaction holding its fold committed. Every {ld['view_every']}th probe is also "
            "polled in `/v1/routers/<probe>/metrics` every 10 ms (stage 2 merged it). Latency "
            "includes the publisher's "
            "linger and acks, the ingest batch, the transaction commit and the consumer's fetch. "
            "Quantiles are nearest-rank.",
            "",
        ]
    mem = report.get("memory_check")
    if mem:
        lines += [
            f"**Memory check** — default configuration on its own topic `{mem['topic']}` "
            f"({mem['events']:,} events, "
            f"same generator): `" + " ".join(f"{k}={v}" for k, v in mem["env"].items()) + "`. RSS (MiB) every ~5 s "
            "(seconds after spawn: MiB): " + ", ".join(f"{t:g}: {r:.0f}" for t, r in mem.get("rss_samples", [])),
            "",
        ]
    for c in report["configurations"].values():
        if c.get("diagnosis"):
            lines += diagnosis_markdown(c["title"], c["diagnosis"])
    wp = report.get("worker_profile")
    if wp:
        lines += ["## Profile: default configuration under cProfile (main thread)", "", wp["note"], ""]
        if wp["ok"]:
            lines += ["| package | own time s | share |", "|---|---:|---:|"]
            lines += [f"| {r['package']} | {r['tottime']:.2f} | {r['share']:.0%} |" for r in wp["by_package"]]
            lines += [""]
            lines += profile_markdown("Top 20 by own time (tottime)", wp["top_tottime"])
            lines += profile_markdown(
                "bifrost functions, top 15 by cumulative time (async ones include time suspended)",
                wp["top_bifrost_cumulative"],
            )
    if report.get("fold"):
        lines += ["## Profile: pure fold (cProfile, in-process)", ""]
        lines += profile_markdown("Top 10 by own time (tottime)", report["fold"]["top_tottime"])
    lines += ["## Interpretation", "", report.get("interpretation", "").strip(), ""]
    path.write_text("\n".join(lines))


def diagnosis_markdown(title: str, diagnosis: dict[str, Any]) -> list[str]:
    """Stage-1 timings of an instrumented worker, one column per phase window."""
    if "error" in diagnosis:
        return ["## Diagnosis", "", diagnosis["error"], ""]
    windows = list(diagnosis)
    lines = [
        f"## Diagnosis: stage-1 timings, {title}",
        "",
        "Wall times measured inside the worker by `bench/ingest_worker_diag.py` (p50 / p90 / max, ms). A batch is "
        "one `IngestService._fold_and_submit` call (streams/ingest/service.py): the fold of one `getmany`, its "
        "writes handed to each input partition's commit lane (streams/ingest/lanes.py), which commits them in "
        "its own transaction (`PartitionWriter.commit`, streams/ingest/transactions.py) while the loop fetches "
        "the next batch. Transaction phases: sends queued (incl. AddPartitionsToTxn wait) / "
        "`send_offsets_to_transaction` (AddOffsetsToTxn + TxnOffsetCommit) / awaiting the deliveries / "
        "`commit_transaction` (EndTxn).",
        "",
        "| measure | " + " | ".join(windows) + " |",
        "|---|" + "---:|" * len(windows),
    ]

    def cell(stats: dict[str, Any]) -> str:
        if not stats or not stats.get("n"):
            return "—"
        return f"{stats['p50_ms']:,.1f} / {stats['p90_ms']:,.1f} / {stats['max_ms']:,.1f} (n={stats['n']:,})"

    rows = [
        ("window length", lambda d: f"{d['seconds']:.1f} s"),
        ("batch (`_fold_and_submit`)", lambda d: cell(d["batches"])),
        (
            "records / input partitions per batch (p50)",
            lambda d: f"{d['records_per_batch_p50'] or 0:,.0f} / {d['input_partitions_per_batch_p50'] or 0}",
        ),
        ("fold", lambda d: cell(d["fold"])),
        (
            "transaction (`commit`)",
            lambda d: (
                cell(d["transactions"]) + (f", {d['transactions_failed']} failed" if d["transactions_failed"] else "")
            ),
        ),
        ("— sends queued", lambda d: cell(d["txn_phase_sends_queued"])),
        ("— send_offsets_to_transaction", lambda d: cell(d["txn_phase_send_offsets"])),
        ("— deliveries", lambda d: cell(d["txn_phase_deliveries"])),
        ("— commit_transaction (EndTxn)", lambda d: cell(d["txn_phase_end_txn"])),
        ("event-loop lag (10 ms timer)", lambda d: cell(d["event_loop_lag"])),
        (
            "aiokafka warnings (retries)",
            lambda d: ", ".join(f"{k} {v}" for k, v in d["aiokafka_warnings"].items()) or "none",
        ),
    ]
    for label, render in rows:
        lines.append(f"| {label} | " + " | ".join(render(diagnosis[w]) for w in windows) + " |")
    return lines + [""]


def package_shares(report: dict[str, Any]) -> dict[str, float]:
    """Share of the profiled worker's own time by package (empty without a worker profile)."""
    wp = report.get("worker_profile") or {}
    return {row["package"]: row["share"] for row in wp.get("by_package", [])}


def interpret(report: dict[str, Any]) -> str:
    """A few sentences derived from the numbers, so a re-run rewrites them consistently."""
    b = report["baseline"]
    configs = report["configurations"]
    parts: list[str] = []
    default, alone = configs.get("default"), configs.get("ingest-alone")
    if default and alone:
        da, db = default["drain"], alone["drain"]
        medians = f" (medians of {report['repeats']} interleaved repeats)" if report["repeats"] > 1 else ""
        parts.append(
            f"With the warehouse sink on (the default), the worker's ingest stage folded the backlog at "
            f"{default['ingest_events_per_second_median']:,.0f} ev/s "
            f"({default['fraction_of_baseline_median']:.0%} of the "
            f"raw consumer's {b['median_events_per_second']:,.0f} ev/s); with it off, "
            f"{alone['ingest_events_per_second_median']:,.0f} ev/s ({alone['fraction_of_baseline_median']:.0%})"
            f"{medians}. "
            f"In the last repeat the worker used {fmt_cores(da['worker_cpu_cores'])} and "
            f"{fmt_cores(db['worker_cpu_cores'])} CPU cores while draining (one Python thread does the consuming, "
            f"folding and transactions; the sink's Parquet writes run in one extra thread), the broker "
            f"{fmt_cores(da['broker_cpu_cores'])} and {fmt_cores(db['broker_cpu_cores'])}."
        )
        cores = [x for x in (da["worker_cpu_cores"], db["worker_cpu_cores"]) if x is not None]
        if cores and max(cores) < 0.75:
            idle = package_shares(report).get("idle: waiting in epoll")
            parts.append(
                "That is well below one core for a single-threaded loop draining a backlog: either the loop waits "
                "(each batch awaits one Kafka transaction per input partition — AddPartitionsToTxn, produce, "
                "AddOffsetsToTxn + TxnOffsetCommit, EndTxn — before its next fetch) or other processes took the CPU "
                f"(load average {' / '.join(f'{x:.1f}' for x in report['loadavg_start'])} at the start)"
                + (
                    f"; under cProfile the worker's main thread spent {idle:.0%} of its time idle in epoll"
                    if idle is not None
                    else ""
                )
                + "; `--diagnose` times the transaction phases."
            )
        if da.get("sink_seconds") is not None:
            parts.append(
                f"The sink, a second consumer of the same input in the same process, had committed all "
                f"{da['events']:,} offsets {da['sink_seconds']:.1f} s after ready "
                f"({fmt_rate(da['sink_events_per_second'])}); "
                f"it commits only after a file is written, and a partition's last, partly filled buffer is written "
                "after BIFROST_WAREHOUSE_FLUSH_SECONDS, so on a finite backlog that interval, not "
                "its consuming speed, "
                f"decides when the last offsets are committed."
            )
    if default and default.get("load"):
        lat = default["load"]
        p = lat["partials_latencies_s"]
        parts.append(
            f"Under load ({fmt_load(lat['load'])}), publish → committed window-partials snapshot took "
            f"{fmt_ms(quantile(p, 0.5))} at the median and {fmt_ms(quantile(p, 0.99))} at p99 over {len(p)} probes; "
            f"the per-router view (stage 2) showed a probe after {fmt_ms(quantile(lat['view_latencies_s'], 0.5))} "
            f"(median of {len(lat['view_latencies_s'])})."
        )
    mem = report.get("memory_check")
    if mem and mem.get("rss_change") is not None:
        parts.append(
            f"Memory: {fmt_mib(mem['rss_checkpoint_mib'])} after {mem['checkpoint']:,} events, "
            f"{fmt_mib(mem['rss_end_mib'])} after {mem['events']:,} ({mem['rss_change']:+.1%}). Stage 1 keeps a "
            "window while feedback may still arrive (the longer grace plus one window, ~1 day of "
            "event time) and stage 2 keeps "
            "8 days, so state grows with the event time the backlog spans "
            f"({mem['events'] / SIM_RATE_PER_SECOND / 3600:.1f} h "
            f"here, at the simulated {SIM_RATE_PER_SECOND:.0f} req/s): stage-1 partials went from "
            f"{mem.get('live_partials_checkpoint')} to {mem.get('live_partials_end')}."
        )
    parts.append(
        f"All processes (broker JVM, worker, the load child, this script) share {report['machine']['cpu_count']} CPUs "
        "with whatever else runs on the machine (see the load average); absolute rates are low-end, the ratio to the "
        "baseline measured in the same run travels better."
    )
    return " ".join(parts)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="routing events in the backlog (default 1,000,000)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_EVENTS:,} events, a 10 s load phase, 500,000 events in the memory check",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=DEFAULTS.partitions,
        help=f"input partitions (default {DEFAULTS.partitions}, the worker's default BIFROST_PARTITIONS)",
    )
    parser.add_argument("--max-records", type=int, default=10_000, help="baseline getmany max_records (default 10,000)")
    parser.add_argument(
        "--load-seconds", type=float, default=None, help="length of the load phase (default 20 s, --quick 10 s)"
    )
    parser.add_argument(
        "--load-fraction", type=float, default=0.5, help="load rate as a fraction of the measured ingest rate"
    )
    parser.add_argument(
        "--load-rate", type=float, default=None, help="fixed load rate in ev/s instead of --load-fraction"
    )
    parser.add_argument("--probes", type=int, default=240, help="latency probes during the load phase (default 240)")
    parser.add_argument(
        "--view-probe-every", type=int, default=10, help="also time every k-th probe in the HTTP view (0: none)"
    )
    parser.add_argument(
        "--memory-check", action="store_true", help="also run the default configuration over --memory-events"
    )
    parser.add_argument(
        "--memory-events", type=int, default=None, help="events of the memory check (default 5,000,000)"
    )
    parser.add_argument(
        "--no-worker-profile", action="store_true", help="skip the default configuration under cProfile"
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="run (a) with timing probes around stage 1 (bench/ingest_worker_diag.py): batch, fold, "
        "transaction phases, event-loop lag, aiokafka retries; (a)'s figures then come from "
        "that worker",
    )
    parser.add_argument("--no-fold", action="store_true", help="skip the in-process fold measurement")
    parser.add_argument("--keep", action="store_true", help="keep the run directory's warehouse files")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="baseline, (b) and (a) drains this many times, interleaved, on fresh groups; medians are "
        "reported (the warehouse wait and the load phase run once, in the last repeat)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="output folder (default bench/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = QUICK_EVENTS
    if args.load_seconds is None:
        args.load_seconds = 10.0 if args.quick else 20.0
    if args.memory_events is None:
        args.memory_events = 500_000 if args.quick else 5_000_000
    if args.events <= 0 or args.partitions <= 0 or args.probes < 1 or args.load_seconds <= 0 or args.repeats < 1:
        parser.error("--events, --partitions, --probes and --load-seconds must be positive")
    if not 0 < args.load_fraction <= 2:
        parser.error("--load-fraction must be in (0, 2]")
    return args


@contextmanager
def kafka() -> Iterator[tuple[str, LocalBroker | None]]:
    """``BIFROST_KAFKA_BOOTSTRAP`` if set, else our own broker (stopped on exit)."""
    external = os.environ.get("BIFROST_KAFKA_BOOTSTRAP", "").strip()
    if external:
        if not probe_kafka(external, timeout=10.0):
            raise SystemExit(f"BIFROST_KAFKA_BOOTSTRAP={external} does not answer Kafka requests")
        log.info("kafka: using external broker %s", external)
        yield external, None
        return
    broker = LocalBroker()
    log.info("kafka: starting a local broker (Kafka %s)", DEFAULT_KAFKA_VERSION)
    broker.start(timeout=120.0)
    try:
        log.info("kafka: local broker at %s (pid %s)", broker.bootstrap, broker.pid)
        yield broker.bootstrap, broker
    finally:
        log.info("kafka: stopping the local broker")
        broker.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    logging.getLogger("bifrost.devkafka").setLevel(logging.WARNING)
    n, partitions = args.events, args.partitions
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench{run_id}."
    topics = Topics(prefix)
    run_dir = Path(tempfile.mkdtemp(prefix="bifrost-bench-"))
    drain_timeout = max(180.0, n / 2_000)
    load = {
        "fraction": args.load_fraction,
        "rate": args.load_rate,
        "seconds": args.load_seconds,
        "probes": args.probes,
        "view_every": args.view_probe_every,
    }
    report: dict[str, Any] = {
        "command": " ".join(
            [".venv/bin/python", "bench/ingest_bench.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "events": n,
        "partitions": partitions,
        "topic": topics.routing_events,
        "run_dir": str(run_dir),
        "workload": {
            "routers": list(ROUTERS),
            "arms": ARMS,
            "sim_rate_per_second": SIM_RATE_PER_SECOND,
            "seed": args.seed,
        },
        "code": code_state(),
        "loadavg_start": os.getloadavg(),
        "load": load,
        "configurations": {},
        "repeats": args.repeats,
    }
    started = time.perf_counter()
    with ExitStack() as stack:
        bootstrap, broker = stack.enter_context(kafka())
        report["machine"] = machine_info(kafka_version(bootstrap, broker))
        broker_pid = broker.pid if broker is not None else None
        if broker is None:
            stack.callback(
                lambda: log.info("kafka: deleted %s", asyncio.run(delete_topics_with(bootstrap, [prefix, run_id])))
            )

        report["broker_warmup_seconds"] = asyncio.run(warm_up_broker(bootstrap, prefix))
        log.info("kafka: warmed up (internal topics) in %.1f s", report["broker_warmup_seconds"])
        t0 = time.perf_counter()
        workload = build_workload(n, args.seed)
        report["generate_seconds"] = time.perf_counter() - t0
        report["mean_event_bytes"] = workload.mean_bytes
        asyncio.run(create_topic(bootstrap, topics.routing_events, partitions))
        produce_seconds = asyncio.run(produce(bootstrap, topics.routing_events, workload))
        report["produce"] = {"seconds": produce_seconds, "events_per_second": n / produce_seconds}
        ends = workload.end_offsets()
        ends.update({p: ends.get(p, 0) for p in range(partitions)})

        report["precreated_topics"] = asyncio.run(create_stage2_sources(bootstrap, topics, partitions))

        def configuration(name: str, title: str, warehouse: bool, diagnose: bool = False) -> Configuration:
            return make_configuration(
                name,
                title,
                bootstrap=bootstrap,
                prefix=prefix,
                app_id=f"bench-{run_id}-{name}",
                partitions=partitions,
                warehouse=warehouse,
                run_dir=run_dir,
                diagnose=diagnose,
            )

        def run(config: Configuration, *, load_phase: dict[str, Any] | None, sink: bool) -> dict[str, Any]:
            return asdict(
                asyncio.run(
                    run_configuration(
                        config,
                        bootstrap=bootstrap,
                        topic=topics.routing_events,
                        ends=ends,
                        broker_pid=broker_pid,
                        drain_timeout=drain_timeout,
                        load=load_phase,
                        run_dir=run_dir,
                        sink=sink,
                    )
                )
            )

        # Each repeat: baseline, (b), (a) on fresh consumer groups; ratios are taken within a repeat, so
        # slow drifts in what else runs on the machine hit both sides. Only the last repeat runs the
        # warehouse wait and the load phase of (a) (its events stay in the topic, so it comes last).
        baselines: list[dict[str, Any]] = []
        runs: dict[str, list[dict[str, Any]]] = {"default": [], "ingest-alone": []}
        for r in range(1, args.repeats + 1):
            final = r == args.repeats
            tag = "" if final else f"-r{r}"
            log.info("baseline (repeat %d/%d): raw aiokafka consumer from the beginning", r, args.repeats)
            baseline = asyncio.run(
                raw_baseline(bootstrap, topics.routing_events, partitions, n, args.max_records, broker_pid)
            )
            baselines.append(asdict(baseline))
            log.info(
                "baseline: %d events in %.2f s (%.0f ev/s)",
                baseline.events,
                baseline.seconds,
                baseline.events_per_second,
            )
            alone = configuration("ingest-alone" + tag, "(b) ingest alone: warehouse sink off", warehouse=False)
            runs["ingest-alone"].append(run(alone, load_phase=None, sink=False))
            if final and not args.no_worker_profile:
                profiled = configuration("profile", "default configuration under cProfile", warehouse=True)
                report["worker_profile"] = asdict(
                    asyncio.run(
                        profile_worker(
                            profiled,
                            bootstrap=bootstrap,
                            topic=topics.routing_events,
                            ends=ends,
                            broker_pid=broker_pid,
                            timeout=drain_timeout * 3,
                            run_dir=run_dir,
                        )
                    )
                )
            default = configuration(
                "default" + tag,
                "(a) default configuration: ingest + stage 2 + warehouse sink"
                + (" (instrumented: --diagnose)" if args.diagnose and final else ""),
                warehouse=True,
                diagnose=args.diagnose and final,
            )
            runs["default"].append(run(default, load_phase=load if final else None, sink=final))
            for name in runs:
                runs[name][-1]["fraction_of_baseline"] = (
                    runs[name][-1]["drain"]["ingest_events_per_second"] / baseline.events_per_second
                )

        report["baseline"] = dict(baselines[-1])
        report["baseline"]["runs_events_per_second"] = [b["events_per_second"] for b in baselines]
        report["baseline"]["median_events_per_second"] = median([b["events_per_second"] for b in baselines])
        for name, results in runs.items():  # (a) then (b), as in the brief
            c = results[-1]
            c["runs"] = [
                {
                    "name": x["name"],
                    "ingest_events_per_second": x["drain"]["ingest_events_per_second"],
                    "fraction_of_baseline": x["fraction_of_baseline"],
                    "views_after_drain_seconds": x["drain"]["views_after_drain_seconds"],
                    "worker_cpu_cores": x["drain"]["worker_cpu_cores"],
                    "broker_cpu_cores": x["drain"]["broker_cpu_cores"],
                    "loadavg_before": x["loadavg_before"],
                }
                for x in results
            ]
            c["ingest_events_per_second_median"] = median([x["drain"]["ingest_events_per_second"] for x in results])
            c["fraction_of_baseline_median"] = median([x["fraction_of_baseline"] for x in results])
            views = [x["drain"]["views_after_drain_seconds"] for x in results]
            c["views_after_drain_worst_seconds"] = None if None in views else max(views)
            report["configurations"][name] = c

        if args.memory_check:
            mem_prefix = f"bench{run_id}m."
            mem = make_configuration(
                "memory",
                "default configuration, memory check",
                bootstrap=bootstrap,
                prefix=mem_prefix,
                app_id=f"bench-{run_id}-memory",
                partitions=partitions,
                warehouse=True,
                run_dir=run_dir,
            )
            report["memory_check"] = asyncio.run(
                memory_check(
                    mem,
                    bootstrap=bootstrap,
                    events=args.memory_events,
                    checkpoint=min(n, args.memory_events),
                    seed=args.seed + 1,
                    broker_pid=broker_pid,
                )
            )

    if not args.no_fold:
        report["fold"] = run_fold_benchmark(workload, topics.routing_events)
    report["wall_seconds"] = time.perf_counter() - started
    report["goals"] = goals(report)
    report["interpretation"] = interpret(report)
    rows = summary_rows(report)
    print_table(rows, report["goals"])
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "ingest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_markdown(report, rows, report["goals"], args.results / "ingest.md")
    if not args.keep:
        for warehouse in run_dir.glob("*/var/warehouse"):
            shutil.rmtree(warehouse, ignore_errors=True)
    log.info(
        "wrote %s and %s in %.0f s (worker logs and profile in %s)",
        args.results / "ingest.json",
        args.results / "ingest.md",
        report["wall_seconds"],
        run_dir,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
