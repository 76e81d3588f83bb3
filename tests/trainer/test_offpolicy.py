"""Off-policy estimators: unbiased on simulated bandit logs, exact in the on-policy case."""

from __future__ import annotations

import numpy as np

from bifrost.router.offpolicy import cell_means, dr_value, estimate


def bandit_log(n: int, seed: int, epsilon: float = 0.3) -> tuple[np.ndarray, ...]:
    """A 3-model log: greedy model 0 with ε-uniform exploration; true mean rewards 0.5, 0.7, 0.2."""
    rng = np.random.default_rng(seed)
    means = np.array([0.5, 0.7, 0.2])
    explore = rng.random(n) < epsilon
    served = np.where(explore, rng.integers(3, size=n), 0)
    propensity = np.where(served == 0, 1 - epsilon + epsilon / 3, epsilon / 3)
    reward = (rng.random(n) < means[served]).astype(float)
    return served, propensity, reward, means


def test_ips_snips_and_dr_recover_the_value_of_a_policy_the_log_rarely_followed() -> None:
    served, propensity, reward, means = bandit_log(200_000, seed=1)
    target = np.ones(len(served), dtype=np.int64)  # always model 1, served only under exploration
    wrong_model = np.full((len(served), 3), 0.4)  # a poor reward model: DR must still be unbiased
    result = estimate(target, served, propensity, reward, wrong_model)
    for value in (result.ips, result.snips, result.dr):
        assert abs(value - means[1]) < 0.02
    assert result.matched == int((served == 1).sum())
    assert 0 < result.dr_stderr < 0.01


def test_dr_with_a_correct_reward_model_is_unbiased_and_matches_its_fast_path() -> None:
    served, propensity, reward, means = bandit_log(10_000, seed=2)
    target = np.full(len(served), 2, dtype=np.int64)
    exact = np.tile(means, (len(served), 1))
    result = estimate(target, served, propensity, reward, exact)
    assert abs(result.dr - means[2]) < 4 * result.dr_stderr
    weight = 1.0 / propensity
    assert (
        abs(dr_value(target, served, weight, reward, exact) - estimate(target, served, propensity, reward, exact).dr)
        < 1e-12
    )


def test_rows_without_a_label_are_left_out_and_an_empty_log_gives_nan() -> None:
    served, _, reward, _ = bandit_log(1000, seed=3)
    propensity = np.ones(1000)  # a deterministic logger, evaluated on its own choices
    reward[::2] = np.nan
    result = estimate(served, served, propensity, reward, np.zeros((1000, 3)))
    assert result.rows == 500 and result.matched == 500
    assert abs(result.snips - np.nanmean(reward)) < 1e-12
    assert abs(result.dr - np.nanmean(reward)) < 1e-12
    nothing = estimate(served, served, propensity, np.full(1000, np.nan), np.zeros((1000, 3)))
    assert nothing.rows == 0 and np.isnan(nothing.dr)


def test_cell_means_shrink_thin_cells_towards_the_prior() -> None:
    reward = np.array([1.0, 1.0, 1.0, 0.0])
    served = np.array([0, 0, 0, 1])
    cluster = np.array([0, 0, 0, 1])
    prior = np.full((2, 2), 0.5)
    table, counts = cell_means(reward, served, cluster, 2, 2, prior=prior, prior_strength=3.0)
    assert counts[0, 0] == 3 and counts[1, 1] == 1
    assert table[0, 0] == (3 + 1.5) / 6  # three wins pulled towards 0.5
    assert table[1, 1] == (0 + 1.5) / 4
    assert table[0, 1] == 0.5  # no data: the prior
