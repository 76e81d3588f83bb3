"""`bifrost-opt`: the command line of bifrost-optimizer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import orjson

from bifrost.cli.errors import EXIT_OK, UsageError, explain
from bifrost.config import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bifrost-opt",
        description="Continuous optimization loop of an LLM router (Kafka + Faust). "
        "Settings come from BIFROST_* environment variables; `bifrost-opt config` lists them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    worker = sub.add_parser("worker", help="run a stream worker (ingest, tables, HTTP views)")
    worker.add_argument("--web-port", type=int, help="HTTP port (default BIFROST_WEB_PORT)")

    schema = sub.add_parser("schema", help="print the JSON Schema of a wire type")
    schema.add_argument("name", help="routing-event, feedback or dlq")

    metrics = sub.add_parser("metrics", help="per-arm and per-model figures of a router")
    metrics.add_argument("--router", required=True, help="router id")
    metrics.add_argument("--since", default="15m", help="how far back, by event time (e.g. 90s, 15m, 6h, 7d)")
    metrics.add_argument("--until", type=float, help="end of the range, epoch seconds (default: newest window)")
    metrics.add_argument("--json", action="store_true", help="print JSON instead of a table")
    metrics.add_argument("--worker-url", help="worker HTTP base URL (default BIFROST_WORKER_URL)")

    simulate = sub.add_parser("simulate", help="publish simulated router traffic")
    simulate.add_argument("--routers", default="router-a", help="comma-separated router ids")
    simulate.add_argument("--arms", default="v1=0.9,v2=0.1", help="arm=weight pairs")
    simulate.add_argument("--rate", type=float, default=100.0, help="events per simulated second")
    simulate.add_argument("--duration", default="10m", help="simulated span (e.g. 1h)")
    simulate.add_argument("--speed", type=float, default=60.0, help="time compression; 0 = as fast as possible")
    simulate.add_argument("--malformed", type=float, default=0.0, help="fraction of malformed events (DLQ drill)")
    simulate.add_argument("--feedback", type=float, default=0.3, help="fraction of requests that get feedback")
    simulate.add_argument("--seed", type=int, default=7)
    for flag, meaning in EFFECT_FLAGS.items():
        simulate.add_argument(f"--{flag}", action="append", default=[], metavar="ARM=X", help=f"{meaning} (repeatable)")
    simulate.add_argument("--ignore-rollouts", action="store_true", help="do not obey rollout-state traffic weights")
    simulate.add_argument("--json", action="store_true", help="print the report as JSON")

    kafka = sub.add_parser("kafka", help="local single-node Kafka for development (start|stop|status)")
    kafka.add_argument("kafka_args", nargs=argparse.REMAINDER, help="arguments of python -m bifrost.devkafka")

    retrain = sub.add_parser("retrain", help="ask the trainer for a new artifact (a manual training trigger)")
    retrain.add_argument("--router", help="limit the data window to one router")
    retrain.add_argument("--since", default="7d", help="data window, back from now (e.g. 7d, 36h)")
    retrain.add_argument("--reason", default="manual", help="why, for the run report")

    sub.add_parser("config", help="list settings, their variables and defaults")

    gates = sub.add_parser(
        "simulate-gates",
        help="rollback gates on synthetic A/A and regressed canaries (no Kafka): false-rollback and detection rates",
        add_help=False,
    )
    gates.add_argument("gate_args", nargs=argparse.REMAINDER, help="--rollouts N --seed S --json")

    from bifrost.cli.rollout_cmd import add_rollout_parser

    add_rollout_parser(sub)

    up = sub.add_parser("up", help="run the whole loop locally: Kafka, worker, simulated traffic")
    up.add_argument("--data-dir", default="var", help="where Kafka and worker data live")
    up.add_argument("--rate", type=float, default=50.0, help="simulated events per second")
    up.add_argument("--speed", type=float, default=10.0, help="time compression of the simulation")
    up.add_argument("--for", dest="run_for", default="0", help="stop after this long (e.g. 2m); 0 = until Ctrl-C")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        # These commands own their whole argument list (and their --help).
        return _guarded(lambda: PASSTHROUGH[argv[0]]()(argv[1:]))
    args = _parser().parse_args(argv)
    return _guarded(lambda: _dispatch(args))


def _kafka_main() -> Callable[[list[str]], int]:
    from bifrost.devkafka.__main__ import main as kafka_main

    return kafka_main


def _gates_main() -> Callable[[list[str]], int]:
    from bifrost.streams.rollout.gates.cli import main_simulate_gates

    return main_simulate_gates


PASSTHROUGH: dict[str, Callable[[], Callable[[list[str]], int]]] = {"kafka": _kafka_main, "simulate-gates": _gates_main}


def _guarded(run: Callable[[], int]) -> int:
    """Run a command; explain known failures instead of showing a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # aiokafka logs every failed connection attempt; our own error message says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return run()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - explain() re-raises what it does not know
        code, message = explain(exc)
        print(f"bifrost-opt: error: {message}", file=sys.stderr)
        return code


