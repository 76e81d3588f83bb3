"""Rollback gates through the real controller: false rollbacks per whole rollout, detection.

Runs the README suite (:mod:`bifrost.gatesim.suite`): A/A rollouts under every
traffic shape (mix, exact split, lognormal σ 1.0 / 1.5, Pareto, errors in clusters of mean
5 and 20, everything clustered, a diurnal swing, 500 and 10,000 requests a minute),
regressions where they are hard, and canaries with missing data — each rollout through
the real controller (5% → 25% → 50% → 100%, gates after every batch) — and writes
``bench/results/gates.json`` and ``bench/results/gates.md``.

    .venv/bin/python bench/gates_bench.py [--rollouts 1000] [--regression-rollouts 500] [--seed 7]

No Kafka; pure CPU (every core unless ``--workers`` says otherwise). Long: run it under
``nice``. Finished scenarios are kept in ``bench/results/gates.partial.jsonl`` (same seed,
counts and code settings), so an interrupted run resumes where it stopped with
``--resume``.

The baseline runs in the same command: the naive gates (a fixed threshold on point
estimates, :mod:`bifrost.gatesim.naive`) through the same controller on a few of the same
rows (``--baseline-rollouts`` each, 200 by default), in a second table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import platform
import sys
import time
from pathlib import Path

import msgspec

from bifrost.gatesim.simulation import Scenario, ScenarioSummary, SimulationReport, TrafficConfig, simulate_gates
from bifrost.gatesim.suite import suite
from bifrost.gatesim.table import to_markdown
from bifrost.streams.rollout.controller import RolloutPolicy
from bifrost.streams.rollout.gates import GateConfig
from bifrost.streams.rollout.gates import config as gate_constants

RESULTS = Path(__file__).resolve().parent / "results"
#: The rows the naive baseline runs on: false rollbacks and each kind of regression.
BASELINE_ROWS: tuple[str, ...] = (
    "A/A · mix",
    "A/A · error clusters 5",
    "latency x1.5 · lognormal σ 1.0",
    "errors x3 · mix",
    "cost x1.3 · mix",
    "win rate x0.9 · mix",
)


class BenchResult(msgspec.Struct, kw_only=True):
    """What ``gates.json`` holds."""

    created_at: str
    python: str
    platform: str
    cpus: int
    workers: int
    seconds: float
    report: SimulationReport
    baseline: SimulationReport | None = None  # the naive gates on BASELINE_ROWS, same run


def _fingerprint(seed: int, count: int, name: str) -> str:
    constants = {k: repr(v) for k, v in vars(gate_constants).items() if k.isupper()}
    text = repr((seed, count, name, sorted(constants.items()), GateConfig(), RolloutPolicy(), TrafficConfig()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rollouts", type=int, default=1000, help="rollouts per A/A row (default 1000)")
    p.add_argument("--regression-rollouts", type=int, default=500, help="rollouts per other row (default 500)")
    p.add_argument("--seed", type=int, default=7, help="base seed (default 7)")
    p.add_argument("--only", default="", help="run only rows whose name contains this text")
    p.add_argument("--resume", action="store_true", help="reuse finished rows from gates.partial.jsonl")
    p.add_argument(
        "--baseline-rollouts", type=int, default=200, help="rollouts per naive-baseline row (default 200; 0: none)"
    )
    p.add_argument("--workers", type=int, default=0, help="processes (default 0 = all cores)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = p.parse_args(argv)
    if args.rollouts < 1 or args.regression_rollouts < 1:
        p.error("--rollouts and --regression-rollouts must be at least 1")
    if args.baseline_rollouts < 0:
        p.error("--baseline-rollouts must be at least 0")
    if not any(args.only in s.name for s in suite()):
        names = ", ".join(s.name for s in suite())
        p.error(f"no scenario name contains {args.only!r}; the scenarios are: {names}")
    workers = args.workers or os.cpu_count() or 1
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / "gates.partial.jsonl"
    done: dict[str, ScenarioSummary] = {}
    if args.resume and partial.exists():
        for line in partial.read_text().splitlines():
            key, raw = line.split(" ", 1)
            done[key] = msgspec.json.decode(raw, type=ScenarioSummary)
    elif partial.exists():
        partial.unlink()
    started = time.perf_counter()
    rows = [s for s in suite() if args.only in s.name]
    summaries: list[ScenarioSummary] = []
    last: SimulationReport | None = None
    for i, scenario in enumerate(rows, 1):
        aa = scenario.expected_gate is None and not scenario.expected
        count = args.rollouts if aa else args.regression_rollouts
        key = _fingerprint(args.seed, count, scenario.name)
        if key in done:
            summaries.append(done[key])
            continue
        print(
            f"[{i}/{len(rows)}] {scenario.name}: {count} rollouts ({workers} workers)...", file=sys.stderr, flush=True
        )
        report = simulate_gates(GateConfig(), [scenario], rollouts=count, seed=args.seed, workers=workers)
        summary = report.scenarios[0]
        print(
            f"  {summary.rolled_back}/{count} rolled back, {summary.promoted} promoted, {summary.paused} paused "
            f"in {report.seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        with partial.open("a") as f:
            f.write(f"{key} {msgspec.json.encode(summary).decode()}\n")
        summaries.append(summary)
        last = report
    baseline = _baseline(args, rows, done, partial, workers)
    template = last or simulate_gates(GateConfig(), rows[:1], rollouts=1, seed=args.seed, workers=1)
    report = msgspec.structs.replace(
        template, scenarios=summaries, rollouts=args.rollouts, seconds=round(time.perf_counter() - started, 1)
    )
    result = BenchResult(
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        python=platform.python_version(),
        platform=platform.platform(),
        cpus=os.cpu_count() or 1,
        workers=workers,
        seconds=report.seconds,
        report=report,
        baseline=baseline,
    )
    (args.out / "gates.json").write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n")
    markdown = "\n".join(
        [
            "# Rollback gates through the real controller",
            "",
            f"`bench/gates_bench.py --rollouts {args.rollouts} --regression-rollouts {args.regression_rollouts} "
            f"--seed {args.seed}` — {result.created_at}, Python {result.python}, {workers} worker processes on "
            f"{result.cpus} CPUs (shared machine).",
            "",
            to_markdown(report),
            *(
                [
                    "",
                    "## Baseline in the same run: naive gates",
                    "",
                    f"The same controller, traffic and seed with the naive gates "
                    f"(`--baseline-rollouts {args.baseline_rollouts}`): a fixed threshold on point estimates "
                    "(canary beyond the configured tolerance once both arms have `min_samples`), looked at "
                    "after every batch like the gates above.",
                    "",
                    to_markdown(baseline),
                ]
                if baseline is not None
                else []
            ),
        ]
    )
    (args.out / "gates.md").write_text(markdown)
    print(markdown)
    return 0


def _baseline(
    args: argparse.Namespace,
    rows: list[Scenario],
    done: dict[str, ScenarioSummary],
    partial: Path,
    workers: int,
) -> SimulationReport | None:
    """The naive gates on the rows of ``BASELINE_ROWS`` that this run covers (``None``: none)."""
    chosen = [s for s in rows if s.name in BASELINE_ROWS]
    if args.baseline_rollouts == 0 or not chosen:
        return None
    summaries = []
    for scenario in chosen:
        key = "naive-" + _fingerprint(args.seed, args.baseline_rollouts, scenario.name)
        if key not in done:
            print(f"[baseline] {scenario.name}: {args.baseline_rollouts} rollouts, naive gates...", file=sys.stderr)
            report = simulate_gates(
                GateConfig(),
                [scenario],
                rollouts=args.baseline_rollouts,
                seed=args.seed,
                workers=workers,
                gates="naive",
            )
            done[key] = report.scenarios[0]
            with partial.open("a") as f:
                f.write(f"{key} {msgspec.json.encode(done[key]).decode()}\n")
        summaries.append(done[key])
    template = simulate_gates(GateConfig(), chosen[:1], rollouts=1, seed=args.seed, workers=1, gates="naive")
    return msgspec.structs.replace(template, scenarios=summaries, rollouts=args.baseline_rollouts)


if __name__ == "__main__":
    raise SystemExit(main())
