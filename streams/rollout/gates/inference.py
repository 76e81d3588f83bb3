"""One-sided, always-valid tests of "the canary is worse by more than a margin".

Each test returns an :class:`Outcome`: whether it rejects the null "canary at most
``margin`` worse than control", its evidence — ``statistic``, a time-uniform lower
confidence bound of the degradation, and ``bound``, what it is compared with (the test
rejects exactly when ``statistic > bound``) — and its e-value (``log_e``; the test
rejects when ``log_e ≥ log(1/α)``), which the controller reads to hold a stage whose
evidence is building up.

Means (cost, win score, log latency) use a mixture of Gaussian likelihood ratios on the
standardized contrast with the canary's effective sample count as clock (see
:func:`.boundary.lr_mixture_log_e`); both arms' estimation noise is in the standard
error. Relative contrasts are tested in linear form, ``μ_c − (1+m)·μ_k > 0`` (no delta
method), and the reported ratio bound is Fieller's inversion of the same test, so
decision and evidence always agree. Proportions with few events (errors, tail
exceedances) use the Bernoulli mixture.

Every test takes ``dispersion`` (``φ ≥ 1``, :mod:`.dispersion`): variances are
multiplied by ``φ`` and sample counts divided by it, so events that come in clusters
count for what they are worth. At ``φ = 1`` the error and tail tests are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.rollout.gates import metrics
from bifrost.streams.rollout.gates.boundary import (
    bernoulli_mixture_log_e,
    bernoulli_mixture_lower_bound,
    bernoulli_mixture_rejects,
    best_rho,
    lr_mixture_log_e,
    lr_mixture_z_threshold,
    normal_mixture_bound,
)
from bifrost.streams.rollout.gates.metrics import MeanEstimate
from bifrost.streams.rollout.gates.score import ShiftScore

LR_MIXTURE = "Gaussian likelihood-ratio mixture e-process (Robbins 1970; asymptotic, Waudby-Smith et al. 2024)"
BERNOULLI_MIXTURE = "Beta-Bernoulli mixture martingale (Robbins 1970; Lindon & Malek 2022)"
# Kept for callers of the previous name.
NORMAL_MIXTURE = LR_MIXTURE
FIXED_LOOK = "fixed-horizon z-test at the stage's one ripe look"


@dataclass(frozen=True, slots=True)
class Outcome:
    """Verdict of one always-valid test and its evidence."""

    reject: bool
    statistic: float | None
    bound: float
    method: str
    log_e: float = 0.0  # log of the e-value (≥ log(1/α) ⇔ reject)
    log_threshold: float = math.inf  # log(1/α)
    degradation: float | None = None  # point estimate of the relative degradation
    z: float | None = None  # fixed-sample z score of the excess over the margin

    @property
    def evidence(self) -> float:
        """``log e / log(1/α)`` clipped to [0, 1]: the share of the way to a rollback."""
        if not math.isfinite(self.log_threshold) or self.log_threshold <= 0:
            return 0.0
        return min(max(self.log_e / self.log_threshold, 0.0), 1.0)


def ratio_lower_bound(num: float, num_var: float, den: float, den_var: float, z: float) -> float:
    """Fieller's one-sided lower bound ``R_L`` of ``num/den`` at critical value ``z``.

    ``R_L`` is the root of ``g(R) = num − R·den − z·sqrt(num_var + R²·den_var)``, which
    decreases in ``R ≥ 0`` when ``den ≥ 0``; so ``g(R0) > 0 ⇔ R_L > R0``. ``0`` when
    ``g(0) ≤ 0`` (no positive lower bound), ``inf`` when ``g`` never turns negative.
    Closed form (the smaller root of the squared equation, rationalized for stability):
    ``R_L = C / (num·den + sqrt(num²den² − A·C))``, ``A = den² − z²den_var``,
    ``C = num² − z²num_var``.
    """
    if num - z * math.sqrt(num_var) <= 0:
        return 0.0
    a = den * den - z * z * den_var
    c = num * num - z * z * num_var
    disc = max(num * num * den * den - a * c, 0.0)
    denominator = num * den + math.sqrt(disc)
    if denominator <= 0:
        return math.inf
    return c / denominator


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


Points = tuple[float, float, float]


def _clock(n: float, dispersion: float) -> float:
    return max(n / dispersion, 1.0)


@lru_cache(maxsize=64)
def fixed_z_threshold(alpha: float) -> float:
    """One-sided critical value of a z-test that looks once: ``Φ⁻¹(1 − α)``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    return NormalDist().inv_cdf(1.0 - alpha)


