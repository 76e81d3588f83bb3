"""`bifrost-opt catalog …` (the model catalog) and `bifrost-opt refresher` (its schedules and webhook delivery).

``catalog refresh [--quick]`` runs one refresh now (fetch, snapshot, publish — as the
schedule does); ``list``, ``show SLUG``, ``diff A B`` and ``snapshots`` read the snapshot
folder (``BIFROST_CATALOG_DIR``) and need no broker; ``rollback VERSION`` makes an
earlier snapshot's entries current again and publishes the result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

import msgspec
import orjson

from bifrost.cli.errors import EXIT_OK, CliError, Unavailable, UsageError
from bifrost.config import Settings

ACTIONS = ("refresh", "list", "show", "diff", "snapshots", "rollback")


def add_parsers(sub: Any) -> None:
    """Add ``catalog`` and ``refresher`` to the CLI's subparsers."""
    catalog = sub.add_parser(
        "catalog",
        help="the model catalog: refresh | list | show | diff | snapshots | rollback",
        description="Provider model lists (OpenRouter, OpenAI, Gemini) normalized into versioned "
        "snapshots under BIFROST_CATALOG_DIR; drift against the previous snapshot goes to "
        "catalog-changes. See README 'Catalog'.",
    )
    actions = catalog.add_subparsers(dest="catalog_action", metavar="ACTION")
    actions.required = True
    refresh = actions.add_parser(
        "refresh", help="fetch every provider now, write a snapshot, publish entries and drift"
    )
    refresh.add_argument("--quick", action="store_true", help="prices and availability of known models only")
    listing = actions.add_parser("list", help="entries of the current snapshot (available ones unless --all)")
    listing.add_argument("--source", choices=("openrouter", "openai", "gemini"), help="only this provider API")
    listing.add_argument("--all", action="store_true", help="also removed and unavailable models")
    show = actions.add_parser("show", help="every entry of a model: slug, entry id or name without the vendor")
    show.add_argument("slug", help="e.g. openai/gpt-4o, openrouter:openai/gpt-4o or gpt-4o")
    diff = actions.add_parser("diff", help="what changed between two snapshots (every field; drift marked)")
    diff.add_argument("a", metavar="A", help="older snapshot version (see `catalog snapshots`)")
    diff.add_argument("b", metavar="B", help="newer snapshot version")
    actions.add_parser("snapshots", help="stored snapshots, oldest first; * marks the current one")
    rollback = actions.add_parser(
        "rollback", help="make an earlier snapshot's entries current (published as a new snapshot)"
    )
    rollback.add_argument("version", metavar="VERSION", help="snapshot version to go back to")
    rollback.add_argument("--reason", default="", help="why (recorded in the snapshot and logged)")
    for parser in (refresh, listing, show, diff, actions.choices["snapshots"], rollback):
        parser.add_argument("--json", action="store_true", help="print JSON")

    refresher = sub.add_parser(
        "refresher",
        help="run the catalog refresher: nightly and 6-hourly refreshes (leader only) and webhook delivery of alerts",
    )
    refresher.add_argument("--no-webhooks", action="store_true", help="do not deliver alerts to BIFROST_WEBHOOK_URLS")
    refresher.add_argument("--no-schedules", action="store_true", help="only deliver webhooks (no catalog refreshes)")


def run_refresher(args: argparse.Namespace, settings: Settings) -> int:
    """``bifrost-opt refresher``: until SIGTERM or Ctrl-C."""
    from bifrost.catalog.service import check_settings
    from bifrost.catalog.service import run_refresher as main

    check_settings(settings)  # misconfiguration: a clear message before anything starts

    async def run() -> None:
        task = asyncio.ensure_future(main(settings, webhooks=not args.no_webhooks, schedules=not args.no_schedules))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    return EXIT_OK


