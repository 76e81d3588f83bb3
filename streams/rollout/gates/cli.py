"""``bifrost-opt simulate-gates``: the gate simulation from the command line."""

from __future__ import annotations

import argparse
import sys

import msgspec

from bifrost.streams.rollout.gates.config import GateConfig
from bifrost.streams.rollout.gates.simulation import DEFAULT_SCENARIOS, SimulationReport, TrafficConfig, simulate_gates
from bifrost.streams.rollout.gates.table import to_markdown


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def parser(prog: str = "bifrost-opt simulate-gates") -> argparse.ArgumentParser:
    """Arguments shared by the CLI command and ``bench/gates_bench.py``."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Simulate canary stages (A/A and regressed canaries) and report how often the "
        "sequential rollback gates and fixed-threshold gates roll back, and how fast. No Kafka.",
    )
    p.add_argument("--rollouts", type=_positive, default=1000, help="simulated stages per scenario (default 1000)")
    p.add_argument("--seed", type=int, default=7, help="base seed (default 7)")
    p.add_argument("--windows", type=_positive, default=60, help="1-minute windows per stage (default 60)")
    p.add_argument("--rate", type=_positive, default=2000, help="requests per window (default 2000)")
    p.add_argument("--canary-share", type=float, default=0.05, help="canary share of requests (default 0.05)")
    p.add_argument("--split", choices=("exact", "binomial"), default="exact",
                   help="exact: weighted round-robin; binomial: each request assigned at random")
    p.add_argument("--alpha", type=float, default=GateConfig().alpha, help="error budget per stage (default 0.01)")
    p.add_argument("--workers", type=_non_negative, default=0, help="processes (default 0 = all cores)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    return p


def run(args: argparse.Namespace, p: argparse.ArgumentParser) -> SimulationReport:
    """Build configs from parsed arguments and simulate (argument errors go to ``p.error``)."""
    try:
        config = GateConfig(alpha=args.alpha)
        traffic = TrafficConfig(
            requests_per_window=args.rate, canary_share=args.canary_share,
            windows=args.windows, split=args.split,
        )
    except ValueError as exc:
        p.error(str(exc))
    return simulate_gates(config, DEFAULT_SCENARIOS, rollouts=args.rollouts, seed=args.seed,
                          traffic=traffic, workers=args.workers)


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
