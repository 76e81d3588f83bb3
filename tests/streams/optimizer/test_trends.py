"""Mann-Kendall, seasonal Kendall, Sen's slope and the daily least-squares test against independent values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import kendalltau, linregress, norm
from scipy.stats import t as student_t

from bifrost.streams.optimizer.trends import daily_trend_test, day_levels, trend_test, worse

DAY = 86_400.0


def brute_force_s(values: list[float]) -> int:
    return sum(int(np.sign(b - a)) for a, b in itertools.combinations(values, 2))


def test_s_variance_and_p_value_match_the_textbook_formulas() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0]
    times = [i * DAY for i in range(len(values))]
    trend = trend_test(times, values)
    assert trend is not None
    assert trend.s == brute_force_s(values)
    n = len(values)
    ties = [2, 3, 2]  # 1 ×2, 5 ×3, 3 ×2
    var = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties)) / 18
    assert trend.var_s == pytest.approx(var)
    z = (trend.s - 1) / math.sqrt(var)
    assert trend.z == pytest.approx(z)
    assert trend.p_increase == pytest.approx(norm.sf(z))


def test_s_agrees_with_kendalls_tau_without_ties() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=40)
    trend = trend_test(np.arange(40) * 3600.0, values)
    tau, _ = kendalltau(np.arange(40), values)
    assert trend is not None and trend.s == pytest.approx(tau * 40 * 39 / 2)


def test_sen_slope_of_a_line_is_exact_and_its_interval_covers_it() -> None:
    times = np.arange(48) * 3600.0
    values = 100.0 + 2.0 * times / DAY + np.random.default_rng(1).normal(0, 0.5, 48)
    trend = trend_test(times, values, confidence=0.95)
    assert trend is not None
    assert trend.slope == pytest.approx(2.0, rel=0.25)
    assert trend.slope_ci[0] <= 2.0 <= trend.slope_ci[1]
    exact = trend_test(times, 100.0 + 2.0 * times / DAY)
    assert exact is not None and exact.slope == pytest.approx(2.0) and exact.slope_ci == pytest.approx([2.0, 2.0])


def test_sen_interval_covers_the_true_slope_at_its_confidence() -> None:
    covered = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        times = np.arange(60) * 3600.0
        trend = trend_test(times, 1.5 * times / DAY + rng.normal(0, 1.0, 60), confidence=0.9)
        assert trend is not None
        covered += trend.slope_ci[0] <= 1.5 <= trend.slope_ci[1]
    assert 0.84 <= covered / 200 <= 0.97


def test_seasonal_kendall_ignores_a_daily_cycle_that_fools_the_plain_test() -> None:
    # A strong daily cycle sampled from 06:00 on day 0 to 05:00 on day 7: the plain test
    # sees the partial cycles at the ends; the seasonal one compares each hour with itself.
    times = np.arange(6, 6 + 7 * 24) * 3600.0
    values = (
        100 + 40 * np.sin(2 * np.pi * (times / 3600 % 24) / 24) + np.random.default_rng(0).normal(0, 0.5, len(times))
    )
    seasons = ((times // 3600) % 24).astype(int)
    seasonal = trend_test(times, values, seasons=seasons, span_days=7)
    assert seasonal is not None and seasonal.method == "seasonal-kendall"
    assert min(seasonal.p_increase, seasonal.p_decrease) > 0.01
    assert abs(seasonal.change) < 0.01


def test_missing_points_are_left_out_and_short_series_give_none() -> None:
    assert trend_test([0, 1, 2], [1.0, 2.0, 3.0]) is None
    trend = trend_test(np.arange(6) * DAY, [1.0, math.nan, 2.0, 3.0, math.inf, 4.0])
    assert trend is not None and trend.points == 4


def test_worse_needs_both_significance_and_size() -> None:
    times = np.arange(168) * 3600.0
    growing = trend_test(times, 100 * 1.01 ** (times / DAY), span_days=7)
    assert growing is not None and worse(growing, higher_is_worse=True, tolerance=0.05, alpha=0.001)
    assert not worse(growing, higher_is_worse=False, tolerance=0.05, alpha=0.001)
    small = trend_test(times, 100 * 1.002 ** (times / DAY), span_days=7)  # significant, but 1.4% a week
    assert small is not None and small.p_increase < 1e-6
    assert not worse(small, higher_is_worse=True, tolerance=0.05, alpha=0.001)


def hourly_week(
    day_level: list[float], *, cycle: float = 20.0, noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """168 hourly points: a daily cycle of ±``cycle`` on top of each day's level, plus noise."""
    rng = np.random.default_rng(seed)
    times = np.arange(7 * 24) * 3600.0
    values = (
        np.repeat(day_level, 24)
        + cycle * np.sin(2 * np.pi * (times / 3600 % 24) / 24)
        + rng.normal(0.0, noise, len(times))
    )
    return times, values


def test_day_levels_remove_the_daily_cycle_and_keep_the_days() -> None:
    levels = [100.0, 103.0, 98.0, 101.0, 110.0, 99.0, 100.0]
    times, values = hourly_week(levels)
    days, found = day_levels(times, values, origin=0.0)
    assert days.tolist() == list(range(7))
    assert found - found.mean() == pytest.approx(np.asarray(levels) - np.mean(levels), abs=1e-9)


