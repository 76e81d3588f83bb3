"""Always-valid boundaries: normal-mixture (Howard et al.) and Bernoulli-mixture (Robbins).

Two families of time-uniform boundaries, the building blocks of every gate:

* **Normal mixture** (Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon 2021, *Time-uniform,
  nonparametric, nonasymptotic confidence sequences*, Ann. Statist. 49(2), Propositions 4
  (two-sided) and 5 (one-sided), tuning in §3.5). For a process ``S_t`` with intrinsic
  time ``V_t`` (sub-Gaussian increments), ``P(∃t: S_t ≥ u(V_t)) ≤ α``. With a plug-in
  variance it is the *asymptotic* confidence sequence of Waudby-Smith, Arbour, Sinha,
  Kennedy & Ramdas (2024, *Time-uniform central limit theory and asymptotic confidence
  sequences*, Ann. Statist.), and as a test it is the mixture SPRT of Johari, Koomen,
  Pekelis & Walsh (2017 KDD; 2022 Oper. Res., *Always valid inference*), whose
  ``Λ_n = sqrt(V/(V+τ²))·exp(τ²θ̂²/(2V(V+τ²)))`` is the two-sided mixture with
  ``ρ = 1/τ²``. Formulas match ``confseq`` (``uniform_boundaries.h``), the authors' code.
* **Bernoulli mixture** (Robbins 1970): the likelihood ratio of ``Bernoulli(p)`` against
  ``Bernoulli(p0)`` mixed over a ``Beta(a, b)`` prior on ``p`` is a martingale under
  ``p0`` with a closed form (a ratio of Beta functions); rejecting ``p ≤ p0`` when it
  reaches ``1/α`` *and* the observed rate exceeds ``p0`` is exact at every sample size
  (Ville's inequality, plus a monotone-coupling argument for the composite null; see
  :func:`bernoulli_mixture_log_e`). This is the two-category case of the Dirichlet-
  multinomial test of Lindon & Malek (2022, *Anytime-valid inference for multinomial
  count data*, NeurIPS), which they propose for canary releases.

Everything here is pure float arithmetic on the standard library.
"""

from __future__ import annotations

import math
from functools import lru_cache

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")


def _log_norm_cdf(w: float) -> float:
    """``log Φ(w)``, accurate in both tails."""
    if w > -30.0:
        return math.log(0.5 * math.erfc(-w / _SQRT2))
    # Asymptotic Mills-ratio expansion: Φ(w) ≈ φ(w)/|w| · (1 - 1/w²).
    return -0.5 * w * w - math.log(-w) - 0.5 * math.log(2.0 * math.pi) + math.log1p(-1.0 / (w * w))


def _mills(w: float) -> float:
    """``φ(w)/Φ(w)``, the derivative of ``log Φ``."""
    return math.exp(-0.5 * w * w - _log_norm_cdf(w)) * _INV_SQRT_2PI


def best_rho(v_opt: float, alpha: float, *, one_sided: bool = True) -> float:
    """Mixture parameter ``ρ`` that makes the boundary tightest at intrinsic time ``v_opt``.

    Howard et al. (2021) §3.5: ``ρ = v_opt / (2 log(1/α) + log(1 + 2 log(1/α)))``; the
    one-sided mixture uses the two-sided value at ``2α`` (as ``confseq`` does).
    """
    if v_opt <= 0:
        raise ValueError(f"v_opt must be positive, got {v_opt}")
    _check_alpha(alpha)
    level = math.log(1.0 / (2.0 * alpha if one_sided else alpha))
    return v_opt / (2.0 * level + math.log1p(2.0 * level))


def normal_mixture_log_e(s: float, v: float, rho: float, *, one_sided: bool = True) -> float:
    """Logarithm of the normal-mixture supermartingale ``m(s, v)``.

    Two-sided (Prop. 4): ``½ log(ρ/(v+ρ)) + s²/(2(v+ρ))``.
    One-sided (Prop. 5, half-normal mixing): ``½ log(4ρ/(v+ρ)) + s²/(2(v+ρ)) + log Φ(s/√(v+ρ))``.
    ``exp(-value)`` is an always-valid p-value.
    """
    if v < 0 or rho <= 0:
        raise ValueError("v must be ≥ 0 and rho > 0")
    total = v + rho
    if one_sided:
        return 0.5 * math.log(4.0 * rho / total) + s * s / (2.0 * total) + _log_norm_cdf(s / math.sqrt(total))
    return 0.5 * math.log(rho / total) + s * s / (2.0 * total)


