"""``bifrost-opt simulate-gates``: the gate simulation from the command line (no Kafka)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

import msgspec

from bifrost.gatesim.simulation import (
    DEFAULT_SCENARIOS,
    MISSING_SCENARIOS,
    Scenario,
    SimulationReport,
    TrafficConfig,
    simulate_gates,
)
from bifrost.gatesim.suite import suite
from bifrost.gatesim.table import to_markdown
from bifrost.gatesim.traffic import Clustering, LatencyModel
from bifrost.streams.rollout.controller import RolloutPolicy
from bifrost.streams.rollout.gates.config import GateConfig

MAX_COUNT = 10_000_000  # rollouts, requests per window, windows: beyond this a run would not finish


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_COUNT:,}, got {text[:40]!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_COUNT:,}, got {text[:40]!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 2**32 - 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and {2**32 - 1}, got {text[:40]!r}")
    return value


def _number(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A finite float within the bounds (NaN, infinities and out-of-range values are usage errors)."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if (
            not math.isfinite(value)
            or value < low
            or value > high
            or (low_open and value == low)
            or (high_open and value == high)
        ):
            raise argparse.ArgumentTypeError(f"must be a number in {left}{low:g}, {high:g}{right}, got {text[:40]!r}")
        return value

    return parse


def _latency(text: str) -> LatencyModel:
    """``mix``, ``lognormal:SIGMA`` or ``pareto:SHAPE`` (optionally ``@MEDIAN_MS``)."""
    kind, _, rest = text.partition(":")
    value, _, median = rest.partition("@")
    try:
        extra = {"median_ms": float(median)} if median else {}
        if kind == "mix" and not rest:
            return LatencyModel("mix")
        if kind == "lognormal":
            return LatencyModel("lognormal", sigma=float(value or 1.0), **extra)
        if kind == "pareto":
            return LatencyModel("pareto", shape=float(value or 2.0), **extra)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad latency model {text!r}: {exc}") from None
    raise argparse.ArgumentTypeError(f"expected mix, lognormal:SIGMA or pareto:SHAPE, got {text!r}")


_CLUSTERED = ("errors", "latency", "cost", "judgements")


def _metrics(text: str) -> frozenset[str]:
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    bad = names - set(_CLUSTERED)
    if not names or bad:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {', '.join(_CLUSTERED)}, got {text!r}")
    return names


def _stages(text: str) -> tuple[float, ...]:
    try:
        stages = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions like 0.05,0.25,0.5,1.0, got {text!r}") from None
    if not stages or stages[-1] != 1.0 or any(b <= a for a, b in zip(stages, stages[1:])) or stages[0] <= 0:
        raise argparse.ArgumentTypeError(f"stages must increase and end at 1.0, got {text!r}")
    return stages


SCENARIO_SETS = {
    "default": DEFAULT_SCENARIOS,
    "aa": DEFAULT_SCENARIOS[:1],
    "missing": MISSING_SCENARIOS,
}


def parser(prog: str = "bifrost-opt simulate-gates") -> argparse.ArgumentParser:
    """Arguments shared by the CLI command and ``bench/gates_bench.py``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Simulate canary rollouts (A/A, regressed and data-missing canaries) through the real rollout "
        "controller and the sequential gates, batch by batch, and report false rollbacks, detection speed, "
        "promotions and paused stages. No Kafka.",
    )
    p.add_argument("--rollouts", type=_positive, default=1000, help="rollouts per scenario (default 1000)")
    p.add_argument(
        "--regression-rollouts",
        type=_positive,
        default=None,
        help="rollouts per regression or missing-data scenario (default: --rollouts)",
    )
    p.add_argument("--seed", type=_seed, default=7, help="base seed (default 7)")
    p.add_argument(
        "--suite",
        action="store_true",
        help="run the README suite: A/A under every traffic shape, regressions, missing data "
        "(ignores the traffic options below)",
    )
    p.add_argument(
        "--scenarios",
        choices=sorted(SCENARIO_SETS),
        default="default",
        help="canaries to simulate without --suite (default: A/A and the regressions)",
    )
    p.add_argument(
        "--mode",
        choices=("rollout", "stage"),
        default="rollout",
        help="rollout: whole rollouts through every stage; stage: hold the first stage for --max-windows",
    )
    p.add_argument(
        "--gates",
        choices=("sequential", "naive"),
        default="sequential",
        help="the sequential gates, or the naive fixed-threshold baseline",
    )
    traffic = p.add_argument_group("traffic")
    traffic.add_argument("--rate", type=_positive, default=2000, help="requests per 1-minute window (default 2000)")
    traffic.add_argument(
        "--split",
        choices=("exact", "binomial"),
        default="binomial",
        help="binomial: each request assigned at random (default); exact: weighted round-robin",
    )
    traffic.add_argument(
        "--latency",
        type=_latency,
        default=LatencyModel(),
        help="mix (default: the simulator's three models), lognormal:SIGMA or pareto:SHAPE, "
        "optionally @MEDIAN_MS (default 400)",
    )
    traffic.add_argument(
        "--cluster-size",
        type=_number(1.0, 1000.0),
        default=1.0,
        help="mean size of event clusters (geometric; 1 = independent requests)",
    )
    traffic.add_argument(
        "--cluster-metrics",
        type=_metrics,
        default=frozenset({"errors"}),
        help="what comes in clusters: errors, latency, cost, judgements (default errors)",
    )
    traffic.add_argument(
        "--diurnal",
        type=_number(0.0, 1.0, high_open=True),
        default=0.0,
        help="amplitude of the daily swing of the request rate (0.5 = ±50%%; default 0)",
    )
    traffic.add_argument(
        "--looks-per-window",
        type=_positive,
        default=10,
        help="batches (gate evaluations) per 1-minute window (default 10)",
    )
    traffic.add_argument(
        "--history-windows",
        type=_non_negative,
        default=60,
        help="windows of traffic before the rollout the gates learn dispersion from (default 60)",
    )
    traffic.add_argument(
        "--max-windows",
        type=_positive,
        default=400,
        help="cap on a rollout's windows (in --mode stage: the held stage's length; default 400)",
    )
    policy = p.add_argument_group("rollout policy")
    policy.add_argument("--stages", type=_stages, default=RolloutPolicy().stages, help="default 0.05,0.25,0.5,1.0")
    policy.add_argument(
        "--min-stage-seconds",
        type=_number(0.0, 1e7, low_open=True),
        default=900.0,
        help="data coverage a stage needs (default 900)",
    )
    policy.add_argument(
        "--stage-timeout-seconds",
        type=_number(0.0, 1e8),
        default=0.0,
        help="traffic time before an undecided stage pauses (default 0 = 4x the minimum)",
    )
    p.add_argument(
        "--alpha",
        type=_number(0.0, 0.5, low_open=True),
        default=GateConfig().alpha,
        help="false-rollback budget per rollout (default 0.01)",
    )
    p.add_argument("--workers", type=_non_negative, default=0, help="processes (default 0 = all cores)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    return p


def configs(args: argparse.Namespace) -> tuple[GateConfig, TrafficConfig, RolloutPolicy]:
    """The gate config, traffic and policy the arguments describe (``ValueError`` if invalid)."""
    config = GateConfig(alpha=args.alpha)
    traffic = TrafficConfig(
        requests_per_window=args.rate,
        split=args.split,
        latency=args.latency,
        clustering=Clustering(args.cluster_size, args.cluster_metrics),
        diurnal=args.diurnal,
        looks_per_window=args.looks_per_window,
        history_windows=args.history_windows,
        max_windows=args.max_windows,
    )
    if not args.min_stage_seconds > 0 or args.stage_timeout_seconds < 0:
        raise ValueError("--min-stage-seconds must be positive and --stage-timeout-seconds not negative")
    policy = RolloutPolicy(
        stages=args.stages,
        min_stage_seconds=args.min_stage_seconds,
        stage_timeout_seconds=args.stage_timeout_seconds or None,
    )
    return config, traffic, policy


def scenarios_of(args: argparse.Namespace) -> tuple[list[Scenario], list[int]]:
    """The scenarios to run and how many rollouts each (A/A rows get ``--rollouts``)."""
    chosen = suite() if args.suite else list(SCENARIO_SETS[args.scenarios])
    regression = args.regression_rollouts or args.rollouts
    counts = [args.rollouts if (s.expected_gate is None and not s.expected) else regression for s in chosen]
    return chosen, counts


def run(args: argparse.Namespace, p: argparse.ArgumentParser) -> SimulationReport:
    """Build configs from parsed arguments and simulate (argument errors go to ``p.error``)."""
    try:
        config, traffic, policy = configs(args)
    except ValueError as exc:
        p.error(str(exc))
    chosen, counts = scenarios_of(args)
    return simulate_gates(
        config,
        chosen,
        rollouts=counts,
        seed=args.seed,
        traffic=traffic,
        policy=policy,
        mode=args.mode,
        gates=args.gates,
        workers=args.workers,
    )


def main_simulate_gates(argv: list[str] | None = None) -> int:
    """Run the gate simulation; print a Markdown table (or JSON with ``--json``).

    Returns the exit code: 0, or 2 for misuse (with argparse's message on stderr).
    """
    p = parser()
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else argv)
        report = run(args, p)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(report).decode(), indent=2) + "\n")
    else:
        sys.stdout.write(to_markdown(report))
    return 0
