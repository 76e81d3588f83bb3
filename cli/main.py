"""`bifrost-opt`: the command line of bifrost-optimizer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from bifrost.cli.errors import EXIT_OK, UsageError
from bifrost.cli.options import bounded_float, bounded_int, router_id
from bifrost.common.errors import run_guarded
from bifrost.common.text import one_line_log_records
from bifrost.config import Settings

if TYPE_CHECKING:  # imported where used, so that other commands do not load the simulator
    from bifrost.client.simulator import TrafficConfig
    from bifrost.client.simulator.replay import ReplayConfig, ReplayTraffic
    from bifrost.client.simulator.runner import TrafficSource


BUNDLED_DATASET = Path("data/routing-eval/llmrouter-dc.jsonl.gz")
MAX_RATE = 1_000_000.0  # events per second: far above what one publisher process reaches
MAX_SPEED = 100_000.0  # time compression: a week in six seconds
MAX_EPOCH_SECONDS = 4_102_444_800.0  # 2100-01-01, as the HTTP views accept


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bifrost-opt",
        description="Continuous optimization loop of an LLM router (Kafka + Faust). "
        "Settings come from BIFROST_* environment variables; `bifrost-opt config` lists them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    worker = sub.add_parser("worker", help="run a stream worker (ingest, tables, HTTP views)")
    worker.add_argument(
        "--web-port", type=bounded_int("--web-port", 1, 65535), help="HTTP port (default BIFROST_WEB_PORT)"
    )

    schema = sub.add_parser("schema", help="print the JSON Schema of a wire type")
    schema.add_argument("name", help="routing-event, feedback or dlq")

    metrics = sub.add_parser("metrics", help="per-arm and per-model figures of a router")
    metrics.add_argument("--router", type=router_id, required=True, help="router id")
    metrics.add_argument("--since", default="15m", help="how far back, by event time (e.g. 90s, 15m, 6h, 7d)")
    metrics.add_argument(
        "--until",
        type=bounded_float("--until", 0.0, MAX_EPOCH_SECONDS),
        help="end of the range, epoch seconds (default: newest window)",
    )
    metrics.add_argument("--json", action="store_true", help="print JSON instead of a table")
    metrics.add_argument("--worker-url", help="worker HTTP base URL (default BIFROST_WORKER_URL)")

    simulate = sub.add_parser("simulate", help="publish simulated router traffic")
    simulate.add_argument("--routers", default="router-a", help="comma-separated router ids")
    simulate.add_argument(
        "--arms", help=f"arm=weight pairs (default {SYNTHETIC_ARMS}; with --dataset, the store's current version)"
    )
    simulate.add_argument(
        "--rate",
        type=bounded_float("--rate", 0.0, MAX_RATE, low_open=True),
        default=100.0,
        help="events per simulated second",
    )
    simulate.add_argument("--duration", default="10m", help="simulated span (e.g. 1h)")
    simulate.add_argument(
        "--speed",
        type=bounded_float("--speed", 0.0, MAX_SPEED),
        default=60.0,
        help="time compression; 0 = as fast as possible",
    )
    simulate.add_argument(
        "--malformed",
        type=bounded_float("--malformed", 0.0, 1.0),
        default=0.0,
        help="fraction of malformed events (DLQ drill)",
    )
    simulate.add_argument(
        "--feedback",
        type=bounded_float("--feedback", 0.0, 1.0),
        default=0.3,
        help="fraction of requests that get feedback",
    )
    simulate.add_argument("--seed", type=bounded_int("--seed", 0, 2**32 - 1), default=7)
    for flag, meaning in EFFECT_FLAGS.items():
        simulate.add_argument(f"--{flag}", action="append", default=[], metavar="ARM=X", help=f"{meaning} (repeatable)")
    simulate.add_argument("--ignore-rollouts", action="store_true", help="do not obey rollout-state traffic weights")
    simulate.add_argument("--json", action="store_true", help="print the report as JSON")
    replay = simulate.add_argument_group(
        "dataset replay",
        "replay a full-information dataset's prompts through the reference router (arms are "
        "artifact versions, loaded verified from the artifact store); cost and quality come from the dataset",
    )
    replay.add_argument("--dataset", metavar="FILE", help="full-information JSONL(.gz) file to replay")
    replay.add_argument(
        "--split",
        help="rows to replay: train (default: traffic the trainer may learn from), "
        "test (held out: what evaluation reports on), or all",
    )
    replay.add_argument("--store", metavar="DIR", help="artifact store folder (default var/artifacts)")
    replay.add_argument(
        "--verify-key",
        metavar="FILE",
        help="artifact verification key (default $BIFROST_VERIFY_KEY, else the "
        "signing key variables, else var/keys/artifact-signing.pem)",
    )
    replay.add_argument(
        "--exploration",
        type=bounded_float("--exploration", 0.0, 1.0),
        metavar="FRACTION",
        help="ε: share of requests served by a uniformly drawn eligible model (logged propensities; default 0.1)",
    )

    kafka = sub.add_parser("kafka", help="local single-node Kafka for development (start|stop|status)")
    kafka.add_argument("kafka_args", nargs=argparse.REMAINDER, help="arguments of python -m bifrost.devkafka")

    from bifrost.cli.init_cmd import add_init_parser
    from bifrost.cli.retrain_cmd import add_retrain_parser

    add_retrain_parser(sub)
    add_init_parser(sub)

    config = sub.add_parser("config", help="list settings: effective value, where it comes from (env, file, default)")
    config.add_argument("--json", action="store_true", help="print JSON instead of a table")

    for name, text in (
        ("train", "bootstrap a signed artifact from a full-information dataset (--dataset FILE)"),
        ("evaluate", "evaluate an artifact offline on a full-information dataset"),
        ("artifacts", "list | show | verify | rollback stored artifacts"),
        ("trainer", "run the trainer service (consumes training-triggers, publishes artifacts)"),
    ):
        passthrough = sub.add_parser(name, help=text, add_help=False)
        passthrough.add_argument("rest", nargs=argparse.REMAINDER, help="see bifrost-opt " + name + " --help")

    gates = sub.add_parser(
        "simulate-gates",
        help="rollback gates on synthetic A/A and regressed canaries (no Kafka): false-rollback and detection rates",
        add_help=False,
    )
    gates.add_argument("gate_args", nargs=argparse.REMAINDER, help="--rollouts N --seed S --json")

    from bifrost.cli.keys_cmd import add_keys_parser
    from bifrost.cli.rollout_cmd import add_rollout_parser

    add_rollout_parser(sub)
    add_keys_parser(sub)
    from bifrost.cli import lag_cmd

    lag_cmd.add_parser(sub)
    from bifrost.cli import optimizer_cmd

    optimizer_cmd.add_parsers(sub)
    from bifrost.cli import catalog_cmd

    catalog_cmd.add_parsers(sub)

    up = sub.add_parser("up", help="run the whole loop locally: Kafka, worker, simulated traffic")
    up.add_argument("--data-dir", default="var", help="where Kafka, worker, trainer and artifact data live")
    up.add_argument(
        "--dataset",
        default=str(BUNDLED_DATASET),
        help="full-information dataset whose prompts are replayed (default: the bundled one)",
    )
    up.add_argument(
        "--rate",
        type=bounded_float("--rate", 0.0, MAX_RATE, low_open=True),
        default=50.0,
        help="simulated events per second",
    )
    up.add_argument(
        "--speed",
        type=bounded_float("--speed", 1.0, MAX_SPEED),
        default=10.0,
        help="time compression of the simulation (1 = real time)",
    )
    up.add_argument("--for", dest="run_for", default="0", help="stop after this long (e.g. 2m); 0 = until Ctrl-C")
    up.add_argument(
        "--router",
        type=router_id,
        default="demo-replay",
        help="router id of the replay (default demo-replay; its event time is compressed, so do not share "
        "it with producers publishing in real time)",
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bifrost-optimizer")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        # These commands own their whole argument list (and their --help).
        return _guarded(lambda: PASSTHROUGH[argv[0]]()(argv[1:]))
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error (2) or --help / --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    return _guarded(lambda: _dispatch(args))


def _kafka_main() -> Callable[[list[str]], int]:
    from bifrost.devkafka.__main__ import main as kafka_main

    return kafka_main


def _gates_main() -> Callable[[list[str]], int]:
    from bifrost.gatesim.cli import main_simulate_gates

    return main_simulate_gates


def _trainer_main(name: str) -> Callable[[], Callable[[list[str]], int]]:
    def load() -> Callable[[list[str]], int]:
        from bifrost.trainer import cli as trainer_cli

        return getattr(trainer_cli, name)

    return load


PASSTHROUGH: dict[str, Callable[[], Callable[[list[str]], int]]] = {
    "kafka": _kafka_main,
    "simulate-gates": _gates_main,
    "train": _trainer_main("main_train"),
    "evaluate": _trainer_main("main_evaluate"),
    "artifacts": _trainer_main("main_artifacts"),
    "trainer": _trainer_main("main_service"),
}


def _guarded(run: Callable[[], int]) -> int:
    """Run a command; explain known failures instead of showing a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    one_line_log_records()
    # aiokafka logs every failed connection attempt; our own error message says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return run_guarded(run, prefix="bifrost-opt: error: ", interrupted=None)
    except BrokenPipeError:  # `bifrost-opt config | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


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
        data = fetch_metrics(
            args.worker_url or settings.worker_url,
            args.router,
            args.since,
            args.until,
            token=settings.web_token_value(),
        )
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() if args.json else render_table(data))
        return EXIT_OK
    if args.command == "simulate":
        return asyncio.run(_simulate(args, settings))
    if args.command == "config":
        from bifrost.cli.config_cmd import effective_settings, render

        rows = effective_settings()
        print(
            orjson.dumps([r.as_dict() for r in rows], option=orjson.OPT_INDENT_2).decode()
            if args.json
            else render(rows)
        )
        return EXIT_OK
    if args.command == "init":
        from bifrost.cli.init_cmd import run_init
        from bifrost.trainer.settings import TrainerSettings

        return run_init(args, settings.artifact_store, TrainerSettings.from_env().signing_key_file)
    if args.command == "retrain":
        from bifrost.cli.retrain_cmd import run_retrain

        return run_retrain(args, settings)
    if args.command == "rollout":
        from bifrost.cli.rollout_cmd import run_rollout

        return run_rollout(args, settings)
    if args.command == "keys":
        from bifrost.cli.keys_cmd import run_keys

        return run_keys(args)
    if args.command == "lag":
        from bifrost.cli import lag_cmd

        return lag_cmd.run(args, settings)
    if args.command in ("analyze", "recommendations"):
        from bifrost.cli import optimizer_cmd

        return (optimizer_cmd.run_analyze if args.command == "analyze" else optimizer_cmd.run_recommendations)(
            args, settings
        )
    if args.command in ("catalog", "refresher"):
        from bifrost.cli import catalog_cmd

        return (
            catalog_cmd.run(args, settings) if args.command == "catalog" else catalog_cmd.run_refresher(args, settings)
        )
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
        if not math.isfinite(pairs[name]) or abs(pairs[name]) > 1e6:
            raise UsageError(f"{option}: {item!r}: NUMBER must be finite (and at most 1e6)")
        if not name or (pairs[name] < 0 and not allow_negative):
            raise UsageError(f"{option}: {item!r} is not NAME=NUMBER with NUMBER ≥ 0")
    if not pairs:
        raise UsageError(f"{option}: give at least one NAME=NUMBER")
    return pairs


