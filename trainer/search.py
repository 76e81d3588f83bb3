"""Optuna (seeded TPE) search over α, τ_cheap, τ_hard and per-model penalties.

A candidate is scored by replaying the routing rule (:func:`bifrost.router.policy.choose`)
over the training rows with *out-of-fold* triage probabilities and Q̂, and reading every
row's outcome from the full-information labels: the estimate never sees a row that
shaped the model or the Q̂ it is routed with. The objective is quality at cost::

    mean score − cost_weight·r − budget_penalty·max(0, r − cost_budget)

where ``r`` is the policy's mean cost relative to the best single model's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import optuna

from bifrost.router.policy import PolicyTables, choose
from bifrost.trainer.progress import step

PENALTY_MODES = ("model", "tier", "none")


class SearchObjective(msgspec.Struct, frozen=True, kw_only=True):
    """What "quality at cost" means; cost is relative to the best single model's."""

    cost_weight: float = 0.02
    cost_budget: float = 0.5
    budget_penalty: float = 1.0
    score_floor: float | None = None
    floor_penalty: float = 10.0

    def value(self, score: float, cost_ratio: float) -> float:
        value = score - self.cost_weight * cost_ratio - self.budget_penalty * max(0.0, cost_ratio - self.cost_budget)
        if self.score_floor is not None:
            value -= self.floor_penalty * max(0.0, self.score_floor - score)
        return value


class SearchSpace(msgspec.Struct, frozen=True, kw_only=True):
    """Ranges of the searched parameters."""

    alpha: tuple[float, float] = (0.0, 1.0)
    tau_cheap: tuple[float, float] = (0.05, 1.0)
    tau_hard: tuple[float, float] = (0.05, 1.0)
    max_penalty: float = 0.1
    penalties: str = "model"


