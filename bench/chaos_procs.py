"""Processes for the chaos suite: a restartable broker, worker slots, a progress monitor.

- :class:`ChaosBroker` is a ``LocalBroker`` on a persistent data dir and fixed ports
  (outside the ephemeral range), so it can be stopped and started on the same address.
- :class:`WorkerSlots` runs ``bifrost-opt worker`` processes; a slot keeps its web port
  (hence its static group-membership id) and data dir across kills and restarts.
- :class:`ProgressMonitor` polls the ingest group's committed offsets four times a
  second; the time to resume after a fault is read from that history.
- :func:`code_snapshot` exports a git revision so workers *and* the suite's decoder run
  exactly that revision's code (``bench/chaos.py --code REV``).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import signal
import subprocess
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from bifrost.config import Settings
from bifrost.devkafka import LocalBroker, free_listener_port
from tests.integration.harness import WorkerProcess

log = logging.getLogger("bifrost.chaos")

REPO_DIR = Path(__file__).resolve().parents[1]

_taken_ports: set[int] = set()


def pick_port() -> int:
    """A free TCP port on 127.0.0.1 outside the ephemeral range, not handed out before here.

    Outgoing connections never get such a port, so a process restarted on it (a worker
    or the broker) does not find it taken by some client's socket in the meantime.
    """
    for _ in range(100):
        port = free_listener_port()
        if port not in _taken_ports:
            _taken_ports.add(port)
            return port
    raise RuntimeError("no free listener port found")


# --------------------------------------------------------------------------- broker


class ChaosBroker:
    """A local broker that can be stopped and started again on the same port and data."""

    def __init__(self, data_dir: Path, *, heap: str = "768m") -> None:
        self.data_dir = data_dir
        self.port = pick_port()
        self.controller_port = pick_port()
        self._broker = LocalBroker(self.port, controller_port=self.controller_port, data_dir=data_dir, heap=heap)

    @property
    def version(self) -> str:
        return self._broker.version

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    def start(self, timeout: float = 120.0) -> str:
        bootstrap = self._broker.start(timeout=timeout)
        assert bootstrap == self.bootstrap, (bootstrap, self.bootstrap)
        return bootstrap

    def stop(self, timeout: float = 30.0) -> None:
        self._broker.stop(timeout=timeout)

    def is_running(self) -> bool:
        return self._broker.is_running()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------- workers


@dataclass
class Slot:
    index: int
    settings: Settings
    log_path: Path
    process: WorkerProcess | None = None
    starts: int = 0
    killed: int = 0
    expected_down: bool = True
    exits: list[dict[str, Any]] = field(default_factory=list)  # exits nobody asked for


_LIVE_SLOTS: weakref.WeakSet[WorkerSlots] = weakref.WeakSet()


@atexit.register
def _kill_leftover_workers() -> None:
    """Never leave a worker behind, whatever way this process ends."""
    for slots in list(_LIVE_SLOTS):
        for slot in slots.slots.values():
            proc = slot.process.process if slot.process else None
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass


class WorkerSlots:
    """Worker processes by slot; a slot's web port and data dir survive restarts."""

    def __init__(self, base: Settings, run_dir: Path) -> None:
        self.base = base
        self.run_dir = run_dir
        self.slots: dict[int, Slot] = {}
        _LIVE_SLOTS.add(self)

    def slot(self, index: int) -> Slot:
        slot = self.slots.get(index)
        if slot is None:
            own = Settings.from_env(
                self.base.to_env(),
                web_port=pick_port(),
                data_dir=str(self.run_dir / f"worker-{index}"),
            )
            slot = self.slots[index] = Slot(index, own, self.run_dir / f"worker-{index}.log")
        return slot

    def start(self, index: int) -> WorkerProcess:
        slot = self.slot(index)
        slot.log_path.parent.mkdir(parents=True, exist_ok=True)
        with slot.log_path.open("ab") as handle:
            handle.write(f"\n===== chaos: start #{slot.starts + 1} at {time.time():.3f}\n".encode())
        slot.process = WorkerProcess(slot.settings, slot.log_path).start()
        slot.starts += 1
        slot.expected_down = False
        return slot.process

    def kill(self, index: int) -> None:
        """SIGKILL the slot's process group (no shutdown, no final commit)."""
        slot = self.slots[index]
        assert slot.process is not None
        slot.expected_down = True
        slot.process.kill()
        slot.killed += 1

    def stop_all(self) -> None:
        for slot in self.slots.values():
            if slot.process is not None:
                slot.expected_down = True
                try:
                    slot.process.stop()
                except Exception as exc:  # noqa: BLE001 - best effort, then SIGKILL
                    log.warning("stopping worker %d failed: %r", slot.index, exc)
                    try:
                        slot.process.kill()
                    except Exception:  # noqa: BLE001 - already gone: nothing left to kill
                        pass

    def alive(self, index: int) -> bool:
        slot = self.slots.get(index)
        return bool(slot and slot.process and slot.process.alive())

    def check_exits(self) -> None:
        """Record any exit nobody asked for."""
        for slot in self.slots.values():
            proc = slot.process.process if slot.process else None
            if proc is not None and not slot.expected_down and proc.poll() is not None:
                slot.exits.append({"slot": slot.index, "rc": proc.returncode, "at": time.time()})
                slot.expected_down = True
                log.warning("worker %d exited by itself with code %s", slot.index, proc.returncode)

    def owned(self, index: int) -> set[int]:
        slot = self.slots.get(index)
        if slot is None or slot.process is None:
            return set()
        return {int(tp.rsplit(":", 1)[1]) for tp in slot.process.owns_inputs()}

    def log_findings(self, index: int) -> dict[str, Any]:
        """Counts of worrying lines in a slot's log, and the first traceback's last lines."""
        slot = self.slots.get(index)
        if slot is None:
            return {}
        try:
            lines = slot.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return {}
        tb_tail: list[str] = []
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                j = i + 1
                while j < len(lines) and (lines[j].startswith(" ") or lines[j].startswith("Traceback")):
                    j += 1
                tb_tail = lines[max(i, j - 4) : j + 1]
                break
        return {
            "tracebacks": sum(1 for line in lines if line.startswith("Traceback")),
            "errors": sum(1 for line in lines if "ERROR" in line or "CRITICAL" in line),
            "crashed": sum(1 for line in lines if "crashed" in line.lower()),
            "first_traceback_tail": tb_tail,
        }


