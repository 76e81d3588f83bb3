"""The optimizer's 7-day trend test on simulated weeks: false alerts per day-level shape, drift detection.

Every week is one router at 1,000 requests per hour (the pure tests' generator,
:mod:`tests.streams.optimizer.traffic`: ±50% daily volume, ±10% daily latency cycle, 3%
hour-to-hour noise) with a day-level latency shape (:mod:`tests.streams.optimizer.day_shapes`),
analysed whole by :func:`bifrost.streams.optimizer.analysis.analyze`. Prints, per case, the
weeks with any trend or cost alert or trigger (SLO breaches not counted), with a P95
degradation alert, and with the optimizer's trigger.

    nice -n 10 .venv/bin/python bench/optimizer_trend_rates.py [--seeds 100] [--first-seed 0] [CASE ...]

No Kafka; one core, about 0.6 s per week.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as a script: make `tests.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bifrost.schemas.alerts import AlertKind
from bifrost.streams.optimizer.analysis import OptimizerConfig, analyze
from tests.streams.optimizer import day_shapes as ds
from tests.streams.optimizer.traffic import week

Shape = Callable[[np.random.Generator], np.ndarray]
CASES: dict[str, tuple[Shape, float]] = {  # shape, latency growth per day
    "wobble1": (ds.wobble(0.01), 0.0),
    "wobble3": (ds.wobble(0.03), 0.0),
    "ar1": (ds.ar1(0.6, 0.02), 0.0),
    "odd_start30": (ds.odd_day(0.30, at_start=True), 0.0),
    "odd_end30": (ds.odd_day(0.30, at_start=False), 0.0),
    "weekend_start5": (ds.weekend(0.05, at_start=True), 0.0),
    "weekend_end5": (ds.weekend(0.05, at_start=False), 0.0),
    "weekend_start10": (ds.weekend(0.10, at_start=True), 0.0),
    "weekend_end10": (ds.weekend(0.10, at_start=False), 0.0),
    "drift_w0": (ds.wobble(0.0), 0.01),
    "drift_w1": (ds.wobble(0.01), 0.01),
    "drift_w3": (ds.wobble(0.03), 0.01),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"default: all of {', '.join(CASES)}")
    args = parser.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}")
    config = OptimizerConfig()
    for name in args.cases or list(CASES):
        shape, growth = CASES[name]
        alerted = degraded = triggered = 0
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        for seed in seeds:
            hours, clock = week(
                seed,
                rate_per_hour=1000.0,
                latency_growth_per_day=growth,
                day_factor=shape(np.random.default_rng(10_000 + seed)),
            )
            analysis = analyze("router-a", clock, hours, config)
            alerted += bool([a for a in analysis.alerts if a.kind is not AlertKind.SLO_BREACH] or analysis.trigger)
            degraded += any(a.kind is AlertKind.DEGRADATION and a.subject == "router-a/p95_ms" for a in analysis.alerts)
            triggered += analysis.trigger is not None
        print(
            f"{name}: seeds {seeds.start}-{seeds.stop - 1}: alerted {alerted}, p95 degradation {degraded}, "
            f"trigger {triggered}",
            flush=True,
        )


if __name__ == "__main__":
    main()