def normal_mixture_bound(v: float, alpha: float, rho: float, *, one_sided: bool = True) -> float:
    """The boundary ``u(v)``: ``P(∃t: S_t ≥ u(V_t)) ≤ α`` (one-sided) or ``|S_t|`` (two-sided).

    Two-sided has the closed form ``sqrt((v+ρ)(log(1+v/ρ) + 2 log(1/α)))``. The one-sided
    boundary solves ``normal_mixture_log_e(u, v) = log(1/α)``: with ``w = u/√(v+ρ)`` this
    is ``w²/2 + log Φ(w) = L``, increasing and convex in ``w``, solved by Newton's method
    from below (the first step lands right of the root, then it descends monotonically).
    """
    _check_alpha(alpha)
    if v < 0 or rho <= 0:
        raise ValueError("v must be ≥ 0 and rho > 0")
    total = v + rho
    log_threshold = math.log(1.0 / alpha)
    if not one_sided:
        return math.sqrt(total * (math.log1p(v / rho) + 2.0 * log_threshold))
    target = log_threshold - 0.5 * math.log(4.0 * rho / total)
    w = math.sqrt(2.0 * max(target, 0.0))
    for _ in range(100):
        g = 0.5 * w * w + _log_norm_cdf(w) - target
        if abs(g) < 1e-13:
            break
        step = g / (w + _mills(w))
        w -= step
        if abs(step) < 1e-13 * max(1.0, abs(w)):
            break
    return w * math.sqrt(total)


@lru_cache(maxsize=65536)
def z_threshold(t: float, alpha: float, t_opt: float) -> float:
    """One-sided critical value, in standard errors, after ``t`` effective samples.

    A standardized contrast ``Z_t = θ̂_t / se_t`` whose ``S_t = Z_t·√t`` behaves like a sum
    of ``t`` unit-variance increments (fixed allocation between the arms) crosses the
    normal-mixture boundary exactly when ``Z_t ≥ u(t)/√t``. ``t_opt`` is where the
    boundary is tuned to be tightest. It grows like ``sqrt(log t)``: that growth is the
    price of looking after every window.

    >>> round(z_threshold(150, 0.00125, 150), 2)
    3.97
    """
    if t <= 0:
        raise ValueError(f"t must be positive, got {t}")
    rho = best_rho(t_opt, alpha)
    return normal_mixture_bound(t, alpha, rho) / math.sqrt(t)


def _point_delta(t_point: float, weight: float, alpha: float) -> float:
    return math.sqrt(2.0 * (math.log(1.0 / alpha) + math.log(1.0 / weight)) / t_point)


def lr_mixture_log_e(s: float, t: float, alpha: float, shape: tuple[float, float, float]) -> float:
    """Log e-value of "no drift" for a process ``S_t`` of unit-variance increments.

    ``shape = (t_point, w, t_mix)``: weight ``w`` on the Gaussian likelihood ratio
    ``exp(δ s − δ² t/2)`` of the point alternative ``δ = sqrt(2 log(1/(w α)) / t_point)``
    — the drift that, alone, would reach the threshold soonest at ``t_point`` samples — and
    ``1 − w`` on the one-sided normal mixture (Howard et al. 2021, Prop. 5) tuned at
    ``t_mix``. Each is a nonnegative supermartingale with mean ≤ 1 under no drift, so is
    their convex combination, and ``P(∃t: log e ≥ log(1/α)) ≤ α`` (Ville). Against the
    normal mixture alone this concentrates power where the gate is meant to decide: at
    ``t_point`` the critical value is ``sqrt(2 log(1/(w α)))`` standard errors (3.68 at
    ``α = 0.002``, ``w = 0.8``; the normal mixture needs 3.84), and the mixture part keeps
    it within ~0.25 of the normal mixture's everywhere else.
    """
    t_point, weight, t_mix = shape
    terms = []
    if weight > 0:
        delta = _point_delta(t_point, weight, alpha)
        terms.append(math.log(weight) + delta * s - 0.5 * delta * delta * t)
    if weight < 1:
        rho = best_rho(t_mix, alpha * (1.0 - weight))
        terms.append(math.log(1.0 - weight) + normal_mixture_log_e(s, t, rho))
    top = max(terms)
    return top + math.log(sum(math.exp(x - top) for x in terms))


