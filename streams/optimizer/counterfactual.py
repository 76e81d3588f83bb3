"""Counterfactual impact (pure): logged requests replayed through the reference router, valued off-policy.

Each logged request carries its feature vector, the model served, the probability the
router gave that model (``propensity``) and the outcome of that model only. Replaying the
features through the artifact that served them gives the router's choice ``π(x)`` and its
per-prompt predictions; a *candidate* policy ``π'`` (a cheaper model on one cluster, another
τ_cheap or α) is a different choice per row. Its value is estimated with the trainer's
off-policy estimators (:mod:`bifrost.router.offpolicy`): doubly robust as the figure, IPS
and SNIPS beside it, and the paired difference ``π' − π`` on the same rows with a normal
confidence interval (the per-row DR terms of two policies on the same rows are paired).

Reward models (the DR "direct method" part) are the artifact's per-prompt predictions
corrected by what the logs show: quality ``q̂(m | x) + δ[m, cluster]`` with ``δ`` the shrunken
mean residual of the rows where ``m`` was served in that cluster (so a model that became
better on a cluster after training is seen through its explored requests), and cost
``ĉ(m | x) · ρ[m]`` with ``ρ`` the logged-to-predicted cost ratio of the model. DR stays
unbiased whatever their error; they only cut its variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
import numpy as np
from scipy.stats import norm

from bifrost.router.batch import predict_many
from bifrost.router.features import BASE_FEATURES
from bifrost.router.offpolicy import Estimate, dr_terms, estimate
from bifrost.router.policy import choose
from bifrost.router.reference import ReferenceRouter
from bifrost.storage.logged import LoggedData

SHRINK_ROWS = 20.0  # κ: a cell's residual counts fully only with many more served rows than this
MIN_PROPENSITY = 1e-3


class ReplayUnavailable(ValueError):
    """The logs cannot be replayed through the artifact (no rows of its arm, no features…)."""


@dataclass(frozen=True)
class Replay:
    """Logged requests of one arm, replayed through that arm's artifact (arrays by row)."""

    router: ReferenceRouter
    arm: str
    models: tuple[str, ...]
    served: np.ndarray  # index into models
    propensity: np.ndarray
    quality: np.ndarray  # NaN: no label
    cost: np.ndarray
    latency: np.ndarray
    cluster: np.ndarray
    tokens: np.ndarray
    chosen: np.ndarray  # π(x): the artifact's choice
    probabilities: np.ndarray
    q_pred: np.ndarray  # (rows, models) artifact q̂
    c_pred: np.ndarray  # (rows, models) artifact ĉ, normalized units
    q_model: np.ndarray  # (rows, models) reward model for quality
    c_model: np.ndarray  # (rows, models) reward model for cost, USD
    rows_logged: int  # rows of the arm before sampling
    window: tuple[float, float]
    days: float  # event-time span the rows cover
    base_quality_terms: np.ndarray  # per labelled row: DR terms of π's quality
    base_cost_terms: np.ndarray  # per costed row: DR terms of π's cost

    def __len__(self) -> int:
        return len(self.served)

    def rechoose(self, *, alpha: float | None = None, tau_cheap: float | None = None) -> np.ndarray:
        """The artifact's choices with other parameters (same predictions, same rule as the router)."""
        tables = self.router.tables
        tables = tables.with_params(
            alpha=tables.alpha if alpha is None else alpha,
            tau_cheap=tables.tau_cheap if tau_cheap is None else tau_cheap,
            tau_hard=tables.tau_hard,
        )
        chosen, _, _, _ = choose(tables, self.probabilities, self.q_pred, self.c_pred, self.tokens)
        return chosen


class PolicyValue(msgspec.Struct, frozen=True, kw_only=True):
    quality: Estimate
    cost: Estimate


class Difference(msgspec.Struct, frozen=True, kw_only=True):
    """``π' − π`` on the same rows: DR means, their paired standard errors and intervals."""

    quality: float
    quality_se: float
    quality_ci: list[float]
    cost: float
    cost_se: float
    cost_ci: list[float]
    base_quality: float
    base_cost: float
    labelled_rows: int
    rows: int
    changed_rows: int
    confidence: float

    @property
    def cost_change(self) -> float:
        """Relative change of cost per task (−0.1 = 10% cheaper)."""
        return self.cost / self.base_cost if self.base_cost > 0 else math.nan

    def quality_lower(self, one_sided: float) -> float:
        """One-sided lower bound of the quality difference at ``one_sided`` confidence."""
        return self.quality - float(norm.ppf(one_sided)) * self.quality_se