def run(args: argparse.Namespace, settings: Settings) -> int:
    """``bifrost-opt catalog ACTION``."""
    from bifrost.catalog.snapshots import SnapshotError, SnapshotStore

    store = SnapshotStore(settings.catalog_dir, keep=settings.catalog_keep)
    action = args.catalog_action
    try:
        if action == "refresh":
            return _refresh(args, settings, store)
        if action == "rollback":
            return _rollback(args, settings, store)
        if action == "snapshots":
            return _snapshots(args, store)
        if action == "diff":
            return _diff(args, settings, store)
        current = store.require_current()
    except SnapshotError as exc:
        raise (
            UsageError
            if "no catalog snapshot" in str(exc)
            or "already the current" in str(exc)
            or "not a snapshot version" in str(exc)
            else CliError
        )(str(exc)) from None
    entries = current.entries
    if action == "list":
        shown = [e for e in entries if (args.all or e.available) and (not args.source or e.source.value == args.source)]
        if args.json:
            return _print_json(
                {
                    "snapshot": current.version,
                    "created_at": current.created_at,
                    "providers": current.providers,
                    "entries": shown,
                }
            )
        print(
            f"snapshot {current.version} ({len(shown)} of {len(entries)} entries; "
            + ", ".join(f"{p.source} {p.outcome}" for p in current.providers)
            + ")"
        )
        print(_table(shown))
        return EXIT_OK
    from bifrost.schemas.catalog import Source

    wanted = args.slug.strip()
    found = [e for e in entries if wanted in (e.id, e.slug, e.name)]
    if not found:
        close = sorted({e.slug for e in entries if wanted.lower() in e.slug.lower()})[:8]
        raise UsageError(
            f"no catalog entry {wanted!r} in snapshot {current.version}"
            + (f"; close: {', '.join(close)}" if close else "")
        )
    found.sort(key=lambda e: list(Source).index(e.source))
    if args.json:
        return _print_json({"snapshot": current.version, "entries": found})
    for entry in found:
        for key, value in msgspec.to_builtins(entry).items():
            print(f"{key:12} {value}")
        print()
    return EXIT_OK


