"""Stress variants of a full-information dataset, made in code (no download).

Each variant changes scores or prices in a way real routing benchmarks do and the bundled
set does not, so the trainer is checked on the general case, not on one file:

* ``binary`` — every score binarized at 0.5 (pass/fail benchmarks).
* ``premium`` — the best single model (on the train split) becomes a premium model: its
  price ×15, and on a learnable minority of prompts (whole tasks, those where it leads the
  other models most, added until they hold ≥ 20% of the rows) it is at least as good as
  the best other model on that prompt. It is then the best single model by a clear
  margin that only that minority carries, and 12–15× the price of the next tier.
* ``specialist`` — a new model, half the price of the cheapest one, that is as good as the
  best model on one task (the oracle's score there) and as bad as the worst elsewhere.
* ``noisy`` — ``binary``, then 15% of the (prompt, model) outcomes flipped at random (seed
  fixed): pass/fail labels from a noisy judge, in training and in evaluation alike.

Every rule is deterministic and uses only the dataset's own rows and task names.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bifrost.storage.dataset import FullInfoDataset

VARIANTS: tuple[str, ...] = ("binary", "premium", "specialist", "noisy")
PREMIUM_PRICE_FACTOR = 15.0
PREMIUM_MINORITY = 0.2
SPECIALIST_PRICE_FACTOR = 0.5
NOISY_FLIP_SHARE = 0.15
NOISY_SEED = 15


def stress_variant(dataset: FullInfoDataset, name: str, *, train_split: str = "train") -> FullInfoDataset:
    """The named variant of ``dataset`` (all splits; rules read the train split only)."""
    if name == "binary":
        return binarized(dataset)
    if name == "premium":
        return premium(dataset, train_split=train_split)
    if name == "specialist":
        return specialist(dataset, train_split=train_split)
    if name == "noisy":
        return noisy(dataset)
    raise ValueError(f"unknown stress variant {name!r} (one of {', '.join(VARIANTS)})")


def binarized(dataset: FullInfoDataset, *, at: float = 0.5) -> FullInfoDataset:
    """Scores ≥ ``at`` become 1, others 0 (NaN stays NaN)."""
    scores = np.where(np.isnan(dataset.scores), np.nan, (dataset.scores >= at).astype(np.float64))
    return replace(dataset, scores=scores, source=f"{dataset.source}#binary")


def noisy(dataset: FullInfoDataset, *, flip: float = NOISY_FLIP_SHARE, seed: int = NOISY_SEED) -> FullInfoDataset:
    """Binarized at 0.5, then each known outcome flipped with probability ``flip`` (seeded)."""
    scores = binarized(dataset).scores
    flipped = np.random.default_rng(seed).random(scores.shape) < flip
    scores = np.where(flipped & ~np.isnan(scores), 1.0 - scores, scores)
    return replace(dataset, scores=scores, source=f"{dataset.source}#noisy({flip:g})")


def _train_rows(dataset: FullInfoDataset, train_split: str) -> np.ndarray:
    rows = dataset.splits == train_split
    return rows if rows.any() else np.ones(len(dataset), dtype=bool)


def premium(
    dataset: FullInfoDataset,
    *,
    train_split: str = "train",
    factor: float = PREMIUM_PRICE_FACTOR,
    minority: float = PREMIUM_MINORITY,
) -> FullInfoDataset:
    """The best single model made a premium model (see the module docstring)."""
    train = _train_rows(dataset, train_split)
    S = dataset.scores
    best = int(np.nanargmax(np.nanmean(S[train], axis=0)))
    others = [j for j in range(S.shape[1]) if j != best]
    leads = []
    for task in sorted(set(dataset.tasks.tolist())):
        rows = train & (dataset.tasks == task)
        if rows.any():
            lead = float(np.nanmean(S[rows, best]) - np.nanmax(np.nanmean(S[rows][:, others], axis=0)))
            leads.append((-lead, task))
    chosen, covered = [], 0
    for _, task in sorted(leads):
        if covered >= minority * len(dataset):
            break
        chosen.append(task)
        covered += int((dataset.tasks == task).sum())
    minority_rows = np.isin(dataset.tasks, chosen)
    scores = S.copy()
    scores[minority_rows, best] = np.fmax(S[minority_rows, best], np.nanmax(S[minority_rows][:, others], axis=1))
    costs = dataset.costs.copy()
    costs[:, best] *= factor
    return replace(
        dataset,
        scores=scores,
        costs=costs,
        source=f"{dataset.source}#premium({dataset.models[best]}×{factor:g};{'+'.join(chosen)})",
    )


def specialist(
    dataset: FullInfoDataset,
    *,
    train_split: str = "train",
    task: str | None = None,
    factor: float = SPECIALIST_PRICE_FACTOR,
) -> FullInfoDataset:
    """A new cheap model that is the best on one task and the worst elsewhere."""
    train = _train_rows(dataset, train_split)
    if task is None:
        both = sorted(set(dataset.tasks[train].tolist()) & set(dataset.tasks[~train].tolist())) or sorted(
            set(dataset.tasks.tolist())
        )
        task = max(both, key=lambda t: (int((train & (dataset.tasks == t)).sum()), [-ord(c) for c in t]))
    on_task = dataset.tasks == task
    S, C = dataset.scores, dataset.costs
    new_scores = np.where(on_task, np.nanmax(S, axis=1), np.nanmin(S, axis=1))
    new_costs = factor * np.nanmin(C, axis=1)
    name = f"specialist-{task}"
    models = (*dataset.models, name)
    order = np.argsort(np.array(models, dtype=object), kind="stable")
    scores = np.column_stack([S, new_scores])[:, order]
    costs = np.column_stack([C, new_costs])[:, order]
    return replace(
        dataset,
        models=tuple(models[i] for i in order),
        scores=scores,
        costs=costs,
        source=f"{dataset.source}#specialist({task})",
    )