def build_replay(
    data: LoggedData, router: ReferenceRouter, *, arm: str | None = None, max_rows: int = 200_000, seed: int = 0
) -> Replay:
    """Replay the logged rows of ``arm`` (default: the artifact's version) through ``router``.

    Rows are used when their feature vector has the artifact's width, their served model is
    one the artifact knows, and their propensity is in (0, 1]. At most ``max_rows`` of them
    (a uniform, seeded sample).

    Raises:
        ReplayUnavailable: no usable rows, with the reason.
    """
    arm = arm or router.version
    width = len(router.artifact.gbdt.feature_schema.names)
    models = router.tables.models
    index = {m: i for i, m in enumerate(models)}
    logged_models = np.array([index.get(m, -1) for m in data.models], dtype=np.int64)
    served_all = logged_models[data.model] if len(data) else np.zeros(0, dtype=np.int64)
    of_arm = np.asarray(data.arms == arm, dtype=bool) if len(data) else np.zeros(0, dtype=bool)
    if not of_arm.any():
        raise ReplayUnavailable(f"no logged requests of arm {arm} in the window")
    if data.features.shape[1] != width:
        raise ReplayUnavailable(
            f"logged feature vectors have {data.features.shape[1]} values; artifact {arm} reads {width}"
        )
    p = data.propensity
    usable = of_arm & data.features_ok & (served_all >= 0) & np.isfinite(p) & (p > 0) & (p <= 1.0)
    rows = np.flatnonzero(usable)
    if rows.size == 0:
        raise ReplayUnavailable(f"no logged request of arm {arm} has features, a known model and a propensity")
    rows_logged = int(rows.size)
    if rows.size > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
    X = data.features[rows].astype(np.float64)
    decisions = router.route_features(X, predicted=predict_many(router.scorer, X, seed=seed).predictions)
    served = served_all[rows]
    quality = data.quality[rows].astype(np.float64)
    cost = data.cost[rows].astype(np.float64)
    cluster = np.asarray(decisions.clusters, dtype=np.int64)
    q_pred = np.asarray(decisions.quality, dtype=np.float64)
    c_pred = np.asarray(decisions.cost, dtype=np.float64)
    unit = router.scorer.cost_unit
    q_model = _quality_model(q_pred, served, quality, cluster)
    c_model = _cost_model(c_pred * unit, served, cost)
    ts = data.ts[rows]
    days = float((ts.max() - ts.min()) / 86_400.0) if len(ts) > 1 else 0.0
    tokens = X[:, BASE_FEATURES.index("tokens_approx")]
    chosen = np.asarray(decisions.chosen, dtype=np.int64)
    propensity = data.propensity[rows].astype(np.float64)
    labelled, costed = np.isfinite(quality), np.isfinite(cost)
    base_q = dr_terms(
        chosen[labelled],
        served[labelled],
        propensity[labelled],
        quality[labelled],
        q_model[labelled],
        min_propensity=MIN_PROPENSITY,
    )
    base_c = dr_terms(
        chosen[costed], served[costed], propensity[costed], cost[costed], c_model[costed], min_propensity=MIN_PROPENSITY
    )
    return Replay(
        router=router,
        arm=arm,
        models=models,
        served=served,
        propensity=propensity,
        quality=quality,
        cost=cost,
        latency=data.latency[rows].astype(np.float64),
        cluster=cluster,
        tokens=tokens,
        chosen=chosen,
        probabilities=np.asarray(decisions.probabilities, dtype=np.float64),
        q_pred=q_pred,
        c_pred=c_pred,
        q_model=q_model,
        c_model=c_model,
        rows_logged=rows_logged,
        window=data.window,
        days=days,
        base_quality_terms=base_q,
        base_cost_terms=base_c,
    )


