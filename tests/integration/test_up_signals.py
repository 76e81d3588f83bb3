"""`bifrost-opt up` stops every child on Ctrl-C (SIGINT) and SIGTERM: nothing is left running.

Starts the whole loop (its own Kafka under a temporary data folder, the first artifact,
worker, trainer, refresher, the replay), waits for the banner, signals ``up`` at a random
moment after it and checks by PID and process group that none of its descendants remains.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

BANNER_TIMEOUT = 600.0  # Kafka, the first artifact and a healthy worker on a loaded machine


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of ``pid`` from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def descendants(root: int) -> set[int]:
    """Every process whose parent chain reaches ``root``."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            parents[int(entry)] = found[0]
    out: set[int] = set()
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if pid not in out and (parent == root or parent in out):
                out.add(pid)
                grew = True
    return out


def alive(pid: int) -> bool:
    found = _stat(pid)
    return found is not None and found[1] != "Z"


def _safe_pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def group_alive(pgid: int) -> bool:
    """A live (not zombie) process is still in process group ``pgid``."""
    return any(alive(pid) and _safe_pgid(pid) == pgid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_after_the_banner_stops_every_child(tmp_path: Path, signum: signal.Signals, code: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bifrost.cli.main",
            "up",
            "--data-dir",
            str(tmp_path / "var"),
            "--rate",
            "5",
            "--speed",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            lines.append(line)
            if "demo router" in line:
                banner.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + BANNER_TIMEOUT
        while not banner.wait(1.0) and up.poll() is None and time.monotonic() < deadline:
            pass
        assert banner.is_set(), (up.poll(), "".join(lines[-40:]))
        time.sleep(random.uniform(0.0, 8.0))
        seen = descendants(up.pid)
        groups = {g for g in map(_safe_pgid, seen) if g is not None}
        assert len(seen) >= 4, (seen, "".join(lines[-20:]))  # Kafka, worker, trainer, refresher at least
        started = time.monotonic()
        up.send_signal(signum)
        assert up.wait(timeout=120) == code, "".join(lines[-20:])
        assert time.monotonic() - started < 90  # the children's grace is 20 s, the broker's stop 20 s
        left = [pid for pid in seen | descendants(up.pid) if alive(pid)]
        assert not left, (left, [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in left])
        assert not [g for g in groups if group_alive(g)]
        reader.join(timeout=10)  # the pipe is closed once every writer is gone; read what is left
        assert "stopping" in "".join(lines)
    finally:
        for pid in seen | (descendants(up.pid) if up.poll() is None else set()):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
