"""Choosing the tree/logistic blend of q̂ by out-of-fold routing score (bifrost.trainer.blend)."""

from __future__ import annotations

import numpy as np

from bifrost.trainer.blend import choose_blend, frontier_value


def routing_problem(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A cheap model good on half the prompts (x > 0) and a 5× dearer one good on most: the true
    success probabilities, a noise predictor, realized pass/fail scores and costs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    truth = np.column_stack([1 / (1 + np.exp(-3 * x)), np.full(n, 0.7)])
    noise = rng.random((n, 2))
    scores = (rng.random((n, 2)) < truth).astype(float)
    costs = np.tile([0.2, 1.0], (n, 1))
    return truth, noise, scores, costs


def test_picks_the_family_that_ranks_prompts() -> None:
    truth, noise, scores, costs = routing_problem()
    trees_good = choose_blend(truth, {1.0: noise, 10.0: noise}, costs, scores, costs, 1.0)
    assert trees_good.weight == 1.0, trees_good
    linear_good = choose_blend(noise, {1.0: noise + 0.0, 10.0: truth}, costs, scores, costs, 1.0)
    assert (linear_good.weight, linear_good.l2) == (0.0, 10.0), linear_good
    best = max(c.value for c in linear_good.candidates)
    assert linear_good.value == best
    # Every (weight, L2) is scored once; trees alone once, whatever the L2.
    assert sum(c.weight == 1.0 for c in linear_good.candidates) == 1


def test_keeps_the_default_on_a_tie() -> None:
    truth, _, scores, costs = routing_problem(seed=1)
    choice = choose_blend(
        truth, {1.0: truth.copy(), 10.0: truth.copy()}, costs, scores, costs, 1.0, default=(0.5, 10.0)
    )
    assert (choice.weight, choice.l2) == (0.5, 10.0)


def test_frontier_value_reads_the_envelope_at_the_band() -> None:
    truth, noise, scores, costs = routing_problem(seed=2)
    good = frontier_value(truth, costs, scores, costs, 1.0, band=(0.4, 0.6))
    bad = frontier_value(noise, costs, scores, costs, 1.0, band=(0.4, 0.6))
    assert good > bad + 0.02
    # Every policy of the sweep costs between the cheap model (0.2) and the dear one (1.0): a share
    # below the cheapest reads the cheap model's score.
    assert frontier_value(truth, costs, scores, costs, 1.0, band=(0.05,)) == scores[:, 0].mean()
