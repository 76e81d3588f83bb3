"""The optimizer's 7-day trend test on simulated weeks: false alerts per day-level shape, drift detection.

Every week is one router (the pure tests' generator, :mod:`tests.streams.optimizer.traffic`:
±50% daily volume, ±10% daily latency cycle, 3% hour-to-hour noise; 1,000 requests per hour
unless the case says otherwise) with a day-level latency shape
(:mod:`tests.streams.optimizer.day_shapes`), analysed whole by
:func:`bifrost.streams.optimizer.analysis.analyze`. Prints, per case, the weeks with any trend
or cost alert or trigger (SLO breaches not counted), with a latency degradation alert (P95 or median), and with
the optimizer's trigger, each with its share and a 95% Clopper-Pearson interval.

    nice -n 10 .venv/bin/python bench/optimizer_trend_rates.py [--seeds 200] [--first-seed 0] [CASE ...]
    nice -n 10 .venv/bin/python bench/optimizer_trend_rates.py --design-study [--seeds 200] [--first-seed 0] [CASE ...]

``--design-study`` compares candidate 7-day rules (:data:`RULES`) on the same weeks: only the
router's P95 is computed (hourly points as the optimizer reads them, hours with ≥ 30
requests), and each rule is applied to that week's day levels; it prints one row per rule
with the share of weeks (%) the rule calls a degradation, one column per case. No other
metric, no trigger: a rule's P95 degradation rate, as in the design study of
``bench/results/optimizer_trends.md``.

No Kafka; one core, about 0.1 s per week (0.03 s with ``--design-study``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta
from scipy.stats import t as student_t

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # run as a script: make `tests.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bifrost.schemas.alerts import AlertKind
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.optimizer.analysis import OptimizerConfig, analyze
from bifrost.streams.optimizer.series import DAY, WEEK, metric_value, scope_stats, smooth_quantile
from bifrost.streams.optimizer.trends import _line_vs_step, _trimmed_mean, day_levels
from bifrost.streams.rollup.query import MergedStats
from tests.streams.optimizer import day_shapes as ds
from tests.streams.optimizer.traffic import two_models, week

Shape = Callable[[np.random.Generator], np.ndarray]
LATENCY_SUBJECTS = {"router-a/p95_ms", "router-a/p50_ms"}  # a latency degradation: the P95 or the median


@dataclass(frozen=True)
class Case:
    """A simulated week: a day-level shape, a latency growth per day, traffic and hour noise."""

    shape: Shape
    growth: float = 0.0  # latency growth per day (compounded); 0 = a stable week
    rate: float = 1000.0  # requests per hour
    hour_noise_df: float | None = None  # Student's t hour noise (heavy tails) instead of normal
    hour_noise: float = 0.03  # a latency factor every request of an hour shares (log sd)
    request_sigma: float | None = None  # per-request log-latency sd of both models (None: the generator's 0.4)
    rate_ramp: float = 1.0  # volume × this from the first hour to the last


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
    "iid_s0.5": Case(ds.wobble(0.0), hour_noise=0.0, request_sigma=0.5),
    "iid_s1.0": Case(ds.wobble(0.0), hour_noise=0.0, request_sigma=1.0),
    "iid_s1.5_low": Case(ds.wobble(0.0), rate=100.0, hour_noise=0.0, request_sigma=1.5),
    "ramp40x10": Case(ds.wobble(0.0), rate=40.0, hour_noise=0.0, request_sigma=0.5, rate_ramp=10.0),
    "drift_w0": Case(ds.wobble(0.0), 0.01),
    "drift_w1": Case(ds.wobble(0.01), 0.01),
    "drift_w3": Case(ds.wobble(0.03), 0.01),
    "drift2_w1": Case(ds.wobble(0.01), 0.02),
    "drift_weekend_low_end5": Case(ds.weekend(-0.05, at_start=False), 0.01),
    "drift_heavy_tail": Case(ds.wobble(0.01), 0.01, hour_noise_df=2.0),
    "drift_low_traffic": Case(ds.wobble(0.01), 0.01, rate=100.0),
    "drift_iid_s0.5": Case(ds.wobble(0.0), 0.01, hour_noise=0.0, request_sigma=0.5),
    "drift_iid_s1.0": Case(ds.wobble(0.0), 0.01, hour_noise=0.0, request_sigma=1.0),
}


def interval(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of a share ``k / n``."""
    lo = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def share(k: int, n: int) -> str:
    lo, hi = interval(k, n)
    return f"{k}/{n} = {k / n:.1%} [{lo:.1%}, {hi:.1%}]"


def simulated(case: Case, seed: int) -> tuple[dict[int, MergedStats], int]:
    """The case's week for ``seed`` (its day-level shape drawn from seed ``10_000 + seed``)."""
    return week(
        seed,
        rate_per_hour=case.rate,
        latency_growth_per_day=case.growth,
        hour_noise_df=case.hour_noise_df,
        hour_noise=case.hour_noise,
        rate_ramp=case.rate_ramp,
        day_factor=case.shape(np.random.default_rng(10_000 + seed)),
        models=None if case.request_sigma is None else two_models(case.request_sigma),
    )