def _critical(t: float, alpha: float, points: Points, final_alpha: float | None) -> tuple[float, bool]:
    """The critical z at this look and whether the one fixed-horizon look sets it.

    ``final_alpha`` is given only at the stage's single ripe look (the controller makes
    it once per stage, at a moment set by traffic coverage, never by the values tested):
    there the null is rejected by either test, so the level is ``alpha + final_alpha``.
    """
    z_crit = lr_mixture_z_threshold(t, alpha, points)
    if final_alpha is None:
        return z_crit, False
    z_fixed = fixed_z_threshold(final_alpha)
    return (z_fixed, True) if z_fixed < z_crit else (z_crit, False)


def _method(base: str, fixed: bool) -> str:
    return f"{base}; {FIXED_LOOK}" if fixed else base


def _log_e(z: float, t: float, alpha: float, points: Points) -> float:
    return (
        lr_mixture_log_e(z * math.sqrt(t), t, alpha, points) if math.isfinite(z) else (math.inf if z > 0 else -math.inf)
    )


def mean_increase_test(
    canary: MeanEstimate,
    control: MeanEstimate,
    margin: float,
    alpha: float,
    points: Points,
    dispersion: float = 1.0,
) -> Outcome:
    """Reject ``μ_c ≤ (1+margin)·μ_k``; statistic: lower bound of ``μ_c/μ_k − 1``."""
    t = _clock(canary.n, dispersion)
    z_crit = lr_mixture_z_threshold(t, alpha, points)
    r0 = 1.0 + margin
    vc, vk = dispersion * canary.variance_of_mean, dispersion * control.variance_of_mean
    contrast = canary.mean - r0 * control.mean
    se = math.sqrt(vc + r0 * r0 * vk)
    z = contrast / se if se > 0 else (math.inf if contrast > 0 else 0.0)
    lower = ratio_lower_bound(canary.mean, vc, control.mean, vk, z_crit)
    degradation = canary.mean / control.mean - 1.0 if control.mean > 0 else None
    return Outcome(
        reject=z > z_crit,
        statistic=_finite(lower - 1.0),
        bound=margin,
        method=LR_MIXTURE,
        log_e=_log_e(z, t, alpha, points),
        log_threshold=math.log(1.0 / alpha),
        degradation=degradation,
        z=_finite(z),
    )


def mean_decrease_test(
    canary: MeanEstimate,
    control: MeanEstimate,
    margin: float,
    alpha: float,
    points: Points,
    dispersion: float = 1.0,
    final_alpha: float | None = None,
) -> Outcome:
    """Reject ``μ_c ≥ (1−margin)·μ_k``; statistic: lower bound of ``1 − μ_c/μ_k``.

    Tested as ``μ_k − Q0·μ_c > 0`` with ``Q0 = 1/(1−margin)`` (the same hypothesis, scaled)
    so that Fieller's bound on ``μ_k/μ_c`` is monotone and agrees with the decision.

    The canary's per-sample variance is taken as at least the control's: for scores in
    [0, 1] (win rates) a canary that happens to score low at a low win rate also estimates
    a small variance, which inflated ``z`` — at win rate 0.1 and ~120 judged canary samples
    a z-test at the stage's fixed look rejected an identical canary at 5.8× its level (outside
    tester, 2026-12-03). Under the null the arms' variances are nearly equal, and the
    control's estimate (many more samples) does not move with the canary's mean.
    """
    t = _clock(canary.n, dispersion)
    z_crit, fixed = _critical(t, alpha, points, final_alpha)
    q0 = 1.0 / (1.0 - margin)
    canary_variance = max(canary.variance, control.variance) / canary.n if canary.n else math.inf
    vc, vk = dispersion * canary_variance, dispersion * control.variance_of_mean
    contrast = control.mean - q0 * canary.mean
    se = math.sqrt(vk + q0 * q0 * vc)
    z = contrast / se if se > 0 else (math.inf if contrast > 0 else 0.0)
    lower = ratio_lower_bound(control.mean, vk, canary.mean, vc, z_crit)
    statistic = _finite(1.0 - 1.0 / lower) if lower > 0 else None
    degradation = 1.0 - canary.mean / control.mean if control.mean > 0 else None
    return Outcome(
        reject=z > z_crit,
        statistic=statistic,
        bound=margin,
        method=_method(LR_MIXTURE, fixed),
        log_e=_log_e(z, t, alpha, points),
        log_threshold=math.log(1.0 / alpha),
        degradation=degradation,
        z=_finite(z),
    )


