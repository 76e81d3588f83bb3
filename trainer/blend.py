"""Choose how q̂ mixes LightGBM and logistic regression, by what routing with it earns.

``q̂ = w·q̂_tree + (1 − w)·q̂_linear`` (:mod:`bifrost.trainer.outcomes`). The weight ``w``
(0 and 1 included: one family alone) and the logistic regression's L2 are picked on the
train split's **out-of-fold** predictions (grouped CV: no prompt on both sides of a fold),
by the quantity the artifact is judged on: the mean score of ``argmax q̂ − λ·ĉ`` over a
band of cost shares (the concave upper envelope of the λ sweep, read at each share of the
band, relative to the reference model's cost). Log-loss would reward calibration; routing
needs the per-prompt *ranking* of models at the prices they cost. Never the test split.

Ties (within ``tolerance``) go to the default blend, so the choice moves only when the
data say so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
import numpy as np

from bifrost.trainer import baseline as lr

DEFAULT_WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_L2S: tuple[float, ...] = (1.0, 10.0, 100.0)
DEFAULT_BAND: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45, 0.5)


class BlendCandidate(msgspec.Struct, frozen=True, kw_only=True):
    weight: float
    l2: float
    value: float  # mean out-of-fold score over the band


class BlendChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The chosen tree weight and L2, and every candidate's out-of-fold routing value."""

    weight: float
    l2: float
    value: float
    band: tuple[float, ...]
    candidates: list[BlendCandidate]


def frontier_value(
    quality: np.ndarray,
    cost: np.ndarray,
    scores: np.ndarray,
    costs: np.ndarray,
    reference_cost: float,
    band: Sequence[float] = DEFAULT_BAND,
) -> float:
    """Mean score of ``argmax quality − λ·cost`` at the cost shares of ``band`` (upper envelope of the λ sweep).

    ``scores``/``costs`` are the realized outcomes ``(rows, models)``; a share below the
    cheapest policy reads the cheapest policy's score.
    """
    curve = sorted({(c / reference_cost, s) for _, s, c in lr.frontier(quality, cost, scores, costs)})
    hull: list[tuple[float, float]] = []
    for point in curve:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) >= 0:
            hull.pop()
        hull.append(point)
    xs = np.array([c for c, _ in hull])
    ys = np.array([s for _, s in hull])
    return float(np.mean(np.interp(np.asarray(band, dtype=np.float64), xs, ys)))


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def choose_blend(
    tree: np.ndarray,
    linear: Mapping[float, np.ndarray],
    cost: np.ndarray,
    scores: np.ndarray,
    costs: np.ndarray,
    reference_cost: float,
    *,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    band: Sequence[float] = DEFAULT_BAND,
    default: tuple[float, float] = (0.5, 10.0),
    tolerance: float = 1e-9,
) -> BlendChoice:
    """The (tree weight, L2) whose out-of-fold blend routes best over ``band``.

    Args:
        tree: out-of-fold calibrated tree q̂ ``(rows, models)``.
        linear: out-of-fold logistic q̂ per L2.
        cost: out-of-fold predicted cost ``(rows, models)`` (any unit: λ is swept).
        scores, costs: realized outcomes; ``reference_cost`` the reference model's mean cost.
        default: kept unless another candidate is better by more than ``tolerance``.
    """
    candidates: list[BlendCandidate] = []
    for l2, lin in sorted(linear.items()):
        for w in weights:
            if w == 1.0 and candidates and any(c.weight == 1.0 for c in candidates):
                continue  # trees alone do not depend on the L2
            q = w * tree + (1.0 - w) * lin
            candidates.append(
                BlendCandidate(
                    weight=float(w),
                    l2=float(l2),
                    value=round(frontier_value(q, cost, scores, costs, reference_cost, band), 6),
                )
            )
    by_key = {(c.weight, c.l2): c for c in candidates}
    best = max(candidates, key=lambda c: c.value)
    chosen = by_key.get(default)
    if chosen is None or best.value > chosen.value + tolerance:
        chosen = best
    return BlendChoice(weight=chosen.weight, l2=chosen.l2, value=chosen.value, band=tuple(band), candidates=candidates)
