"""Offline evaluation of an artifact on a full-information split (``test`` by default).

Every prompt is routed by the reference router from its text (feature extraction
included), and the chosen model's score and cost are read from the dataset. The report
compares the artifact with every single model, the oracle (per prompt, the cheapest
model with the best score), and optionally another artifact; per task too.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from bifrost.router.artifact import BUCKETS, Artifact
from bifrost.router.reference import ReferenceRouter
from bifrost.trainer.dataset import FullInfoDataset, load_dataset


class EvaluationError(ValueError):
    """The artifact cannot be evaluated on this dataset (e.g. it routes to unknown models)."""


class PolicyMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Mean score and cost of one policy, and both relative to the best single model."""

    name: str
    score: float
    cost_usd: float
    score_vs_best: float
    cost_vs_best: float


class TaskMetrics(msgspec.Struct, frozen=True, kw_only=True):
    rows: int
    score: float
    cost_usd: float
    best_single_score: float
    best_single_cost_usd: float
    oracle_score: float
    against_score: float | None = None
    against_cost_usd: float | None = None


class Goal(msgspec.Struct, frozen=True, kw_only=True):
    """The bootstrap goal: the best single model's score −2% (relative) at ≤ 50% of its cost."""

    score_floor: float
    cost_ceiling_usd: float
    score_ok: bool
    cost_ok: bool
    met: bool
    score_margin: float
    cost_margin_usd: float


class PairedDifference(msgspec.Struct, frozen=True, kw_only=True):
    """Mean per-prompt score difference (policy − best single model) and its uncertainty."""

    mean: float
    standard_error: float
    ci95: tuple[float, float]