def _quality_model(q_pred: np.ndarray, served: np.ndarray, quality: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    labelled = np.isfinite(quality)
    n_models = q_pred.shape[1]
    k = int(cluster.max()) + 1 if len(cluster) else 1
    rows = np.arange(len(served))
    residual = np.where(labelled, quality - q_pred[rows, served], 0.0)
    sums = np.zeros((n_models, k))
    counts = np.zeros((n_models, k))
    np.add.at(sums, (served, cluster), residual)
    np.add.at(counts, (served, cluster), labelled.astype(np.float64))
    delta = sums / (counts + SHRINK_ROWS)
    return np.clip(q_pred + delta[:, cluster].T, 0.0, 1.0)


def _cost_model(c_usd: np.ndarray, served: np.ndarray, cost: np.ndarray) -> np.ndarray:
    n_models = c_usd.shape[1]
    rows = np.arange(len(served))
    ok = np.isfinite(cost)
    logged = np.zeros(n_models)
    predicted = np.zeros(n_models)
    np.add.at(logged, served[ok], cost[ok])
    np.add.at(predicted, served[ok], c_usd[rows[ok], served[ok]])
    typical = np.array([float(np.mean(c_usd[:, m])) if len(c_usd) else 0.0 for m in range(n_models)])
    ratio = (logged + SHRINK_ROWS * typical) / np.maximum(predicted + SHRINK_ROWS * typical, 1e-300)
    return c_usd * ratio[None, :]


def value(replay: Replay, chosen: np.ndarray) -> PolicyValue:
    """DR (with IPS and SNIPS) quality and cost of the policy that picks ``chosen`` per row."""
    return PolicyValue(
        quality=estimate(
            chosen, replay.served, replay.propensity, replay.quality, replay.q_model, min_propensity=MIN_PROPENSITY
        ),
        cost=estimate(
            chosen, replay.served, replay.propensity, replay.cost, replay.c_model, min_propensity=MIN_PROPENSITY
        ),
    )


def compare(
    replay: Replay, candidate: np.ndarray, *, confidence: float = 0.9, within: np.ndarray | None = None
) -> Difference:
    """The paired DR difference ``candidate − π`` (π: the artifact's choices) over every row.

    ``within`` (a row mask) promises that ``candidate`` equals π outside it: only those rows
    are evaluated (the others' differences are zero), which makes per-cluster what-ifs cheap.
    """
    z = float(norm.ppf(0.5 + confidence / 2.0))
    labelled = np.isfinite(replay.quality)
    costed = np.isfinite(replay.cost)
    mask = np.ones(len(replay), dtype=bool) if within is None else np.asarray(within, dtype=bool)
    q = _paired(replay, candidate, replay.quality, replay.q_model, labelled & mask, int(labelled.sum()))
    c = _paired(replay, candidate, replay.cost, replay.c_model, costed & mask, int(costed.sum()))
    base_q, base_c = replay.base_quality_terms, replay.base_cost_terms
    return Difference(
        quality=q[0],
        quality_se=q[1],
        quality_ci=[q[0] - z * q[1], q[0] + z * q[1]],
        cost=c[0],
        cost_se=c[1],
        cost_ci=[c[0] - z * c[1], c[0] + z * c[1]],
        base_quality=float(base_q.mean()) if base_q.size else math.nan,
        base_cost=float(base_c.mean()) if base_c.size else math.nan,
        labelled_rows=int(labelled.sum()),
        rows=len(replay),
        changed_rows=int((candidate[mask] != replay.chosen[mask]).sum()),
        confidence=confidence,
    )


def _paired(
    replay: Replay, candidate: np.ndarray, reward: np.ndarray, model: np.ndarray, keep: np.ndarray, n: int
) -> tuple[float, float]:
    """Mean and standard error over ``n`` rows of per-row differences that are zero outside ``keep``."""
    if n < 2:
        return math.nan, math.nan
    args = (replay.served[keep], replay.propensity[keep], reward[keep], model[keep])
    diff = dr_terms(candidate[keep], *args, min_propensity=MIN_PROPENSITY) - dr_terms(
        replay.chosen[keep], *args, min_propensity=MIN_PROPENSITY
    )
    mean = float(diff.sum()) / n
    var = max(float((diff * diff).sum()) / n - mean * mean, 0.0) * n / (n - 1)
    return mean, math.sqrt(var / n)
