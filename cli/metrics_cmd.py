"""`bifrost-opt metrics`: per-arm and per-model figures from a worker's HTTP view."""

from __future__ import annotations

import urllib.error
import urllib.parse
from typing import Any

from bifrost.cli.worker_http import expect_object, get_json

COLUMNS = (
    ("count", "count", "{:d}"),
    ("err%", "error_rate", "{:.2%}"),
    ("p50 ms", "p50_ms", "{:.0f}"),
    ("p95 ms", "p95_ms", "{:.0f}"),
    ("p99 ms", "p99_ms", "{:.0f}"),
    ("$/task", "cost_per_task", "{:.5f}"),
    ("quality", "quality", "{:.3f}"),
    ("win rate", "win_rate", "{:.1%}"),
)


def fetch_metrics(
    worker_url: str, router: str, since: str, until: float | None, timeout: float = 10.0, *, token: str = ""
) -> dict[str, Any]:
    """GET the router's metrics from the worker (with the bearer ``token``, if any).

    Failures are raised as CLI errors with a clear message.
    """
    query = {"since": since}
    if until is not None:
        query["until"] = str(until)
    path = f"/v1/routers/{urllib.parse.quote(router, safe='')}/metrics?{urllib.parse.urlencode(query)}"
    result = expect_object(get_json(worker_url.rstrip("/"), path, token, timeout=timeout), "the metrics", worker_url)
    return result


def render_table(metrics: dict[str, Any]) -> str:
    """Human-readable tables of arms, models and buckets."""
    lines = [
        f"router {metrics['router_id']}  window [{metrics['from_ts']}, {metrics['to_ts']})  "
        f"({metrics['windows']} windows with data)"
    ]
    for section in ("arms", "models", "buckets"):
        rows = metrics.get(section) or {}
        if not rows:
            continue
        header = [section[:-1]] + [title for title, _, _ in COLUMNS]
        body = [[name] + [_cell(stats.get(field), fmt) for _, field, fmt in COLUMNS] for name, stats in rows.items()]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        lines.append("")
        lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
        for row in body:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
