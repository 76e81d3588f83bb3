"""The seeded policy search on a small synthetic problem."""

from __future__ import annotations

import numpy as np
import pytest

from bifrost.router.policy import PolicyTables
from bifrost.trainer.search import SearchData, SearchObjective, SearchSpace, replay, search_policy


def problem(rows: int = 300, seed: int = 0) -> SearchData:
    """Two models: ``big`` (cost 1) always right; ``small`` (cost 0.1) right on 'easy' rows only.

    The triage probabilities tell easy (cheap) from hard rows, so the best policy sends easy
    rows to ``small`` and the rest to ``big``.
    """
    rng = np.random.default_rng(seed)
    easy = rng.random(rows) < 0.6
    scores = np.column_stack([np.ones(rows), easy.astype(float)])  # columns: big, small
    costs = np.column_stack([np.ones(rows), np.full(rows, 0.1)])
    probabilities = np.where(easy[:, None], [0.9, 0.05, 0.05], [0.05, 0.05, 0.9])
    tables = PolicyTables(
        models=("big", "small"),
        qhat=np.array([[1.0], [0.6]]),
        chat=np.array([1.0, 0.1]),
        penalty=np.zeros(2),
        bucket_mask=np.array([[False, True], [True, True], [True, True]]),
        context=np.array([np.inf, np.inf]),
        alpha=1.0,
        tau_cheap=1.0,
        tau_hard=1.0,
    )
    return SearchData(tables=tables, probabilities=probabilities, q_rows=np.tile([1.0, 0.6], (rows, 1)),
                      scores=scores, costs=costs, tokens=np.zeros(rows), tiers=np.array([2, 0]))


def test_objective_value() -> None:
    objective = SearchObjective(cost_weight=0.1, cost_budget=0.5, budget_penalty=2.0)
    assert objective.value(0.8, 0.4) == pytest.approx(0.8 - 0.04)
    assert objective.value(0.8, 0.7) == pytest.approx(0.8 - 0.07 - 2.0 * 0.2)


def test_replay_by_hand() -> None:
    data = problem()
    easy = data.scores[:, 1] == 1.0
    # Quality only, everything mid: always big.
    score, cost, buckets = replay(data, data.tables)
    assert (score, cost) == (1.0, 1.0) and set(buckets.tolist()) == {1}
    # Triage as labelled: easy rows cheap → small (right, 0.1), hard rows hard → big.
    tables = data.tables.with_params(alpha=1.0, tau_cheap=0.5, tau_hard=0.5, penalty=np.zeros(2))
    score, cost, buckets = replay(data, tables)
    assert score == 1.0
    assert cost == pytest.approx(easy.mean() * 0.1 + (~easy).mean() * 1.0)
    assert np.array_equal(buckets, np.where(easy, 0, 2))


def test_search_finds_the_triage_policy() -> None:
    data = problem()
    report = search_policy(data, trials=30, seed=0)
    easy_share = float((data.scores[:, 1] == 1.0).mean())
    assert report.score == 1.0
    assert report.cost_ratio == pytest.approx(easy_share * 0.1 + (1 - easy_share), abs=1e-6)
    assert report.reference_model == "big" and report.reference_score == 1.0 and report.reference_cost_usd == 1.0
    assert report.bucket_share["cheap"] == pytest.approx(easy_share, abs=1e-4)
    assert report.trials == 30 and report.rows == 300 and report.seed == 0
    assert set(report.penalties) == {"big", "small"}
    assert all(0.0 <= p <= 0.1 for p in report.penalties.values())
    assert 0.05 <= report.tau_cheap <= 1.0 and 0.05 <= report.tau_hard <= 1.0
    # The reported value is the objective of the reported estimate, and the best of the top trials.
    assert report.value == pytest.approx(SearchObjective().value(report.score, report.cost_ratio), abs=1e-6)
    assert report.top and report.top[0].value == report.value
    assert [t.value for t in report.top] == sorted((t.value for t in report.top), reverse=True)
    # The reported parameters reproduce the estimate.
    penalties = np.array([report.penalties[m] for m in data.tables.models])
    tables = data.tables.with_params(alpha=report.alpha, tau_cheap=report.tau_cheap, tau_hard=report.tau_hard,
                                     penalty=penalties)
    score, cost, _ = replay(data, tables)
    assert score == pytest.approx(report.score, abs=1e-6) and cost == pytest.approx(report.cost_usd)


def test_search_is_deterministic_for_a_seed() -> None:
    data = problem(seed=1)
    a = search_policy(data, trials=15, seed=4)
    b = search_policy(data, trials=15, seed=4)
    assert a == b


@pytest.mark.parametrize("mode", ["model", "tier", "none"])
def test_penalty_modes(mode: str) -> None:
    data = problem()
    report = search_policy(data, trials=8, seed=0, space=SearchSpace(penalties=mode))
    if mode == "none":
        assert report.penalties == {"big": 0.0, "small": 0.0}
    else:
        assert set(report.penalties) == {"big", "small"}
    assert report.space.penalties == mode


def test_unknown_penalty_mode() -> None:
    with pytest.raises(ValueError, match="penalties must be one of"):
        search_policy(problem(), trials=1, space=SearchSpace(penalties="sometimes"))


def test_a_budget_pushes_cost_down() -> None:
    data = problem()
    # Heavy cost weight: the cheapest policy (small everywhere) beats paying for big.
    cheap = search_policy(data, trials=40, seed=0, objective=SearchObjective(cost_weight=5.0, cost_budget=0.0))
    assert cheap.cost_ratio == pytest.approx(0.1, abs=1e-6)
    assert cheap.score == pytest.approx(float((data.scores[:, 1] == 1.0).mean()), abs=1e-6)


def test_parameters_stay_inside_the_search_space() -> None:
    # The starting corners (α = 1, τ_cheap = 1, …) lie outside this space: they must be moved inside it.
    space = SearchSpace(alpha=(0.2, 0.5), tau_cheap=(0.1, 0.6), tau_hard=(0.3, 0.7), max_penalty=0.05)
    report = search_policy(problem(), trials=6, seed=0, space=space)
    assert 0.2 <= report.alpha <= 0.5
    assert 0.1 <= report.tau_cheap <= 0.6 and 0.3 <= report.tau_hard <= 0.7
    for trial in report.top:
        assert 0.2 <= trial.alpha <= 0.5 and 0.1 <= trial.tau_cheap <= 0.6 and 0.3 <= trial.tau_hard <= 0.7
    assert all(0.0 <= p <= 0.05 for p in report.penalties.values())