def _dispatch(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.command == "worker":
        from bifrost.streams.app import run_worker

        if args.web_port:
            settings = Settings.from_env(web_port=args.web_port)
        run_worker(settings)
        return EXIT_OK
    if args.command == "schema":
        from bifrost.schemas.jsonschema import json_schema

        sys.stdout.write(orjson.dumps(json_schema(args.name), option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    if args.command == "metrics":
        from bifrost.cli.metrics_cmd import fetch_metrics, render_table
        from bifrost.streams.web.views import BadDuration, parse_duration

        try:
            parse_duration(args.since)
        except BadDuration as exc:
            raise UsageError(f"--since: {exc}") from None
        data = fetch_metrics(args.worker_url or settings.worker_url, args.router, args.since, args.until)
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() if args.json else render_table(data))
        return EXIT_OK
    if args.command == "simulate":
        return asyncio.run(_simulate(args, settings))
    if args.command == "config":
        for env, default, doc in Settings.describe():
            print(f"{env:34} {default:26} {doc}")
        return EXIT_OK
    if args.command == "retrain":
        return asyncio.run(_retrain(args, settings))
    if args.command == "rollout":
        from bifrost.cli.rollout_cmd import run_rollout

        return run_rollout(args, settings)
    if args.command == "up":
        from bifrost.cli.up import run_local_loop

        return run_local_loop(args, settings)
    raise UsageError(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it


EFFECT_FLAGS = {
    "latency-factor": "multiply an arm's latencies, e.g. v2=1.5",
    "error-factor": "multiply an arm's error rate, e.g. v2=3",
    "cost-factor": "multiply an arm's cost, e.g. v2=1.3",
    "quality-delta": "shift an arm's graded quality, e.g. v2=-0.1",
    "win-delta": "shift an arm's win probability, e.g. v2=-0.1",
}


def _pairs(text: str, option: str, *, allow_negative: bool = False) -> dict[str, float]:
    pairs: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            pairs[name] = float(value) if sep else 1.0
        except ValueError:
            raise UsageError(f"{option}: {item!r} is not NAME=NUMBER") from None
        if not name or (pairs[name] < 0 and not allow_negative):
            raise UsageError(f"{option}: {item!r} is not NAME=NUMBER with NUMBER ≥ 0")
    if not pairs:
        raise UsageError(f"{option}: give at least one NAME=NUMBER")
    return pairs


async def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from bifrost.client import Publisher
    from bifrost.schemas.codec import encode
    from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
    from bifrost.streams.web.views import BadDuration, parse_duration

    try:
        window = parse_duration(args.since)
    except BadDuration as exc:
        raise UsageError(f"--since: {exc}") from None
    now = time.time()
    trigger = TrainingTrigger(
        trigger_id=f"manual-{uuid.uuid4().hex[:12]}", reason=TriggerReason.MANUAL, window_from=now - window,
        window_to=now, router_id=args.router, details={"note": args.reason}, requested_by="cli", created_at=now,
    )
    async with Publisher(settings.kafka_bootstrap, settings.topics) as publisher:
        await publisher.send_raw(settings.topics.training_triggers, trigger.trigger_id.encode(), encode(trigger))
    print(f"training trigger {trigger.trigger_id} published on {settings.topics.training_triggers}")
    return EXIT_OK


async def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from bifrost.client.simulator import ArmEffect, TrafficConfig, anchored, simulate
    from bifrost.streams.web.views import BadDuration, parse_duration

    try:
        duration = parse_duration(args.duration)
    except BadDuration as exc:
        raise UsageError(f"--duration: {exc}") from None
    if args.rate <= 0:
        raise UsageError("--rate must be positive")
    if not 0 <= args.malformed <= 1 or not 0 <= args.feedback <= 1:
        raise UsageError("--malformed and --feedback are fractions between 0 and 1")
    arms = _pairs(args.arms, "--arms")
    effects: dict[str, ArmEffect] = {}
    for flag in EFFECT_FLAGS:
        given = getattr(args, flag.replace("-", "_"))
        if not given:
            continue
        for arm, value in _pairs(",".join(given), f"--{flag}", allow_negative=flag.endswith("delta")).items():
            effects[arm] = replace(effects.get(arm, ArmEffect()), **{flag.replace("-", "_"): value})
    config = TrafficConfig(
        routers=tuple(r.strip() for r in args.routers.split(",") if r.strip()),
        arms=arms,
        arm_effects=effects,
        rate_per_second=args.rate,
        duration_seconds=duration,
        malformed_fraction=args.malformed,
        feedback_fraction=args.feedback,
        seed=args.seed,
    )
    config = anchored(config, speed=args.speed, now=time.time())
    report = await simulate(
        settings.kafka_bootstrap, settings.topics, config, speed=args.speed, follow_rollouts=not args.ignore_rollouts
    )
    if args.json:
        print(orjson.dumps(report.as_dict()).decode())
    else:
        print(
            f"published {report.events} events, {report.malformed} malformed, {report.feedback} feedback "
            f"in {report.wall_seconds:.1f} s"
        )
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
