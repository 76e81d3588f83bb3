"""The optimizer's 7-day trend test on simulated weeks: false alerts per day-level shape, drift detection.

Every week is one router (the pure tests' generator, :mod:`tests.streams.optimizer.traffic`:
±50% daily volume, ±10% daily latency cycle, 3% hour-to-hour noise; 1,000 requests per hour
unless the case says otherwise) with a day-level latency shape
(:mod:`tests.streams.optimizer.day_shapes`), analysed whole by
:func:`bifrost.streams.optimizer.analysis.analyze`. Prints, per case, the weeks with any trend
or cost alert or trigger (SLO breaches not counted), with a P95 degradation alert, and with
the optimizer's trigger, each with its share and a 95% Clopper-Pearson interval.

    nice -n 10 .venv/bin/python bench/optimizer_trend_rates.py [--seeds 200] [--first-seed 0] [CASE ...]

No Kafka; one core, about 0.1 s per week.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import beta

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as a script: make `tests.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bifrost.schemas.alerts import AlertKind
from bifrost.streams.optimizer.analysis import OptimizerConfig, analyze
from tests.streams.optimizer import day_shapes as ds
from tests.streams.optimizer.traffic import week

Shape = Callable[[np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Case:
    """A simulated week: a day-level shape, a latency growth per day, traffic and hour noise."""

    shape: Shape
    growth: float = 0.0  # latency growth per day (compounded); 0 = a stable week
    rate: float = 1000.0  # requests per hour
    hour_noise_df: float | None = None  # Student's t hour noise (heavy tails) instead of normal


CASES: dict[str, Case] = {
    "wobble1": Case(ds.wobble(0.01)),
    "wobble3": Case(ds.wobble(0.03)),
    "wobble5": Case(ds.wobble(0.05)),
    "ar1": Case(ds.ar1(0.6, 0.02)),
    "odd_start30": Case(ds.odd_day(0.30, at_start=True)),
    "odd_end30": Case(ds.odd_day(0.30, at_start=False)),
    "odd_end10": Case(ds.odd_day(0.10, at_start=False)),
    "weekend_start5": Case(ds.weekend(0.05, at_start=True)),
    "weekend_end5": Case(ds.weekend(0.05, at_start=False)),
    "weekend_start10": Case(ds.weekend(0.10, at_start=True)),
    "weekend_end10": Case(ds.weekend(0.10, at_start=False)),
    "heavy_tail": Case(ds.wobble(0.01), hour_noise_df=2.0),
    "low_traffic": Case(ds.wobble(0.01), rate=100.0),
    "drift_w0": Case(ds.wobble(0.0), 0.01),
    "drift_w1": Case(ds.wobble(0.01), 0.01),
    "drift_w3": Case(ds.wobble(0.03), 0.01),
    "drift2_w1": Case(ds.wobble(0.01), 0.02),
    "drift_weekend_low_end5": Case(ds.weekend(-0.05, at_start=False), 0.01),
    "drift_heavy_tail": Case(ds.wobble(0.01), 0.01, hour_noise_df=2.0),
    "drift_low_traffic": Case(ds.wobble(0.01), 0.01, rate=100.0),
}


def interval(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of a share ``k / n``."""
    lo = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def share(k: int, n: int) -> str:
    lo, hi = interval(k, n)
    return f"{k}/{n} = {k / n:.1%} [{lo:.1%}, {hi:.1%}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"default: all of {', '.join(CASES)}")
    args = parser.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}")
    config = OptimizerConfig()
    for name in args.cases or list(CASES):
        case = CASES[name]
        alerted = degraded = triggered = 0
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        started = time.perf_counter()
        for seed in seeds:
            hours, clock = week(
                seed,
                rate_per_hour=case.rate,
                latency_growth_per_day=case.growth,
                hour_noise_df=case.hour_noise_df,
                day_factor=case.shape(np.random.default_rng(10_000 + seed)),
            )
            analysis = analyze("router-a", clock, hours, config)
            alerted += bool([a for a in analysis.alerts if a.kind is not AlertKind.SLO_BREACH] or analysis.trigger)
            degraded += any(a.kind is AlertKind.DEGRADATION and a.subject == "router-a/p95_ms" for a in analysis.alerts)
            triggered += analysis.trigger is not None
        n = len(seeds)
        print(
            f"| {name} | {'stable' if case.growth == 0 else f'+{case.growth:.0%}/day'} "
            f"| {seeds.start}–{seeds.stop - 1} "
            f"| {share(alerted, n)} | {share(degraded, n)} | {share(triggered, n)} "
            f"| {(time.perf_counter() - started) / n:.2f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
