"""The routing rule, on arrays: bucket by thresholds, then the α utility argmax per prompt.

One implementation serves the reference router (one request) and the trainer's search
and evaluation (many requests at once), so what the search optimizes is exactly what
the router does.

* Bucket: P(hard) ≥ τ_hard → hard; else P(cheap) ≥ τ_cheap → cheap; else mid. Which
  models a bucket may use is part of the artifact (learned by the trainer).
* Context guardrail: a model whose context window is smaller than the prompt is not
  eligible; if no model of the bucket fits, the next larger bucket is tried, then any
  model that fits, then the model with the largest window.
* Model: argmax over eligible models of ``α·q̂(m | x) − (1 − α)·ĉ(m | x) − penalty[m]``,
  with ``q̂`` the prompt's predicted quality of each model and ``ĉ`` its predicted cost in
  units of the reference model's mean cost; exact ties go to the higher q̂, then the
  lower cost, then the first model by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from bifrost.router.artifact import BUCKETS, Artifact

CHEAP, MID, HARD = 0, 1, 2
_TIE_QUALITY = 1e-9
_TIE_COST = 1e-12


@dataclass(frozen=True, slots=True)
class PolicyTables:
    """An artifact's routing parameters as arrays, models in sorted order."""

    models: tuple[str, ...]
    penalty: np.ndarray  # (models,)
    bucket_mask: np.ndarray  # (3, models) bool
    context: np.ndarray  # (models,) max input tokens, inf when unknown
    alpha: float
    tau_cheap: float
    tau_hard: float

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> PolicyTables:
        models = tuple(artifact.models)
        mask = np.array([[m in set(artifact.buckets[b]) for m in models] for b in BUCKETS], dtype=bool)
        return cls(
            models=models,
            penalty=np.array([artifact.penalties.get(m, 0.0) for m in models], dtype=np.float64),
            bucket_mask=mask,
            context=np.array([float(artifact.context.get(m, np.inf)) for m in models], dtype=np.float64),
            alpha=artifact.alpha,
            tau_cheap=artifact.thresholds.cheap,
            tau_hard=artifact.thresholds.hard,
        )

    def with_params(
        self,
        *,
        alpha: float,
        tau_cheap: float,
        tau_hard: float,
        penalty: npt.ArrayLike | None = None,
        bucket_mask: npt.ArrayLike | None = None,
    ) -> PolicyTables:
        """The same tables with other search parameters."""
        return replace(
            self,
            alpha=float(alpha),
            tau_cheap=float(tau_cheap),
            tau_hard=float(tau_hard),
            penalty=self.penalty if penalty is None else np.asarray(penalty, dtype=np.float64),
            bucket_mask=self.bucket_mask if bucket_mask is None else np.asarray(bucket_mask, dtype=bool),
        )


def alpha_of(cost_weight: float) -> float:
    """α for a cost weight λ (quality per unit of normalized cost): ``α = 1 / (1 + λ)``."""
    return 1.0 / (1.0 + max(float(cost_weight), 0.0))


def cost_weight_of(alpha: float) -> float:
    """λ = (1 − α) / α: how much quality one unit of normalized cost is worth (∞ at α = 0)."""
    return np.inf if alpha <= 0 else (1.0 - alpha) / alpha


def buckets_of(probabilities: np.ndarray, tau_cheap: float, tau_hard: float) -> np.ndarray:
    """Bucket index per row of ``(rows, 3)`` class probabilities [cheap, mid, hard]."""
    p = np.atleast_2d(probabilities)
    return np.where(p[:, HARD] >= tau_hard, HARD, np.where(p[:, CHEAP] >= tau_cheap, CHEAP, MID))


def eligible(tables: PolicyTables, buckets: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eligible mask ``(rows, models)``, guardrail-applied flag per row)."""
    mask = tables.bucket_mask[buckets]
    if not np.isfinite(tables.context).any():
        return mask, np.zeros(len(buckets), dtype=bool)
    fits = tables.context[None, :] >= np.asarray(tokens, dtype=np.float64)[:, None]
    allowed = mask & fits
    empty = ~allowed.any(axis=1)
    applied = (mask & ~fits).any(axis=1)
    if empty.any():
        for wider in (MID, HARD):
            escalate = empty & (buckets < wider)
            allowed[escalate] = tables.bucket_mask[wider] & fits[escalate]
            empty = ~allowed.any(axis=1)
        allowed[empty] = fits[empty]
        empty = ~allowed.any(axis=1)
        largest = np.zeros(len(tables.models), dtype=bool)
        largest[int(np.argmax(tables.context))] = True
        allowed[empty] = largest
    return allowed, applied


def choose(
    tables: PolicyTables,
    probabilities: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    tokens: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Route many requests: (model index, bucket index, utilities, eligible mask) per row.

    Args:
        probabilities: ``(rows, 3)`` triage probabilities [cheap, mid, hard].
        quality: ``(rows, models)`` predicted quality q̂ of every model per prompt.
        cost: ``(rows, models)`` predicted normalized cost ĉ of every model per prompt.
        tokens: prompt size per row for the context guardrail (default 0: no guardrail).
    """
    quality = np.atleast_2d(quality)
    cost = np.atleast_2d(cost)
    buckets = buckets_of(probabilities, tables.tau_cheap, tables.tau_hard)
    if tokens is None:
        tokens = np.zeros(len(quality))
    allowed, _ = eligible(tables, buckets, tokens)
    utility = tables.alpha * quality - (1.0 - tables.alpha) * cost - tables.penalty
    key = utility + _TIE_QUALITY * quality - _TIE_COST * cost
    key = np.where(allowed, key, -np.inf)
    return np.argmax(key, axis=1), buckets, utility, allowed
