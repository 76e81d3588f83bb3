"""One-sided, always-valid tests of "the canary is worse by more than a margin".

Each test returns an :class:`Outcome`: whether it rejects the null "canary at most
``margin`` worse than control", and the evidence — ``statistic``, a time-uniform lower
confidence bound of the degradation, and ``bound``, what it is compared with; the test
rejects exactly when ``statistic > bound``.

Means (cost, win score, log latency) use the normal-mixture boundary on the standardized
contrast with the canary's sample count as clock (see :func:`.boundary.z_threshold`);
both arms' estimation noise is in the standard error. Relative contrasts are tested in
linear form, ``μ_c − (1+m)·μ_k > 0`` (no delta method), and the reported ratio bound
is Fieller's inversion of the same test, so decision and evidence always agree.
Proportions with few events (errors, tail exceedances) use the exact Bernoulli mixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.rollout.gates import metrics
from bifrost.streams.rollout.gates.boundary import (
    bernoulli_mixture_lower_bound,
    bernoulli_mixture_rejects,
    best_rho,
    normal_mixture_bound,
    z_threshold,
)
from bifrost.streams.rollout.gates.metrics import MeanEstimate

NORMAL_MIXTURE = "one-sided normal-mixture confidence sequence (Howard et al. 2021; asymptotic, Waudby-Smith et al. 2024)"
BERNOULLI_MIXTURE = "exact Beta-Bernoulli mixture martingale (Robbins 1970; Lindon & Malek 2022)"


@dataclass(frozen=True, slots=True)
class Outcome:
    """Verdict of one always-valid test and its evidence."""

    reject: bool
    statistic: float | None
    bound: float
    method: str


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


def mean_increase_test(canary: MeanEstimate, control: MeanEstimate, margin: float, alpha: float, t_opt: float) -> Outcome:
    """Reject ``μ_c ≤ (1+margin)·μ_k``; statistic: lower bound of ``μ_c/μ_k − 1``."""
    z = z_threshold(canary.n, alpha, t_opt)
    r0 = 1.0 + margin
    vc, vk = canary.variance_of_mean, control.variance_of_mean
    contrast = canary.mean - r0 * control.mean
    reject = contrast > z * math.sqrt(vc + r0 * r0 * vk)
    lower = ratio_lower_bound(canary.mean, vc, control.mean, vk, z)
    return Outcome(reject=reject, statistic=_finite(lower - 1.0), bound=margin, method=NORMAL_MIXTURE)


def mean_decrease_test(canary: MeanEstimate, control: MeanEstimate, margin: float, alpha: float, t_opt: float) -> Outcome:
    """Reject ``μ_c ≥ (1−margin)·μ_k``; statistic: lower bound of ``1 − μ_c/μ_k``.

    Tested as ``μ_k − Q0·μ_c > 0`` with ``Q0 = 1/(1−margin)`` (the same hypothesis, scaled)
    so that Fieller's bound on ``μ_k/μ_c`` is monotone and agrees with the decision.
    """
    z = z_threshold(canary.n, alpha, t_opt)
    q0 = 1.0 / (1.0 - margin)
    vc, vk = canary.variance_of_mean, control.variance_of_mean
    contrast = control.mean - q0 * canary.mean
    reject = contrast > z * math.sqrt(vk + q0 * q0 * vc)
    lower = ratio_lower_bound(control.mean, vk, canary.mean, vc, z)
    statistic = _finite(1.0 - 1.0 / lower) if lower > 0 else None
    return Outcome(reject=reject, statistic=statistic, bound=margin, method=NORMAL_MIXTURE)


def log_shift_test(canary: MeanEstimate, control: MeanEstimate, margin: float, alpha: float, t_opt: float) -> Outcome:
    """Reject "canary log latency shifted up by at most ``log(1+margin)``".

    A uniform slow-down by a factor ``f`` shifts every quantile (P95 included) and the mean
    of log latency by ``log f``. Statistic: lower bound of the geometric-mean ratio − 1.
    """
    z = z_threshold(canary.n, alpha, t_opt)
    shift = canary.mean - control.mean
    radius = z * math.sqrt(canary.variance_of_mean + control.variance_of_mean)
    lower = shift - radius
    reject = lower > math.log1p(margin)
    return Outcome(
        reject=reject,
        statistic=math.expm1(lower),
        bound=margin,
        method="log-latency shift: " + NORMAL_MIXTURE,
    )


def rate_ratio_test(
    canary_events: int,
    canary_trials: int,
    control_events: int,
    control_trials: int,
    margin: float,
    alpha: float,
    concentration: float,
) -> Outcome:
    """Reject ``rate_c ≤ (1+margin)·rate_k`` for rare events (errors), exactly.

    Conditional on the request counts, each event falls in the canary with probability
    ``p = ρr/(ρr + 1 − ρ)``, ``ρ`` the canary's share of requests and ``r`` the rate ratio
    (Poisson thinning; for binomial events it is hypergeometric, less variable, so the
    test is conservative). The null ``r ≤ 1+margin`` is ``p ≤ p0``, tested with the
    Bernoulli mixture (prior ``Beta(k·p0, k·(1−p0))``) on the events' arm labels — the
    canary case of Lindon & Malek (2022). Statistic: lower bound of ``r − 1``.
    """
    events = canary_events + control_events
    rho = canary_trials / (canary_trials + control_trials)
    r0 = 1.0 + margin
    p0 = rho * r0 / (rho * r0 + 1.0 - rho)
    a, b = concentration * p0, concentration * (1.0 - p0)
    reject = bernoulli_mixture_rejects(canary_events, events, p0, alpha, a, b)
    p_lower = bernoulli_mixture_lower_bound(canary_events, events, alpha, a, b)
    r_lower = p_lower * (1.0 - rho) / (rho * (1.0 - p_lower)) if p_lower < 1.0 else math.inf
    return Outcome(
        reject=reject,
        statistic=_finite(r_lower - 1.0),
        bound=margin,
        method="conditional rate ratio: " + BERNOULLI_MIXTURE,
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
) -> Outcome:
    """Reject "canary P95 ≤ (1+margin) × control P95" directly, from bucket counts.

    1. Control: at its true quantile ``x*`` the count of values ``≥ x*`` is at least
       Binomial(n, 0.05); its lower deviations are sub-Gaussian with variance ``0.05`` per
       sample, so with the one-sided normal-mixture boundary ``u`` it stays above
       ``L = 0.05n − u(0.05n)`` at all times w.p. ``1 − control_alpha``. The smallest
       bucket edge ``T`` with fewer than ``L`` values above it is then ``≥ x*``.
    2. Canary: under the null, a canary value exceeds ``(1+margin)·x*`` with probability
       ``≤ 0.05``; values above ``(1+margin)·T`` (whole buckets) are fewer. The exact
       Bernoulli mixture tests ``p ≤ 0.05`` on that count.
    Total error ``≤ control_alpha + canary_alpha``. Statistic: lower confidence bound of
    the canary's exceedance fraction; bound: ``1 − quantile``.
    """
    p0 = round(1.0 - quantile, 12)
    method = "P95 tail exceedance: " + BERNOULLI_MIXTURE + ", above the control P95 upper confidence bound"
    v = p0 * control.count
    if v <= 0:
        return Outcome(reject=False, statistic=None, bound=p0, method=method)
    rho = best_rho(control_v_opt, control_alpha)
    min_exceedances = v - normal_mixture_bound(v, control_alpha, rho)
    upper = metrics.tail_upper_bound(control, min_exceedances)
    if upper is None:
        return Outcome(reject=False, statistic=None, bound=p0, method=method)
    n_canary = canary.count
    above = metrics.exceedances(canary, (1.0 + margin) * upper)
    reject = bernoulli_mixture_rejects(above, n_canary, p0, canary_alpha, *prior)
    lower = bernoulli_mixture_lower_bound(above, n_canary, canary_alpha, *prior)
    return Outcome(reject=reject, statistic=lower, bound=p0, method=method)
