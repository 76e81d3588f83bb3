"""`bifrost-opt up`: the whole loop on one machine.

Kafka (fetched from Maven Central on first use), a first artifact bootstrapped from the
bundled full-information dataset (signed with a key created under the data folder), a
worker (ingest, tables, canary controller, warehouse sink), the trainer service, and
real prompts from the dataset replayed through the current artifact with exploration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bifrost.cli.errors import Unavailable, UsageError
from bifrost.client.simulator import anchored, simulate
from bifrost.common.files import write_atomic
from bifrost.config import Settings
from bifrost.devkafka import BrokerError, LocalBroker, broker_status, free_listener_port
from bifrost.streams.web.views import BadDuration, parse_duration

log = logging.getLogger("bifrost.up")


def run_local_loop(args: argparse.Namespace, settings: Settings) -> int:
    """Start (or reuse) the local broker, start a worker, publish traffic until stopped."""
    try:
        run_for = 0 if args.run_for in ("0", "") else parse_duration(args.run_for)
    except BadDuration as exc:
        raise UsageError(f"--for: {exc}") from None
    data_dir = Path(args.data_dir).resolve()
    dataset = Path(args.dataset)
    if not dataset.is_file():
        raise UsageError(f"--dataset {dataset} does not exist (a full-information JSONL(.gz) file)")
    router = (getattr(args, "router", None) or DEMO_ROUTER).strip()
    if not router or len(router) > 128:
        raise UsageError("--router: a router id of 1 to 128 characters")
    shutdown = Shutdown()
    children = shutdown.children
    previous = _stop_on_signals(shutdown)
    try:
        shutdown.broker, bootstrap = _reuse_broker(data_dir / "kafka")
        broker = shutdown.broker
        if broker is not None:  # known before it starts, so a signal while it starts still stops it
            print("starting Kafka (the first run fetches the broker from Maven Central)…", flush=True)
            try:
                broker.start(timeout=180)
            except BrokerError as exc:  # `up` needs the broker: unavailable, exit 3 (as before BrokerError carried 1)
                raise Unavailable(str(exc)) from None
            bootstrap = broker.bootstrap
        web_port = settings.web_port if _port_free(settings.web_port) else _free_port()
        key_file = data_dir / "keys" / "artifact-signing.pem"  # private: the trainer's only
        public_key_file = data_dir / "keys" / "artifact-signing.pub.pem"  # what the worker verifies with
        store = data_dir / "artifacts"
        allow_list, operator_key, pipeline_key = _command_keys(data_dir / "keys")
        settings = Settings.from_env(
            settings.to_env(),
            kafka_bootstrap=bootstrap,
            data_dir=str(data_dir / "worker"),
            warehouse_dir=str(data_dir / "warehouse"),
            verify_key_file=str(public_key_file),
            artifact_store=str(store),
            web_port=web_port,
            worker_url=f"http://127.0.0.1:{web_port}",
            # Workers: the allow-list (public keys) and the pipeline key their artifact
            # listener signs with; never the operator key, which only the CLI uses.
            command_keys=allow_list,
            command_keys_file="",
            pipeline_key_file=str(pipeline_key),
            pipeline_key_name="pipeline",
            operator_key_file="",
        )
        _first_artifact(dataset, store, key_file)
        _export_public_key(key_file, public_key_file)
        trainer_env = {
            "BIFROST_ARTIFACT_STORE": str(store),
            "BIFROST_TRAINER_RUNS_DIR": str(data_dir / "trainer"),
            "BIFROST_SIGNING_KEY_FILE": str(key_file),
        }
        children.append(_start(settings, "worker", data_dir / "worker.log"))
        trainer_settings = dataclasses.replace(settings, pipeline_key_file="")  # the trainer signs no commands
        children.append(_start(trainer_settings, "trainer", data_dir / "trainer.log", trainer_env))
        # The catalog refresher (README "Catalog"): provider model lists on a schedule, and webhook delivery.
        children.append(
            _start(
                trainer_settings,
                "refresher",
                data_dir / "refresher.log",
                {
                    "BIFROST_CATALOG_DIR": str(data_dir / "catalog"),
                    "BIFROST_WEBHOOK_STATE_DIR": str(data_dir / "webhooks"),
                },
            )
        )
        _wait_healthy(settings.worker_url, children[0], timeout=120)
        print(
            banner(
                settings,
                data_dir,
                broker is not None,
                store,
                operator_key,
                router=router,
                speed=args.speed,
                cli=cli_command(),
            ),
            flush=True,
        )
        asyncio.run(
            _traffic(
                settings,
                dataset,
                store,
                public_key_file,
                router=router,
                rate=args.rate,
                speed=args.speed,
                run_for=run_for,
            )
        )
        return 0
    except Stopped as stop:
        return 128 + stop.signum
    finally:
        try:
            shutdown.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


CHILD_GRACE_SECONDS = 20.0


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM reached ``up``: unwind (through every ``finally``) and stop the children.

    A KeyboardInterrupt, so asyncio lets it out of whichever task it lands in (another
    BaseException raised inside a task is only stored on that task, and ``up`` ran on).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@dataclasses.dataclass
class Shutdown:
    """Stops ``up``'s children and the broker it started, once, from whichever thread asks first."""

    children: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)
    broker: LocalBroker | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    _done: bool = False

    def run(self) -> None:
        with self._lock:
            if self._done:
                return
            try:
                stop_children(self.children, grace=CHILD_GRACE_SECONDS)
                if self.broker is not None:
                    self.broker.stop()
            finally:
                self._done = True

    def on_signal(self, signum: int) -> None:
        """Stop everything now in a thread, and end the process if the main thread has not within a grace.

        The main thread unwinds through asyncio's task cancellation, which a publisher
        flushing to Kafka can stretch; the children must not wait for it.
        """

        def stop() -> None:
            # Said here, not where the main thread unwinds: a publisher flushing to a broker
            # that is going away can hold the main thread until the exit grace ends it.
            with contextlib.suppress(OSError, ValueError):
                print(f"\nstopping ({signal.Signals(signum).name})…", flush=True)
            self.run()
            time.sleep(EXIT_GRACE_SECONDS)
            os._exit(128 + signum)

        threading.Thread(target=stop, name="up-shutdown", daemon=True).start()