def test_daily_test_is_a_least_squares_line_through_the_day_levels() -> None:
    levels = [100.0, 101.5, 101.0, 103.5, 103.0, 105.5, 106.0]
    trend = daily_trend_test(*hourly_week(levels), origin=0.0, span_days=7.0, confidence=0.9)
    assert trend is not None and trend.days == 7 and trend.method == "daily-least-squares"
    centres = np.arange(7) + 0.5  # day k's level sits at its centre
    fit = linregress(centres, levels)
    assert trend.slope == pytest.approx(fit.slope)
    assert trend.z == pytest.approx(fit.slope / fit.stderr)
    assert trend.p_increase == pytest.approx(student_t.sf(fit.slope / fit.stderr, 5))
    assert trend.p_decrease == pytest.approx(student_t.cdf(fit.slope / fit.stderr, 5))
    half = student_t.ppf(0.95, 5) * fit.stderr
    assert trend.slope_ci == pytest.approx([fit.slope - half, fit.slope + half])
    assert trend.change == pytest.approx(fit.slope * 7 / fit.intercept)  # the rise over 7 days / the line at day 0
    assert trend.s == brute_force_s(levels)
    flat = daily_trend_test(*hourly_week([100.0] * 7, noise=1.0), origin=0.0, span_days=7.0)
    assert flat is not None and flat.p_increase > 0.01 and flat.p_decrease > 0.01


def test_daily_test_false_positives_stay_at_alpha_whatever_the_day_noise() -> None:
    # Exchangeable (i.i.d. normal) day levels, 1% and 10% wide: the t test's residual
    # variance comes from the days themselves, so its one-sided p is uniform at any width.
    for width in (1.0, 10.0):
        rng = np.random.default_rng(int(width))
        p = []
        for _ in range(300):
            times, values = hourly_week(list(100.0 + rng.normal(0.0, width, 7)), cycle=5.0)
            trend = daily_trend_test(times, values, origin=0.0, span_days=7.0)
            assert trend is not None
            p.append(trend.p_increase)
        assert 0.05 <= np.mean(np.asarray(p) <= 0.1) <= 0.15, width


def test_an_odd_day_at_either_end_is_not_a_trend() -> None:
    base = [100.0, 100.5, 99.5, 100.2, 99.8, 100.1, 99.9]
    for levels in ([*base[:-1], 140.0], [70.0, *base[1:]], [*base[:-1], 110.0]):
        trend = daily_trend_test(*hourly_week(levels, noise=0.5), origin=0.0, span_days=7.0)
        assert trend is not None
        assert trend.change > 0.05  # the line does rise…
        assert trend.z < 2.0  # …but the odd day leaves it far from significant (t ≈ 1.7 whatever its size)
        assert not worse(trend, higher_is_worse=True, tolerance=0.05, alpha=0.005)


def test_one_level_shift_is_not_a_trend() -> None:
    # Three days at one level, four 8% higher: the line rises 12% and its t alone would pass
    # at 0.01, but one step describes the days far better (AIC), so the week is no trend.
    shifted = daily_trend_test(*hourly_week([100.0] * 3 + [108.0] * 4, noise=0.5), origin=0.0, span_days=7.0)
    assert shifted is not None and shifted.line_vs_step is not None
    assert shifted.p_increase <= 0.01 and shifted.change > 0.05
    assert shifted.line_vs_step > 0
    assert not worse(shifted, higher_is_worse=True, tolerance=0.05, alpha=0.01)
    drift = daily_trend_test(*hourly_week([100.0 + 1.3 * k for k in range(7)], noise=0.5), origin=0.0, span_days=7.0)
    assert drift is not None and drift.line_vs_step is not None and drift.line_vs_step < 0


def test_a_steady_drift_is_worse() -> None:
    trend = daily_trend_test(*hourly_week([100.0 * 1.01**k for k in range(7)], noise=0.5), origin=0.0, span_days=7.0)
    assert trend is not None
    assert trend.p_increase < 1e-4
    assert trend.change == pytest.approx(0.072, abs=0.005)  # 1%/day over the 7-day window, not the 6 between centres
    assert worse(trend, higher_is_worse=True, tolerance=0.05, alpha=0.005)
    assert not worse(trend, higher_is_worse=False, tolerance=0.05, alpha=0.005)
    smaller = daily_trend_test(*hourly_week([100.0 * 1.006**k for k in range(7)], noise=0.5), origin=0.0, span_days=7.0)
    assert smaller is not None and smaller.p_increase < 1e-4 and smaller.change < 0.05  # significant, under 5%
    assert not worse(smaller, higher_is_worse=True, tolerance=0.05, alpha=0.005)


def test_daily_test_needs_four_days_with_enough_hours() -> None:
    times, values = hourly_week([100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0])
    keep = times < 3 * DAY + 5 * 3600  # three full days and five hours of the fourth
    assert daily_trend_test(times[keep], values[keep], origin=0.0, span_days=7.0) is None