SYNTHETIC_ARMS = "v1=0.9,v2=0.1"
REPLAY_OPTIONS = ("split", "store", "verify_key", "exploration")
DEFAULT_EXPLORATION = 0.1


async def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from functools import partial

    from bifrost.client.simulator import anchored, simulate
    from bifrost.streams.web.views import BadDuration, parse_duration

    try:
        duration = parse_duration(args.duration)
    except BadDuration as exc:
        raise UsageError(f"--duration: {exc}") from None
    if args.rate <= 0:
        raise UsageError("--rate must be positive")
    if not 0 <= args.malformed <= 1 or not 0 <= args.feedback <= 1:
        raise UsageError("--malformed and --feedback are fractions between 0 and 1")
    routers = tuple(r.strip() for r in args.routers.split(",") if r.strip())
    if not routers:
        raise UsageError("--routers: give at least one router id")
    replay_options = [f"--{name.replace('_', '-')}" for name in REPLAY_OPTIONS if getattr(args, name) is not None]
    traffic: ReplayTraffic | None = None
    source: TrafficSource | None = None
    config: ReplayConfig | TrafficConfig
    if args.dataset:
        traffic, replay_config = _replay(args, routers, duration)
        config = anchored(replay_config, speed=args.speed, now=time.time())
        source = partial(traffic.generate, config)
    elif replay_options:
        raise UsageError(f"{', '.join(replay_options)}: only with --dataset FILE")
    else:
        config = anchored(_synthetic(args, routers, duration), speed=args.speed, now=time.time())
    report = await simulate(
        settings.kafka_bootstrap,
        settings.topics,
        config,
        speed=args.speed,
        follow_rollouts=not args.ignore_rollouts,
        source=source,
        security=settings.kafka_security,
    )
    pool = traffic.pool if traffic is not None else None
    unavailable = (
        {version: {"reason": reason, "rerouted": pool.rerouted[version]} for version, reason in pool.failures.items()}
        if pool is not None
        else {}
    )
    if args.json:
        print(
            orjson.dumps(
                {**report.as_dict(), **({"unavailable_arms": unavailable} if traffic is not None else {})}
            ).decode()
        )
    else:
        print(
            f"published {report.events} events, {report.malformed} malformed, {report.feedback} feedback "
            f"in {report.wall_seconds:.1f} s"
        )
    for version, info in unavailable.items():
        print(
            f"bifrost-opt: warning: arm {version} was not routed with ({info['reason']}); "
            f"{info['rerouted']} of its requests were served by the last good arm",
            file=sys.stderr,
        )
    return EXIT_OK


