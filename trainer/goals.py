"""The bootstrap goal on a dataset and its stress variants, against the baseline to beat.

For each dataset (the bundled one and every :mod:`bifrost.trainer.stress` variant) this
trains an artifact on the train split exactly as ``bifrost-opt train`` does, then, on
the test split it never saw:

* the goal: score ≥ best single model −2% (relative) at ≤ 50% of its cost — the "best
  single model" (reference) is the train split's best; when the test split's own best
  differs, both are reported;
* the logistic-regression baseline (:mod:`bifrost.trainer.baseline`, λ chosen on the
  train split to spend what the artifact spends): artifact − baseline score, paired
  bootstrap standard error, and the baseline's own frontier at the artifact's cost;
* the oracle, and how the artifact routes (buckets, labels, models).

No test prompt is trained on: training (and the baseline's fit) drop every train row whose
normalized prompt text is in the test split (``dropped_overlap`` per row).

``python -m bifrost.trainer.goals [--trials 200] [--seed 0 --seed 1 …] [--out bench/results]``
writes ``quality.md`` and ``quality.json`` (the README table) and a frontier plot per
dataset (first seed). A run refused by the trainer (unreachable target, failed validation)
is a row saying so, not a crash.
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
from bifrost.storage.dataset import FullInfoDataset, load_dataset
from bifrost.trainer.bootstrap import BootstrapConfig, bootstrap_artifact
from bifrost.trainer.evaluate import evaluate_artifact, fit_baseline
from bifrost.trainer.stress import VARIANTS, stress_variant
from bifrost.trainer.validate import TargetUnreachable, ValidationFailed

DATASETS: tuple[str, ...] = ("bundled", *VARIANTS)
# The datasets the goal is promised on (issue 10's must-show); ``noisy`` is reported beside them.
PROMISED: tuple[str, ...] = ("bundled", "binary", "premium", "specialist")


class GoalRow(msgspec.Struct, frozen=True, kw_only=True):
    """One dataset's result on its test split."""

    dataset: str
    seed: int = 0
    dropped_overlap: int = 0
    reference_chosen_on: str = "train split"
    best_on_test: str | None = None  # the test split's own best model, when it is not the reference
    best_on_test_score: float | None = None
    holdout_score_share: float | None = None
    holdout_cost_share: float | None = None
    search_cost_upper: float | None = None
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
    blend: float | None = None  # tree weight of q̂ (the rest: logistic regression), chosen by CV on the fit rows
    blend_l2: float | None = None


def variant(full: FullInfoDataset, name: str) -> FullInfoDataset:
    """The bundled dataset itself, or one of its stress variants."""
    return full if name == "bundled" else stress_variant(full, name)


def goal_row(
    full: FullInfoDataset,
    name: str,
    *,
    trials: int = 200,
    seed: int = 0,
    config: BootstrapConfig | None = None,
    plot: Path | None = None,
) -> GoalRow:
    """Train on ``name``'s train split, evaluate on its test split (see the module docstring)."""
    data = variant(full, name)
    started = time.perf_counter()
    artifact, report = bootstrap_artifact(
        data, trials=trials, seed=seed, signing_key=Ed25519PrivateKey.generate(), config=config
    )
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
        dataset=name,
        seed=seed,
        dropped_overlap=int(report.rows.get("dropped_overlap", 0)),
        reference_chosen_on=ev.reference_chosen_on,
        best_on_test=None if ev.best_on_split is None else ev.best_on_split.name,
        best_on_test_score=None if ev.best_on_split is None else ev.best_on_split.score,
        holdout_score_share=report.validation.candidate.score_vs_best,
        holdout_cost_share=report.validation.candidate.cost_vs_best,
        search_cost_upper=report.search.cost_upper,
        source=data.source,
        trials=trials,
        seconds=round(seconds, 1),
        rows=ev.rows,
        best_single=ev.best_single.name,
        best_single_score=ev.best_single.score,
        score=ev.policy.score,
        cost_vs_best=ev.policy.cost_vs_best,
        goal_met=ev.goal.met,
        score_floor=ev.goal.score_floor,
        diff_vs_best=ev.score_diff_vs_best.mean,
        diff_vs_best_se=ev.score_diff_vs_best.standard_error,
        baseline_score=b.policy.score,
        baseline_cost_vs_best=b.policy.cost_vs_best,
        baseline_lambda=b.cost_weight,
        diff_vs_baseline=round(d.difference, 6),
        diff_vs_baseline_se=round(d.standard_error, 6),
        diff_vs_baseline_lower=round(d.lower, 6),
        baseline_frontier_at_cost=b.frontier_score_at_cost,
        oracle_score=ev.oracle.score,
        oracle_cost_vs_best=ev.oracle.cost_vs_best,
        alpha=artifact.alpha,
        tau_cheap=artifact.thresholds.cheap,
        tau_hard=artifact.thresholds.hard,
        buckets=artifact.buckets,
        labels=report.cv.label_counts,
        bucket_share=ev.bucket_share,
        model_share={m: s for m, s in ev.model_share.items() if s > 0},
        blend=report.outcomes.linear_blend,
        blend_l2=report.outcomes.linear_l2,
    )


