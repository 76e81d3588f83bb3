"""The bootstrap goal on a dataset and its stress variants, against the baseline to beat.

For each dataset (the bundled one and every :mod:`bifrost.trainer.stress` variant) this
trains an artifact on the train split exactly as ``bifrost-opt train`` does, then, on
the test split it never saw:

* the goal: score ≥ best single model −2% (relative) at ≤ 50% of its cost;
* the logistic-regression baseline (:mod:`bifrost.trainer.baseline`, λ chosen on the
  train split to spend what the artifact spends): artifact − baseline score, paired
  bootstrap standard error, and the baseline's own frontier at the artifact's cost;
* the oracle, and how the artifact routes (buckets, labels, models).

``python -m bifrost.trainer.goals [--trials 200] [--out bench/results]`` writes
``quality.md`` and ``quality.json`` (the README table) and a frontier plot per dataset.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.reference import ReferenceRouter
from bifrost.trainer.bootstrap import BootstrapConfig, bootstrap_artifact
from bifrost.trainer.dataset import FullInfoDataset, load_dataset
from bifrost.trainer.evaluate import evaluate_artifact, fit_baseline
from bifrost.trainer.stress import VARIANTS, stress_variant

DATASETS: tuple[str, ...] = ("bundled", *VARIANTS)


class GoalRow(msgspec.Struct, frozen=True, kw_only=True):
    """One dataset's result on its test split."""

    dataset: str
    source: str
    trials: int
    seconds: float
    rows: int
    best_single: str
    best_single_score: float
    score: float
    cost_vs_best: float
    goal_met: bool
    score_floor: float
    diff_vs_best: float
    diff_vs_best_se: float
    baseline_score: float
    baseline_cost_vs_best: float
    baseline_lambda: float
    diff_vs_baseline: float
    diff_vs_baseline_se: float
    diff_vs_baseline_lower: float
    baseline_frontier_at_cost: float
    oracle_score: float
    oracle_cost_vs_best: float
    alpha: float
    tau_cheap: float
    tau_hard: float
    buckets: dict[str, list[str]]
    labels: dict[str, int]
    bucket_share: dict[str, float]
    model_share: dict[str, float]


def variant(full: FullInfoDataset, name: str) -> FullInfoDataset:
    """The bundled dataset itself, or one of its stress variants."""
    return full if name == "bundled" else stress_variant(full, name)


def goal_row(full: FullInfoDataset, name: str, *, trials: int = 200, seed: int = 0,
             config: BootstrapConfig | None = None, plot: Path | None = None) -> GoalRow:
    """Train on ``name``'s train split, evaluate on its test split (see the module docstring)."""
    data = variant(full, name)
    started = time.perf_counter()
    artifact, report = bootstrap_artifact(data, trials=trials, seed=seed, signing_key=Ed25519PrivateKey.generate(),
                                          config=config)
    seconds = time.perf_counter() - started
    router = ReferenceRouter(artifact)
    fitted = fit_baseline(router, data, seed=seed)
    ev = evaluate_artifact(router, data, split="test", baseline=True, fitted=fitted, seed=seed)
    assert ev.baseline is not None
    if plot is not None:
        from bifrost.trainer.frontier import frontier_report, plot_frontier

        plot_frontier(frontier_report(router, data, split="test", fitted=fitted), plot)
    b, d = ev.baseline, ev.baseline.score_difference
    return GoalRow(
        dataset=name, source=data.source, trials=trials, seconds=round(seconds, 1), rows=ev.rows,
        best_single=ev.best_single.name, best_single_score=ev.best_single.score, score=ev.policy.score,
        cost_vs_best=ev.policy.cost_vs_best, goal_met=ev.goal.met, score_floor=ev.goal.score_floor,
        diff_vs_best=ev.score_diff_vs_best.mean, diff_vs_best_se=ev.score_diff_vs_best.standard_error,
        baseline_score=b.policy.score, baseline_cost_vs_best=b.policy.cost_vs_best, baseline_lambda=b.cost_weight,
        diff_vs_baseline=round(d.difference, 6), diff_vs_baseline_se=round(d.standard_error, 6),
        diff_vs_baseline_lower=round(d.lower, 6), baseline_frontier_at_cost=b.frontier_score_at_cost,
        oracle_score=ev.oracle.score, oracle_cost_vs_best=ev.oracle.cost_vs_best,
        alpha=artifact.alpha, tau_cheap=artifact.thresholds.cheap, tau_hard=artifact.thresholds.hard,
        buckets=artifact.buckets, labels=report.cv.label_counts, bucket_share=ev.bucket_share,
        model_share={m: s for m, s in ev.model_share.items() if s > 0},
    )