# --- Design study: candidate 7-day rules on the same weeks' P95 day levels -------------------------

TOLERANCE = 0.05  # BIFROST_DEGRADATION_TOLERANCE's default
WINDOW_DAYS = 7.0


@dataclass(frozen=True)
class DayFit:
    """A least-squares line through a week's day levels (day k at k + 0.5), scaled by the line at the window's start.

    ``slope`` is per day and ``ssr`` the residual sum of squares, both relative to that start
    level (so ``slope × 7`` is the rule's 7-day change); ``hour_var`` is the variance one day
    level gets from its hours' noise (the hour residuals of the two-way fit / hours per day),
    relative too; ``step`` is the line's AIC minus the best single step's (< 0: a line).
    """

    slope: float
    ssr: float
    sxx: float
    df: int
    step: float
    hour_var: float


def fit_days(days: np.ndarray, levels: np.ndarray, hour_var: float = math.nan) -> DayFit:
    """The line through ``levels`` (day indices ``days``), as :func:`daily_trend_test` fits it."""
    centre = days.astype(np.float64) + 0.5
    dc = centre - centre.mean()
    sxx = float((dc * dc).sum())
    mean = float(levels.mean())
    slope = float((dc * (levels - mean)).sum() / sxx)
    ssr = float(((levels - mean - slope * dc) ** 2).sum())
    start = mean - slope * float(centre.mean())
    return DayFit(
        slope=slope / start,
        ssr=ssr / start**2,
        sxx=sxx,
        df=len(levels) - 2,
        step=_line_vs_step(ssr, levels),
        hour_var=hour_var / start**2,
    )


