"""The routing rule on small hand-computable tables: per-prompt q̂ and ĉ rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bifrost.router.policy import (
    CHEAP,
    HARD,
    MID,
    PolicyTables,
    alpha_of,
    buckets_of,
    choose,
    cost_weight_of,
    eligible,
)
from tests.router.artifacts import make_artifact

INF = np.inf


def tables(
    *,
    qhat: list[list[float]],
    chat: list[float],
    alpha: float,
    penalty: list[float] | None = None,
    buckets: list[list[bool]] | None = None,
    context: list[float] | None = None,
    tau_cheap: float = 0.5,
    tau_hard: float = 0.5,
) -> tuple[PolicyTables, np.ndarray, np.ndarray]:
    """(tables for models ``m0, m1, …`` — every model in every bucket unless told —, q̂ per cluster, ĉ per model)."""
    n = len(chat)
    t = PolicyTables(
        models=tuple(f"m{i}" for i in range(n)),
        penalty=np.array(penalty or [0.0] * n, dtype=np.float64),
        bucket_mask=np.array(buckets or [[True] * n] * 3, dtype=bool),
        context=np.array(context or [INF] * n, dtype=np.float64),
        alpha=alpha,
        tau_cheap=tau_cheap,
        tau_hard=tau_hard,
    )
    return t, np.array(qhat, dtype=np.float64), np.array(chat, dtype=np.float64)


def route(
    case: tuple[PolicyTables, np.ndarray, np.ndarray],
    p: np.ndarray,
    clusters: np.ndarray,
    tokens: np.ndarray | None = None,
    *,
    t: PolicyTables | None = None,
):
    """``choose`` with each row's q̂ the column of its cluster and ĉ the same for every row."""
    tables_, qhat, chat = case
    clusters = np.asarray(clusters, dtype=np.int64)
    return choose(t or tables_, p, qhat[:, clusters].T, np.tile(chat, (len(clusters), 1)), tokens)


# -- buckets --------------------------------------------------------------------------------


def test_bucket_rule_hard_first_then_cheap() -> None:
    p = np.array(
        [
            [0.7, 0.0, 0.3],  # cheap ≥ τ_cheap but hard == τ_hard: hard is checked first
            [0.7, 0.1, 0.2],  # hard < 0.3, cheap ≥ 0.6 → cheap
            [0.6, 0.3, 0.1],  # cheap == τ_cheap → cheap (≥)
            [0.5, 0.4, 0.1],  # neither → mid
            [0.1, 0.1, 0.8],  # hard
        ]
    )
    assert buckets_of(p, tau_cheap=0.6, tau_hard=0.3).tolist() == [HARD, CHEAP, CHEAP, MID, HARD]
    # τ_hard above 1 disables hard; τ_cheap above 1 disables cheap.
    assert buckets_of(p, tau_cheap=1.01, tau_hard=1.01).tolist() == [MID] * 5
    assert buckets_of(p[0], tau_cheap=0.5, tau_hard=0.9).tolist() == [CHEAP]  # one row (1-D) works


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=20),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_bucket_rule_property(rows: list[tuple[float, float, float]], tau_cheap: float, tau_hard: float) -> None:
    p = np.array(rows)
    got = buckets_of(p, tau_cheap, tau_hard)
    for (cheap, _, hard), bucket in zip(rows, got):
        expected = HARD if hard >= tau_hard else CHEAP if cheap >= tau_cheap else MID
        assert bucket == expected


# -- utility argmax -------------------------------------------------------------------------


def test_utility_argmax_by_hand() -> None:
    # Two clusters, three models. α = 0.6.
    case = tables(qhat=[[0.9, 0.5], [0.7, 0.6], [0.3, 0.55]], chat=[1.0, 0.4, 0.1], alpha=0.6)
    p = np.array([[0.0, 1.0, 0.0]] * 2)  # mid
    chosen, buckets, utility, allowed = route(case, p, np.array([0, 1]))
    # cluster 0: 0.6·0.9−0.4·1.0=0.14; 0.6·0.7−0.4·0.4=0.26; 0.6·0.3−0.4·0.1=0.14 → m1
    # cluster 1: 0.6·0.5−0.4=−0.10; 0.6·0.6−0.16=0.20; 0.6·0.55−0.04=0.29 → m2
    assert np.allclose(utility, [[0.14, 0.26, 0.14], [-0.10, 0.20, 0.29]])
    assert chosen.tolist() == [1, 2]
    assert buckets.tolist() == [MID, MID]
    assert allowed.all()


def test_alpha_extremes() -> None:
    case = tables(qhat=[[0.9], [0.7], [0.3]], chat=[1.0, 0.4, 0.1], alpha=1.0)
    p = np.array([[0.0, 1.0, 0.0]])
    assert route(case, p, np.array([0]))[0].tolist() == [0]  # quality only
    t0 = case[0].with_params(alpha=0.0, tau_cheap=0.5, tau_hard=0.5, penalty=np.zeros(3))
    assert route(case, p, np.array([0]), t=t0)[0].tolist() == [2]  # cost only


