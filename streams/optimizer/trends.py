"""Trend tests (pure): Mann-Kendall, its seasonal form, and Sen's slope with a confidence interval.

A trend is judged on a series of points (time, value), not on two endpoints:

* **Mann-Kendall** (Mann 1945, Kendall 1975): ``S = Σ_{i<j} sign(x_j − x_i)``; under "no
  trend" S is centred on 0 with variance ``n(n−1)(2n+5)/18`` minus a correction for ties;
  ``Z = (S − sign(S)) / √Var(S)`` (continuity-corrected) is standard normal. Rank-based, so
  one outlier hour moves it by little, and it needs no normality.
* **Seasonal Kendall** (Hirsch, Slack & Smith 1982): traffic has a daily cycle, which
  inflates a plain test on hourly points; with ``season = hour of day`` the statistic is
  summed over the seasons (each compares an hour only with the same hour on other days),
  so a diurnal pattern cannot look like a trend.
* **Sen's slope** (Sen 1968): the median of the pairwise slopes ``(x_j − x_i)/(t_j − t_i)``
  (within seasons for the seasonal form), with the distribution-free confidence interval
  from the Mann-Kendall variance (Gilbert 1987, §16.5): the ranks ``(N − C)/2`` and
  ``(N + C)/2 + 1`` of the ordered slopes, ``C = z_{1−α/2}·√Var(S)``.

Normal quantiles come from scipy. Missing points (too few samples in an hour) are left
out, not filled.

**A week is judged on its days** (:func:`daily_trend_test`). Hourly points of one day share
that day's level (load, a provider's day, a holiday), so the 24 hour-of-day seasons are not
independent and a seasonal test on hourly points reads day-to-day wobble as a trend (its
variance assumes 7 × 24 independent comparisons where there are about 7). The weekly test
therefore reduces the hours to one level per day — a two-way fit of ``value = day + hour of
day`` with trimmed means removes the daily cycle and odd hours — and fits a **least-squares
line** to those levels: the slope's t statistic has ``n − 2`` degrees of freedom (5 for a
week), its residual variance is estimated from the days themselves, so day-to-day wobble of
any size keeps the one-sided false-positive rate at ``alpha`` (for normal day noise), and one
odd day inflates that variance more than it moves the slope (a day 30% off at either end
gives t ≈ 1.7 whatever its size). The size is the line's rise over the whole span
(``slope × span_days``) relative to the line's level at the start of the span. A week whose
days are better described by one level shift (two weekend days off the other five, a deploy)
than by the line (AIC, the split counted as a parameter) is not called a trend. An earlier
version tested the day levels with the exact Mann-Kendall test; with 7 days it allowed at
most one pair of days out of order at p ≤ 0.005, and detected a +1%/day drift in under half
of the weeks.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import msgspec
import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t


class Trend(msgspec.Struct, frozen=True, kw_only=True):
    """A trend test's result on one series.

    ``slope`` is the slope in value units per day (Sen's, or the least-squares line's for the
    daily test), ``slope_ci`` its interval at ``confidence``; ``change`` = slope × span / (level
    at the start of the span), the relative change over the analysed span (``span_days``),
    where the start level is the series' ``level`` (median; the mean of the day levels for the
    daily test) minus half the span's rise; ``p_increase`` / ``p_decrease`` are one-sided
    p-values of the Mann-Kendall Z (of the slope's t statistic, ``z``, for the daily test).
    """

    method: str  # "mann-kendall", "seasonal-kendall" or "daily-least-squares"
    points: int  # hourly points used
    days: int = 0  # day levels tested (the daily test only)
    s: float
    var_s: float
    z: float
    p_increase: float
    p_decrease: float
    slope: float
    slope_ci: list[float]
    confidence: float
    level: float
    span_days: float
    change: float
    change_ci: list[float]
    line_vs_step: float | None = None  # the daily test: AIC of the line minus the best single step's (< 0: a trend)


def _tie_term(values: np.ndarray) -> float:
    _, counts = np.unique(values, return_counts=True)
    counts = counts[counts > 1].astype(np.float64)
    return float((counts * (counts - 1) * (2 * counts + 5)).sum())


def _s_and_var(values: np.ndarray) -> tuple[float, float]:
    n = len(values)
    if n < 2:
        return 0.0, 0.0
    diff = values[None, :] - values[:, None]
    s = float(np.sign(diff[np.triu_indices(n, 1)]).sum())
    var = (n * (n - 1) * (2 * n + 5) - _tie_term(values)) / 18.0
    return s, var


def _pair_slopes(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(len(values), 1)
    dt = times[j] - times[i]
    keep = dt != 0
    return (values[j][keep] - values[i][keep]) / dt[keep]


def _z(s: float, var: float) -> float:
    if var <= 0 or s == 0:
        return 0.0
    return (s - math.copysign(1.0, s)) / math.sqrt(var)


def trend_test(
    times: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    seasons: Sequence[int] | np.ndarray | None = None,
    confidence: float = 0.95,
    span_days: float | None = None,
) -> Trend | None:
    """Mann-Kendall (or seasonal Kendall, with ``seasons``) and Sen's slope of a series.

    Args:
        times: epoch seconds of the points.
        values: the values; non-finite ones are left out.
        seasons: a season label per point (e.g. hour of day); points are compared only
            within their season.
        confidence: of the slope's interval.
        span_days: the span the relative ``change`` refers to (default: from the first to
            the last point).

    Returns:
        None with fewer than 4 usable points (or no comparable pairs).

    Example:
        >>> t = [i * 86400.0 for i in range(8)]
        >>> round(trend_test(t, [100.0 * 1.01**i for i in range(8)]).change, 3)
        0.072
    """
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(t)
    season = np.zeros(len(x), dtype=np.int64) if seasons is None else np.asarray(seasons, dtype=np.int64)
    t, x, season = t[ok], x[ok], season[ok]
    if len(x) < 4:
        return None
    s_total, var_total, slopes = 0.0, 0.0, []
    groups: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(season.tolist()):
        groups[label].append(index)
    for members in groups.values():
        if len(members) < 2:
            continue
        order = np.asarray(members)[np.argsort(t[members], kind="stable")]
        s, var = _s_and_var(x[order])
        s_total += s
        var_total += var
        slopes.append(_pair_slopes(t[order], x[order]))
    pairs = np.concatenate(slopes) if slopes else np.zeros(0)
    if pairs.size == 0:
        return None
    pairs.sort()
    per_day = pairs * 86400.0
    slope = float(np.median(per_day))
    c = float(norm.ppf(0.5 + confidence / 2.0)) * math.sqrt(max(var_total, 0.0))
    n_pairs = len(per_day)
    lower_rank = int(math.floor((n_pairs - c) / 2.0))  # 1-based ranks (Gilbert), clamped
    upper_rank = int(math.ceil((n_pairs + c) / 2.0)) + 1
    lo = float(per_day[min(max(lower_rank, 1), n_pairs) - 1])
    hi = float(per_day[min(max(upper_rank, 1), n_pairs) - 1])
    z = _z(s_total, var_total)
    span = span_days if span_days is not None else float((t.max() - t.min()) / 86400.0)
    level = float(np.median(x))
    start = level - slope * span / 2.0  # the fitted level at the start of the span (the median sits mid-span)
    scale = span / abs(start) if start else math.nan
    return Trend(
        method="mann-kendall" if seasons is None else "seasonal-kendall",
        points=int(len(x)),
        s=s_total,
        var_s=var_total,
        z=z,
        p_increase=float(norm.sf(z)),
        p_decrease=float(norm.cdf(z)),
        slope=slope,
        slope_ci=[lo, hi],
        confidence=confidence,
        level=level,
        span_days=span,
        change=slope * scale,
        change_ci=[lo * scale, hi * scale],
    )


def day_levels(
    times: np.ndarray, values: np.ndarray, *, origin: float, min_hours: int = 6, sweeps: int = 4, trim: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """(day index, level) per day with at least ``min_hours`` points: a two-way fit of day + hour of day.

    Days are counted from ``origin`` (the start of the analysed span), hours of day in UTC.
    The effects are fitted by backfitting with ``trim``-trimmed means (a median costs ~50%
    more noise in a day's level; trimming still drops an odd hour); with every hour present
    this is the usual two-way means fit. A day's level is its effect plus the mean
    hour-of-day effect plus the overall mean, in the values' units.
    """
    day = np.floor((times - origin) / 86400.0).astype(np.int64)
    hour = ((times // 3600.0) % 24).astype(np.int64)
    days, day_of = np.unique(day, return_inverse=True)
    keep = np.bincount(day_of, minlength=len(days)) >= min_hours
    if not keep.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    kept = keep[day_of]
    days = days[keep]
    day_of = np.searchsorted(days, day[kept])
    hour, x = hour[kept], values[kept]
    overall = _trimmed_mean(x, trim)
    day_members = [day_of == index for index in range(len(days))]
    hour_members = [(label, hour == label) for label in np.unique(hour).tolist()]
    day_effect = np.zeros(len(days))
    hour_effect = np.zeros(24)
    for _ in range(sweeps):
        for label, members in hour_members:
            hour_effect[label] = _trimmed_mean(x[members] - overall - day_effect[day_of[members]], trim)
        for index, members in enumerate(day_members):
            day_effect[index] = _trimmed_mean(x[members] - overall - hour_effect[hour[members]], trim)
    present = [label for label, _ in hour_members]
    return days, overall + float(np.mean(hour_effect[present])) + day_effect


def _trimmed_mean(values: np.ndarray, trim: float) -> float:
    """The mean without the ``trim`` share at each end (scipy's ``trim_mean`` rule, without its call overhead)."""
    cut = int(trim * len(values))
    ordered = np.sort(values)
    return float(ordered[cut : len(ordered) - cut].mean())


def daily_trend_test(
    times: Sequence[float] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    origin: float,
    span_days: float,
    confidence: float = 0.95,
    min_days: int = 4,
    min_hours: int = 6,
) -> Trend | None:
    """The trend of hourly points judged on their day levels: a least-squares line with its t test.

    Args:
        times: epoch seconds of the hourly points.
        values: the values; non-finite ones are left out.
        origin: the start of the span; day ``k`` is ``[origin + k days, origin + k + 1 days)``.
        span_days: the span the relative ``change`` refers to.
        confidence: of the slope's interval (Student's t with ``days − 2`` degrees of freedom).
        min_days: days with at least ``min_hours`` points the test needs (None below).

    Day ``k``'s level sits at its centre, ``k + 0.5`` days after ``origin``; ``change`` is the
    line's rise over ``span_days`` relative to its value at ``origin``. ``z`` is the slope's t
    statistic (``slope / SE``, the SE from the residuals of the day levels), ``p_increase`` /
    ``p_decrease`` its one-sided p-values; ``line_vs_step`` compares the line with the best
    single step (a level shift between two days) by AIC; ``s`` and ``var_s`` are the
    Mann-Kendall S of the day levels and its variance (reported, not tested).

    Example:
        >>> t = [i * 3600.0 for i in range(168)]
        >>> week = daily_trend_test(t, [100.0 * 1.01 ** (i / 24) for i in range(168)], origin=0.0, span_days=7.0)
        >>> week.days, round(week.change, 3), week.p_increase < 1e-6
        (7, 0.072, True)
    """
    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(t)
    t, x = t[ok], x[ok]
    days, levels = day_levels(t, x, origin=origin, min_hours=min_hours)
    if len(days) < max(min_days, 3):
        return None
    centre = days.astype(np.float64) + 0.5
    n = len(levels)
    dc = centre - centre.mean()
    sxx = float((dc * dc).sum())
    mean = float(levels.mean())
    slope = float((dc * (levels - mean)).sum() / sxx)
    residuals = levels - mean - slope * dc
    line_ssr = float((residuals * residuals).sum())
    df = n - 2
    se = math.sqrt(line_ssr / df / sxx)
    if se > 0:
        stat = slope / se
    else:  # the levels lie on a line
        stat = math.copysign(math.inf, slope) if slope else 0.0
    half = float(student_t.ppf(0.5 + confidence / 2.0, df)) * se
    start = mean + slope * (0.0 - float(centre.mean()))  # the line's value at the origin
    scale = span_days / abs(start) if start else math.nan
    s, var = _s_and_var(levels)
    return Trend(
        method="daily-least-squares",
        points=int(len(x)),
        days=n,
        s=s,
        var_s=var,
        z=stat,
        p_increase=float(student_t.sf(stat, df)),
        p_decrease=float(student_t.cdf(stat, df)),
        slope=slope,
        slope_ci=[slope - half, slope + half],
        confidence=confidence,
        level=mean,
        span_days=span_days,
        change=slope * scale,
        change_ci=[(slope - half) * scale, (slope + half) * scale],
        line_vs_step=_line_vs_step(line_ssr, levels),
    )


def _line_vs_step(line_ssr: float, levels: np.ndarray) -> float:
    """AIC of the line through the day levels minus that of the best single step (a level shift between two days).

    Both fits have their own level(s) and a normal residual; the step's split point counts as
    a parameter (line: intercept and slope; step: two levels and the split), so with ``n``
    days the line wins when ``n·log(SSR_line / SSR_step) < 2``.
    """
    n = len(levels)
    step_ssr = math.inf
    for split in range(1, n):
        before, after = levels[:split], levels[split:]
        ssr = float(((before - before.mean()) ** 2).sum() + ((after - after.mean()) ** 2).sum())
        step_ssr = min(step_ssr, ssr)
    if line_ssr <= 0:
        return -math.inf if step_ssr > 0 else 0.0
    if step_ssr <= 0:
        return math.inf
    return n * math.log(line_ssr / step_ssr) - 2.0


def worse(trend: Trend, *, higher_is_worse: bool, tolerance: float, alpha: float) -> bool:
    """True when the trend is significantly in the worse direction and larger than ``tolerance``.

    Both must hold: the one-sided p-value (Mann-Kendall, or the daily test's t) at most
    ``alpha`` (a trend exists) and the relative change over the span, from the slope, beyond
    ``tolerance`` (it matters). Either alone is not enough: a tiny steady drift is significant
    on a busy router, and one noisy day can move a slope. With ``line_vs_step`` (the daily
    test) the line must also describe the days better than one level shift does (AIC): a
    week that steps once (a weekend, a deploy) is not a 7-day trend.

    Example:
        >>> t = [i * 3600.0 for i in range(168)]
        >>> trend = trend_test(t, [100.0 * 1.01 ** (i / 24) for i in range(168)])
        >>> worse(trend, higher_is_worse=True, tolerance=0.05, alpha=0.001)
        True
    """
    if trend.line_vs_step is not None and not trend.line_vs_step < 0:
        return False
    if higher_is_worse:
        return trend.p_increase <= alpha and trend.change > tolerance
    return trend.p_decrease <= alpha and trend.change < -tolerance
