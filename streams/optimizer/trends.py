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
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import msgspec
import numpy as np
from scipy.stats import norm


class Trend(msgspec.Struct, frozen=True, kw_only=True):
    """A trend test's result on one series.

    ``slope`` is Sen's slope in value units per day, ``slope_ci`` its interval at
    ``confidence``; ``change`` = slope × span / (level at the start of the span), the relative
    change over the analysed span (``span_days``), where the start level is the series' median
    ``level`` minus half the span's rise; ``p_increase`` /
    ``p_decrease`` are one-sided p-values of the Mann-Kendall Z.
    """

    method: str  # "mann-kendall" or "seasonal-kendall"
    points: int
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
        points=int(len(x)), s=s_total, var_s=var_total, z=z,
        p_increase=float(norm.sf(z)), p_decrease=float(norm.cdf(z)),
        slope=slope, slope_ci=[lo, hi], confidence=confidence, level=level, span_days=span,
        change=slope * scale, change_ci=[lo * scale, hi * scale],
    )


def worse(trend: Trend, *, higher_is_worse: bool, tolerance: float, alpha: float) -> bool:
    """True when the trend is significantly in the worse direction and larger than ``tolerance``.

    Both must hold: the one-sided Mann-Kendall p-value below ``alpha`` (a trend exists)
    and the relative change over the span, from Sen's slope, beyond ``tolerance`` (it
    matters). Either alone is not enough: a tiny steady drift is significant on a busy
    router, and one noisy day can move a slope.

    Example:
        >>> t = [i * 3600.0 for i in range(168)]
        >>> trend = trend_test(t, [100.0 * 1.01 ** (i / 24) for i in range(168)])
        >>> worse(trend, higher_is_worse=True, tolerance=0.05, alpha=0.001)
        True
    """
    if higher_is_worse:
        return trend.p_increase < alpha and trend.change > tolerance
    return trend.p_decrease < alpha and trend.change < -tolerance