class EvaluationReport(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`evaluate_artifact` found; ``to_markdown()`` renders it as tables."""

    artifact: str
    dataset: str
    split: str
    rows: int
    policy: PolicyMetrics
    best_single: PolicyMetrics
    cheapest_single: PolicyMetrics
    oracle: PolicyMetrics
    singles: list[PolicyMetrics]
    against: PolicyMetrics | None
    per_task: dict[str, TaskMetrics]
    model_share: dict[str, float]
    bucket_share: dict[str, float]
    goal: Goal
    score_diff_vs_best: PairedDifference

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    def to_markdown(self) -> str:
        """Summary, all policies, and per-task tables."""
        rows = [self.policy, *([self.against] if self.against else []), self.oracle, *self.singles]
        lines = [
            f"## Evaluation of {self.artifact} on {Path(self.dataset).name} ({self.split}, {self.rows} prompts)",
            "",
            "| policy | mean score | mean cost (USD) | score vs best single | cost vs best single |",
            "|---|---|---|---|---|",
        ]
        for m in rows:
            lines.append(f"| {m.name} | {m.score:.4f} | {m.cost_usd:.3g} | {m.score_vs_best:.1%} | {m.cost_vs_best:.1%} |")
        g = self.goal
        lines += [
            "",
            f"Goal (best single `{self.best_single.name}` score −2% at ≤ 50% of its cost): "
            f"{'met' if g.met else 'NOT met'} — score {self.policy.score:.4f} vs floor {g.score_floor:.4f} "
            f"({g.score_margin:+.4f}), cost {self.policy.cost_usd:.3g} vs ceiling {g.cost_ceiling_usd:.3g} "
            f"({self.policy.cost_vs_best:.1%} of the best model's cost). Paired score difference vs the best "
            f"single model: {self.score_diff_vs_best.mean:+.4f} ± {self.score_diff_vs_best.standard_error:.4f} (SE), "
            f"95% CI [{self.score_diff_vs_best.ci95[0]:+.4f}, {self.score_diff_vs_best.ci95[1]:+.4f}].",
            "",
            "| task | rows | score | cost (USD) | best single score | best single cost | oracle score |"
            + (" against score | against cost |" if self.against else ""),
            "|---|---|---|---|---|---|---|" + ("---|---|" if self.against else ""),
        ]
        for task, t in self.per_task.items():
            line = (f"| {task} | {t.rows} | {t.score:.3f} | {t.cost_usd:.3g} | {t.best_single_score:.3f} | "
                    f"{t.best_single_cost_usd:.3g} | {t.oracle_score:.3f} |")
            if self.against:
                line += f" {t.against_score:.3f} | {t.against_cost_usd:.3g} |"
            lines.append(line)
        lines += [
            "",
            "Routed to: " + ", ".join(f"{m} {s:.1%}" for m, s in self.model_share.items() if s > 0),
            "Buckets: " + ", ".join(f"{b} {s:.1%}" for b, s in self.bucket_share.items()),
        ]
        return "\n".join(lines) + "\n"


def routed_choices(router: ReferenceRouter, dataset: FullInfoDataset) -> tuple[np.ndarray, np.ndarray]:
    """(dataset column of the chosen model, bucket) per row."""
    missing = set(router.tables.models) - set(dataset.models)
    if missing:
        raise EvaluationError(f"the artifact routes to models the dataset has no labels for: {sorted(missing)}")
    batch = router.route_many(dataset.prompts)
    column = {m: j for j, m in enumerate(dataset.models)}
    to_dataset = np.array([column[m] for m in batch.models], dtype=np.int64)
    return to_dataset[batch.chosen], batch.buckets


def evaluate_artifact(
    artifact: Artifact | ReferenceRouter,
    dataset: str | Path | FullInfoDataset,
    *,
    split: str = "test",
    against: Artifact | ReferenceRouter | None = None,
) -> EvaluationReport:
    """Evaluate an artifact (already verified) on one split of a full-information dataset.

    Args:
        artifact: the artifact, or a router built from it.
        dataset: a dataset path or a loaded dataset.
        split: which rows (``test`` unless told otherwise; ``all`` for every row).
        against: another artifact to compare with (e.g. the current one).
    """
    router = artifact if isinstance(artifact, ReferenceRouter) else ReferenceRouter(artifact)
    full = dataset if isinstance(dataset, FullInfoDataset) else load_dataset(dataset)
    data = full if split == "all" else full.split(split)
    data = data.take(data.valid_rows())
    if len(data) == 0:
        raise EvaluationError(f"the dataset has no usable rows in split {split!r}")
    S, C = data.scores, data.costs
    rows = np.arange(len(data))
    chosen, buckets = routed_choices(router, data)

    means_s, means_c = S.mean(axis=0), C.mean(axis=0)
    best = int(np.argmax(means_s))
    cheapest = int(np.argmin(means_c))
    ref_s, ref_c = float(means_s[best]), float(means_c[best])

    def metrics(name: str, s: np.ndarray, c: np.ndarray) -> PolicyMetrics:
        score, cost = float(s.mean()), float(c.mean())
        return PolicyMetrics(name=name, score=round(score, 6), cost_usd=cost,
                             score_vs_best=round(score / ref_s, 6) if ref_s else 0.0,
                             cost_vs_best=round(cost / ref_c, 6) if ref_c else 0.0)

    # Oracle: per prompt the cheapest among the models with the best score.
    top = S.max(axis=1, keepdims=True)
    oracle = np.argmin(np.where(S >= top - 1e-12, C, np.inf), axis=1)
    policy = metrics(f"artifact {router.version}", S[rows, chosen], C[rows, chosen])
    against_chosen = None
    against_metrics = None
    if against is not None:
        other = against if isinstance(against, ReferenceRouter) else ReferenceRouter(against)
        against_chosen, _ = routed_choices(other, data)
        against_metrics = metrics(f"against {other.version}", S[rows, against_chosen], C[rows, against_chosen])

    singles = sorted((metrics(m, S[:, j], C[:, j]) for j, m in enumerate(data.models)), key=lambda m: -m.score)
    per_task = {}
    for task in sorted(set(data.tasks.tolist())):
        mask = data.tasks == task
        per_task[task] = TaskMetrics(
            rows=int(mask.sum()),
            score=round(float(S[mask, chosen[mask]].mean()), 6),
            cost_usd=float(C[mask, chosen[mask]].mean()),
            best_single_score=round(float(S[mask, best].mean()), 6),
            best_single_cost_usd=float(C[mask, best].mean()),
            oracle_score=round(float(S[mask, oracle[mask]].mean()), 6),
            against_score=None if against_chosen is None else round(float(S[mask, against_chosen[mask]].mean()), 6),
            against_cost_usd=None if against_chosen is None else float(C[mask, against_chosen[mask]].mean()),
        )
    floor, ceiling = 0.98 * ref_s, 0.5 * ref_c
    diff = S[rows, chosen] - S[:, best]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return EvaluationReport(
        artifact=router.version,
        dataset=data.source,
        split=split,
        rows=len(data),
        policy=policy,
        best_single=metrics(data.models[best], S[:, best], C[:, best]),
        cheapest_single=metrics(data.models[cheapest], S[:, cheapest], C[:, cheapest]),
        oracle=metrics("oracle", S[rows, oracle], C[rows, oracle]),
        singles=singles,
        against=against_metrics,
        per_task=per_task,
        model_share={m: round(float((chosen == j).mean()), 4) for j, m in enumerate(data.models)},
        bucket_share={b: round(float((buckets == i).mean()), 4) for i, b in enumerate(BUCKETS)},
        goal=Goal(
            score_floor=round(floor, 6),
            cost_ceiling_usd=ceiling,
            score_ok=policy.score >= floor,
            cost_ok=policy.cost_usd <= ceiling,
            met=policy.score >= floor and policy.cost_usd <= ceiling,
            score_margin=round(policy.score - floor, 6),
            cost_margin_usd=ceiling - policy.cost_usd,
        ),
        score_diff_vs_best=PairedDifference(
            mean=round(float(diff.mean()), 6), standard_error=round(se, 6),
            ci95=(round(float(diff.mean()) - 1.96 * se, 6), round(float(diff.mean()) + 1.96 * se, 6)),
        ),
    )
