"""What a benchmark ran on: date, CPU, platform, the commit (shared by the bench scripts)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ('' where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def commit() -> str:
    """Short hash of HEAD."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True
    ).stdout.strip()


def changed(folder: str) -> bool:
    """Whether the working tree has uncommitted changes under ``folder`` (relative to the repository)."""
    return bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--", folder], cwd=REPO_DIR, capture_output=True, text=True
        ).stdout.strip()
    )


def describe(**extra: Any) -> dict[str, Any]:
    """Date, CPU count and model, platform and Python of this run, then ``extra`` (versions, commit...)."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **extra,
    }
