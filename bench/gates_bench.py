"""Rollback gates under continuous monitoring: false rollbacks and detection speed.

Runs :func:`bifrost.streams.rollout.gates.simulation.simulate_gates` — A/A and regressed
canaries, sequential gates against fixed-threshold gates on the same traffic — once with
an exact canary split (weighted round-robin: 100 canary requests per window, the headline
table) and once with a binomial split (each request assigned at random), and writes
``bench/results/gates.json`` and ``bench/results/gates.md``.

    .venv/bin/python bench/gates_bench.py [--rollouts 1000] [--seed 7] [--splits exact,binomial]

No Kafka; pure CPU (uses every core unless ``--workers`` says otherwise).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import msgspec

from bifrost.streams.rollout.gates import GateConfig
from bifrost.streams.rollout.gates.simulation import DEFAULT_SCENARIOS, SimulationReport, TrafficConfig, simulate_gates
from bifrost.streams.rollout.gates.table import to_markdown

RESULTS = Path(__file__).resolve().parent / "results"


class BenchResult(msgspec.Struct, kw_only=True):
    """What ``gates.json`` holds."""

    created_at: str
    python: str
    platform: str
    cpus: int
    workers: int
    seconds: float
    runs: list[SimulationReport]


def _splits(text: str) -> list[str]:
    splits = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in splits if s not in ("exact", "binomial")]
    if not splits or bad:
        raise argparse.ArgumentTypeError(f"expected exact and/or binomial, got {text!r}")
    return splits


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rollouts", type=int, default=1000, help="rollouts per scenario (default 1000)")
    p.add_argument("--seed", type=int, default=7, help="base seed (default 7)")
    p.add_argument("--splits", type=_splits, default=["exact", "binomial"], help="exact,binomial (default both)")
    p.add_argument("--workers", type=int, default=0, help="processes (default 0 = all cores)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = p.parse_args(argv)
    if args.rollouts < 1:
        p.error("--rollouts must be at least 1")
    workers = args.workers or os.cpu_count() or 1
    started = time.perf_counter()
    runs = []
    for split in args.splits:
        print(f"simulating {args.rollouts} rollouts x {len(DEFAULT_SCENARIOS)} scenarios ({split} split, "
              f"{workers} workers)...", file=sys.stderr, flush=True)
        report = simulate_gates(GateConfig(), DEFAULT_SCENARIOS, rollouts=args.rollouts, seed=args.seed,
                                traffic=TrafficConfig(split=split), workers=workers)
        print(f"  done in {report.seconds:.1f} s", file=sys.stderr, flush=True)
        runs.append(report)
    result = BenchResult(
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        python=platform.python_version(),
        platform=platform.platform(),
        cpus=os.cpu_count() or 1,
        workers=workers,
        seconds=round(time.perf_counter() - started, 1),
        runs=runs,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gates.json").write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n")
    parts = [
        "# Rollback gates under continuous monitoring",
        "",
        f"`bench/gates_bench.py --rollouts {args.rollouts} --seed {args.seed}` — {result.created_at}, "
        f"Python {result.python}, {workers} worker processes on {result.cpus} CPUs, {result.seconds} s in all.",
        "",
    ]
    for report in runs:
        title = "Exact split (weighted round-robin)" if report.split == "exact" else "Binomial split (random assignment)"
        parts += [f"## {title} — {report.seconds} s", "", to_markdown(report)]
    markdown = "\n".join(parts)
    (args.out / "gates.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