EXIT_GRACE_SECONDS = 15.0


def _stop_on_signals(
    shutdown: Shutdown,
) -> dict[int, signal.Handlers | Callable[[int, FrameType | None], Any] | int | None]:
    """On SIGINT and SIGTERM start ``shutdown`` and raise :class:`Stopped` in the main thread (the first time).

    Returns the previous handlers. asyncio.run would otherwise turn the first Ctrl-C into a
    cancellation of the traffic task, which can be absorbed, and SIGTERM's default action
    ends the process without any ``finally`` (the children, in their own sessions, were left
    running).
    """
    signalled: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if signalled:  # a second Ctrl-C while stopping: the shutdown is under way
            return
        signalled.append(signum)
        shutdown.on_signal(signum)
        raise Stopped(signum)

    return {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}


def stop_children(children: list[subprocess.Popen[bytes]], *, grace: float) -> None:
    """SIGTERM every child's process group, wait up to ``grace`` seconds in all, then SIGKILL what is left."""
    for child in children:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(deadline - time.monotonic(), 0.0))
    for child in children:
        # The group too: a child's own children (e.g. a worker's threads' subprocesses) share it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        if child.poll() is None:
            child.wait()


def _reuse_broker(kafka_dir: Path) -> tuple[LocalBroker | None, str]:
    """The running local broker's bootstrap (None to start), or a new, not yet started broker."""
    status = broker_status(kafka_dir)
    if status.running and status.bootstrap:
        log.info("event=up.broker.reuse bootstrap=%s", status.bootstrap)
        return None, status.bootstrap
    port = 9092 if _port_free(9092) else None
    return LocalBroker(port, data_dir=kafka_dir), ""


def _first_artifact(dataset: Path, store: Path, key_file: Path) -> None:
    """Bootstrap and publish a signed artifact unless the store already has a current one."""
    from bifrost.storage.artifact_store import ArtifactStore
    from bifrost.trainer.cli import main_train

    if ArtifactStore(store).current() is not None:
        return
    print(f"training the first artifact from {dataset.name} (LightGBM + 200 Optuna trials, about 20 s)…", flush=True)
    if not key_file.exists():
        from bifrost.router.keys import generate_private_key

        generate_private_key(key_file)
    code = main_train(["--dataset", str(dataset), "--store", str(store), "--key", str(key_file), "--quiet"])
    if code != 0:
        raise Unavailable(f"could not bootstrap the first artifact (exit code {code}); see the message above")


def _command_keys(keys_dir: Path) -> tuple[str, Path, Path]:
    """The operator and pipeline keys under ``keys_dir`` (created once) and their allow-list."""
    from bifrost.router.keys import generate_private_key, load_private_key
    from bifrost.streams.rollout.auth import public_line

    lines, paths = [], []
    for name in ("operator", "pipeline"):
        path = keys_dir / f"{name}.pem"
        key = load_private_key(path) if path.exists() else generate_private_key(path)
        lines.append(public_line(name, name, key))
        paths.append(path)
    return ",".join(lines), paths[0], paths[1]