class TrialSummary(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    value: float
    score: float
    cost_ratio: float
    alpha: float
    tau_cheap: float
    tau_hard: float


class SearchReport(msgspec.Struct, frozen=True, kw_only=True):
    """The chosen parameters, their estimate, and the best trials."""

    trials: int
    seed: int
    sampler: str
    objective: SearchObjective
    space: SearchSpace
    rows: int
    reference_model: str
    reference_score: float
    reference_cost_usd: float
    best_trial: int
    value: float
    score: float
    cost_usd: float
    cost_ratio: float
    alpha: float
    tau_cheap: float
    tau_hard: float
    penalties: dict[str, float]
    bucket_share: dict[str, float]
    top: list[TrialSummary]


@dataclass(frozen=True)
class SearchData:
    """Everything a candidate policy is replayed on (all ``(rows, …)`` arrays aligned)."""

    tables: PolicyTables
    probabilities: np.ndarray
    q_rows: np.ndarray
    scores: np.ndarray
    costs: np.ndarray
    tokens: np.ndarray
    tiers: np.ndarray


Estimator = Callable[[PolicyTables], tuple[float, float, np.ndarray]]
"""(mean score, mean cost, bucket per row) of a policy's tables."""


def replay(data: SearchData, tables: PolicyTables) -> tuple[float, float, np.ndarray]:
    """(mean score, mean cost, bucket per row) of a policy on the search rows."""
    chosen, buckets, _, _ = choose(tables, data.probabilities, np.zeros(len(data.scores), dtype=np.int64),
                                   data.tokens, q_rows=data.q_rows)
    rows = np.arange(len(chosen))
    return float(data.scores[rows, chosen].mean()), float(data.costs[rows, chosen].mean()), buckets


def search_policy(
    data: SearchData,
    *,
    trials: int = 200,
    seed: int = 0,
    objective: SearchObjective = SearchObjective(),
    space: SearchSpace = SearchSpace(),
    log_every: int | None = None,
    estimator: Estimator | None = None,
    reference: tuple[str, float, float] | None = None,
    corners: Sequence[Mapping[str, float]] = (),
) -> SearchReport:
    """Run the seeded TPE search; returns the best parameters and their estimates.

    By default a candidate is replayed on full-information rows (:func:`replay`) and cost
    is relative to the best single model's. ``estimator`` replaces the replay (e.g. an
    off-policy estimate on logged data) and ``reference`` = (name, score, cost) what
    cost ratios are relative to. ``corners`` are extra starting points (α, τ_cheap,
    τ_hard; no penalties), e.g. the current artifact's parameters.
    """
    if space.penalties not in PENALTY_MODES:
        raise ValueError(f"penalties must be one of {PENALTY_MODES}")
    models = data.tables.models
    if reference is None:
        mean_scores = data.scores.mean(axis=0)
        best = int(np.argmax(mean_scores))
        reference = (models[best], float(mean_scores[best]), float(data.costs[:, best].mean()))
    reference_name, reference_score, reference_cost = reference[0], reference[1], reference[2] or 1.0
    estimate = estimator or (lambda tables: replay(data, tables))
    log_every = log_every or max(1, trials // 10)

    def penalties_of(params: dict[str, float]) -> np.ndarray:
        if space.penalties == "model":
            return np.array([params.get(f"penalty[{m}]", 0.0) for m in models])
        if space.penalties == "tier":
            return np.array([params.get(f"penalty[tier{t}]", 0.0) for t in data.tiers])
        return np.zeros(len(models))

    def evaluate(params: dict[str, float]) -> tuple[float, float, float, np.ndarray]:
        tables = data.tables.with_params(alpha=params["alpha"], tau_cheap=params["tau_cheap"],
                                         tau_hard=params["tau_hard"], penalty=penalties_of(params))
        score, cost, buckets = estimate(tables)
        ratio = cost / reference_cost
        return objective.value(score, ratio), score, ratio, buckets

    def run(trial: optuna.Trial) -> float:
        params = {
            "alpha": trial.suggest_float("alpha", *space.alpha),
            "tau_cheap": trial.suggest_float("tau_cheap", *space.tau_cheap),
            "tau_hard": trial.suggest_float("tau_hard", *space.tau_hard),
        }
        if space.penalties == "model":
            for m in models:
                params[f"penalty[{m}]"] = trial.suggest_float(f"penalty[{m}]", 0.0, space.max_penalty)
        elif space.penalties == "tier":
            for t in sorted(set(data.tiers.tolist())):
                params[f"penalty[tier{t}]"] = trial.suggest_float(f"penalty[tier{t}]", 0.0, space.max_penalty)
        value, score, ratio, _ = evaluate(params)
        trial.set_user_attr("score", score)
        trial.set_user_attr("cost_ratio", ratio)
        return value

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = trial.number + 1
        if done % log_every == 0 or done == trials:
            best = study.best_trial
            step("search", trial=f"{done}/{trials}", best=best.value, score=best.user_attrs["score"],
                 cost_ratio=best.user_attrs["cost_ratio"], alpha=best.params["alpha"])

    optuna_logger = optuna.logging.get_logger("optuna")
    level = optuna_logger.level
    optuna_logger.setLevel(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(20, max(trials // 5, 1)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    # Start from two sensible corners: "all models, mostly quality" and "triage as labelled".
    # Seed the search with corners that need no luck to find (no penalties):
    # quality first across all models, a cost-aware all-model argmax, and triage as labelled.
    zero = {f"penalty[{m}]": 0.0 for m in models} if space.penalties == "model" else (
        {f"penalty[tier{t}]": 0.0 for t in sorted(set(data.tiers.tolist()))} if space.penalties == "tier" else {})
    for corner in ({"alpha": 1.0, "tau_cheap": 1.0, "tau_hard": space.tau_hard[0]},
                   {"alpha": 0.9, "tau_cheap": 1.0, "tau_hard": space.tau_hard[0]},
                   {"alpha": 0.8, "tau_cheap": 0.5, "tau_hard": 0.4}, *corners):
        # Optuna runs an enqueued value even outside its range: keep the corners inside the space.
        ranges = {"alpha": space.alpha, "tau_cheap": space.tau_cheap, "tau_hard": space.tau_hard}
        inside = {name: min(max(float(value), ranges[name][0]), ranges[name][1]) if name in ranges else value
                  for name, value in corner.items()}
        study.enqueue_trial({**inside, **zero}, skip_if_exists=True)
    try:
        study.optimize(run, n_trials=trials, callbacks=[progress], gc_after_trial=False)
    finally:
        optuna_logger.setLevel(level)

    best = study.best_trial
    params = dict(best.params)
    value, score, ratio, buckets = evaluate(params)
    penalty = penalties_of(params)
    ranked = sorted((t for t in study.trials if t.value is not None), key=lambda t: -t.value)[:10]
    return SearchReport(
        trials=trials,
        seed=seed,
        sampler="TPE(multivariate)",
        objective=objective,
        space=space,
        rows=len(data.scores),
        reference_model=reference_name,
        reference_score=round(float(reference_score), 6),
        reference_cost_usd=reference_cost,
        best_trial=best.number,
        value=round(value, 6),
        score=round(score, 6),
        cost_usd=ratio * reference_cost,
        cost_ratio=round(ratio, 6),
        alpha=params["alpha"],
        tau_cheap=params["tau_cheap"],
        tau_hard=params["tau_hard"],
        penalties={m: float(p) for m, p in zip(models, penalty)},
        bucket_share={b: round(float((buckets == i).mean()), 4) for i, b in enumerate(("cheap", "mid", "hard"))},
        top=[
            TrialSummary(number=t.number, value=round(t.value, 6), score=round(t.user_attrs["score"], 6),
                         cost_ratio=round(t.user_attrs["cost_ratio"], 6), alpha=round(t.params["alpha"], 4),
                         tau_cheap=round(t.params["tau_cheap"], 4), tau_hard=round(t.params["tau_hard"], 4))
            for t in ranked
        ],
    )
