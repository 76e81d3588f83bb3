"""Data-quality assessment: each check passes on good data and fails with a reason on bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bifrost.router.artifact import BUCKETS
from bifrost.storage.dataset import FullInfoDataset, load_dataset
from bifrost.trainer.quality import (
    DataQualityError,
    ModelStats,
    QualityReport,
    QualityThresholds,
    assess_dataset,
    assess_training_set,
    require,
    shift_from_parent,
)
from tests.trainer.synthetic import make_dataset, row, write_lines

SMALL = QualityThresholds(min_train_rows=10)


def good_rows(n: int, *, start: int = 0, split: str = "train") -> list[dict[str, object]]:
    """``n`` valid rows with distinct ids and prompts over two tasks."""
    return [
        row(f"{split}-{i}", split=split, task="math" if i % 2 else "code", prompt=f"{split} question {i}: 2 + {i}?")
        for i in range(start, start + n)
    ]


def check(report: QualityReport, name: str) -> tuple[str, object]:
    """(status, value) of the named check."""
    found = [c for c in report.checks if c.name == name]
    assert len(found) == 1, name
    return found[0].status, found[0].value


def failing(report: QualityReport) -> list[str]:
    return [c.name for c in report.failures]


def test_real_dataset_passes(real_dataset: FullInfoDataset) -> None:
    report = require(assess_dataset(real_dataset))
    assert report.passed and report.rows == report.usable_rows == 6108
    assert report.splits == {"test": 500, "train": 5608}
    assert sum(report.per_task.values()) == 5608  # tasks of the train split
    assert len(report.per_model) == 9 and all(s.coverage == 1.0 for s in report.per_model.values())
    best = max(report.per_model, key=lambda m: report.per_model[m].mean_score)
    assert best == "llama-3.1-nemotron-51b-instruct"
    assert report.per_model[best].mean_score == pytest.approx(0.617, abs=1e-3)
    assert check(report, "split_overlap") == ("warn", 119)  # train rows with a test prompt's text: dropped
    assert check(report, "train_rows") == ("pass", 5608 - 119)
    assert check(report, "duplicate_prompts") == ("pass", 0)
    markdown = report.to_markdown()
    assert markdown.startswith("## Data quality: passed")
    assert "| split_overlap | warn |" in markdown


def test_good_synthetic_file_passes(tmp_path: Path) -> None:
    d = load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(20) + good_rows(5, split="test")))
    report = require(assess_dataset(d, SMALL))
    assert report.passed and not report.failures
    assert report.per_task == {"code": 10, "math": 10}
    assert report.per_model["a"].mean_score == 1.0 and report.per_model["b"].mean_cost_usd == pytest.approx(0.001)
    assert {c.name for c in report.checks} == {
        "malformed_lines",
        "models",
        "model_names",
        "label_signal",
        "label_coverage",
        "null_or_out_of_range",
        "duplicate_prompt_ids",
        "split_overlap",
        "duplicate_prompts",
        "reference_priced",
        "train_rows",
    }


def test_too_few_rows_fails_with_the_check_named(tmp_path: Path) -> None:
    d = load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(9)))
    report = assess_dataset(d, SMALL)
    assert not report.passed and failing(report) == ["train_rows"]
    with pytest.raises(DataQualityError) as caught:
        require(report)
    assert caught.value.report is report
    assert "train_rows" in str(caught.value) and "distinct prompts in split 'train'" in str(caught.value)
    assert "| train_rows | fail | 9 | >= 10 |" in report.to_markdown()
    assert report.to_markdown().startswith("## Data quality: FAILED")


def test_only_train_rows_count(tmp_path: Path) -> None:
    d = load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(5) + good_rows(30, split="test")))
    assert failing(assess_dataset(d, SMALL)) == ["train_rows"]
    as_test = assess_dataset(d, SMALL, train_split="test")  # another split can be the training one
    assert as_test.passed and check(as_test, "train_rows") == ("pass", 30)
    assert as_test.per_task == {"code": 15, "math": 15}


def test_out_of_range_scores_and_negative_costs_fail(tmp_path: Path) -> None:
    bad = [row("x1", scores={"a": 1.5, "b": 0.0}), row("x2", costs={"a": -1.0, "b": 0.1})]
    d = load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(20) + bad))
    report = assess_dataset(d, SMALL)
    assert failing(report) == ["null_or_out_of_range"]
    status, value = check(report, "null_or_out_of_range")
    assert value == pytest.approx(2 / 22, abs=1e-4)
    message = next(c.message for c in report.checks if c.name == "null_or_out_of_range")
    assert "2 out of range" in message
    assert report.usable_rows == 20
    with pytest.raises(DataQualityError, match="null_or_out_of_range"):
        require(report)


def test_missing_labels_fail_coverage_and_nulls(tmp_path: Path) -> None:
    holes = [row(f"h{i}", scores={"a": 1.0, "b": None}) for i in range(3)]
    d = load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(20) + holes))
    report = assess_dataset(d, SMALL)
    assert set(failing(report)) == {"label_coverage", "null_or_out_of_range"}
    assert report.per_model["b"].coverage == pytest.approx(20 / 23, abs=1e-4)
    assert "lowest: b" in next(c.message for c in report.checks if c.name == "label_coverage")
    assert "3 null labels" in next(c.message for c in report.checks if c.name == "null_or_out_of_range")


def test_empty_prompts_are_invalid(tmp_path: Path) -> None:
    d = load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(20) + [row("e1", prompt="   ")]))
    report = assess_dataset(d, SMALL)
    assert failing(report) == ["null_or_out_of_range"]
    assert "1 empty prompts" in next(c.message for c in report.checks if c.name == "null_or_out_of_range")


def test_malformed_lines_fail(tmp_path: Path) -> None:
    d = load_dataset(write_lines(tmp_path / "d.jsonl", [*good_rows(20), "{broken", "also broken"]))
    report = assess_dataset(d, SMALL)
    assert failing(report) == ["malformed_lines"]
    assert check(report, "malformed_lines")[1] == pytest.approx(2 / 22, abs=1e-4)
    assert "2 of 22 lines do not decode (first: line 21" in str(DataQualityError(report))
    # A tolerant threshold lets it pass.
    assert assess_dataset(d, QualityThresholds(min_train_rows=10, max_malformed_fraction=0.1)).passed


def test_duplicates_within_a_split_fail_across_splits_warn(tmp_path: Path) -> None:
    d = load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(20) + [row("train-3"), row("train-4")]))
    report = assess_dataset(d, SMALL)
    assert failing(report) == ["duplicate_prompt_ids"]
    assert "2 prompt ids repeated within a split" in str(DataQualityError(report))
    overlap = load_dataset(write_lines(tmp_path / "o.jsonl", good_rows(20) + [row("train-3", split="test")]))
    report = assess_dataset(overlap, SMALL)
    assert report.passed and check(report, "split_overlap") == ("pass", 0)  # same id, another prompt: no leak


def test_train_rows_with_an_evaluated_prompt_text_are_counted_and_dropped(tmp_path: Path) -> None:
    # The same prompt text (whatever its id, case or spacing) in the test split: those train rows never train.
    train = good_rows(20)
    test = [row("t-1", split="test", prompt="TRAIN question 3:   2 + 3?"), row("t-2", split="test", prompt="new one")]
    d = load_dataset(write_lines(tmp_path / "d.jsonl", train + test))
    report = assess_dataset(d, SMALL)
    assert report.passed and check(report, "split_overlap") == ("warn", 1)
    assert check(report, "train_rows") == ("pass", 19)
    assert "dropped from training" in report.to_markdown()
    kept, dropped = d.training_split("train")
    assert dropped == 1 and len(kept) == 19 and "train question 3: 2 + 3?" not in kept.prompts
    # Too few left after dropping: the run stops at data quality.
    leaky = load_dataset(
        write_lines(
            tmp_path / "l.jsonl",
            train + [row(f"t{i}", split="test", prompt=f"train question {i}: 2 + {i}?") for i in range(15)],
        )
    )
    assert failing(assess_dataset(leaky, SMALL)) == ["train_rows"]


def test_repeated_prompts_with_conflicting_scores_warn(tmp_path: Path) -> None:
    same = [
        row("d1", prompt="Is it?", scores={"a": 1.0, "b": 0.0}),
        row("d2", prompt="is  it?", scores={"a": 1.0, "b": 0.0}),
    ]
    conflict = [
        row("c1", prompt="Why?", scores={"a": 1.0, "b": 0.0}),
        row("c2", prompt="why?", scores={"a": 0.0, "b": 1.0}),
    ]
    report = assess_dataset(load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(20) + same + conflict)), SMALL)
    assert report.passed and check(report, "duplicate_prompts") == ("warn", 1)
    message = next(c.message for c in report.checks if c.name == "duplicate_prompts")
    assert message.startswith("2 prompt texts repeated in split 'train' (4 rows), 1 of them with different scores")


def test_single_model_fails(tmp_path: Path) -> None:
    rows = [row(f"p{i}", scores={"a": 0.5 * (i % 2)}, costs={"a": 0.1}) for i in range(20)]
    report = assess_dataset(load_dataset(write_lines(tmp_path / "d.jsonl", rows)), SMALL)
    assert failing(report) == ["models"]


def test_training_set_checks() -> None:
    d = make_dataset(np.tile([1.0, 0.0], (40, 1)), np.ones((40, 2)))
    report = assess_dataset(d, SMALL)
    clusters = np.array([0] * 20 + [1] * 18 + [2] * 2)
    labels = np.array([0] * 20 + [1] * 12 + [2] * 8)
    assess_training_set(report, clusters, labels, n_clusters=4, classes=BUCKETS, thresholds=SMALL)
    assert report.per_cluster == {"0": 20, "1": 18, "2": 2, "3": 0}
    assert report.per_bucket == {"cheap": 20, "mid": 12, "hard": 8}
    assert check(report, "cluster_sizes") == ("warn", 0)
    # 8 < 10 rows in the smallest class: a warning (the search decides how much to use the gate), not a stop.
    assert check(report, "class_balance")[0] == "warn"
    assert failing(report) == [] and report.passed
    assert "Samples per bucket: cheap=20, mid=12, hard=8" in report.to_markdown()
    assert "a thin class" in report.to_markdown()


def test_class_balance_warns_on_a_small_share() -> None:
    report = QualityReport(source="x")
    labels = np.array([0] * 500 + [1] * 480 + [2] * 20)
    assess_training_set(report, np.zeros(1000, dtype=np.int64), labels, n_clusters=1, classes=BUCKETS)
    assert check(report, "class_balance") == ("warn", 0.02)
    assert check(report, "cluster_sizes")[0] == "pass"
    assert report.passed


def test_all_costs_zero_is_refused_with_the_reason(tmp_path: Path) -> None:
    # Every cost is a share of the best model's: with no price the run would divide by zero.
    free = [
        row(f"train-{i}", prompt=f"question {i}", task="math" if i % 2 else "code", costs={"a": 0.0, "b": 0.0})
        for i in range(20)
    ]
    report = assess_dataset(load_dataset(write_lines(tmp_path / "d.jsonl", free)), SMALL)
    assert failing(report) == ["reference_priced"]
    assert check(report, "reference_priced") == ("fail", 0.0)
    # A free model that is not the best one is fine: only the reference needs a price.
    cheap_b = [{**r, "cost_usd": {"a": 0.002, "b": 0.0}} for r in free]
    assert assess_dataset(load_dataset(write_lines(tmp_path / "e.jsonl", cheap_b)), SMALL).passed


def test_an_empty_model_id_is_refused(tmp_path: Path) -> None:
    rows = [{**r, "scores": {"a": 1.0, " ": 0.0}, "cost_usd": {"a": 0.002, " ": 0.001}} for r in good_rows(20)]
    report = assess_dataset(load_dataset(write_lines(tmp_path / "d.jsonl", rows)), SMALL)
    assert failing(report) == ["model_names"] and check(report, "model_names") == ("fail", 1)


def test_absurd_costs_count_as_invalid_values(tmp_path: Path) -> None:
    # 1e300 USD for a call decodes fine but is no price: it counts toward max_invalid_fraction like a
    # negative cost, the report says how many, and the row is dropped rather than swamping the means.
    absurd = [row("x1", costs={"a": 1e300, "b": 0.001}), row("x2", costs={"a": 0.002, "b": 1000.5})]
    d = load_dataset(write_lines(tmp_path / "d.jsonl", good_rows(20) + absurd))
    report = assess_dataset(d, SMALL)
    assert failing(report) == ["null_or_out_of_range"] and report.usable_rows == 20
    assert check(report, "null_or_out_of_range")[1] == pytest.approx(2 / 22, abs=1e-4)
    message = next(c.message for c in report.checks if c.name == "null_or_out_of_range")
    assert "2 out of range (0 scores ∉ [0,1], 2 costs negative, infinite or above 1000 USD per call)" in message
    # Within a tolerant threshold the rows are dropped: the reference's mean cost is the real one.
    tolerant = assess_dataset(d, QualityThresholds(min_train_rows=10, max_invalid_fraction=0.1))
    assert tolerant.passed and check(tolerant, "reference_priced")[1] == pytest.approx(0.002)


def test_non_finite_costs_in_memory_are_invalid_not_null() -> None:
    costs = np.full((200, 2), 0.001)
    costs[0, 0], costs[1, 1], costs[2, 0] = np.inf, -np.inf, np.nan
    d = make_dataset(np.full((200, 2), 0.5), costs, prompts=[f"prompt {i}" for i in range(200)])
    report = assess_dataset(d, QualityThresholds(min_train_rows=10, max_invalid_fraction=0.0))
    assert "null_or_out_of_range" in failing(report) and report.usable_rows == 197
    message = next(c.message for c in report.checks if c.name == "null_or_out_of_range")
    assert message.startswith("1 null labels, 2 out of range (0 scores ∉ [0,1], 2 costs negative, infinite")


def test_warnings_are_the_checks_that_warn(tmp_path: Path) -> None:
    d = load_dataset(
        write_lines(tmp_path / "d.jsonl", good_rows(20) + [row("t0", split="test", prompt="train question 3: 2 + 3?")])
    )
    report = assess_dataset(d, SMALL)
    assert report.passed and [c.name for c in report.warnings] == ["split_overlap"]


def test_shift_from_parent_is_relative_to_the_scale_and_sees_new_models() -> None:
    def report(means: dict[str, float], rows: int = 5600) -> QualityReport:
        stats = {m: ModelStats(coverage=1.0, mean_score=v, mean_cost_usd=1.0) for m, v in means.items()}
        return QualityReport(source="x", usable_rows=rows, per_model=stats)

    def parent(means: dict[str, float], rows: int = 5600) -> dict[str, object]:
        return {"usable_rows": rows, "per_model": {m: {"mean_score": v} for m, v in means.items()}}

    def names(now: QualityReport, before: dict[str, object]) -> list[str]:
        return [c.name for c in shift_from_parent(now, before)]

    # Scores on a 0–0.08 scale: one model's passes zeroed (0.049 → 0.001) is a shift though it is < 0.05.
    assert names(report({"a": 0.001, "b": 0.04}), parent({"a": 0.049, "b": 0.04})) == [
        "label_shift",
        "best_model_shift",
    ]
    assert names(report({"a": 0.049, "b": 0.001}), parent({"a": 0.049, "b": 0.04})) == ["label_shift"]
    # 3% poisoning of the best model (0.617 → 0.598) is noise-sized: no warning; the same data: none.
    assert names(report({"a": 0.598, "b": 0.55}), parent({"a": 0.617, "b": 0.55})) == []
    assert names(report({"a": 0.617, "b": 0.55}), parent({"a": 0.617, "b": 0.55})) == []
    # A new model that is now the best is named as such.
    checks = shift_from_parent(report({"a": 0.617, "b": 0.55, "new": 0.7}), parent({"a": 0.617, "b": 0.55}))
    assert [c.name for c in checks] == ["best_model_shift"] and "did not have" in checks[0].message
    # Nothing recorded: nothing to compare.
    assert names(report({"a": 0.5}), {}) == []