def to_markdown(rows: Sequence[GoalRow]) -> str:
    """The README table and the routing details behind it."""
    lines = [
        "| dataset (test split) | best single model | its score | artifact score | cost vs best | goal (−2% at ≤ 50%) "
        "| logistic baseline (λ on train) | artifact − baseline ± SE | baseline frontier at the artifact's cost | oracle |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.dataset} | {r.best_single} | {r.best_single_score:.4f} | **{r.score:.4f}** | **{r.cost_vs_best:.1%}** | "
            f"{'met' if r.goal_met else 'NOT met'} ({r.score - r.score_floor:+.4f}) | {r.baseline_score:.4f} at "
            f"{r.baseline_cost_vs_best:.1%} | {r.diff_vs_baseline:+.4f} ± {r.diff_vs_baseline_se:.4f} | "
            f"{r.baseline_frontier_at_cost:.4f} ({r.score - r.baseline_frontier_at_cost:+.4f}) | "
            f"{r.oracle_score:.4f} at {r.oracle_cost_vs_best:.0%} |")
    lines += ["", "| dataset | α | τ_cheap | τ_hard | cheap bucket | mid bucket | triage labels (fit rows) | "
              "buckets on test | trained in |", "|---|---:|---:|---:|---|---|---|---|---:|"]
    for r in rows:
        lines.append(
            f"| {r.dataset} | {r.alpha:.4f} | {r.tau_cheap:.3f} | {r.tau_hard:.3f} | {', '.join(r.buckets['cheap'])} | "
            f"{', '.join(m for m in r.buckets['mid'] if m not in r.buckets['cheap']) or '(= cheap)'} | "
            f"{', '.join(f'{k} {v}' for k, v in r.labels.items())} | "
            f"{', '.join(f'{k} {v:.0%}' for k, v in r.bucket_share.items())} | {r.seconds:.0f} s |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bifrost.trainer.goals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/routing-eval/llmrouter-dc.jsonl.gz"))
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=DATASETS, action="append", help="run only these datasets")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    full = load_dataset(args.dataset)
    rows = []
    for name in args.only or DATASETS:
        row = goal_row(full, name, trials=args.trials, seed=args.seed, plot=args.out / f"frontier-{name}.png")
        print(f"{name}: score {row.score:.4f} at {row.cost_vs_best:.1%} (best single {row.best_single_score:.4f}); "
              f"goal {'met' if row.goal_met else 'NOT met'}; vs baseline {row.diff_vs_baseline:+.4f} ± "
              f"{row.diff_vs_baseline_se:.4f}", file=sys.stderr)
        rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    header = (f"# Goal on the bundled dataset and its stress variants\n\nCommand: `python -m bifrost.trainer.goals "
              f"--trials {args.trials} --seed {args.seed}` on `{args.dataset}`; each row trains on the train split "
              f"and is scored on the {rows[0].rows if rows else 0} test prompts it never saw. Frontier plots: "
              + ", ".join(f"`frontier-{r.dataset}.png`" for r in rows) + ".\n\n")
    (args.out / "quality.md").write_text(header + to_markdown(rows))
    (args.out / "quality.json").write_text(json.dumps([msgspec.to_builtins(r) for r in rows], indent=2) + "\n")
    return 0 if all(r.goal_met for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
