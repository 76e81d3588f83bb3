"""goals --merge: one table from runs of different seeds (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from bifrost.trainer.goals import GoalRow, main


def row(dataset: str, seed: int, diff: float) -> GoalRow:
    return GoalRow(
        dataset=dataset,
        seed=seed,
        source="x",
        trials=1,
        seconds=1.0,
        rows=500,
        best_single="m",
        best_single_score=0.6,
        score=0.6 + diff,
        cost_vs_best=0.45,
        goal_met=True,
        score_floor=0.588,
        diff_vs_best=diff,
        diff_vs_best_se=0.01,
        baseline_score=0.6,
        baseline_cost_vs_best=0.46,
        baseline_lambda=0.1,
        diff_vs_baseline=diff,
        diff_vs_baseline_se=0.01,
        diff_vs_baseline_lower=diff - 0.0165,
        baseline_frontier_at_cost=0.6,
        oracle_score=0.75,
        oracle_cost_vs_best=0.3,
        alpha=0.97,
        tau_cheap=1.0,
        tau_hard=0.0,
        buckets={"cheap": ["a"], "mid": ["a"], "hard": ["a", "m"]},
        labels={"cheap": 1, "mid": 0, "hard": 1},
        bucket_share={"cheap": 0.0, "mid": 0.0, "hard": 1.0},
        model_share={"m": 1.0},
        blend=0.25,
        blend_l2=100.0,
        holdout_score_share=1.0,
        holdout_cost_share=0.4,
    )


def test_merge_orders_rows_by_seed_and_summarizes(tmp_path: Path) -> None:
    for name, rows in (("b", [row("bundled", 3, -0.02), row("binary", 3, 0.01)]), ("a", [row("bundled", 0, 0.03)])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "quality.json").write_text(
            json.dumps({"rows": [msgspec.to_builtins(r) for r in rows], "refused": []})
        )
    out = tmp_path / "out"
    assert (
        main(
            [
                "--merge",
                str(tmp_path / "b" / "quality.json"),
                str(tmp_path / "a" / "quality.json"),
                "--out",
                str(out),
                "--trials",
                "7",
            ]
        )
        == 0
    )
    merged = json.loads((out / "quality.json").read_text())["rows"]
    assert [(r["dataset"], r["seed"]) for r in merged] == [("bundled", 0), ("bundled", 3), ("binary", 3)]
    text = (out / "quality.md").read_text()
    assert "--trials 7 --seed 0 --seed 3" in text
    assert "| bundled | 2 | 2 of 2 |" in text and "+0.0050 (-0.0200 to +0.0300; SE 0.0100) | 1 of 2 |" in text
    assert (
        "All 3 rows: artifact − baseline +0.0067 on average (worst -0.0200, 1 rows below, 1 significantly above, "
        "1 significantly below" in text
    )
    assert "| 0.25 / 100 |" in text