class RefusedRow(msgspec.Struct, frozen=True, kw_only=True):
    """A dataset and seed whose training was refused (nothing signed): why."""

    dataset: str
    seed: int
    reason: str


def to_markdown(rows: Sequence[GoalRow], refused: Sequence[RefusedRow] = ()) -> str:
    """The README table, a per-dataset summary over seeds, and the routing details behind them."""
    lines = [
        "| dataset (test split) | seed | best single model (chosen on train) | its score | "
        "artifact score | cost vs best "
        "| goal (−2% at ≤ 50%) | logistic baseline (λ on train) | artifact − baseline ± SE | baseline frontier at the "
        "artifact's cost | oracle |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        best = r.best_single + (
            f" (test's best: {r.best_on_test} {r.best_on_test_score:.4f})" if r.best_on_test else ""
        )
        lines.append(
            f"| {r.dataset} | {r.seed} | {best} | {r.best_single_score:.4f} | **{r.score:.4f}** | "
            f"**{r.cost_vs_best:.1%}** | "
            f"{'met' if r.goal_met else 'NOT met'} ({r.score - r.score_floor:+.4f}) | {r.baseline_score:.4f} at "
            f"{r.baseline_cost_vs_best:.1%} | {r.diff_vs_baseline:+.4f} ± {r.diff_vs_baseline_se:.4f} | "
            f"{r.baseline_frontier_at_cost:.4f} ({r.score - r.baseline_frontier_at_cost:+.4f}) | "
            f"{r.oracle_score:.4f} at {r.oracle_cost_vs_best:.0%} |"
        )
    for f in refused:
        lines.append(f"| {f.dataset} | {f.seed} | refused, nothing signed: {f.reason} | | | | NOT met | | | | |")
    names = list(dict.fromkeys(r.dataset for r in rows))
    if len(rows) > len(names):
        lines += [
            "",
            "Over seeds (mean, and the range): ",
            "",
            "| dataset | seeds | goal met | score | cost vs best | artifact − baseline (mean SE) | seeds below "
            "the baseline | artifact − baseline frontier at its cost |",
            "|---|---:|---:|---|---|---|---:|---|",
        ]
        for name in names:
            mine = [r for r in rows if r.dataset == name]
            fails = [f for f in refused if f.dataset == name]
            score = [r.score for r in mine]
            cost = [r.cost_vs_best for r in mine]
            diff = [r.diff_vs_baseline for r in mine]
            front = [r.score - r.baseline_frontier_at_cost for r in mine]
            lines.append(
                f"| {name} | {len(mine) + len(fails)} | {sum(r.goal_met for r in mine)} of {len(mine) + len(fails)} | "
                f"{np.mean(score):.4f} ({min(score):.4f}–{max(score):.4f}) | {np.mean(cost):.1%} ({min(cost):.1%}–"
                f"{max(cost):.1%}) | {np.mean(diff):+.4f} ({min(diff):+.4f} to {max(diff):+.4f}; SE "
                f"{np.mean([r.diff_vs_baseline_se for r in mine]):.4f}) | {sum(d < 0 for d in diff)} of {len(mine)} | "
                f"{np.mean(front):+.4f} ({min(front):+.4f} to {max(front):+.4f}) |"
            )
        diff_all = [r.diff_vs_baseline for r in rows]
        front_all = [r.score - r.baseline_frontier_at_cost for r in rows]
        lines += [
            "",
            f"All {len(rows)} rows: artifact − baseline {np.mean(diff_all):+.4f} on average (worst "
            f"{min(diff_all):+.4f}, {sum(d < 0 for d in diff_all)} rows below, "
            f"{sum(r.diff_vs_baseline_lower > 0 for r in rows)} significantly above, "
            f"{sum(r.diff_vs_baseline + 1.645 * r.diff_vs_baseline_se < 0 for r in rows)} "
            "significantly below, one-sided 95%); "
            f"against the baseline's frontier at the artifact's cost {np.mean(front_all):+.4f} (worst "
            f"{min(front_all):+.4f}). Every seed scores the same 500 test prompts, so the mean over seeds "
            "averages training randomness, not test-sampling noise: its standard error is about one row's.",
        ]
    lines += [
        "",
        "Training rows dropped because their prompt text is in the test split: "
        + ", ".join(f"{r.dataset} {r.dropped_overlap}" for r in rows if r.seed == rows[0].seed)
        + ". "
        "Held-out (train-split holdout) shares of the trained artifact: "
        + "; ".join(
            f"{r.dataset}/{r.seed} score {r.holdout_score_share:.1%} cost {r.holdout_cost_share:.1%}"
            + (f" (search's 95% bound {r.search_cost_upper:.1%})" if r.search_cost_upper else "")
            for r in rows
        )
        + ".",
    ]
    lines += [
        "",
        "| dataset | seed | α | τ_cheap | τ_hard | cheap bucket | mid bucket | triage labels (fit rows) | "
        "buckets on test | q̂ tree weight / L2 (CV) | trained in |",
        "|---|---:|---:|---:|---:|---|---|---|---|---|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.dataset} | {r.seed} | {r.alpha:.4f} | {r.tau_cheap:.3f} | {r.tau_hard:.3f} | "
            f"{', '.join(r.buckets['cheap'])} | "
            f"{', '.join(m for m in r.buckets['mid'] if m not in r.buckets['cheap']) or '(= cheap)'} | "
            f"{', '.join(f'{k} {v}' for k, v in r.labels.items())} | "
            f"{', '.join(f'{k} {v:.0%}' for k, v in r.bucket_share.items())} | "
            f"{'trees only' if r.blend is None else f'{r.blend:g} / {r.blend_l2:g}'} | {r.seconds:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bifrost.trainer.goals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/routing-eval/llmrouter-dc.jsonl.gz"))
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, action="append", help="seed of a run (repeat for several; default 0)")
    parser.add_argument("--only", choices=DATASETS, action="append", help="run only these datasets")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="QUALITY_JSON",
        help="no training: write quality.md/json from these runs' quality.json (e.g. seeds run in "
        "parallel processes), rows in the order given",
    )
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out, args.dataset, args.trials)
    seeds = args.seed or [0]
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    full = load_dataset(args.dataset)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[GoalRow] = []
    refused: list[RefusedRow] = []
    for seed in seeds:
        for name in args.only or DATASETS:
            plot = args.out / f"frontier-{name}.png" if seed == seeds[0] else None
            try:
                row = goal_row(full, name, trials=args.trials, seed=seed, plot=plot)
            except (ValidationFailed, TargetUnreachable) as exc:
                refused.append(RefusedRow(dataset=name, seed=seed, reason=str(exc)))
                print(f"{name} seed {seed}: refused: {exc}", file=sys.stderr)
                continue
            print(
                f"{name} seed {seed}: score {row.score:.4f} at {row.cost_vs_best:.1%} (best single "
                f"{row.best_single_score:.4f}); goal {'met' if row.goal_met else 'NOT met'}; vs baseline "
                f"{row.diff_vs_baseline:+.4f} ± {row.diff_vs_baseline_se:.4f}",
                file=sys.stderr,
            )
            rows.append(row)
    write(rows, refused, args.out, args.dataset, args.trials, args.only or DATASETS)
    return 0 if not refused and all(r.goal_met for r in rows) else 1


