"""`bifrost-opt retrain`: a manual training trigger, optionally followed to its outcome."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from typing import TYPE_CHECKING

import orjson
from aiokafka.errors import KafkaError

from bifrost.cli.errors import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, Unavailable, UsageError
from bifrost.cli.options import bounded_float, router_id
from bifrost.config import Settings

if TYPE_CHECKING:  # imported where used, so that other commands do not load the client
    from bifrost.client.training import TriggerProgress

DEFAULT_WAIT_SECONDS = 900.0  # a retrain of a week of logs takes about a minute here; generous for big windows
MAX_WAIT_SECONDS = 7 * 86400.0


def add_retrain_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    retrain = sub.add_parser("retrain", help="ask the trainer for a new artifact (a manual training trigger)")
    retrain.add_argument("--router", type=router_id, help="limit the data window to one router")
    retrain.add_argument("--since", default="7d", help="data window, back from now (e.g. 7d, 36h)")
    retrain.add_argument("--reason", default="manual", help="why, for the run report")
    retrain.add_argument(
        "--wait",
        nargs="?",
        type=bounded_float("--wait", 0.0, MAX_WAIT_SECONDS),
        const=DEFAULT_WAIT_SECONDS,
        default=None,
        metavar="SECONDS",
        help="follow the trigger to its outcome: the published version and its canary, or the refusal and its reason "
        f"(default {DEFAULT_WAIT_SECONDS:.0f} s when given without a number; exit 0 published + canary started, "
        "1 refused, 3 no answer in time)",
    )
    retrain.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run_retrain(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_retrain(args, settings))


async def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    from bifrost.client import Publisher
    from bifrost.client.training import follow_trigger
    from bifrost.schemas.codec import encode
    from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
    from bifrost.streams.web.views import BadDuration, parse_duration

    try:
        window = parse_duration(args.since)
    except BadDuration as exc:
        raise UsageError(f"--since: {exc}") from None
    now = time.time()
    trigger = TrainingTrigger(
        trigger_id=f"manual-{uuid.uuid4().hex[:12]}",
        reason=TriggerReason.MANUAL,
        window_from=now - window,
        window_to=now,
        router_id=args.router,
        details={"note": args.reason},
        requested_by="cli",
        created_at=now,
    )
    topic = settings.topics.training_triggers
    if not args.wait:
        async with Publisher(settings.kafka_bootstrap, settings.topics, security=settings.kafka_security) as publisher:
            await publisher.send_raw(topic, trigger.trigger_id.encode(), encode(trigger))
        if args.json:
            print(orjson.dumps({"trigger_id": trigger.trigger_id, "topic": topic, "waited": False}).decode())
        else:
            print(
                f"training trigger {trigger.trigger_id} sent on {topic}; not waiting for its outcome "
                f"(`--wait` follows it; the outcome is published on {settings.topics.training_outcomes})"
            )
        return EXIT_OK

    def show(progress: TriggerProgress) -> None:
        if not args.json:
            for line in _new_lines(progress, shown):
                print(line, flush=True)

    shown: set[str] = set()
    if not args.json:
        print(
            f"training trigger {trigger.trigger_id} sent on {topic}; waiting up to {args.wait:.0f} s for the "
            "trainer's outcome…",
            flush=True,
        )
    try:
        progress = await follow_trigger(
            settings.kafka_bootstrap,
            settings.topics,
            trigger,
            timeout=args.wait,
            security=settings.kafka_security,
            on_progress=show,
        )
    except KafkaError as exc:
        raise Unavailable(
            f"Kafka at {settings.kafka_bootstrap} failed while following trigger {trigger.trigger_id}: "
            f"{exc} (the trigger may have been sent; its outcome goes to "
            f"{settings.topics.training_outcomes})"
        ) from None
    code, verdict = judge(progress, args.wait)
    if args.json:
        print(orjson.dumps({**progress.as_dict(), "exit_code": code, "verdict": verdict}).decode())
    else:
        print(verdict, file=sys.stderr if code else sys.stdout)
    return code


def judge(progress: TriggerProgress, waited: float) -> tuple[int, str]:
    """Exit code and last line for what was seen about a trigger (pure)."""
    from bifrost.schemas.triggers import OutcomeKind

    outcome = progress.outcome
    if outcome is None:
        return EXIT_UNAVAILABLE, (
            f"bifrost-opt: error: no trainer answered within {waited:.0f} s (is `bifrost-opt "
            "trainer` "
            "running with the same BIFROST_TOPIC_PREFIX? the trigger stays queued for it)"
        )
    if outcome.outcome is not OutcomeKind.PUBLISHED:
        step = f" at {outcome.stopped_at}" if outcome.stopped_at else ""
        return EXIT_FAILURE, f"bifrost-opt: error: {outcome.outcome.value}{step}: {outcome.reason}"
    if outcome.version is None:
        return EXIT_FAILURE, (
            "bifrost-opt: error: the trainer reported a publication without an artifact version; "
            f"nothing to follow (its outcome is on the training-outcomes topic: {outcome.reason or 'no reason given'})"
        )
    if progress.announcement_error is not None:
        return (
            EXIT_FAILURE,
            f"bifrost-opt: error: {outcome.version} was published, but the worker refused it: "
            f"{progress.announcement_error}",
        )
    refused = [c for c in progress.canaries.values() if not c.accepted]
    if refused:
        return EXIT_FAILURE, "bifrost-opt: error: " + "; ".join(
            f"{outcome.version} canary on {c.router_id} refused: {c.reason}" for c in refused
        )
    if progress.waiting_for:
        return EXIT_UNAVAILABLE, (
            f"bifrost-opt: error: {outcome.version} was published, but no canary start was seen "
            "within "
            f"{waited:.0f} s for {', '.join(progress.waiting_for)} (is a worker running with "
            "BIFROST_PIPELINE_KEY_FILE set, so its artifact listener runs?)"
        )
    if not outcome.router_ids:
        return EXIT_OK, f"{outcome.version} published; it names no router, so no canary starts"
    return EXIT_OK, f"{outcome.version} published and its canary started on {', '.join(outcome.router_ids)}"


def _new_lines(progress: TriggerProgress, shown: set[str]) -> list[str]:
    lines: list[tuple[str, str]] = []
    outcome = progress.outcome
    if outcome is not None:
        again = " (this trigger id was handled before; its outcome again)" if outcome.duplicate else ""
        if outcome.version:
            text = (
                f"trainer: {outcome.outcome.value} {outcome.version} (parent {outcome.parent or '-'}) for "
                f"{', '.join(outcome.router_ids) or 'no router'}{again}"
            )
        else:
            step = f" at {outcome.stopped_at}" if outcome.stopped_at else ""
            text = f"trainer: {outcome.outcome.value}{step}: {outcome.reason}{again}"
        lines.append(("outcome", text))
        if outcome.report:
            lines.append(("report", f"  run report: {outcome.report}"))
    for router, canary in progress.canaries.items():
        where = f" at {canary.stage_percent:.0f}%" if canary.stage_percent is not None else ""
        state = f"{canary.phase}{where}" if canary.accepted else "refused"
        lines.append((f"canary:{router}", f"{router}: {state} — {canary.reason}"))
    fresh = [text for key, text in lines if key not in shown]
    shown.update(key for key, _ in lines)
    return fresh
