"""Ingest throughput of one bifrost worker process against a raw aiokafka baseline.

One run does everything against the same freshly produced topic:

1. generate N simulated routing events (``bifrost.client.simulator``), encode them once;
2. produce them to ``<prefix>routing-events`` (created with ``--partitions`` partitions);
3. **baseline**: a raw ``AIOKafkaConsumer`` reads all N from the beginning
   (``getmany``) and ``orjson.loads`` every value;
4. **system under test**: ``python -m bifrost.cli.main worker`` as a subprocess, timed
   from "ready" (``/health`` is 200 and it owns every input partition) until
   ``bifrost_ingest_events_total`` reaches N; then the end-to-end latency of small probe
   batches (publish → visible in ``/v1/routers/<router>/metrics``);
5. **fold only**: ``BatchFolder.fold`` in-process over the same bytes in batches of 10k,
   timed, then again under cProfile;
6. optionally the worker again under ``python -m cProfile`` (a fresh consumer group).

Results: a table on stdout, ``bench/results/ingest.json`` and ``bench/results/ingest.md``.

    .venv/bin/python bench/ingest_bench.py [--events N | --quick] [--partitions 4]

Uses ``BIFROST_KAFKA_BOOTSTRAP`` when set, otherwise starts its own ``LocalBroker``.
"""

from __future__ import annotations

import machine  # bench/machine.py (scripts run from bench/ on sys.path)
from profiling import top_functions

import argparse
import array
import asyncio
import cProfile
import datetime as dt
import itertools
import json
import logging
import os
import platform
import pstats
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiokafka
import faust
import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bifrost.client import Publisher
from bifrost.client.simulator import TrafficConfig, generate
from bifrost.config import Settings
from bifrost.devkafka import DEFAULT_KAFKA_VERSION, LocalBroker, probe_kafka
from bifrost.schemas import Bucket, RoutingEvent, Topics, encode
from bifrost.streams.aggregates.partial import WindowPartial, decode_partial, encode_partial
from bifrost.streams.ingest.fold import BatchFolder, InputRecord, PartitionState

log = logging.getLogger("bench.ingest")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
REPO_DIR = BENCH_DIR.parent

ROUTERS = ("router-a", "router-b", "router-c", "router-d")
ARMS = {"v12": 0.80, "v13": 0.15, "v14-canary": 0.05}
SIM_RATE_PER_SECOND = 500.0  # simulated aggregate request rate (event time), all routers
PROBE_ROUTER = "bench-probe"
GOAL_EVENTS_PER_SECOND = 50_000.0
GOAL_FRACTION_OF_BASELINE = 0.5
FOLD_BATCH = 10_000


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


def build_workload(n: int, seed: int) -> Workload:
    """Generate ``n`` routing events with the simulator and encode each once."""
    keys: list[bytes] = []
    values: list[bytes] = []
    for item in itertools.islice(generate(traffic_config(n, time.time(), seed)), n):
        assert item.event is not None
        keys.append(item.event.request_id.encode())
        values.append(encode(item.event))
        if len(values) % 200_000 == 0:
            log.info("generate: %d/%d events encoded", len(values), n)
    if len(values) != n:
        raise RuntimeError(f"simulator produced {len(values)} events, wanted {n}")
    return Workload(keys, values)


# --------------------------------------------------------------------------- kafka


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create ``topic`` with ``partitions`` partitions (replication 1)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


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


async def produce(bootstrap: str, topic: str, workload: Workload, chunk: int = 50_000) -> float:
    """Produce every event (keyed by request id); record partition/offset; return seconds."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=50, max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024, client_id="bench-producer",
    )
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
            log.info("produce: %d/%d acknowledged (%.0f ev/s)", hi, n, hi / elapsed)
        return time.perf_counter() - started
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


async def raw_baseline(bootstrap: str, topic: str, partitions: int, n: int, max_records: int,
                       broker_pid: int | None) -> BaselineResult:
    """Read all ``n`` records from the beginning with ``getmany`` and ``orjson.loads`` each."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", client_id="bench-baseline",
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


# --------------------------------------------------------------------------- worker process


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text exposition → {metric name: [(labels, value), ...]}."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
    label_re = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = line_re.match(line)
        if match:
            labels = dict(label_re.findall(match.group(2) or ""))
            out.setdefault(match.group(1), []).append((labels, float(match.group(3))))
    return out


def metric_sum(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    """Sum of all series of ``name``."""
    return sum(value for _, value in metrics.get(name, []))


def histogram_quantile(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, q: float) -> float | None:
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


@dataclass
class WorkerProcess:
    """One ``bifrost-opt worker`` child (optionally under cProfile) in its own session."""

    settings: Settings
    log_path: Path
    profile_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    spawned_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
        env.update(self.settings.to_env())
        command = [sys.executable]
        if self.profile_path is not None:
            command += ["-m", "cProfile", "-o", str(self.profile_path)]
        command += ["-m", "bifrost.cli.main", "worker"]
        with self.log_path.open("ab") as sink:
            self.process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        self.spawned_at = time.perf_counter()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        status, body = http_get(self.url + "/metrics")
        return parse_prometheus(body.decode()) if status == 200 else {}

    def owned_inputs(self) -> int:
        """Input partitions assigned, once recovered (``/health`` is 200), else 0."""
        status, body = http_get(self.url + "/health")
        if status != 200:
            return 0
        prefix = self.settings.topics.routing_events + ":"
        return sum(1 for tp in orjson.loads(body).get("assigned", []) if tp.startswith(prefix))

    def router_count(self, router: str) -> int:
        """Requests of ``router`` in the per-router view (0 while it does not exist)."""
        status, body = http_get(f"{self.url}/v1/routers/{router}/metrics?since=30d")
        if status != 200:
            return 0
        return sum(stats["count"] for stats in orjson.loads(body)["arms"].values())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Signal the process group; SIGKILL if it has not exited within ``timeout``; return code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker pid=%d did not exit %.0f s after signal %d; killing", self.process.pid, timeout, sig)
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


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


def wait_for(probe: Callable[[], Any], *, timeout: float, interval: float, what: str, worker: WorkerProcess) -> Any:
    """Poll ``probe`` until truthy; fail with the worker's log tail on timeout or death."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = probe()
        if value:
            return value
        if not worker.alive():
            raise RuntimeError(f"worker exited while waiting for {what}:\n{worker.log_tail()}")
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}:\n{worker.log_tail()}")


def worker_settings(bootstrap: str, prefix: str, partitions: int, data_dir: Path, app_id: str) -> Settings:
    """Production defaults, except: fresh app id (consumer group), our topic prefix, memory store.

    The warehouse sink is off: it is a separate consumer of the same input and would
    share the worker's core; this measures ingest (validate, fold, per-router merge).
    """
    return Settings(
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        app_id=app_id,
        partitions=partitions,
        store="memory://",
        data_dir=str(data_dir),
        web_port=free_port(),
        worker_url="",
        log_level="info",
        warehouse_enabled=False,
    )


@dataclass(slots=True)
class WorkerResult:
    """The worker's drain of the backlog, its batch histogram, and probe latencies."""

    events: int
    startup_seconds: float
    folded_before_ready: int
    seconds: float
    events_per_second: float
    spawn_to_drained_seconds: float
    batches: int
    mean_batch_records: float | None
    batch_seconds_mean: float | None
    batch_seconds_p50: float | None
    batch_seconds_p99: float | None
    dlq: int
    duplicates: int
    worker_cpu_cores: float | None = None
    broker_cpu_cores: float | None = None
    views_total: int = 0
    views_complete_after_drain_seconds: float | None = None
    e2e_samples_seconds: list[float] = field(default_factory=list)
    e2e_ack_seconds: list[float] = field(default_factory=list)
    e2e_probe_events: int = 0
    e2e_median_seconds: float | None = None
    exit_code: int | None = None


def drain(worker: WorkerProcess, n: int, partitions: int, broker_pid: int | None, poll: float = 0.25) -> dict[str, Any]:
    """Wait until ready, then until ``n`` events are folded; progress every ~2 s; CPU use of both sides."""
    wait_for(lambda: worker.owned_inputs() == partitions, timeout=180, interval=0.05,
             what=f"worker to own all {partitions} input partitions", worker=worker)
    ready_at = time.perf_counter()
    worker_pid = worker.process.pid if worker.process else None
    cpu_at_ready = (cpu_seconds(worker_pid), cpu_seconds(broker_pid))
    folded_at_ready = int(metric_sum(worker.metrics(), "bifrost_ingest_events_total"))
    log.info("worker: ready %.1f s after spawn, %d events already folded", ready_at - worker.spawned_at, folded_at_ready)
    last_log = ready_at
    while True:
        metrics = worker.metrics()
        folded = int(metric_sum(metrics, "bifrost_ingest_events_total"))
        now = time.perf_counter()
        if folded >= n:
            seconds = now - ready_at
            return {
                "ready_at": ready_at, "done_at": now, "folded_at_ready": folded_at_ready, "metrics": metrics,
                "worker_cpu": cpu_share(cpu_at_ready[0], cpu_seconds(worker_pid), seconds),
                "broker_cpu": cpu_share(cpu_at_ready[1], cpu_seconds(broker_pid), seconds),
            }
        if not worker.alive():
            raise RuntimeError(f"worker exited after folding {folded}/{n}:\n{worker.log_tail()}")
        if now - last_log >= 2.0:
            last_log = now
            log.info("worker: %d/%d folded (%.0f ev/s since ready)", folded, n, (folded - folded_at_ready) / (now - ready_at))
        time.sleep(poll)


def summarize_drain(worker: WorkerProcess, n: int, progress: dict[str, Any]) -> WorkerResult:
    """Throughput and batch statistics from the drain's final /metrics snapshot."""
    metrics = progress["metrics"]
    seconds = progress["done_at"] - progress["ready_at"]
    measured = n - progress["folded_at_ready"]
    batches = int(metric_sum(metrics, "bifrost_ingest_batch_seconds_count"))
    records = metric_sum(metrics, "bifrost_ingest_batch_records_sum")
    batch_sum = metric_sum(metrics, "bifrost_ingest_batch_seconds_sum")
    return WorkerResult(
        events=n,
        startup_seconds=progress["ready_at"] - worker.spawned_at,
        folded_before_ready=progress["folded_at_ready"],
        seconds=seconds,
        events_per_second=measured / seconds if seconds > 0 else float("nan"),
        spawn_to_drained_seconds=progress["done_at"] - worker.spawned_at,
        batches=batches,
        mean_batch_records=records / batches if batches else None,
        batch_seconds_mean=batch_sum / batches if batches else None,
        batch_seconds_p50=histogram_quantile(metrics, "bifrost_ingest_batch_seconds", 0.50),
        batch_seconds_p99=histogram_quantile(metrics, "bifrost_ingest_batch_seconds", 0.99),
        dlq=int(metric_sum(metrics, "bifrost_dlq_events_total")),
        duplicates=int(metric_sum(metrics, "bifrost_ingest_duplicates_total")),
        worker_cpu_cores=progress["worker_cpu"],
        broker_cpu_cores=progress["broker_cpu"],
    )


def wait_views_complete(worker: WorkerProcess, n: int, drained_at: float, timeout: float = 120.0) -> tuple[int, float | None]:
    """Sum of per-router view counts once it reaches ``n`` (stage 2 caught up), and when."""
    deadline = time.perf_counter() + timeout
    total = 0
    while time.perf_counter() < deadline:
        total = sum(worker.router_count(router) for router in ROUTERS)
        if total >= n:
            return total, time.perf_counter() - drained_at
        time.sleep(0.1)
    return total, None


def probe_events(sample: int, size: int) -> list[RoutingEvent]:
    """A small batch for the probe router, stamped now."""
    now = time.time()
    return [
        RoutingEvent(
            request_id=f"probe-{sample}-{i}", ts=now, router_id=PROBE_ROUTER, arm="v12", model="mid-general",
            provider="acme", bucket=Bucket.MID, latency_ms=500.0, cost_usd=0.001, success=True,
        )
        for i in range(size)
    ]


async def end_to_end(worker: WorkerProcess, topics: Topics, bootstrap: str, samples: int, size: int) -> tuple[list[float], list[float]]:
    """Publish → visible in the per-router view, ``samples`` times; (visible, acked) seconds."""
    visible: list[float] = []
    acked: list[float] = []
    async with Publisher(bootstrap, topics, linger_ms=0) as publisher:
        for sample in range(samples):
            events = probe_events(sample, size)
            want = size * (sample + 1)
            started = time.perf_counter()
            for event in events:
                await publisher.publish(event)
            await publisher.flush()
            acked.append(time.perf_counter() - started)
            while await asyncio.to_thread(worker.router_count, PROBE_ROUTER) < want:
                if time.perf_counter() - started > 60:
                    raise RuntimeError(f"probe {sample} not visible after 60 s:\n{worker.log_tail()}")
                await asyncio.sleep(0.01)
            visible.append(time.perf_counter() - started)
            log.info("e2e: probe %d visible after %.3f s (acked after %.3f s)", sample, visible[-1], acked[-1])
            await asyncio.sleep(1.0)
    return visible, acked


def run_worker_benchmark(bootstrap: str, prefix: str, partitions: int, n: int, run_dir: Path,
                         probe_samples: int, probe_size: int, broker_pid: int | None) -> WorkerResult:
    """Start the worker, drain the backlog, check the views, measure e2e; always stop it."""
    settings = worker_settings(bootstrap, prefix, partitions, run_dir / "worker", prefix + "worker")
    worker = WorkerProcess(settings, run_dir / "worker.log").start()
    log.info("worker: pid %d app_id=%s port=%d log=%s", worker.process.pid, settings.app_id, settings.web_port, worker.log_path)  # type: ignore[union-attr]
    try:
        progress = drain(worker, n, partitions, broker_pid)
        result = summarize_drain(worker, n, progress)
        log.info("worker: drained %d events in %.2f s after ready (%.0f ev/s)", n, result.seconds, result.events_per_second)
        result.views_total, result.views_complete_after_drain_seconds = wait_views_complete(worker, n, progress["done_at"])
        log.info("worker: per-router views show %d events", result.views_total)
        visible, acked = asyncio.run(end_to_end(worker, settings.topics, bootstrap, probe_samples, probe_size))
        result.e2e_samples_seconds, result.e2e_ack_seconds = visible, acked
        result.e2e_probe_events = probe_size
        result.e2e_median_seconds = statistics.median(visible) if visible else None
    finally:
        code = worker.stop()
    result.exit_code = code
    return result


@dataclass(slots=True)
class WorkerProfile:
    """The worker under ``python -m cProfile`` (a second, fresh consumer group)."""

    ok: bool
    note: str
    seconds: float | None = None
    events_per_second: float | None = None
    exit_code: int | None = None
    profiled_seconds: float | None = None
    top_tottime: list[dict[str, Any]] = field(default_factory=list)
    top_bifrost_cumulative: list[dict[str, Any]] = field(default_factory=list)
    by_package: list[dict[str, Any]] = field(default_factory=list)


def run_worker_profile(bootstrap: str, prefix: str, partitions: int, n: int, run_dir: Path, broker_pid: int | None) -> WorkerProfile:
    """Drain the same backlog with a profiled worker; SIGINT it and read its profile."""
    settings = worker_settings(bootstrap, prefix, partitions, run_dir / "worker-profiled", prefix + "worker-profiled")
    profile_path = run_dir / "worker.prof"
    worker = WorkerProcess(settings, run_dir / "worker-profiled.log", profile_path=profile_path).start()
    log.info("worker-profile: pid %d under cProfile -> %s", worker.process.pid, profile_path)  # type: ignore[union-attr]
    seconds = rate = None
    try:
        progress = drain(worker, n, partitions, broker_pid)
        seconds = progress["done_at"] - progress["ready_at"]
        rate = (n - progress["folded_at_ready"]) / seconds
        log.info("worker-profile: drained in %.2f s under cProfile (%.0f ev/s)", seconds, rate)
    finally:
        code = worker.stop(signal.SIGINT, timeout=90)
    if not profile_path.is_file() or profile_path.stat().st_size == 0:
        return WorkerProfile(False, f"no profile written (exit code {code}); SIGINT shutdown not clean enough for cProfile",
                             seconds, rate, code)
    stats = pstats.Stats(str(profile_path))
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    return WorkerProfile(
        True, f"profile written on SIGINT (exit code {code}); covers start-up, drain and shutdown", seconds, rate, code,
        profiled_seconds=total,
        top_tottime=top_functions(stats, "tottime", 15),
        top_bifrost_cumulative=top_functions(stats, "cumulative", 10, only=is_bifrost),
        by_package=tottime_by_package(stats),
    )


# --------------------------------------------------------------------------- pure fold


class DictStore:
    """A dict standing in for the table, like ``tests/streams/ingest/test_fold.py``."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def load(self, key: str) -> WindowPartial | None:
        raw = self.data.get(key)
        return None if raw is None else decode_partial(raw)

    def apply(self, changed: dict[str, WindowPartial], expired: list[str]) -> None:
        for key, partial in changed.items():
            self.data[key] = encode_partial(partial)
        for key in expired:
            self.data.pop(key, None)


def input_batches(workload: Workload, topic: str, size: int) -> list[list[InputRecord]]:
    """The produced records, in produce order (offset order per partition), in batches."""
    records = [
        InputRecord(topic, workload.partitions[i], workload.offsets[i], workload.keys[i], workload.values[i])
        for i in range(len(workload))
    ]
    return [records[lo:lo + size] for lo in range(0, len(records), size)]


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
        folder = own.group(1) if own else filename[len(repo):].split(os.sep, 1)[0]
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
        for name, t in sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:12]
    ]


def run_fold_benchmark(workload: Workload, topic: str) -> dict[str, Any]:
    """Timed pass (no profiler), then a cProfile pass; the profile's top lists."""
    batches = input_batches(workload, topic, FOLD_BATCH)
    timed = fold_pass(batches, topic)
    log.info("fold: %d events, fold-only %.0f ev/s, fold+encode %.0f ev/s, %d partials",
             timed.events, timed.fold_events_per_second, timed.with_store_events_per_second, timed.partials)
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


def machine_info(kafka: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu_model, commit = machine.cpu_model(), machine.commit()
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "kafka": kafka,
        "aiokafka": aiokafka.__version__,
        "faust_streaming": faust.__version__,
        "msgspec": msgspec.__version__,
        "orjson": orjson.__version__,
        "git_commit": commit,
    }


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ev/s"


def fmt_cores(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} cores"


def fmt_s(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if unit == "ms" else f"{value:.2f} s"


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, note) rows shared by the console table and the Markdown file."""
    b, w, f = report["baseline"], report["worker"], report["fold"]
    ratio = report["ratio_worker_to_baseline"]
    rows = [
        ("events", f"{report['events']:,}", f"{report['partitions']} partitions, {len(ROUTERS)} routers, {len(ARMS)} arms, {report['mean_event_bytes']:.0f} B/event"),
        ("produce (not measured quantity)", fmt_rate(report["produce"]["events_per_second"]), f"{report['produce']['seconds']:.1f} s, aiokafka acks=1, linger 50 ms"),
        ("raw baseline (getmany + orjson.loads)", fmt_rate(b["events_per_second"]),
         f"{b['seconds']:.2f} s wall, max_records={b['max_records']}; CPU: consumer {fmt_cores(b['consumer_cpu_cores'])}, broker {fmt_cores(b['broker_cpu_cores'])}"),
        ("worker (1 process)", fmt_rate(w["events_per_second"]),
         f"{w['seconds']:.2f} s from ready to all folded (ready {w['startup_seconds']:.1f} s after spawn, {w['folded_before_ready']:,} folded before); "
         f"CPU: worker {fmt_cores(w['worker_cpu_cores'])}, broker {fmt_cores(w['broker_cpu_cores'])}"),
        ("worker / baseline", f"{ratio:.1%}", f"goal ≥ {GOAL_FRACTION_OF_BASELINE:.0%}: {'met' if report['goals']['fraction_met'] else 'NOT met'}"),
        ("worker goal", f"≥ {GOAL_EVENTS_PER_SECOND:,.0f} ev/s", "met" if report["goals"]["rate_met"] else "NOT met"),
        ("fold only (in-process, no Kafka)", fmt_rate(f["fold_only_events_per_second"]), f"BatchFolder.fold, batches of {f['batch_size']:,}"),
        ("fold + encode partials", fmt_rate(f["fold_plus_encode_events_per_second"]), "fold plus encode_partial of changed partials per batch"),
        ("fold only under cProfile", fmt_rate(f["profiled_fold_events_per_second"]), "profiler overhead included (the profile below)"),
        ("batch fold time P50 / P99", f"{fmt_s(w['batch_seconds_p50'], 'ms')} / {fmt_s(w['batch_seconds_p99'], 'ms')}",
         f"histogram buckets (coarse); mean {fmt_s(w['batch_seconds_mean'], 'ms')}, {w['batches']} batches, mean {w['mean_batch_records'] or 0:,.0f} records"),
        ("end-to-end latency (median)", fmt_s(w["e2e_median_seconds"], "ms"),
         f"{len(w['e2e_samples_seconds'])} probes of {w['e2e_probe_events']} events, publish → per-router view: "
         + ", ".join(f"{s * 1000:.0f}" for s in w["e2e_samples_seconds"]) + " ms"),
        ("correctness", f"{w['views_total']:,} in views", f"DLQ {w['dlq']}, duplicates {w['duplicates']}; views complete "
         f"{fmt_s(w['views_complete_after_drain_seconds'], 'ms')} after the drain"),
    ]
    if report.get("worker_profile"):
        wp = report["worker_profile"]
        rows.append(("worker under cProfile", fmt_rate(wp.get("events_per_second")), wp["note"]))
    return rows


def print_table(rows: list[tuple[str, str, str]]) -> None:
    """A plain fixed-width table on stdout."""
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    print()
    for name, value, note in rows:
        print(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {note}")
    print()


def profile_markdown(title: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"**{title}**", "", "| function | ncalls | tottime s | cumtime s |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['function']}` | {r['ncalls']:,} | {r['tottime']:.3f} | {r['cumtime']:.3f} |" for r in rows]
    return lines + [""]


def write_markdown(report: dict[str, Any], rows: list[tuple[str, str, str]], path: Path) -> None:
    """``ingest.md``: the table, the profiles, and the interpretation paragraph."""
    m = report["machine"]
    lines = [
        "# Ingest benchmark",
        "",
        f"{m['date']} · {m['cpu_count']} CPUs ({m['cpu_model']}) · Python {m['python']} · Kafka {m['kafka']} · "
        f"aiokafka {m['aiokafka']} · faust-streaming {m['faust_streaming']} · commit {m['git_commit']}",
        "",
        f"Command: `{report['command']}`",
        "",
        "| measure | value | note |",
        "|---|---:|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", "## Profile: pure fold (cProfile, in-process)", ""]
    lines += profile_markdown("Top 10 by cumulative time", report["fold"]["top_cumulative"])
    lines += profile_markdown("Top 10 by own time (tottime)", report["fold"]["top_tottime"])
    wp = report.get("worker_profile")
    if wp:
        lines += ["## Profile: whole worker process (python -m cProfile, main thread)", "", wp["note"], ""]
        if wp["ok"]:
            lines += ["| package | own time s | share |", "|---|---:|---:|"]
            lines += [f"| {r['package']} | {r['tottime']:.2f} | {r['share']:.0%} |" for r in wp["by_package"]]
            lines += [""]
            lines += profile_markdown("Top 15 by own time (tottime)", wp["top_tottime"])
            lines += profile_markdown("bifrost functions, top 10 by cumulative time (async ones include time suspended)",
                                      wp["top_bifrost_cumulative"])
    lines += ["## Interpretation", "", report.get("interpretation", "").strip(), ""]
    path.write_text("\n".join(lines))


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="routing events to produce (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="100,000 events")
    parser.add_argument("--partitions", type=int, default=4, help="input partitions (default 4)")
    parser.add_argument("--max-records", type=int, default=10_000, help="baseline getmany max_records (default 10,000)")
    parser.add_argument("--probes", type=int, default=5, help="end-to-end latency samples (default 5)")
    parser.add_argument("--probe-size", type=int, default=10, help="events per probe (default 10)")
    parser.add_argument("--no-worker-profile", action="store_true", help="skip the second worker run under cProfile")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="output folder (default bench/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 100_000
    if args.events <= 0 or args.partitions <= 0:
        parser.error("--events and --partitions must be positive")
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
        log.info("kafka: local broker at %s", broker.bootstrap)
        yield broker.bootstrap, broker
    finally:
        log.info("kafka: stopping the local broker")
        broker.stop()


def package_shares(report: dict[str, Any]) -> dict[str, float]:
    """Share of the profiled worker's own time by package (empty without a worker profile)."""
    wp = report.get("worker_profile") or {}
    return {row["package"]: row["share"] for row in wp.get("by_package", [])}


def interpret(report: dict[str, Any]) -> str:
    """One paragraph derived from the numbers, so a re-run rewrites it consistently."""
    b, w, f = report["baseline"], report["worker"], report["fold"]
    ratio = report["ratio_worker_to_baseline"]
    goals = report["goals"]
    fold_share = w["events_per_second"] / f["fold_plus_encode_events_per_second"] if f["fold_plus_encode_events_per_second"] else 0.0
    text = (
        f"One worker process folded {report['events']:,} events at {w['events_per_second']:,.0f} ev/s, "
        f"{ratio:.0%} of the raw consumer baseline ({b['events_per_second']:,.0f} ev/s, which only fetches and "
        f"`orjson.loads` each record): the ≥ {GOAL_EVENTS_PER_SECOND:,.0f} ev/s goal is "
        f"{'met' if goals['rate_met'] else 'not met'} and the ≥ {GOAL_FRACTION_OF_BASELINE:.0%}-of-baseline goal is "
        f"{'met' if goals['fraction_met'] else 'not met'}. "
    )
    if w["worker_cpu_cores"] is not None:
        text += (f"The worker used {w['worker_cpu_cores']:.2f} CPU cores while draining (one Python thread does all the "
                 f"work, so ~1.0 means it is CPU-bound), the broker {fmt_cores(w['broker_cpu_cores'])}. ")
    text += (
        f"The pure fold runs at {f['fold_only_events_per_second']:,.0f} ev/s in-process "
        f"({f['fold_plus_encode_events_per_second']:,.0f} ev/s with encoding the changed partials), so folding explains "
        f"only about {fold_share:.0%} of the worker's time per event; the mean batch took "
        f"{fmt_s(w['batch_seconds_mean'], 'ms')} for {w['mean_batch_records'] or 0:,.0f} records. "
    )
    shares = package_shares(report)
    if shares:
        bifrost = sum(v for k, v in shares.items() if k.startswith("bifrost."))
        machinery = sum(shares.get(k, 0.0) for k in ("faust", "mode", "stdlib asyncio", "aiokafka"))
        verdict = (
            "the consumer and stream machinery dominates, not the aggregation"
            if machinery > bifrost
            else "our own code (decode, fold, encode) is now the larger share"
        )
        text += (
            f"Under cProfile, {bifrost:.0%} of the worker's own time is in bifrost code and {machinery:.0%} in "
            f"faust, mode, asyncio and aiokafka (idle in epoll: {shares.get('idle: waiting in epoll', 0.0):.0%}): "
            f"{verdict}. "
        )
    text += (
        f"All processes (broker JVM, worker, this script) share {report['machine']['cpu_count']} CPUs and run one after "
        "another, not concurrently; absolute numbers are low-end, the ratio travels better. The end-to-end latency "
        "is bounded by the ingest batch window (`BIFROST_BATCH_WITHIN_SECONDS`, 0.25 s by default): a partly "
        "filled batch is processed when the poll returns, at the latest after that window."
    )
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    logging.getLogger("bifrost.devkafka").setLevel(logging.WARNING)
    n, partitions = args.events, args.partitions
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topics = Topics(prefix)
    run_dir = Path(tempfile.mkdtemp(prefix="bifrost-bench-"))
    report: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", "bench/ingest_bench.py", *(argv if argv is not None else sys.argv[1:])]),
        "events": n, "partitions": partitions, "topic": topics.routing_events, "run_dir": str(run_dir),
        "workload": {"routers": list(ROUTERS), "arms": ARMS, "sim_rate_per_second": SIM_RATE_PER_SECOND, "seed": args.seed},
    }
    with ExitStack() as stack:
        bootstrap, broker = stack.enter_context(kafka())
        report["machine"] = machine_info(kafka_version(bootstrap, broker))
        broker_pid = broker.pid if broker is not None else None
        if broker is None:
            stack.callback(lambda: log.info("kafka: deleted %s", asyncio.run(delete_topics_with(bootstrap, [prefix]))))

        t0 = time.perf_counter()
        workload = build_workload(n, args.seed)
        report["generate_seconds"] = time.perf_counter() - t0
        report["mean_event_bytes"] = workload.mean_bytes
        log.info("generate: %d events in %.1f s, %.0f bytes each", n, report["generate_seconds"], workload.mean_bytes)

        asyncio.run(create_topic(bootstrap, topics.routing_events, partitions))
        produce_seconds = asyncio.run(produce(bootstrap, topics.routing_events, workload))
        report["produce"] = {"seconds": produce_seconds, "events_per_second": n / produce_seconds}

        log.info("baseline: raw aiokafka consumer from the beginning")
        baseline = asyncio.run(raw_baseline(bootstrap, topics.routing_events, partitions, n, args.max_records, broker_pid))
        report["baseline"] = asdict(baseline)
        log.info("baseline: %d events in %.2f s (%.0f ev/s)", baseline.events, baseline.seconds, baseline.events_per_second)

        worker = run_worker_benchmark(bootstrap, prefix, partitions, n, run_dir, args.probes, args.probe_size, broker_pid)
        report["worker"] = asdict(worker)
        if worker.views_total != n:
            log.warning("worker: the per-router views show %d events, not %d", worker.views_total, n)
        report["ratio_worker_to_baseline"] = worker.events_per_second / baseline.events_per_second
        report["goals"] = {
            "rate_met": worker.events_per_second >= GOAL_EVENTS_PER_SECOND,
            "fraction_met": report["ratio_worker_to_baseline"] >= GOAL_FRACTION_OF_BASELINE,
        }

        if not args.no_worker_profile:
            report["worker_profile"] = asdict(run_worker_profile(bootstrap, prefix, partitions, n, run_dir, broker_pid))

    report["fold"] = run_fold_benchmark(workload, topics.routing_events)
    report["interpretation"] = interpret(report)
    rows = summary_rows(report)
    print_table(rows)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "ingest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_markdown(report, rows, args.results / "ingest.md")
    log.info("wrote %s and %s (worker logs and profiles in %s)", args.results / "ingest.json", args.results / "ingest.md", run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
