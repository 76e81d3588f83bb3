"""cProfile tables for the benchmark reports (shared by the bench scripts)."""

from __future__ import annotations

import os
import pstats
from collections.abc import Callable
from typing import Any

from bench.machine import REPO_DIR


def short_name(func: tuple[str, int, str]) -> str:
    """``file:line(function)`` relative to the repo or site-packages."""
    filename, line, name = func
    for root in (str(REPO_DIR) + os.sep, "site-packages" + os.sep, "python3.11" + os.sep):
        if root in filename:
            filename = filename.split(root, 1)[1]
            break
    return f"{filename}:{line}({name})" if line else name


def top_functions(
    stats: pstats.Stats, key: str, limit: int, only: Callable[[str], bool] | None = None
) -> list[dict[str, Any]]:
    """The ``limit`` functions with the largest ``key`` (tottime or cumulative), optionally filtered by file."""
    index = {"tottime": 2, "cumulative": 3}[key]
    items = [item for item in stats.stats.items() if only is None or only(item[0][0])]  # type: ignore[attr-defined]
    rows = sorted(items, key=lambda item: item[1][index], reverse=True)[:limit]
    return [
        {"function": short_name(func), "ncalls": nc, "tottime": round(tt, 4), "cumtime": round(ct, 4)}
        for func, (_, nc, tt, ct, _) in rows
    ]
