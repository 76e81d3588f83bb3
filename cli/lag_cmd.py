"""`bifrost-opt lag`: consumer lag per group and partition, read from Kafka (no worker needed).

Lag in records (read_committed log end minus committed offset, transaction markers not
counted) and in seconds (age of the next unconsumed record), with each partition's and
group's status over a sliding window of samples (:mod:`bifrost.streams.lag.rules`). A
single run holds one sample: it can tell OK (caught up) and STOP (lag, no live member),
the other statuses need a full window — ``--watch`` keeps one while it refreshes.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import orjson

from bifrost.cli.errors import EXIT_OK, Unavailable, UsageError
from bifrost.config import Settings

DEFAULT_WATCH_SECONDS = 10.0
_USE_SETTING = 0.0  # --watch without a value


def _watch_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the refresh interval must be a positive number of seconds")
    return value


def add_parser(sub: Any) -> None:
    """Add the ``lag`` subcommand to the CLI's subparsers."""
    lag = sub.add_parser(
        "lag",
        help="consumer lag per group and partition (records, seconds, Burrow-like status)",
        description="Lag of the project's consumer groups (ingest, Faust, warehouse, artifacts, trainer; named from "
        "BIFROST_APP_ID), or of the groups named with --group, read from Kafka. Statuses: OK, WARN (lag keeps "
        "growing), STALL (offsets stuck, nothing new arriving), ERR (offsets stuck while records arrive), "
        "STOP (lag and no live member); all but OK and STOP need a full window of BIFROST_LAG_WINDOW samples.",
    )
    lag.add_argument(
        "--group", action="append", metavar="G", help="only this consumer group (repeatable; any group of the cluster)"
    )
    lag.add_argument(
        "--watch",
        nargs="?",
        const=_USE_SETTING,
        type=_watch_seconds,
        metavar="SECONDS",
        help="refresh every SECONDS (default BIFROST_LAG_INTERVAL_SECONDS) until Ctrl-C",
    )
    lag.add_argument("--json", action="store_true", help="print JSON (with --watch: one line per refresh)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``bifrost-opt lag``; returns the exit code (unknown group → usage error)."""
    from bifrost.streams.lag.groups import project_groups
    from bifrost.streams.lag.monitor import check_lag_settings

    check_lag_settings(settings)
    groups = list(dict.fromkeys(g.strip() for g in args.group or [] if g.strip())) or project_groups(settings)
    if args.group is not None and not any(g.strip() for g in args.group):
        raise UsageError("--group: give a consumer group name")
    interval = None
    if args.watch is not None:
        interval = (
            args.watch if args.watch != _USE_SETTING else (settings.lag_interval_seconds or DEFAULT_WATCH_SECONDS)
        )
    try:
        return asyncio.run(_run(settings, groups, named=args.group is not None, interval=interval, as_json=args.json))
    except KeyboardInterrupt:
        if interval is None:
            raise
        return EXIT_OK  # Ctrl-C is how --watch ends


async def _run(settings: Settings, groups: list[str], *, named: bool, interval: float | None, as_json: bool) -> int:
    from aiokafka.errors import KafkaError

    from bifrost.kafka.preflight import check_kafka
    from bifrost.streams.lag.probe import LagProbe
    from bifrost.streams.lag.rules import LagWindows

    await check_kafka(settings.kafka_bootstrap, settings.kafka_security, timeout=10.0)
    windows = LagWindows(settings.lag_window)
    probe = LagProbe(settings.kafka_bootstrap, settings.kafka_options())
    try:
        await probe.start()
        first = True
        while True:
            started = time.monotonic()
            try:
                snapshots = await probe.snapshot(groups)
            except (TimeoutError, KafkaError, OSError) as exc:
                if first or interval is None:
                    raise Unavailable(
                        f"cannot read consumer lag from Kafka at {settings.kafka_bootstrap}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
                print(
                    f"bifrost-opt: warning: lag sample failed ({type(exc).__name__}: {exc}); retrying", file=sys.stderr
                )
            else:
                if first and named:
                    await _refuse_unknown(probe, [s.group for s in snapshots if not s.exists])
                first = False
                reports = [windows.add(s) for s in snapshots]
                _show(reports, as_json=as_json, watching=interval is not None)
            if interval is None:
                return EXIT_OK
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        await probe.close()


async def _refuse_unknown(probe: Any, unknown: list[str]) -> None:
    if not unknown:
        return
    known = await probe.known_groups()
    hints = []
    for group in unknown:
        close = difflib.get_close_matches(group, known, n=3)
        if close:
            hints.append(f"Did you mean {', '.join(close)}?")
    listing = ", ".join(known[:20]) + (" …" if len(known) > 20 else "") if known else "none"
    raise UsageError(
        f"unknown consumer group {', '.join(map(repr, unknown))}: the cluster has no member and no "
        f"committed offset for it. {' '.join(hints)} Groups on this cluster: {listing}".replace("  ", " ")
    )


def _show(reports: Sequence[Any], *, as_json: bool, watching: bool) -> None:
    if as_json:
        document = {
            "sampled_at": reports[0].at if reports else None,
            "groups": [msgspec.to_builtins(r) for r in reports],
        }
        print(
            orjson.dumps(document).decode()
            if watching
            else orjson.dumps(document, option=orjson.OPT_INDENT_2).decode(),
            flush=True,
        )
        return
    if watching and sys.stdout.isatty():
        sys.stdout.write("\x1b[H\x1b[2J")  # clear the screen between refreshes
    print(render_table(reports), flush=True)


def render_table(reports: Sequence[Any]) -> str:
    """Human-readable lag: one block per group, one row per partition."""
    if not reports:
        return "no consumer group to show"
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(reports[0].at))
    lines = [f"consumer lag at {at}"]
    unjudged = False
    for r in reports:
        lines.append("")
        if not r.exists:
            lines.append(f"{r.group}  -  not found (no member, no committed offset)")
            continue
        members = f"{r.members} member{'s' if r.members != 1 else ''}"
        lines.append(
            f"{r.group}  {r.status.value}  ({r.state}, {members}; lag {r.lag} records, "
            f"{_seconds(r.lag_seconds)}; window {r.samples}/{r.window} samples)"
        )
        if not r.partitions:
            lines.append("  no committed offset yet")
            continue
        header = ["topic", "partition", "committed", "log end", "lag", "lag s", "status"]
        rows = [
            [
                p.topic,
                str(p.partition),
                "-" if p.committed is None else str(p.committed),
                str(p.log_end),
                str(p.lag),
                _seconds(p.lag_seconds, unit=""),
                p.status.value,
            ]
            for p in r.partitions
        ]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append(
                "  "
                + "  ".join(
                    c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
                ).rstrip()
            )
        unjudged = unjudged or any("not judged" in p.reason for p in r.partitions)
    if unjudged:
        lines += [
            "",
            "WARN, STALL and ERR need a full window of samples: run with --watch (or see the worker's /v1/lag).",
        ]
    return "\n".join(lines)


def _seconds(value: float | None, unit: str = " s") -> str:
    return "?" if value is None else f"{value:.1f}{unit}"