# --------------------------------------------------------------------------- progress


@dataclass
class Fault:
    """One injected fault and what the suite saw afterwards."""

    kind: str
    at: float  # wall clock when the fault hit
    recovered_at: float  # wall clock when the restart / start happened (= at when nothing restarts)
    partitions: list[int]  # input partitions whose progress is awaited
    baseline: dict[int, int]  # their committed offsets when the fault hit
    detail: dict[str, Any] = field(default_factory=dict)
    resume_first_s: float | None = None  # recovered_at -> first of them commits past its baseline
    resume_all_s: float | None = None  # recovered_at -> all of them did

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": round(self.at, 3),
            "since_fault_to_restart_s": round(self.recovered_at - self.at, 2),
            "partitions": self.partitions,
            "resume_first_s": self.resume_first_s,
            "resume_all_s": self.resume_all_s,
            **self.detail,
        }


class ProgressMonitor:
    """Committed offsets of the ingest group over time (polled every ``interval`` s)."""

    def __init__(
        self, bootstrap: str, group: str, topic: str, *, interval: float = 0.25, slots: WorkerSlots | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topic = topic
        self.interval = interval
        self.slots = slots
        self.history: list[tuple[float, dict[int, int]]] = []
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def latest(self) -> dict[int, int]:
        return dict(self.history[-1][1]) if self.history else {}

    async def fetch_now(self, attempts: int = 20) -> dict[int, int]:
        """Committed offsets right now (a direct query, also recorded), or the latest poll.

        Called just after a worker was killed, it gives the exact baseline: a dead worker
        commits nothing more, so any later increase is the successor's progress.
        """
        for _ in range(attempts):
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                await asyncio.wait_for(admin.start(), 5)
                offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(self.group), 5)
                result = {
                    tp.partition: m.offset for tp, m in offsets.items() if tp.topic == self.topic and m.offset >= 0
                }
                self.history.append((time.time(), result))
                self.history.sort(key=lambda item: item[0])
                return result
            except Exception:  # noqa: BLE001 - coordinator moving: retry shortly
                await asyncio.sleep(0.25)
            finally:
                try:
                    await admin.close()
                except Exception:  # noqa: BLE001 - closing the admin client is best effort
                    pass
        return self.latest()

    async def _run(self) -> None:
        admin: AIOKafkaAdminClient | None = None
        while True:
            if self.slots is not None:
                self.slots.check_exits()
            try:
                if admin is None:
                    admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                    await asyncio.wait_for(admin.start(), 5)
                offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(self.group), 5)
                now = time.time()
                self.history.append(
                    (
                        now,
                        {
                            tp.partition: m.offset
                            for tp, m in offsets.items()
                            if tp.topic == self.topic and m.offset >= 0
                        },
                    )
                )
            except asyncio.CancelledError:
                if admin is not None:
                    await admin.close()
                raise
            except Exception:  # noqa: BLE001 - broker away or coordinator moving: keep polling
                self.errors += 1
                if admin is not None:
                    try:
                        await admin.close()
                    except Exception:  # noqa: BLE001 - closing the admin client is best effort
                        pass
                    admin = None
            await asyncio.sleep(self.interval)

    def fault(
        self,
        kind: str,
        *,
        at: float,
        recovered_at: float | None = None,
        partitions: list[int] | None = None,
        baseline: dict[int, int] | None = None,
        **detail: Any,
    ) -> Fault:
        base = self.latest() if baseline is None else baseline
        parts = sorted(partitions if partitions is not None else base)
        return Fault(
            kind, at, at if recovered_at is None else recovered_at, parts, {p: base.get(p, -1) for p in parts}, detail
        )

    def resolve(self, fault: Fault, until: float | None = None) -> None:
        """Fill in the resume times from the history (up to ``until``: the next fault)."""
        pending = set(fault.partitions)
        if not pending:
            return
        for t, offsets in self.history:
            if t < fault.recovered_at:
                continue
            if until is not None and t >= until:
                fault.detail["interrupted_by_next_fault"] = True
                return
            moved = {p for p in pending if offsets.get(p, -1) > fault.baseline.get(p, -1)}
            if moved and fault.resume_first_s is None:
                fault.resume_first_s = round(t - fault.recovered_at, 2)
            pending -= moved
            if not pending:
                fault.resume_all_s = round(t - fault.recovered_at, 2)
                return


# --------------------------------------------------------------------------- code under test


def code_snapshot(rev: str, into: Path) -> Path:
    """Export ``rev`` and lay it out as the ``bifrost`` package; returns a PYTHONPATH entry.

    The editable install maps ``bifrost.<folder>`` to the working tree; a regular
    ``bifrost`` package earlier on ``sys.path`` wins over it, so a process started with
    this PYTHONPATH runs ``rev``'s code only.
    """
    src = into / "src"
    pkg_root = into / "pkg"
    shutil.rmtree(into, ignore_errors=True)
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=REPO_DIR, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    bifrost = pkg_root / "bifrost"
    bifrost.mkdir(parents=True)
    (bifrost / "__init__.py").write_text(f'"""bifrost-optimizer at {rev} (chaos suite code snapshot)."""\n')
    for folder in ("schemas", "streams", "trainer", "client", "cli", "config", "devkafka", "router"):
        if (src / folder).is_dir():
            os.symlink(src / folder, bifrost / folder)
    return pkg_root