def _refresh(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    from aiokafka.errors import KafkaError

    from bifrost.catalog.drift import FULL, QUICK, describe
    from bifrost.catalog.refresher import Refresher

    if args.quick and store.current() is None:
        raise UsageError("a quick check only updates known models: run a full `bifrost-opt catalog refresh` first")
    refresher = Refresher(settings)

    async def go() -> Any:
        try:
            return await refresher.refresh(QUICK if args.quick else FULL)
        finally:
            await refresher.close()

    try:
        snapshot = asyncio.run(go())
    except (TimeoutError, KafkaError, OSError) as exc:
        current = store.current()
        where = f"snapshot {current.version} is written but " if current is not None and not current.published else ""
        raise Unavailable(
            f"{where}publishing to Kafka at {settings.kafka_bootstrap} failed ({type(exc).__name__}: "
            f"{exc}); the next refresh publishes it first"
        ) from None
    if args.json:
        return _print_json(snapshot)
    print(
        f"snapshot {snapshot.version} ({snapshot.mode}): {len(snapshot.entries)} entries, "
        f"{len(snapshot.changes)} change(s), published to {settings.topics.catalog}"
    )
    for p in snapshot.providers:
        print(
            f"  {p.source:10} {p.outcome:7} {p.entries:5} entries"
            + (f"  {p.error}" if p.error else "")
            + (f"  ({p.skipped_items} malformed items skipped)" if p.skipped_items else "")
            + (f"  ({p.invalid_prices} malformed prices: last known price kept, stale)" if p.invalid_prices else "")
        )
    for change in snapshot.changes[:50]:
        print(
            f"  {'!' if change.significant else ' '} {describe(change)}"
            + (f"  [used as {', '.join(change.used_as)}]" if change.used_as else "")
        )
    if len(snapshot.changes) > 50:
        print(f"  … {len(snapshot.changes) - 50} more (--json for all)")
    if snapshot.trigger_id:
        print(
            f"artifact {snapshot.artifact_version} marked invalidated; retrain requested ({snapshot.trigger_id}); "
            f"alert {snapshot.alert_id}"
        )
    return EXIT_OK


def _rollback(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    from aiokafka.errors import KafkaError

    from bifrost.catalog.refresher import Refresher

    store.load(args.version)  # an unknown version is a usage error before anything else
    refresher = Refresher(settings, sources=[])

    async def go() -> Any:
        try:
            return await refresher.rollback(args.version, reason=args.reason)
        finally:
            await refresher.close()

    try:
        snapshot = asyncio.run(go())
    except (TimeoutError, KafkaError, OSError) as exc:
        raise Unavailable(
            f"publishing to Kafka at {settings.kafka_bootstrap} failed ({type(exc).__name__}: {exc}); "
            "the rollback snapshot is written and the next refresh publishes it first"
        ) from None
    if args.json:
        return _print_json(snapshot)
    print(
        f"catalog rolled back to {args.version} as snapshot {snapshot.version}: {len(snapshot.changes)} change(s)"
        + (
            f"; artifact {snapshot.artifact_version} invalidated, retrain {snapshot.trigger_id}"
            if snapshot.trigger_id
            else ""
        )
    )
    return EXIT_OK


def _snapshots(args: argparse.Namespace, store: Any) -> int:
    current = store.current_version()
    history = {h.version: h for h in store.history()}
    rows = [
        {
            "version": v,
            "current": v == current,
            "mode": history[v].mode if v in history else "",
            "changes": history[v].changes if v in history else None,
        }
        for v in store.versions()
    ]
    if args.json:
        return _print_json({"current": current, "snapshots": rows})
    if not rows:
        print(f"no catalog snapshots in {store.root} (run `bifrost-opt catalog refresh`)")
    for row in rows:
        print(f"{'*' if row['current'] else ' '} {row['version']:32} {row['mode']:8} changes {row['changes']}")
    return EXIT_OK


def _diff(args: argparse.Namespace, settings: Settings, store: Any) -> int:
    from bifrost.catalog.drift import DriftRules, describe, detect

    a, b = store.load(args.a), store.load(args.b)
    every = detect(
        a.by_id(),
        b.by_id(),
        snapshot=b.version,
        previous_snapshot=a.version,
        in_use={},
        rules=DriftRules(price_threshold=0.0),
    )
    drift = {
        c.change_id
        for c in detect(
            a.by_id(),
            b.by_id(),
            snapshot=b.version,
            previous_snapshot=a.version,
            in_use={},
            rules=DriftRules(price_threshold=settings.catalog_price_threshold),
        )
    }
    if args.json:
        return _print_json(
            {
                "a": a.version,
                "b": b.version,
                "threshold": settings.catalog_price_threshold,
                "changes": [{**msgspec.to_builtins(c), "drift": c.change_id in drift} for c in every],
            }
        )
    print(
        f"{a.version} → {b.version}: {len(every)} change(s), {len(drift)} drift "
        f"(price threshold {settings.catalog_price_threshold:.0%}; * marks drift)"
    )
    for change in every:
        print(f"{'*' if change.change_id in drift else ' '} {describe(change)}")
    return EXIT_OK


def _table(entries: list[Any]) -> str:
    def price(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    rows = [("entry", "ctx_in", "max_out", "in $/1M", "out $/1M", "thinking", "json", "state")]
    for e in entries:
        state = "stale" if e.stale else ("ok" if e.available else ("removed" if not e.listed else "unavailable"))
        rows.append(
            (
                e.id,
                str(e.ctx_in or "-"),
                str(e.max_out or "-"),
                price(e.pricing.input if e.pricing else None),
                price(e.pricing.output if e.pricing else None),
                "yes" if e.params.thinking else "no",
                "yes" if e.params.json else "no",
                state,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _print_json(value: Any) -> int:
    """JSON of any struct or builtin (an infinite relative price change, from a price of 0, prints as null)."""
    sys.stdout.write(orjson.dumps(msgspec.to_builtins(value), option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK
