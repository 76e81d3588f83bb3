"""Real processes for integration tests: workers as subprocesses, polling helpers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

from aiokafka import AIOKafkaConsumer

from bifrost.config import Settings
from bifrost.devkafka import free_listener_port
from bifrost.schemas import DeadLetter
from bifrost.schemas.codec import decode_as

T = TypeVar("T")


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


def settings_env(settings: Settings) -> dict[str, str]:
    """BIFROST_* variables that reproduce ``settings`` in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    env.update(settings.to_env())
    return env


@dataclass
class WorkerProcess:
    """One `bifrost-opt worker` child process."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bifrost.cli.main", "worker"],
            env=settings_env(self.settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

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
        health = self.health() or {}
        prefix = self.settings.topics.routing_events + ":"
        return {tp for tp in health.get("assigned", []) if tp.startswith(prefix)}

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
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
    status, body = worker.get(f"/v1/routers/{router}/metrics?since={since}")
    if status != 200:
        return {}
    return {arm: stats["count"] for arm, stats in body["arms"].items()}


def duplicates_skipped(worker: WorkerProcess) -> float:
    """Re-delivered records the worker recognised and skipped (from its /metrics)."""
    _, text = worker.get("/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in str(text).splitlines()
        if line.startswith("bifrost_ingest_duplicates_total{")
    )


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
