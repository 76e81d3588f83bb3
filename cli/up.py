"""`bifrost-opt up`: the whole loop on one machine (Kafka, worker, simulated traffic)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bifrost.cli.errors import Unavailable, UsageError
from bifrost.client.simulator import TrafficConfig, anchored, simulate
from bifrost.config import Settings
from bifrost.devkafka import LocalBroker, broker_status
from bifrost.streams.web.views import BadDuration, parse_duration

log = logging.getLogger("bifrost.up")


def run_local_loop(args: argparse.Namespace, settings: Settings) -> int:
    """Start (or reuse) the local broker, start a worker, publish traffic until stopped."""
    try:
        run_for = 0 if args.run_for in ("0", "") else parse_duration(args.run_for)
    except BadDuration as exc:
        raise UsageError(f"--for: {exc}") from None
    data_dir = Path(args.data_dir).resolve()
    broker, bootstrap = _ensure_broker(data_dir / "kafka")
    worker: subprocess.Popen[bytes] | None = None
    try:
        web_port = settings.web_port if _port_free(settings.web_port) else _free_port()
        settings = Settings.from_env(
            settings.to_env(),
            kafka_bootstrap=bootstrap,
            data_dir=str(data_dir / "worker"),
            web_port=web_port,
            worker_url=f"http://127.0.0.1:{web_port}",
        )
        worker = _start_worker(settings, data_dir / "worker.log")
        _wait_healthy(settings.worker_url, worker, timeout=120)
        _banner(settings, data_dir, broker is not None)
        asyncio.run(_traffic(settings, rate=args.rate, speed=args.speed, run_for=run_for))
        return 0
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=30)
        if broker is not None:
            broker.stop()


def _ensure_broker(kafka_dir: Path) -> tuple[LocalBroker | None, str]:
    status = broker_status(kafka_dir)
    if status.running and status.bootstrap:
        log.info("event=up.broker.reuse bootstrap=%s", status.bootstrap)
        return None, status.bootstrap
    port = 9092 if _port_free(9092) else None
    broker = LocalBroker(port, data_dir=kafka_dir)
    print("starting Kafka (the first run fetches the broker from Maven Central)…", flush=True)
    broker.start(timeout=180)
    return broker, broker.bootstrap


def _start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}, **settings.to_env()}
    print(f"starting worker (log: {log_path})…", flush=True)
    return subprocess.Popen(
        [sys.executable, "-m", "bifrost.cli.main", "worker"],
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_healthy(url: str, worker: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise Unavailable(f"the worker exited with code {worker.returncode}; see its log")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if json.loads(response.read()).get("recovered"):
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            pass
        time.sleep(0.5)
    raise Unavailable(f"the worker did not become healthy within {timeout:.0f} s")


def _banner(settings: Settings, data_dir: Path, started_broker: bool) -> None:
    url = settings.worker_url
    print(
        "\n".join(
            [
                "",
                "bifrost-optimizer is running locally",
                f"  Kafka        {settings.kafka_bootstrap}{'' if started_broker else ' (reused)'}",
                f"  worker       {url}   (health: {url}/health, Prometheus: {url}/metrics)",
                f"  per-arm JSON {url}/v1/routers/router-a/metrics?since=15m",
                f"  CLI          BIFROST_WORKER_URL={url} bifrost-opt metrics --router router-a --since 15m",
                f"  rollouts     bifrost-opt rollout start --router router-a --artifact v2   (then: rollout status)",
                f"  data, logs   {data_dir}",
                "  not yet part of the loop: trainer service, dashboard page (see README, 'Status')",
                "Publishing simulated traffic; Ctrl-C stops everything.",
                "",
            ]
        ),
        flush=True,
    )


async def _traffic(settings: Settings, *, rate: float, speed: float, run_for: float) -> None:
    wall = run_for if run_for else 7 * 86400 / max(speed, 1.0)
    config = TrafficConfig(
        routers=("router-a", "router-b"),
        arms={"v1": 1.0},
        rate_per_second=rate,
        duration_seconds=wall * max(speed, 1.0),
        feedback_fraction=0.3,
        malformed_fraction=0.001,
    )
    config = anchored(config, speed=max(speed, 1.0), now=time.time())
    report = await simulate(settings.kafka_bootstrap, settings.topics, config, speed=max(speed, 1.0), progress_every_s=10)
    print(f"published {report.events} events ({report.malformed} malformed, {report.feedback} feedback)")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