def test_alpha_and_cost_weight_are_inverse() -> None:
    for weight in (0.0, 0.01, 0.5, 3.0):
        assert cost_weight_of(alpha_of(weight)) == pytest.approx(weight)
    assert alpha_of(0.0) == 1.0 and cost_weight_of(0.0) == INF
    # argmax α·q − (1−α)·c is argmax q − λ·c
    case = tables(qhat=[[0.9], [0.7], [0.3]], chat=[1.0, 0.4, 0.1], alpha=alpha_of(0.5))
    q, c = np.array([0.9, 0.7, 0.3]), np.array([1.0, 0.4, 0.1])
    assert route(case, np.array([[0.0, 1.0, 0.0]]), np.array([0]))[0][0] == int(np.argmax(q - 0.5 * c))


def test_penalty_changes_the_choice() -> None:
    case = tables(qhat=[[0.9], [0.7], [0.3]], chat=[1.0, 0.4, 0.1], alpha=0.6)
    p = np.array([[0.0, 1.0, 0.0]])
    assert route(case, p, np.array([0]))[0].tolist() == [1]  # utilities 0.14, 0.26, 0.14
    penalised = case[0].with_params(alpha=0.6, tau_cheap=0.5, tau_hard=0.5, penalty=np.array([0.0, 0.2, 0.0]))
    chosen, _, utility, _ = route(case, p, np.array([0]), t=penalised)
    assert np.allclose(utility, [[0.14, 0.06, 0.14]])
    assert chosen.tolist() == [0]  # tie 0.14/0.14 → higher Q̂ (m0)


def test_ties_prefer_quality_then_cost_then_name() -> None:
    p = np.array([[0.0, 1.0, 0.0]])
    # Equal utility (0.5·0.6 − 0.5·0.2 = 0.5·0.5 − 0.5·0.1 = 0.2): higher Q̂ wins.
    case = tables(qhat=[[0.5], [0.6]], chat=[0.1, 0.2], alpha=0.5)
    assert route(case, p, np.array([0]))[0].tolist() == [1]
    # Equal utility and q̂: lower cost wins (the penalty makes up the difference).
    case = tables(qhat=[[0.5], [0.5]], chat=[0.2, 0.0], alpha=0.5, penalty=[0.0, 0.1])
    assert route(case, p, np.array([0]))[0].tolist() == [1]
    # Identical models: the first by name.
    case = tables(qhat=[[0.5], [0.5]], chat=[0.2, 0.2], alpha=0.5)
    assert route(case, p, np.array([0]))[0].tolist() == [0]


def test_choice_stays_inside_the_bucket() -> None:
    # m0 expensive and best, m1 medium, m2 cheap; buckets nested cheap={m2}, mid={m1,m2}, hard=all.
    buckets = [[False, False, True], [False, True, True], [True, True, True]]
    case = tables(
        qhat=[[0.9], [0.6], [0.2]], chat=[0.5, 0.2, 0.1], alpha=1.0, buckets=buckets, tau_cheap=0.5, tau_hard=0.5
    )
    p = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    chosen, got_buckets, _, allowed = route(case, p, np.zeros(3, dtype=np.int64))
    assert got_buckets.tolist() == [CHEAP, MID, HARD]
    assert chosen.tolist() == [2, 1, 0]
    assert allowed.tolist() == buckets