def log_shift_test(
    canary: MeanEstimate,
    control: MeanEstimate,
    margin: float,
    alpha: float,
    points: Points,
    dispersion: float = 1.0,
    quantity: str = "latency",
) -> Outcome:
    """Reject "canary log latency (or log ``quantity``) shifted up by at most ``log(1+margin)``".

    A uniform slow-down by a factor ``f`` shifts every quantile (P95 included) and the mean
    of log latency by ``log f``. Statistic: lower bound of the geometric-mean ratio − 1.
    """
    t = _clock(canary.n, dispersion)
    z_crit = lr_mixture_z_threshold(t, alpha, points)
    excess = canary.mean - control.mean - math.log1p(margin)
    se = math.sqrt(dispersion * (canary.variance_of_mean + control.variance_of_mean))
    z = excess / se if se > 0 else (math.inf if excess > 0 else 0.0)
    lower = canary.mean - control.mean - z_crit * se
    return Outcome(
        reject=z > z_crit,
        statistic=math.expm1(lower),
        bound=margin,
        method=f"log-{quantity} shift: " + LR_MIXTURE,
        log_e=_log_e(z, t, alpha, points),
        log_threshold=math.log(1.0 / alpha),
        degradation=math.expm1(canary.mean - control.mean),
        z=_finite(z),
    )


def shift_score_test(
    score: ShiftScore,
    alpha: float,
    points: Points,
    dispersion: float = 1.0,
    quantity: str = "cost",
) -> Outcome:
    """Reject "canary log ``quantity`` shifted up by at most ``score.offset``" (:mod:`.score`).

    The standardized score difference is the z statistic, with the canary's effective
    sample count as clock like the mean tests. Statistic: the one-step lower bound of the
    shift factor − 1, compared with ``expm1(offset)``.
    """
    t = _clock(score.n_canary, dispersion)
    z_crit = lr_mixture_z_threshold(t, alpha, points)
    se = math.sqrt(dispersion) * score.standard_error
    z = score.difference / se
    lower = score.offset + (score.difference - z_crit * se) / score.information
    return Outcome(
        reject=z > z_crit,
        statistic=math.expm1(lower),
        bound=math.expm1(score.offset),
        method=f"log-{quantity} shift, efficient score (kernel density of both arms): " + LR_MIXTURE,
        log_e=_log_e(z, t, alpha, points),
        log_threshold=math.log(1.0 / alpha),
        degradation=math.expm1(score.shift),
        z=_finite(z),
    )


