"""The cost/quality frontier of an artifact on a full-information split, and its plot.

The artifact's knob is α (``λ = (1 − α) / α``, quality per unit of the reference
model's cost): :func:`frontier_report` routes the split's prompts once (features, triage
probabilities, q̂ and ĉ), then replays the routing rule at a sweep of λ with everything
else of the artifact fixed (thresholds, buckets, penalties). Beside it: the logistic
baseline's frontier (its own λ sweep, fitted on the train split), every single model,
and the oracle. :func:`plot_frontier` draws them into a PNG (matplotlib, Agg backend).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from bifrost.router.policy import alpha_of, choose, cost_weight_of
from bifrost.router.reference import ReferenceRouter
from bifrost.storage.dataset import FullInfoDataset, load_dataset
from bifrost.trainer import baseline as lr
from bifrost.trainer.evaluate import EvaluationError, FittedBaseline, fit_baseline, route_dataset

SWEEP = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, 29)])


class FrontierPoint(msgspec.Struct, frozen=True, kw_only=True):
    cost_weight: float
    alpha: float
    score: float
    cost_usd: float
    score_vs_best: float
    cost_vs_best: float


class Marker(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    score: float
    cost_usd: float
    cost_vs_best: float


class FrontierReport(msgspec.Struct, frozen=True, kw_only=True):
    """The artifact's α sweep, the baseline's λ sweep, single models and the oracle on one split."""

    artifact: str
    dataset: str
    split: str
    rows: int
    best_single: Marker
    oracle: Marker
    singles: list[Marker]
    artifact_point: FrontierPoint
    artifact_curve: list[FrontierPoint]
    ungated_curve: list[FrontierPoint]  # the same sweep with τ_hard = 0: every prompt may use every model
    baseline_curve: list[FrontierPoint]

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    def to_markdown(self) -> str:
        b = self.best_single
        lines = [
            f"## Cost/quality frontier of {self.artifact} on {Path(self.dataset).name} "
            f"({self.split}, {self.rows} prompts)",
            "",
            f"Knob: α = 1/(1+λ) (λ = quality per unit of the reference model's mean cost); thresholds, buckets and "
            f"penalties fixed. The artifact's own α = {self.artifact_point.alpha:.4f} (λ = "
            f"{self.artifact_point.cost_weight:.4g}): score {self.artifact_point.score:.4f} at "
            f"{self.artifact_point.cost_vs_best:.1%} of {b.name}'s cost (its score {b.score:.4f}); oracle "
            f"{self.oracle.score:.4f} at {self.oracle.cost_vs_best:.1%}.",
            "",
            "| λ | α | artifact score | cost vs best | gate off: score | cost vs best | baseline "
            "score | cost vs best |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a, u, base in zip(self.artifact_curve, self.ungated_curve, self.baseline_curve):
            lines.append(
                f"| {a.cost_weight:.4g} | {a.alpha:.4f} | {a.score:.4f} | {a.cost_vs_best:.1%} | "
                f"{u.score:.4f} | {u.cost_vs_best:.1%} | {base.score:.4f} | {base.cost_vs_best:.1%} |"
            )
        lines += ["", "| single model | score | cost vs best |", "|---|---:|---:|"]
        lines += [f"| {m.name} | {m.score:.4f} | {m.cost_vs_best:.1%} |" for m in self.singles]
        return "\n".join(lines) + "\n"


def frontier_report(
    router: ReferenceRouter,
    dataset: str | Path | FullInfoDataset,
    *,
    split: str = "test",
    sweep: np.ndarray = SWEEP,
    fitted: FittedBaseline | None = None,
    seed: int = 0,
) -> FrontierReport:
    """Sweep the artifact's α (and the baseline's λ) on one split of a full-information dataset."""
    full = dataset if isinstance(dataset, FullInfoDataset) else load_dataset(dataset)
    data = full if split == "all" else full.split(split)
    data = data.take(data.valid_rows())
    if len(data) == 0:
        raise EvaluationError(f"the dataset has no usable rows in split {split!r}")
    columns, batch = route_dataset(router, data)
    assert batch.quality is not None and batch.cost is not None
    quality, cost = batch.quality, batch.cost
    S, C = data.scores[:, columns], data.costs[:, columns]
    rows = np.arange(len(data))
    fitted = fitted or fit_baseline(router, full, seed=seed)
    # The reference ("best single") model is the train split's best (as in evaluate_artifact).
    ref = (
        data.models.index(fitted.reference)
        if fitted.reference in data.models
        else int(np.argmax(data.scores.mean(axis=0)))
    )
    ref_s, ref_c = float(data.scores[:, ref].mean()), float(data.costs[:, ref].mean()) or 1.0
    tokens = batch.features[:, list(router.artifact.gbdt.feature_schema.names).index("tokens_approx")]

    def point(weight: float, chosen: np.ndarray) -> FrontierPoint:
        score, cost = float(S[rows, chosen].mean()), float(C[rows, chosen].mean())
        return FrontierPoint(
            cost_weight=float(weight),
            alpha=alpha_of(weight),
            score=round(score, 6),
            cost_usd=cost,
            score_vs_best=round(score / ref_s, 6) if ref_s else 0.0,
            cost_vs_best=round(cost / ref_c, 6),
        )

    def artifact_at(weight: float, gate: bool = True) -> FrontierPoint:
        tables = router.tables.with_params(
            alpha=alpha_of(weight), tau_cheap=router.tables.tau_cheap, tau_hard=router.tables.tau_hard if gate else 0.0
        )
        chosen, _, _, _ = choose(tables, batch.probabilities, quality, cost, tokens)
        return point(weight, chosen)

    q_base, c_base = fitted.predict(batch.features)
    own = cost_weight_of(router.tables.alpha)
    top = S.max(axis=1, keepdims=True)
    oracle = np.argmin(np.where(S >= top - 1e-12, C, np.inf), axis=1)

    def marker(name: str, s: np.ndarray, c: np.ndarray) -> Marker:
        return Marker(
            name=name,
            score=round(float(s.mean()), 6),
            cost_usd=float(c.mean()),
            cost_vs_best=round(float(c.mean()) / ref_c, 6),
        )

    models = router.tables.models
    return FrontierReport(
        artifact=router.version,
        dataset=data.source,
        split=split,
        rows=len(data),
        best_single=marker(data.models[ref], data.scores[:, ref], data.costs[:, ref]),
        oracle=marker("oracle", S[rows, oracle], C[rows, oracle]),
        singles=sorted((marker(m, S[:, j], C[:, j]) for j, m in enumerate(models)), key=lambda m: -m.score),
        artifact_point=artifact_at(own if np.isfinite(own) else 1e9),
        artifact_curve=[artifact_at(w) for w in sweep],
        ungated_curve=[artifact_at(w, gate=False) for w in sweep],
        baseline_curve=[point(w, lr.route(q_base, c_base, w)) for w in sweep],
    )


def plot_frontier(report: FrontierReport, path: str | Path) -> Path:
    """Write the frontier plot (PNG): artifact and baseline curves, single models, oracle, the artifact's point.

    The folder must exist (:class:`EvaluationError` otherwise): a mistyped path is not created.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise EvaluationError(f"cannot plot the frontier: {exc} (pip install matplotlib)") from None
    path = Path(path)
    if not path.parent.is_dir():
        raise EvaluationError(f"cannot write the frontier plot {path}: folder {path.parent} does not exist")
    fig, ax = plt.subplots(figsize=(8.0, 5.5), dpi=120)
    art = sorted(report.artifact_curve, key=lambda p: p.cost_vs_best)
    base = sorted(report.baseline_curve, key=lambda p: p.cost_vs_best)
    ax.plot(
        [p.cost_vs_best for p in art],
        [p.score for p in art],
        "-o",
        ms=3,
        color="tab:blue",
        label="artifact, α swept (thresholds, buckets fixed)",
    )
    ungated = sorted(report.ungated_curve, key=lambda p: p.cost_vs_best)
    ax.plot(
        [p.cost_vs_best for p in ungated],
        [p.score for p in ungated],
        ":",
        lw=1.2,
        color="tab:blue",
        alpha=0.6,
        label="artifact, α swept, escalation gate off (τ_hard = 0)",
    )
    ax.plot(
        [p.cost_vs_best for p in base],
        [p.score for p in base],
        "-s",
        ms=3,
        color="tab:orange",
        alpha=0.8,
        label="baseline: per-model logistic regression, λ swept",
    )
    for m in report.singles:
        ax.scatter([m.cost_vs_best], [m.score], marker="x", color="gray", zorder=3)
        ax.annotate(
            m.name, (m.cost_vs_best, m.score), fontsize=6, color="gray", xytext=(3, -8), textcoords="offset points"
        )
    ax.scatter(
        [report.oracle.cost_vs_best],
        [report.oracle.score],
        marker="*",
        s=140,
        color="tab:green",
        zorder=4,
        label=f"oracle ({report.oracle.score:.3f})",
    )
    p = report.artifact_point
    ax.scatter(
        [p.cost_vs_best],
        [p.score],
        marker="D",
        s=60,
        color="tab:red",
        zorder=5,
        label=f"artifact as trained (α={p.alpha:.3f}): {p.score:.3f} at {p.cost_vs_best:.0%}",
    )
    b = report.best_single
    ax.axhline(0.98 * b.score, color="tab:red", lw=0.8, ls="--", label=f"goal: {b.name} −2% at ≤ 50% of its cost")
    ax.axvline(0.5, color="tab:red", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel(f"mean cost relative to the best single model ({b.name}), log scale")
    ax.set_ylabel("mean score")
    import textwrap

    name = Path(report.dataset.split("#")[0]).name + (
        "#" + report.dataset.split("#", 1)[1] if "#" in report.dataset else ""
    )
    ax.set_title(textwrap.fill(f"{report.artifact} on {name} ({report.split}, {report.rows} prompts)", 110), fontsize=8)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
