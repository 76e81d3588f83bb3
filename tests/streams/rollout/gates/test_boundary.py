"""Always-valid boundaries: known values, monotonicity, exact error control."""

from __future__ import annotations

import math
import random

import pytest

from bifrost.streams.rollout.gates.boundary import (
    bernoulli_mixture_log_e,
    bernoulli_mixture_lower_bound,
    bernoulli_mixture_rejects,
    best_rho,
    normal_mixture_bound,
    normal_mixture_log_e,
    z_threshold,
)
from bifrost.streams.rollout.gates.inference import ratio_lower_bound


def test_best_rho_matches_confseq_formula() -> None:
    # confseq TwoSidedNormalMixture::best_rho(v, a) = v / (2 log(1/a) + log(1 + 2 log(1/a)))
    level = math.log(1 / 0.05)
    assert best_rho(100.0, 0.05, one_sided=False) == pytest.approx(100.0 / (2 * level + math.log(1 + 2 * level)))
    # One-sided uses the two-sided value at 2 alpha.
    assert best_rho(100.0, 0.025) == pytest.approx(best_rho(100.0, 0.05, one_sided=False))


def test_two_sided_bound_known_value() -> None:
    # u(v) = sqrt((v + rho) (log(1 + v/rho) + 2 log(1/alpha))) with v = 100, rho = 10, alpha = 0.05
    expected = math.sqrt(110.0 * (math.log(11.0) + 2 * math.log(20.0)))
    assert normal_mixture_bound(100.0, 0.05, 10.0, one_sided=False) == pytest.approx(expected)
    assert expected == pytest.approx(30.378, abs=0.001)


def test_two_sided_mixture_is_johari_msprt() -> None:
    # Johari et al.: Lambda = sqrt(V/(V+tau^2)) exp(tau^2 theta^2 / (2 V (V + tau^2))), V = se^2.
    se, tau, theta = 0.05, 0.2, 0.13
    log_lambda = 0.5 * math.log(se**2 / (se**2 + tau**2)) + tau**2 * theta**2 / (2 * se**2 * (se**2 + tau**2))
    # Same thing in Howard et al.'s terms: v = 1/se^2 (information), s = v * theta, rho = 1/tau^2.
    v = 1 / se**2
    assert normal_mixture_log_e(v * theta, v, 1 / tau**2, one_sided=False) == pytest.approx(log_lambda)


@pytest.mark.parametrize("v", [1.0, 10.0, 150.0, 1e4, 1e7])
@pytest.mark.parametrize("alpha", [0.2, 0.05, 0.00125])
def test_one_sided_bound_solves_its_equation(v: float, alpha: float) -> None:
    rho = best_rho(150.0, alpha)
    u = normal_mixture_bound(v, alpha, rho)
    assert normal_mixture_log_e(u, v, rho) == pytest.approx(math.log(1 / alpha), abs=1e-9)


@pytest.mark.parametrize("v", [10.0, 150.0, 5000.0])
def test_one_sided_is_tighter_and_close_to_two_sided_at_double_alpha(v: float) -> None:
    alpha = 0.0025
    rho = best_rho(150.0, alpha)
    one = normal_mixture_bound(v, alpha, rho)
    assert one < normal_mixture_bound(v, alpha, rho, one_sided=False)
    assert one == pytest.approx(normal_mixture_bound(v, 2 * alpha, rho, one_sided=False), rel=0.01)


def test_boundary_monotone_in_time_and_alpha() -> None:
    rho = best_rho(150.0, 0.01)
    bounds = [normal_mixture_bound(v, 0.01, rho) for v in (1, 10, 100, 1000, 10_000)]
    assert bounds == sorted(bounds)
    zs = [z_threshold(150, a, 150) for a in (0.1, 0.01, 0.001, 0.0001)]
    assert zs == sorted(zs)
    # The price of continuous monitoring: far above the fixed-n one-sided 2.33 at 1%.
    assert z_threshold(150, 0.01, 150) > 3.0
    # Tightest near t_opt, then growing like sqrt(log t).
    assert z_threshold(150, 0.01, 150) < z_threshold(10_000, 0.01, 150) < z_threshold(1e6, 0.01, 150)


