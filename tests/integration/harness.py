"""Real processes for integration tests (and the benchmarks): workers as subprocesses, polling helpers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from bifrost.client.simulator import SimulationReport, TrafficConfig, anchored, simulate
from bifrost.config import Settings
from bifrost.devkafka import free_listener_port
from bifrost.schemas import DeadLetter
from bifrost.schemas.codec import decode_as

T = TypeVar("T")

log = logging.getLogger("tests.harness")

#: Prometheus samples by name: ``[(labels, value), ...]`` (see :func:`metric_samples`).
Samples = dict[str, list[tuple[dict[str, str], float]]]


def free_port() -> int:
    """A port for a worker's web server, outside the ephemeral range (see devkafka)."""
    return free_listener_port()


def isolated_settings(bootstrap: str, **overrides: Any) -> Settings:
    """Settings with a fresh app id and topic prefix, so tests never share state."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = dict(
        kafka_bootstrap=bootstrap,
        app_id=f"bifrost-test-{tag}",
        topic_prefix=f"t{tag}.",
        partitions=4,
        batch_within_seconds=0.1,
        session_timeout_seconds=6.0,
    )
    values.update(overrides)
    return Settings.from_env({}, **values)


def child_env(bifrost: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its BIFROST_* variables, plus ``bifrost``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env.update(bifrost)
    return env


def settings_env(settings: Settings) -> dict[str, str]:
    """BIFROST_* variables that reproduce ``settings`` in a child process."""
    return child_env(settings.to_env())


def worker_command() -> list[str]:
    """``bifrost-opt worker``, run as the module (no console script needed)."""
    return [sys.executable, "-m", "bifrost.cli.main", "worker"]


def input_partitions(settings: Settings, health: Mapping[str, Any]) -> set[str]:
    """The routing-events partitions (``topic:partition``) a worker's ``/health`` lists as assigned."""
    prefix = settings.topics.routing_events + ":"
    return {tp for tp in health.get("assigned", []) if tp.startswith(prefix)}


def metric_samples(text: str) -> Samples:
    """Prometheus text exposition → {sample name: [(labels, value), ...]} (prometheus-client's parser)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def metric_sum(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the series of ``name`` whose labels include ``labels``."""
    want = labels.items()
    return sum(value for have, value in samples.get(name, []) if want <= have.items())


@dataclass
class WorkerProcess:
    """One `bifrost-opt worker` child process, in its own session (process group).

    By default the child gets every setting of ``settings`` as BIFROST_* variables and runs
    :func:`worker_command`; ``env`` (its only BIFROST_* variables), ``command`` and ``cwd``
    change that (the ingest benchmark runs it with only what it sets, under cProfile, in its
    own working directory).
    """

    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    command: list[str] = field(default_factory=worker_command)
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env=settings_env(self.settings) if self.env is None else child_env(self.env),
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                body = response.read()
                if response.headers.get_content_type() != "application/json":
                    return response.status, body.decode()
                return response.status, json.loads(body)
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, body.decode(errors="replace")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def health(self) -> dict[str, Any] | None:
        status, body = self.get("/health")
        return body if status == 200 else None

    def owns_inputs(self) -> set[str]:
        return input_partitions(self.settings, self.health() or {})

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._close_log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Signal the process group; SIGKILL if it has not exited within ``timeout``. The exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("worker pid=%d did not exit %.0f s after signal %d; killing", process.pid, timeout, sig)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:  # exited between the poll and the signal
                process.wait(timeout=10)
        self._close_log()
        return process.returncode

    def _close_log(self) -> None:
        if self._log:
            self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"
) -> T: ...


async def eventually(
    probe: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Poll ``probe`` (a function or a coroutine function) until it returns a truthy value, and return
    that (so never None); fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")


def arm_counts(worker: WorkerProcess, router: str, *, since: str = "30d") -> dict[str, int]:
    status, body = worker.get(f"/v1/routers/{urllib.parse.quote(router, safe='')}/metrics?since={since}")
    if status != 200:
        return {}
    return {arm: stats["count"] for arm, stats in body["arms"].items()}


def worker_metrics(worker: WorkerProcess) -> Samples:
    """The worker's ``/metrics`` (empty when it does not answer)."""
    status, text = worker.get("/metrics")
    return metric_samples(text) if status == 200 else {}


async def read_dead_letters(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[DeadLetter]:
    """Read the whole DLQ topic (waits until at least ``expected`` records arrived)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                letters.extend(decode_as(r.value, DeadLetter) for r in records)
            tps = consumer.assignment()
            if len(letters) >= expected and tps:
                ends = await consumer.end_offsets(list(tps))
                if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                    return letters
        return letters
    finally:
        await consumer.stop()


async def collect(bootstrap: str, topic: str, value_type: type[Any], want: int, timeout: float = 90.0) -> list[Any]:
    """Values of ``topic`` from the beginning, until ``want`` arrived or ``timeout`` passed."""
    from bifrost.client.rollout import follow

    found: list[Any] = []

    async def run() -> None:
        async for value in follow(bootstrap, topic, value_type):
            found.append(value)
            if len(found) >= want:
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        pass
    return found


@asynccontextmanager
async def simulated_traffic(
    settings: Settings, config: TrafficConfig, *, speed: float
) -> AsyncIterator[SimulationReport]:
    """``config``'s traffic, anchored at now, published at ``speed`` while the block runs (stopped at its end)."""
    anchored_config = anchored(config, speed=speed, now=time.time())
    report = SimulationReport()
    task = asyncio.ensure_future(
        simulate(settings.kafka_bootstrap, settings.topics, anchored_config, speed=speed, report=report)
    )
    try:
        yield report
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