def test_each_prompt_uses_its_own_quality_and_cost() -> None:
    t, _, _ = tables(qhat=[[0.9], [0.1]], chat=[0.5, 0.5], alpha=0.5)
    p = np.array([[0.0, 1.0, 0.0]] * 3)
    q = np.array([[0.1, 0.9], [0.9, 0.1], [0.6, 0.5]])
    c = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.1]])
    # row 2: 0.5·0.6 − 0.5·1.0 = −0.2 vs 0.5·0.5 − 0.05 = 0.2 → the cheaper model despite lower quality
    assert choose(t, p, q, c)[0].tolist() == [1, 0, 1]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_choice_is_the_argmax_of_eligible_utilities(n_models: int, n_clusters: int, alpha: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    buckets = rng.random((3, n_models)) < 0.7
    buckets[:, 0] = True
    t, _, _ = tables(
        qhat=[[0.0]] * n_models,
        chat=[0.0] * n_models,
        alpha=alpha,
        penalty=(rng.random(n_models) * 0.1).tolist(),
        buckets=buckets.tolist(),
        tau_cheap=float(rng.random()),
        tau_hard=float(rng.random()),
    )
    p = rng.dirichlet(np.ones(3), size=30)
    q = rng.random((30, n_models))
    c = rng.random((30, n_models)) * n_clusters
    chosen, got_buckets, utility, allowed = choose(t, p, q, c)
    for row in range(30):
        mine = alpha * q[row] - (1 - alpha) * c[row] - t.penalty
        assert np.allclose(utility[row], mine)
        ok = buckets[got_buckets[row]]
        assert allowed[row].tolist() == ok.tolist()
        assert ok[chosen[row]]
        assert utility[row, chosen[row]] >= mine[ok].max() - 1e-6


# -- context guardrail ----------------------------------------------------------------------


def test_no_context_known_means_no_guardrail() -> None:
    t, _, _ = tables(qhat=[[0.9], [0.2]], chat=[1.0, 0.1], alpha=1.0)
    mask, applied = eligible(t, np.array([MID, HARD]), np.array([1e9, 1e9]))
    assert mask.all() and not applied.any()


def test_guardrail_excludes_models_too_small() -> None:
    case = tables(qhat=[[0.9], [0.8], [0.2]], chat=[1.0, 0.5, 0.1], alpha=1.0, context=[1000, 100, 100_000])
    t = case[0]
    chosen, _, _, allowed = route(case, np.array([[0.0, 1.0, 0.0]]), np.array([0]), np.array([500.0]))
    assert allowed.tolist() == [[True, False, True]]
    assert chosen.tolist() == [0]
    _, applied = eligible(t, np.array([MID]), np.array([500.0]))
    assert applied.tolist() == [True]
    _, applied = eligible(t, np.array([MID]), np.array([50.0]))
    assert applied.tolist() == [False]


def test_guardrail_escalates_to_the_next_larger_bucket() -> None:
    # cheap={m2}, mid={m1,m2}, hard=all; only m0 has a large window.
    buckets = [[False, False, True], [False, True, True], [True, True, True]]
    case = tables(
        qhat=[[0.9], [0.6], [0.2]], chat=[1.0, 0.3, 0.1], alpha=0.0, buckets=buckets, context=[10_000, 2_000, 100]
    )
    t = case[0]
    rows = np.array([CHEAP, CHEAP, MID, HARD])
    tokens = np.array([50.0, 1_000.0, 5_000.0, 5_000.0])
    mask, applied = eligible(t, rows, tokens)
    assert mask.tolist() == [
        [False, False, True],  # fits in the cheap bucket
        [False, True, False],  # cheap too small → mid bucket, where m1 fits
        [True, False, False],  # mid too small → hard bucket
        [True, False, False],
    ]
    assert applied.tolist() == [False, True, True, True]
    p = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    chosen, got, _, _ = route(case, p, np.zeros(4, dtype=np.int64), tokens)
    assert got.tolist() == [CHEAP, CHEAP, MID, HARD]  # the bucket is reported as triaged
    assert chosen.tolist() == [2, 1, 0, 0]  # α = 0: cheapest eligible


def test_guardrail_falls_back_to_any_model_that_fits_then_the_largest() -> None:
    # m1 is the only model of cheap and mid, hard adds m2; m0 is in no bucket but has the largest window.
    buckets = [[False, True, False], [False, True, False], [False, True, True]]
    t, _, _ = tables(
        qhat=[[0.5], [0.5], [0.5]], chat=[0.5, 0.1, 0.2], alpha=0.0, buckets=buckets, context=[5_000, 100, 1_000]
    )
    mask, applied = eligible(t, np.array([CHEAP, CHEAP]), np.array([3_000.0, 9_000.0]))
    assert mask[0].tolist() == [True, False, False]  # only m0 fits, though in no bucket
    assert mask[1].tolist() == [True, False, False]  # nothing fits: the largest window (m0)
    assert applied.tolist() == [True, True]


def test_artifact_tables() -> None:
    artifact = make_artifact(alpha=0.3, cheap=0.4, hard=0.8, penalties={"small": 0.05}, context={"large": 4000})
    t = PolicyTables.from_artifact(artifact)
    assert t.models == ("large", "medium", "small")
    assert t.penalty.tolist() == [0.0, 0.0, 0.05]
    assert t.context.tolist() == [4000.0, INF, INF]
    assert t.bucket_mask.tolist() == [[False, False, True], [False, True, True], [True, True, True]]
    assert (t.alpha, t.tau_cheap, t.tau_hard) == (0.3, 0.4, 0.8)
    other = t.with_params(alpha=0.9, tau_cheap=0.1, tau_hard=0.2, penalty=[0.0, 0.1, 0.0])
    assert (other.alpha, other.tau_cheap, other.tau_hard) == (0.9, 0.1, 0.2)
    assert other.penalty.dtype == np.float64 and other.bucket_mask is t.bucket_mask
    assert t.alpha == pytest.approx(0.3)  # unchanged