def test_z_threshold_docstring_value() -> None:
    assert round(z_threshold(150, 0.00125, 150), 2) == 3.97


def test_normal_mixture_controls_crossing_of_a_random_walk() -> None:
    """A Gaussian random walk watched at every step crosses the boundary with probability ≤ alpha."""
    rng = random.Random(5)
    alpha, steps, paths = 0.1, 400, 1500
    thresholds = [z_threshold(t, alpha, 50) * math.sqrt(t) for t in range(1, steps + 1)]
    crossed = 0
    for _ in range(paths):
        s = 0.0
        for t in range(steps):
            s += rng.gauss(0.0, 1.0)
            if s >= thresholds[t]:
                crossed += 1
                break
    # Ville's inequality gives <= alpha over an infinite horizon; a finite one is well below.
    assert crossed / paths <= alpha
    # ...and the boundary is not vacuous: a fixed-n 10% test would be crossed far more often.
    naive = sum(1 for _ in range(300) if max(_walk(rng, steps)) >= 1.2816)
    assert naive / 300 > 0.3


def _walk(rng: random.Random, steps: int) -> list[float]:
    s, out = 0.0, []
    for t in range(1, steps + 1):
        s += rng.gauss(0.0, 1.0)
        out.append(s / math.sqrt(t))
    return out


def _exact_crossing_probability(p: float, p0: float, alpha: float, prior: tuple[float, float], horizon: int) -> float:
    """P(∃n ≤ horizon: the test rejects) for Bernoulli(p) data, by dynamic programming."""
    alive = {0: 1.0}  # successes -> probability of not having rejected yet
    crossed = 0.0
    for n in range(1, horizon + 1):
        nxt: dict[int, float] = {}
        for s, mass in alive.items():
            for s2, m in ((s + 1, mass * p), (s, mass * (1 - p))):
                nxt[s2] = nxt.get(s2, 0.0) + m
        alive = {}
        for s, mass in nxt.items():
            if bernoulli_mixture_rejects(s, n, p0, alpha, *prior):
                crossed += mass
            else:
                alive[s] = mass
    return crossed


@pytest.mark.parametrize("p", [0.05, 0.03])
def test_bernoulli_mixture_is_exact_at_every_sample_size(p: float) -> None:
    prior = (5.0, 45.0)
    probability = _exact_crossing_probability(p, 0.05, 0.05, prior, horizon=600)
    assert probability <= 0.05
    if p == 0.05:
        assert probability > 0.001  # not vacuous either


def test_bernoulli_mixture_has_power() -> None:
    assert _exact_crossing_probability(0.15, 0.05, 0.05, (5.0, 45.0), horizon=300) > 0.95


def test_bernoulli_mixture_known_value() -> None:
    # Uniform prior, 3 successes in 4, p0 = 1/2: B(4, 2)/B(1, 1) / 2^-4 = (1/20) * 16 = 0.8
    assert math.exp(bernoulli_mixture_log_e(3, 4, 0.5, 1.0, 1.0)) == pytest.approx(0.8)


@pytest.mark.parametrize(("successes", "trials"), [(0, 100), (5, 100), (15, 100), (40, 200), (120, 1000)])
def test_bernoulli_lower_bound_agrees_with_the_test(successes: int, trials: int) -> None:
    alpha, prior = 0.01, (5.0, 45.0)
    lower = bernoulli_mixture_lower_bound(successes, trials, alpha, *prior)
    assert 0.0 <= lower <= successes / trials
    for p0 in (0.01, 0.03, 0.05, 0.08, 0.1, 0.12):
        if abs(p0 - lower) > 1e-6:
            assert bernoulli_mixture_rejects(successes, trials, p0, alpha, *prior) == (lower > p0)