def _synthetic(args: argparse.Namespace, routers: tuple[str, ...], duration: float) -> TrafficConfig:
    """The synthetic traffic model of the command line (arms are made-up names)."""
    from bifrost.client.simulator import ArmEffect, TrafficConfig

    effects: dict[str, ArmEffect] = {}
    for flag in EFFECT_FLAGS:
        given = getattr(args, flag.replace("-", "_"))
        if not given:
            continue
        for arm, value in _pairs(",".join(given), f"--{flag}", allow_negative=flag.endswith("delta")).items():
            effects[arm] = replace(effects.get(arm, ArmEffect()), **{flag.replace("-", "_"): value})
    return TrafficConfig(
        routers=routers,
        arms=_pairs(args.arms or SYNTHETIC_ARMS, "--arms"),
        arm_effects=effects,
        rate_per_second=args.rate,
        duration_seconds=duration,
        malformed_fraction=args.malformed,
        feedback_fraction=args.feedback,
        seed=args.seed,
    )


def _replay(args: argparse.Namespace, routers: tuple[str, ...], duration: float) -> tuple[ReplayTraffic, ReplayConfig]:
    """A replay of ``--dataset`` through verified artifacts of ``--store`` (misuse → UsageError)."""
    from bifrost.client.simulator.launch import ReplaySetupError, open_replay
    from bifrost.client.simulator.replay import ReplayConfig, ReplayError

    shaped = [f"--{flag}" for flag in EFFECT_FLAGS if getattr(args, flag.replace("-", "_"))]
    if shaped:
        raise UsageError(f"{', '.join(shaped)} shape synthetic traffic only; they cannot be combined with --dataset")
    exploration = DEFAULT_EXPLORATION if args.exploration is None else args.exploration
    if not 0 <= exploration <= 1:
        raise UsageError("--exploration is a fraction between 0 and 1")
    arms = _pairs(args.arms, "--arms") if args.arms else None
    try:
        traffic, weights = open_replay(
            args.dataset, store=args.store, key=args.verify_key, arms=arms, split=args.split or "train"
        )
        config = ReplayConfig(
            arms=weights,
            routers=routers,
            exploration=exploration,
            rate_per_second=args.rate,
            duration_seconds=duration,
            malformed_fraction=args.malformed,
            feedback_fraction=args.feedback,
            seed=args.seed,
        )
    except (ReplaySetupError, ReplayError) as exc:
        raise UsageError(str(exc)) from None
    return traffic, config


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