def _export_public_key(key_file: Path, public_key_file: Path) -> None:
    """Write the signing key's public half next to it (workers and routers get only this file)."""
    from bifrost.router.keys import load_private_key, public_key_pem

    pem = public_key_pem(load_private_key(key_file))
    if public_key_file.exists() and public_key_file.read_bytes() == pem:
        return
    write_atomic(public_key_file, pem, mode=0o644)


def _start(
    settings: Settings, command: str, log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")},
        **settings.to_env(),
        **(extra_env or {}),
    }
    print(f"starting {command} (log: {log_path})…", flush=True)
    return subprocess.Popen(
        [sys.executable, "-m", "bifrost.cli.main", command],
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


DEMO_ROUTER = "demo-replay"


def cli_command(executable: str | None = None, cwd: Path | None = None, on_path: str | None = "?") -> str:
    """How to run this installation's CLI: ``bifrost-opt`` when that is the one on PATH, else the
    venv's script by its path (relative to ``cwd`` when inside it, e.g. ``.venv/bin/bifrost-opt``),
    else ``python -m bifrost.cli.main``. Arguments default to this process's (tests pass them)."""
    beside = Path(executable or sys.executable).parent / "bifrost-opt"  # the venv's bin, not the resolved python
    found = shutil.which("bifrost-opt") if on_path == "?" else on_path
    if beside.is_file() and os.access(beside, os.X_OK):
        if found and Path(found).resolve() == beside.resolve():
            return "bifrost-opt"
        try:
            return str(beside.relative_to(cwd or Path.cwd()))
        except ValueError:
            return str(beside)
    return "bifrost-opt" if found else f"{executable or sys.executable} -m bifrost.cli.main"


def banner(
    settings: Settings,
    data_dir: Path,
    started_broker: bool,
    store: Path,
    operator_key: Path,
    *,
    router: str,
    speed: float,
    cli: str,
) -> str:
    """What ``up`` prints once everything runs (pure)."""
    url = settings.worker_url
    return "\n".join(
        [
            "",
            "bifrost-optimizer is running locally",
            f"  Kafka        {settings.kafka_bootstrap}{'' if started_broker else ' (reused)'}",
            f"  worker       {url}   (health: {url}/health, Prometheus: {url}/metrics)",
            f"  dashboard    {url}/dashboard   (read-only unless the worker has a web token and a dashboard key: "
            "README, 'Dashboard')",
            f"  demo router  {router}: real prompts replayed with event time compressed {speed:g}x",
            f"  WARNING      events you publish yourself for {router!r} with real-time timestamps arrive 'too late' "
            "for its",
            "               compressed windows and go to the DLQ (reason too_late): publish under your own router id "
            "(e.g. web)",
            f"  per-arm JSON {url}/v1/routers/{router}/metrics?since=15m",
            f"  CLI          export BIFROST_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} BIFROST_WORKER_URL={url}",
            f"                      BIFROST_OPERATOR_KEY_FILE={operator_key} BIFROST_OPERATOR_KEY_NAME=operator",
            f"               {cli} metrics --router {router} --since 15m",
            f"               {cli} retrain --router {router} --since 7d --wait   (follows the retrain to its canary)",
            f"               {cli} rollout status --router {router}",
            f"               {cli} artifacts list --store {store}",
            f"               BIFROST_CATALOG_DIR={data_dir / 'catalog'} {cli} catalog list   "
            "(model catalog; refresher.log)",
            f"               {cli} rollout pause|resume|promote|stop --router {router}   (signed "
            "with the operator key)",
            f"  data, logs   {data_dir}   (worker.log, trainer.log, trainer/runs/*/report.md)",
            f"Replaying real prompts through the current artifact as router {router}; Ctrl-C stops everything.",
            "",
        ]
    )


async def _traffic(
    settings: Settings,
    dataset: Path,
    store: Path,
    key_file: Path,
    *,
    router: str,
    rate: float,
    speed: float,
    run_for: float,
) -> None:
    from functools import partial

    from bifrost.client.simulator.launch import open_replay
    from bifrost.client.simulator.replay import ReplayConfig

    wall = run_for if run_for else 7 * 86400 / max(speed, 1.0)
    traffic, weights = open_replay(dataset, store=store, key=key_file)
    config = ReplayConfig(
        arms=weights,
        routers=(router,),
        exploration=0.1,
        rate_per_second=rate,
        duration_seconds=wall * max(speed, 1.0),
        malformed_fraction=0.001,
    )
    config = anchored(config, speed=max(speed, 1.0), now=time.time())
    report = await simulate(
        settings.kafka_bootstrap,
        settings.topics,
        config,
        speed=max(speed, 1.0),
        progress_every_s=10,
        source=partial(traffic.generate, config),
        security=settings.kafka_security,
    )
    print(f"published {report.events} events ({report.malformed} malformed)")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _free_port() -> int:
    return free_listener_port()
