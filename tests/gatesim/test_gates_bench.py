"""bench/gates_bench.py: the suite and its naive baseline come out of one run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gates_bench.py"


def test_the_gates_bench_writes_the_suite_and_the_naive_baseline_of_the_same_run(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gates_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--rollouts", "2", "--regression-rollouts", "3", "--baseline-rollouts", "4", "--workers", "1"]
    assert bench.main([*argv, "--only", "cost x1.3 · mix", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gates.json").read_text())
    assert [s["name"] for s in result["report"]["scenarios"]] == ["cost x1.3 · mix"]
    assert result["report"]["gates"] == "sequential" and result["report"]["scenarios"][0]["rollouts"] == 3
    assert result["baseline"]["gates"] == "naive" and result["baseline"]["scenarios"][0]["rollouts"] == 4
    markdown = (tmp_path / "gates.md").read_text()
    assert "## Baseline in the same run: naive gates" in markdown and "(naive gates)" in markdown
    # Resuming reuses both the suite's and the baseline's finished rows.
    before = (tmp_path / "gates.partial.jsonl").read_text()
    assert bench.main([*argv, "--only", "cost x1.3 · mix", "--out", str(tmp_path), "--resume"]) == 0
    assert (tmp_path / "gates.partial.jsonl").read_text() == before


def test_an_only_that_matches_no_scenario_is_a_usage_error_and_keeps_the_partial_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("gates_bench", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    partial = tmp_path / "gates.partial.jsonl"
    partial.write_text("kept\n")
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--only", "A/A · mix (false rollbacks)", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no scenario name contains 'A/A · mix (false rollbacks)'" in capsys.readouterr().err
    assert partial.read_text() == "kept\n"