def _fieller_by_bisection(num: float, num_var: float, den: float, den_var: float, z: float) -> float:
    def g(r: float) -> float:
        return num - r * den - z * math.sqrt(num_var + r * r * den_var)

    if g(0.0) <= 0:
        return 0.0
    lo, hi = 0.0, 1.0
    while g(hi) > 0:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if g(mid) > 0 else (lo, mid)
    return lo


@pytest.mark.parametrize(
    ("num", "num_var", "den", "den_var", "z"),
    [
        (2.0, 0.01, 1.0, 0.001, 4.0),
        (0.9, 0.0004, 0.81, 0.0009, 4.2),
        (1.0, 0.5, 1.0, 0.0, 3.0),
        (0.03, 1e-5, 0.02, 1e-6, 4.0),
        (5.0, 0.1, 0.1, 0.01, 4.0),
        (1.0, 1.0, 1.0, 1.0, 4.0),
    ],
)
def test_fieller_closed_form_matches_bisection(
    num: float, num_var: float, den: float, den_var: float, z: float
) -> None:
    assert ratio_lower_bound(num, num_var, den, den_var, z) == pytest.approx(
        _fieller_by_bisection(num, num_var, den, den_var, z), rel=1e-9, abs=1e-12
    )


def test_fieller_symmetric_case() -> None:
    # Identical arms with no noise: the ratio is exactly 1.
    assert ratio_lower_bound(0.5, 0.0, 0.5, 0.0, 4.0) == pytest.approx(1.0)


# --- the likelihood-ratio mixture (point alternative + normal mixture) ----------------------------

SHAPE = (150.0, 0.8, 1500.0)


@pytest.mark.parametrize("t", [1.0, 50.0, 150.0, 1000.0, 1e5])
@pytest.mark.parametrize("alpha", [0.05, 0.0027])
def test_lr_mixture_threshold_solves_its_equation(t: float, alpha: float) -> None:
    from bifrost.streams.rollout.gates.boundary import lr_mixture_log_e, lr_mixture_z_threshold

    z = lr_mixture_z_threshold(t, alpha, SHAPE)
    assert lr_mixture_log_e(z * math.sqrt(t), t, alpha, SHAPE) == pytest.approx(math.log(1 / alpha), abs=1e-6)


def test_lr_mixture_is_tighter_where_it_is_tuned() -> None:
    from bifrost.streams.rollout.gates.boundary import lr_mixture_z_threshold

    alpha = 0.0027
    at_point = lr_mixture_z_threshold(150.0, alpha, SHAPE)
    assert at_point == pytest.approx(math.sqrt(2 * math.log(1 / (0.8 * alpha))), abs=0.02)
    assert at_point < z_threshold(150.0, alpha, 150.0) - 0.2
    # Elsewhere it stays within a few tenths of the normal mixture.
    for t in (50.0, 400.0, 3000.0, 1e5):
        assert lr_mixture_z_threshold(t, alpha, SHAPE) < z_threshold(t, alpha, 150.0) + 0.5


def test_lr_mixture_controls_crossing_of_a_random_walk() -> None:
    """Watched at every step, a driftless Gaussian walk crosses with probability ≤ alpha."""
    from bifrost.streams.rollout.gates.boundary import lr_mixture_z_threshold

    rng = random.Random(8)
    alpha, steps, paths = 0.1, 400, 1500
    shape = (50.0, 0.8, 300.0)
    thresholds = [lr_mixture_z_threshold(t, alpha, shape) * math.sqrt(t) for t in range(1, steps + 1)]
    crossed = 0
    for _ in range(paths):
        s = 0.0
        for t in range(steps):
            s += rng.gauss(0.0, 1.0)
            if s >= thresholds[t]:
                crossed += 1
                break
    assert crossed / paths <= alpha
    # And it has power: a drift of 0.3 per step is caught nearly always within 400 steps.
    caught = 0
    for _ in range(200):
        s = 0.0
        for t in range(steps):
            s += rng.gauss(0.3, 1.0)
            if s >= thresholds[t]:
                caught += 1
                break
    assert caught / 200 > 0.95