def write(
    rows: Sequence[GoalRow], refused: Sequence[RefusedRow], out: Path, dataset: Path, trials: int, names: Sequence[str]
) -> None:
    """``quality.md`` (header and :func:`to_markdown`) and ``quality.json`` into ``out``."""
    seeds = list(dict.fromkeys([*(r.seed for r in rows), *(f.seed for f in refused)]))
    header = (
        f"# Goal on the bundled dataset and its stress variants\n\nCommand: `python -m bifrost.trainer.goals "
        f"--trials {trials} " + " ".join(f"--seed {s}" for s in seeds) + f"` on `{dataset}` (seeds may run in "
        f"separate processes, then `--merge`); each row "
        f"trains on the train split (minus every row whose prompt text is in the test split) and is scored on "
        f"the {rows[0].rows if rows else 0} test prompts it never saw. Frontier plots (seed "
        f"{seeds[0] if seeds else 0}): " + ", ".join(f"`frontier-{name}.png`" for name in names) + ".\n\n"
    )
    (out / "quality.md").write_text(header + to_markdown(rows, refused))
    (out / "quality.json").write_text(
        json.dumps(
            {"rows": [msgspec.to_builtins(r) for r in rows], "refused": [msgspec.to_builtins(f) for f in refused]},
            indent=2,
        )
        + "\n"
    )


def merge(files: Sequence[Path], out: Path, dataset: Path, trials: int) -> int:
    """Write one table from several runs' ``quality.json`` (:func:`write`)."""
    rows: list[GoalRow] = []
    refused: list[RefusedRow] = []
    for file in files:
        data = json.loads(file.read_text())
        rows += [msgspec.convert(r, GoalRow) for r in data["rows"]]
        refused += [msgspec.convert(f, RefusedRow) for f in data["refused"]]
    rows.sort(key=lambda r: (r.seed, DATASETS.index(r.dataset) if r.dataset in DATASETS else len(DATASETS)))
    out.mkdir(parents=True, exist_ok=True)
    write(rows, refused, out, dataset, trials, list(dict.fromkeys(r.dataset for r in rows)))
    return 0 if not refused and all(r.goal_met for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
