"""Upper confidence bounds of each gate's degradation: what a promotion must show.

The rollback tests reject "the canary is at most ``margin`` worse" when a time-uniform
*lower* bound of the degradation clears the margin. Promotion needs the other side: a
time-uniform *upper* bound of the degradation below the gate's limit (non-inferiority
shown), not merely the absence of a rollback. The same boundaries give it (the duality
of e-processes and confidence sequences): the upper bound is the largest degradation
``d`` that the mirrored test of "the canary is at least ``d`` worse" does not reject.
Each bound holds at every look simultaneously with probability ``1 − alpha``
(asymptotically for the normal-type bounds, like the rollback tests). Pure; ``None``
means no bound yet (no finite one exists with these data).
"""

from __future__ import annotations

import math

from bifrost.streams.rollout.gates.boundary import bernoulli_mixture_lower_bound, lr_mixture_z_threshold
from bifrost.streams.rollout.gates.inference import ratio_lower_bound
from bifrost.streams.rollout.gates.metrics import MeanEstimate

Shape = tuple[float, float, float]


def _clock(n: float, dispersion: float) -> float:
    return max(n / dispersion, 1.0)


def mean_increase_upper(
    canary: MeanEstimate, control: MeanEstimate, alpha: float, shape: Shape, dispersion: float = 1.0
) -> float | None:
    """Upper bound of ``μ_c/μ_k − 1`` (cost): Fieller's upper limit, ``1 / lower(μ_k/μ_c)``.

    >>> est = MeanEstimate(n=2000, mean=1.0, variance=1.0)
    >>> 0 < mean_increase_upper(est, MeanEstimate(n=38000, mean=1.0, variance=1.0), 0.0125, (1500.0, 0.8, 1e4)) < 0.15
    True
    """
    z = lr_mixture_z_threshold(_clock(canary.n, dispersion), alpha, shape)
    lower = ratio_lower_bound(
        control.mean, dispersion * control.variance_of_mean, canary.mean, dispersion * canary.variance_of_mean, z
    )
    if not lower > 0 or not math.isfinite(lower):
        return None
    return 1.0 / lower - 1.0


def mean_decrease_upper(
    canary: MeanEstimate, control: MeanEstimate, alpha: float, shape: Shape, dispersion: float = 1.0
) -> float:
    """Upper bound of ``1 − μ_c/μ_k`` (win rate): one minus Fieller's lower limit of ``μ_c/μ_k``."""
    z = lr_mixture_z_threshold(_clock(canary.n, dispersion), alpha, shape)
    lower = ratio_lower_bound(
        canary.mean, dispersion * canary.variance_of_mean, control.mean, dispersion * control.variance_of_mean, z
    )
    return 1.0 - min(lower, 1e300)


def log_shift_upper(
    canary: MeanEstimate, control: MeanEstimate, alpha: float, shape: Shape, dispersion: float = 1.0
) -> float:
    """Upper bound of the geometric-mean latency ratio − 1 (a uniform slow-down's P95 ratio − 1)."""
    z = lr_mixture_z_threshold(_clock(canary.n, dispersion), alpha, shape)
    se = math.sqrt(dispersion * (canary.variance_of_mean + control.variance_of_mean))
    return math.expm1(min(canary.mean - control.mean + z * se, 700.0))


def proportion_upper(successes: float, trials: float, alpha: float, a: float, b: float) -> float:
    """Time-uniform upper bound of a proportion (Beta(a, b)-mixture, mirrored lower bound)."""
    if trials <= 0:
        return 1.0
    return 1.0 - bernoulli_mixture_lower_bound(trials - successes, trials, alpha, b, a)


def rate_ratio_upper(
    canary_events: int,
    canary_trials: int,
    control_events: int,
    control_trials: int,
    alpha: float,
    concentration: float,
    dispersion: float = 1.0,
) -> float | None:
    """Upper bound of ``rate_c/rate_k − 1`` from the errors' arm labels (see ``rate_ratio_test``).

    Each error lands in the canary with probability ``p = ρr/(ρr + 1 − ρ)``; the upper
    bound of ``p`` (``events/φ`` effective labels, prior centred on ``ρ``: no difference)
    maps to one of ``r``. ``None`` without errors in either arm.
    """
    if canary_trials <= 0 or control_trials <= 0:
        return None
    trials = (canary_events + control_events) / dispersion
    if trials <= 0:
        return None
    rho = canary_trials / (canary_trials + control_trials)
    p_upper = proportion_upper(
        canary_events / dispersion, trials, alpha, concentration * rho, concentration * (1.0 - rho)
    )
    if p_upper >= 1.0:
        return None
    return p_upper * (1.0 - rho) / (rho * (1.0 - p_upper)) - 1.0


def error_rate_upper(events: int, trials: int, alpha: float, dispersion: float = 1.0) -> float:
    """Upper bound of the canary's own error rate (prior Beta(1, 199); ``events/φ`` of ``trials/φ``)."""
    return proportion_upper(events / dispersion, trials / dispersion, alpha, 1.0, 199.0)
