"""The routing rule, on arrays: bucket by thresholds, then the α utility argmax.

One implementation serves the reference router (one request) and the trainer's search
and evaluation (many requests at once), so what the search optimizes is exactly what
the router does.

* Bucket: P(hard) ≥ τ_hard → hard; else P(cheap) ≥ τ_cheap → cheap; else mid.
* Context guardrail: a model whose context window is smaller than the prompt is not
  eligible; if no model of the bucket fits, the next larger bucket is tried, then any
  model that fits, then the model with the largest window.
* Model: argmax over eligible models of ``α·Q̂[m, c] − (1 − α)·Ĉ[m] − penalty[m]``;
  exact ties go to the higher Q̂, then the lower cost, then the first model by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bifrost.router.artifact import BUCKETS, Artifact

CHEAP, MID, HARD = 0, 1, 2
_TIE_QUALITY = 1e-9
_TIE_COST = 1e-12


@dataclass(frozen=True, slots=True)
class PolicyTables:
    """An artifact's routing numbers as arrays, models in sorted order."""

    models: tuple[str, ...]
    qhat: np.ndarray  # (models, clusters)
    chat: np.ndarray  # (models,)
    penalty: np.ndarray  # (models,)
    bucket_mask: np.ndarray  # (3, models) bool
    context: np.ndarray  # (models,) max input tokens, inf when unknown
    alpha: float
    tau_cheap: float
    tau_hard: float

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> "PolicyTables":
        models = tuple(artifact.models)
        mask = np.array([[m in set(artifact.buckets[b]) for m in models] for b in BUCKETS], dtype=bool)
        return cls(
            models=models,
            qhat=np.array([artifact.qhat[m] for m in models], dtype=np.float64),
            chat=np.array([artifact.chat[m] for m in models], dtype=np.float64),
            penalty=np.array([artifact.penalties.get(m, 0.0) for m in models], dtype=np.float64),
            bucket_mask=mask,
            context=np.array([float(artifact.context.get(m, np.inf)) for m in models], dtype=np.float64),
            alpha=artifact.alpha,
            tau_cheap=artifact.thresholds.cheap,
            tau_hard=artifact.thresholds.hard,
        )

    def with_params(self, *, alpha: float, tau_cheap: float, tau_hard: float, penalty: np.ndarray) -> "PolicyTables":
        """The same tables with other search parameters."""
        return PolicyTables(
            self.models, self.qhat, self.chat, np.asarray(penalty, dtype=np.float64), self.bucket_mask,
            self.context, alpha, tau_cheap, tau_hard,
        )


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
    clusters: np.ndarray,
    tokens: np.ndarray | None = None,
    *,
    q_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Route many requests: (model index, bucket index, utilities, eligible mask) per row.

    ``q_rows`` ``(rows, models)`` replaces ``Q̂[:, cluster]`` per row (the trainer passes
    out-of-fold estimates); by default each row uses its cluster's column of Q̂.
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    q = tables.qhat[:, clusters].T if q_rows is None else q_rows
    buckets = buckets_of(probabilities, tables.tau_cheap, tables.tau_hard)
    if tokens is None:
        tokens = np.zeros(len(q))
    allowed, _ = eligible(tables, buckets, tokens)
    utility = tables.alpha * q - (1.0 - tables.alpha) * tables.chat - tables.penalty
    key = utility + _TIE_QUALITY * q - _TIE_COST * tables.chat
    key = np.where(allowed, key, -np.inf)
    return np.argmax(key, axis=1), buckets, utility, allowed