def hour_variance(times: np.ndarray, values: np.ndarray, days: np.ndarray, levels: np.ndarray, origin: float) -> float:
    """The variance a day level gets from its hours: the residual variance of ``value − day − hour`` / hours a day.

    The hour-of-day effect is the 10%-trimmed mean of ``value − day level`` per hour of day; the
    residual variance is divided by its degrees of freedom (points − days − hours of day + 1).
    It sees only the hour-to-hour noise (and the P95's sampling noise), never a day-level wobble.
    """
    day = np.floor((times - origin) / DAY).astype(np.int64)
    keep = np.isin(day, days)
    day, x = day[keep], values[keep]
    hour = ((times[keep] // 3600.0) % 24).astype(np.int64)
    rest = x - levels[np.searchsorted(days, day)]
    effect = np.zeros(24)
    present = np.unique(hour)
    for label in present.tolist():
        effect[label] = _trimmed_mean(rest[hour == label], 0.1)
    residual = rest - effect[hour]
    dof = len(x) - len(days) - len(present) + 1
    return float((residual * residual).sum() / dof / (len(x) / len(days)))


def line_rule(
    fit: DayFit,
    *,
    alpha: float = 0.005,
    upper: float = 0.5,
    size: bool = True,
    prior_df: int = 0,
    quiet: tuple[float, float] | None = None,
) -> bool:
    """A 7-day degradation under a candidate rule (``alpha=0.005``, the rest at defaults: the rule of ``trends.py``).

    * ``alpha``: the slope's one-sided t test (``df`` = days − 2, plus ``prior_df``);
    * ``upper``: the size criterion is on the one-sided ``upper`` bound of the 7-day change
      (0.5: the estimate itself), which must exceed :data:`TOLERANCE` (unless ``size`` is False);
    * ``prior_df``: the residual variance pooled with ``hour_var`` (the hour-noise floor of a
      day level) as if it were worth that many more days;
    * ``quiet=(c, sd)``: when the day levels' residual sd is under ``sd`` (relative), the t
      critical value is ``c`` instead of ``alpha``'s;
    * the line must beat one level shift (AIC), as in ``trends.py``.
    """
    if not fit.step < 0:
        return False
    df = fit.df + prior_df
    var = (fit.ssr + prior_df * fit.hour_var) / df if prior_df else fit.ssr / df
    se = math.sqrt(var / fit.sxx)
    stat = fit.slope / se if se > 0 else math.copysign(math.inf, fit.slope)
    critical = float(student_t.isf(alpha, df))
    if quiet is not None and math.sqrt(fit.ssr / fit.df) < quiet[1]:
        critical = quiet[0]
    bound = fit.slope + (float(student_t.ppf(upper, df)) * se if upper != 0.5 else 0.0)
    return stat >= critical and (not size or bound * WINDOW_DAYS > TOLERANCE)


@dataclass(frozen=True)
class Rule:
    """A candidate 7-day rule: which day levels it reads and :func:`line_rule`'s arguments."""

    levels: str  # "trimmed" (trends.py's day_levels), "untrimmed" (trim 0) or "pooled" (P95 of the day's merged sketch)
    what: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


RULES: dict[str, Rule] = {
    "current": Rule("trimmed", "t, p ≤ 0.005 + 7-day change > 5% + line beats one step (AIC) — trends.py"),
    "upper80": Rule("trimmed", "same, size on the one-sided 80% upper bound of the change", {"upper": 0.8}),
    "upper90": Rule("trimmed", "same, size on the one-sided 90% upper bound of the change", {"upper": 0.9}),
    "no_size": Rule("trimmed", "t, p ≤ 0.005 + line beats one step, no size criterion", {"size": False}),
    "alpha01": Rule("trimmed", "current with p ≤ 0.01", {"alpha": 0.01}),
    "alpha01_upper90": Rule(
        "trimmed", "p ≤ 0.01 + 90% upper bound of the change > 5% + step", {"alpha": 0.01, "upper": 0.9}
    ),
    "prior2": Rule(
        "trimmed", "current, day variance pooled with the hour-noise floor worth 2 days (t, 7 df)", {"prior_df": 2}
    ),
    "prior5": Rule(
        "trimmed", "current, day variance pooled with the hour-noise floor worth 5 days (t, 10 df)", {"prior_df": 5}
    ),
    "quiet_days": Rule(
        "trimmed",
        "t ≥ 3.5 when the day levels' residual sd < 1.5%, else p ≤ 0.003; + change > 5% + step",
        {"alpha": 0.003, "quiet": (3.5, 0.015)},
    ),
    "pooled": Rule("pooled", "current rule on the day's pooled P95 (merged day sketch)"),
    "untrimmed": Rule("untrimmed", "current rule on untrimmed two-way means"),
}


def week_fits(hours: Mapping[int, MergedStats], clock: int) -> dict[str, DayFit]:
    """The router P95's day-level lines of one week, one per kind of day level."""
    origin = float(clock - WEEK)
    times, values = [], []
    per_day: dict[int, WindowStats] = {}
    for t in sorted(hours):
        if not clock - WEEK <= t < clock:
            continue
        stats = scope_stats(hours[t], "router")
        if stats is None:
            continue
        per_day.setdefault(int((t - origin) // DAY), WindowStats()).merge(stats)
        value = metric_value(stats, "p95_ms", min_samples=OptimizerConfig().alerts.min_hour_samples)
        if value is not None:
            times.append(float(t))
            values.append(value)
    t_arr, v_arr = np.asarray(times), np.asarray(values)
    days, trimmed = day_levels(t_arr, v_arr, origin=origin)
    _, untrimmed = day_levels(t_arr, v_arr, origin=origin, trim=0.0)
    pooled = np.asarray([smooth_quantile(per_day[int(d)].latency_ms, 0.95) for d in days], dtype=np.float64)
    hour_var = hour_variance(t_arr, v_arr, days, trimmed, origin)
    return {
        "trimmed": fit_days(days, trimmed, hour_var),
        "untrimmed": fit_days(days, untrimmed),
        "pooled": fit_days(days, pooled),
    }


def design_study(names: list[str], seeds: range) -> None:
    """Print one row per rule of :data:`RULES`: % of the weeks of each case it calls a P95 degradation."""
    print(f"seeds {seeds.start}–{seeds.stop - 1}, {len(seeds)} weeks per case; % of weeks with a P95 degradation")
    print("| rule | " + " | ".join(f"`{n}`" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    found = {rule: {name: 0 for name in names} for rule in RULES}
    started = time.perf_counter()
    for name in names:
        for seed in seeds:
            fits = week_fits(*simulated(CASES[name], seed))
            for rule_name, rule in RULES.items():
                found[rule_name][name] += line_rule(fits[rule.levels], **rule.kwargs)
    for rule_name, rule in RULES.items():
        cells = " | ".join(f"{100 * found[rule_name][n] / len(seeds):.1f}" for n in names)
        print(f"| `{rule_name}`: {rule.what} | {cells} |")
    print(f"({(time.perf_counter() - started) / (len(names) * len(seeds)):.3f} s per week)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--design-study", action="store_true", help="candidate rules on the P95 day levels")
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"default: all of {', '.join(CASES)}")
    args = parser.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}")
    if args.design_study:
        design_study(args.cases or list(CASES), range(args.first_seed, args.first_seed + args.seeds))
        return
    config = OptimizerConfig()
    for name in args.cases or list(CASES):
        case = CASES[name]
        alerted = degraded = triggered = 0
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        started = time.perf_counter()
        for seed in seeds:
            hours, clock = simulated(case, seed)
            analysis = analyze("router-a", clock, hours, config)
            alerted += bool([a for a in analysis.alerts if a.kind is not AlertKind.SLO_BREACH] or analysis.trigger)
            degraded += any(a.kind is AlertKind.DEGRADATION and a.subject in LATENCY_SUBJECTS for a in analysis.alerts)
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