def rate_ratio_test(
    canary_events: int,
    canary_trials: int,
    control_events: int,
    control_trials: int,
    margin: float,
    alpha: float,
    concentration: float,
    dispersion: float = 1.0,
) -> Outcome:
    """Reject ``rate_c ≤ (1+margin)·rate_k`` for rare events (errors).

    Conditional on the request counts, each event falls in the canary with probability
    ``p = ρr/(ρr + 1 − ρ)``, ``ρ`` the canary's share of requests and ``r`` the rate ratio
    (Poisson thinning; for binomial events it is hypergeometric, less variable, so the
    test is conservative). The null ``r ≤ 1+margin`` is ``p ≤ p0``, tested with the
    Bernoulli mixture (prior ``Beta(k·p0, k·(1−p0))``) on the events' arm labels — the
    canary case of Lindon & Malek (2022). Events in clusters (bursts of errors in one
    arm) carry less information than their number: the labels are counted as
    ``events/φ`` effective events (exact at ``φ = 1``). Statistic: lower bound of ``r − 1``.
    """
    rho = canary_trials / (canary_trials + control_trials)
    r0 = 1.0 + margin
    p0 = rho * r0 / (rho * r0 + 1.0 - rho)
    a, b = concentration * p0, concentration * (1.0 - p0)
    successes = canary_events / dispersion
    trials = (canary_events + control_events) / dispersion
    reject = bernoulli_mixture_rejects(successes, trials, p0, alpha, a, b)
    p_lower = bernoulli_mixture_lower_bound(successes, trials, alpha, a, b)
    r_lower = p_lower * (1.0 - rho) / (rho * (1.0 - p_lower)) if p_lower < 1.0 else math.inf
    log_e = bernoulli_mixture_log_e(successes, trials, p0, a, b) if trials > 0 else 0.0
    if successes <= trials * p0:
        log_e = min(log_e, 0.0)
    degradation = z = None
    if canary_trials > 0 and control_trials > 0 and control_events > 0:
        degradation = (canary_events / canary_trials) / (control_events / control_trials) - 1.0
    if trials > 0:
        z = (successes - trials * p0) / math.sqrt(trials * p0 * (1.0 - p0))
    return Outcome(
        reject=reject,
        statistic=_finite(r_lower - 1.0),
        bound=margin,
        method="conditional rate ratio: " + BERNOULLI_MIXTURE,
        log_e=log_e,
        log_threshold=math.log(1.0 / alpha),
        degradation=degradation,
        z=z,
    )


def tail_exceedance_test(
    canary: QuantileSketch,
    control: QuantileSketch,
    margin: float,
    quantile: float,
    control_alpha: float,
    canary_alpha: float,
    control_v_opt: float,
    prior: tuple[float, float],
    dispersion: float = 1.0,
) -> Outcome:
    """Reject "canary P95 ≤ (1+margin) × control P95" directly, from bucket counts.

    1. Control: at its true quantile ``x*`` the count of values ``≥ x*`` is at least
       Binomial(n, 0.05); its lower deviations are sub-Gaussian with variance ``0.05`` per
       sample (``0.05·φ`` when values come in clusters), so with the one-sided
       normal-mixture boundary ``u`` it stays above ``L = 0.05n − u(0.05nφ)`` at all times
       w.p. ``1 − control_alpha``. The smallest bucket edge ``T`` with fewer than ``L``
       values above it is then ``≥ x*``.
    2. Canary: under the null, a canary value exceeds ``(1+margin)·x*`` with probability
       ``≤ 0.05``; values above ``(1+margin)·T`` (whole buckets) are fewer. The Bernoulli
       mixture tests ``p ≤ 0.05`` on that count (``count/φ`` effective values).
    Total error ``≤ control_alpha + canary_alpha``. Statistic: lower confidence bound of
    the canary's exceedance fraction; bound: ``1 − quantile``.
    """
    p0 = round(1.0 - quantile, 12)
    method = "P95 tail exceedance: " + BERNOULLI_MIXTURE + ", above the control P95 upper confidence bound"
    measured = control.count - control.zero_count
    v = p0 * measured
    if v <= 0:
        return Outcome(reject=False, statistic=None, bound=p0, method=method)
    rho = best_rho(control_v_opt, control_alpha)
    min_exceedances = v - normal_mixture_bound(v * dispersion, control_alpha, rho)
    upper = metrics.tail_upper_bound(control, min_exceedances)
    if upper is None:
        return Outcome(reject=False, statistic=None, bound=p0, method=method)
    n_canary = (canary.count - canary.zero_count) / dispersion
    above = metrics.exceedances(canary, (1.0 + margin) * upper) / dispersion
    reject = bernoulli_mixture_rejects(above, n_canary, p0, canary_alpha, *prior)
    lower = bernoulli_mixture_lower_bound(above, n_canary, canary_alpha, *prior)
    log_e = bernoulli_mixture_log_e(above, n_canary, p0, *prior) if n_canary > 0 else 0.0
    if above <= n_canary * p0:
        log_e = min(log_e, 0.0)
    return Outcome(
        reject=reject, statistic=lower, bound=p0, method=method, log_e=log_e, log_threshold=math.log(1.0 / canary_alpha)
    )