@lru_cache(maxsize=65536)
def _critical_s(t: float, alpha: float, shape: tuple[float, float, float]) -> float:
    """The ``z`` at which ``lr_mixture_log_e(z·√t, t) = log(1/α)``.

    ``log e`` is increasing and convex in ``s`` (a log-sum of log-convex terms), so Newton's
    method started right of the root — where one term alone reaches the target, since the
    others only add — descends monotonically onto it.
    """
    t_point, weight, t_mix = shape
    target = math.log(1.0 / alpha)
    candidates = []
    delta = rho = 0.0
    if weight > 0:
        delta = _point_delta(t_point, weight, alpha)
        candidates.append((target - math.log(weight) + 0.5 * delta * delta * t) / delta)
    if weight < 1:
        rho = best_rho(t_mix, alpha * (1.0 - weight))
        candidates.append(normal_mixture_bound(t, alpha * (1.0 - weight), rho))
    s = min(candidates)
    total = t + rho
    for _ in range(100):
        terms, slopes = [], []
        if weight > 0:
            terms.append(math.log(weight) + delta * s - 0.5 * delta * delta * t)
            slopes.append(delta)
        if weight < 1:
            w = s / math.sqrt(total)
            terms.append(math.log(1.0 - weight) + normal_mixture_log_e(s, t, rho))
            slopes.append(s / total + _mills(w) / math.sqrt(total))
        top = max(terms)
        parts = [math.exp(x - top) for x in terms]
        g = top + math.log(sum(parts)) - target
        slope = sum(p * d for p, d in zip(parts, slopes)) / sum(parts)
        step = g / slope
        s -= step
        if abs(step) < 1e-10 * max(1.0, abs(s)):
            break
    return s / math.sqrt(t)


def lr_mixture_z_threshold(t: float, alpha: float, shape: tuple[float, float, float]) -> float:
    """Critical value in standard errors after ``t`` effective samples: reject "no drift"
    when ``Z_t = S_t/√t`` is at least this (``lr_mixture_log_e(Z_t·√t, t) ≥ log(1/α)``).

    ``t`` is rounded to three significant digits for caching (the threshold moves by far
    less than that between neighbouring values).
    """
    _check_alpha(alpha)
    if t <= 0:
        raise ValueError(f"t must be positive, got {t}")
    t_point, weight, t_mix = shape
    if not (0 <= weight <= 1 and t_point > 0 and t_mix > 0):
        raise ValueError(f"bad boundary shape {shape}")
    key = float(f"{t:.3g}")
    return _critical_s(key, alpha, shape)


def bernoulli_mixture_log_e(successes: float, trials: float, p0: float, a: float, b: float) -> float:
    """Log of the Beta(a, b)-mixture likelihood ratio of ``successes/trials`` against ``p0``.

    ``M_n = B(a+S, b+n-S) / (B(a, b) · p0^S (1-p0)^(n-S))``: a nonnegative martingale with
    mean one under ``p = p0`` (Robbins 1970), so ``P(∃n: M_n ≥ 1/α) ≤ α``. For the
    one-sided null ``p ≤ p0`` reject only while ``S > n·p0``: that event is increasing in
    every observation (``M_n`` grows with ``S`` above ``n·p0``), and Bernoulli(p) data are
    dominated by Bernoulli(p0) data for ``p ≤ p0``, so its probability is at most ``α``.
    """
    if not 0.0 < p0 < 1.0:
        raise ValueError(f"p0 must be within (0, 1), got {p0}")
    failures = trials - successes
    return (
        _log_beta(a + successes, b + failures) - _log_beta(a, b) - successes * math.log(p0) - failures * math.log1p(-p0)
    )


def bernoulli_mixture_rejects(successes: float, trials: float, p0: float, alpha: float, a: float, b: float) -> bool:
    """Whether the exact one-sided test rejects ``p ≤ p0`` now (see :func:`bernoulli_mixture_log_e`)."""
    _check_alpha(alpha)
    if trials <= 0 or successes <= trials * p0:
        return False
    return bernoulli_mixture_log_e(successes, trials, p0, a, b) >= math.log(1.0 / alpha)


def bernoulli_mixture_lower_bound(successes: float, trials: float, alpha: float, a: float, b: float) -> float:
    """Time-uniform lower confidence bound for ``p``: the smallest ``p0`` not rejected.

    For ``p0`` below the observed rate the statistic decreases as ``p0`` grows (the prior is
    fixed), so the non-rejected set is an interval ``[L, 1)`` and ``L`` is found by
    bisection. ``P(∃n: L_n > p) ≤ α``.
    """
    _check_alpha(alpha)
    if trials <= 0 or successes <= 0:
        return 0.0
    rate = successes / trials
    if rate >= 1.0:
        rate = 1.0 - 1e-12
    threshold = math.log(1.0 / alpha)
    prior = _log_beta(a + successes, b + trials - successes) - _log_beta(a, b)
    failures = trials - successes

    def rejected(p0: float) -> bool:
        return prior - successes * math.log(p0) - failures * math.log1p(-p0) >= threshold

    lo, hi = 0.0, rate
    if not rejected(max(rate * 1e-9, 1e-300)):
        return 0.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mid <= 0.0:
            break
        if rejected(mid):
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10 * hi:
            break
    return lo


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
