"""Offline evaluation and validation: hand-computed on a tiny dataset, sanity on the real one."""

from __future__ import annotations

import dataclasses
import math

import msgspec
import numpy as np
import pytest

from bifrost.router.artifact import Artifact
from bifrost.router.reference import ReferenceRouter
from bifrost.storage.dataset import FullInfoDataset
from bifrost.trainer.bootstrap import BootstrapReport
from bifrost.trainer.evaluate import (
    EvaluationError,
    TrainedPrompts,
    evaluate_artifact,
    fit_baseline,
    routed_choices,
    trained_prompts,
)
from bifrost.trainer.validate import ValidationFailed, decision_times, validate_candidate
from tests.router.artifacts import CODE_PROMPTS, QUESTION_PROMPTS, make_artifact
from tests.trainer.conftest import REAL_DATASET, require_real_dataset
from tests.trainer.synthetic import make_dataset

MODELS = ("large", "medium", "small")
NAN = float("nan")


def tiny() -> FullInfoDataset:
    """Six test prompts (3 code, 3 questions), one train row and one test row with a missing label.

    The default hand-made artifact routes code → medium and questions → small (see
    tests/router/test_reference.py). Scores: large is always right; medium is right on code
    and 0.9 on questions; small is wrong on code and 0.5 on questions. Costs: 1.0, 0.3, 0.1.
    """
    code, questions = [1.0, 1.0, 0.0], [1.0, 0.9, 0.5]
    scores = np.array([code] * 3 + [questions] * 3 + [code, [1.0, NAN, 0.0]])
    costs = np.tile([1.0, 0.3, 0.1], (8, 1))
    return make_dataset(
        scores,
        costs,
        prompts=CODE_PROMPTS + QUESTION_PROMPTS + ["train row", "bad row"],
        tasks=["code"] * 3 + ["qa"] * 3 + ["code", "code"],
        splits=["test"] * 6 + ["train", "test"],
        models=MODELS,
    )


def test_evaluation_by_hand() -> None:
    report = evaluate_artifact(make_artifact(), tiny())
    assert report.rows == 6 and report.split == "test" and report.artifact == "v-test-1"
    p = report.policy
    assert p.name == "artifact v-test-1" and p.score == 0.75 and p.cost_usd == pytest.approx(0.2)
    assert (p.score_vs_best, p.cost_vs_best) == (0.75, 0.2)
    assert report.best_single.name == "large" and report.best_single.score == 1.0
    assert report.cheapest_single.name == "small" and report.cheapest_single.score == 0.25
    # Oracle: code → medium (cheapest of the best), questions → large.
    assert report.oracle.score == 1.0 and report.oracle.cost_usd == pytest.approx(0.65)
    assert [s.name for s in report.singles] == ["large", "medium", "small"]
    assert [s.score for s in report.singles] == [1.0, 0.95, 0.25]
    assert report.model_share == {"large": 0.0, "medium": 0.5, "small": 0.5}
    assert report.bucket_share == {"cheap": 0.0, "mid": 1.0, "hard": 0.0}
    code, qa = report.per_task["code"], report.per_task["qa"]
    assert (code.rows, code.score, code.oracle_score) == (3, 1.0, 1.0) and code.cost_usd == pytest.approx(0.3)
    assert (qa.rows, qa.score, qa.best_single_score, qa.oracle_score) == (3, 0.5, 1.0, 1.0)
    assert qa.cost_usd == pytest.approx(0.1)
    assert code.against_score is None
    goal = report.goal
    assert goal.score_floor == 0.98 and goal.cost_ceiling_usd == 0.5
    assert (goal.score_ok, goal.cost_ok, goal.met) == (False, True, False)
    assert goal.score_margin == pytest.approx(-0.23)
    diff = report.score_diff_vs_best
    se = math.sqrt(6 * 0.25**2 / 5) / math.sqrt(6)  # differences [0, 0, 0, −.5, −.5, −.5]
    assert diff.mean == -0.25 and diff.standard_error == pytest.approx(se, abs=1e-6)
    assert diff.ci95 == pytest.approx((-0.25 - 1.96 * se, -0.25 + 1.96 * se), abs=1e-6)
    markdown = report.to_markdown()
    assert "| artifact v-test-1 | 0.7500 |" in markdown and "NOT met" in markdown
    assert "Routed to: medium 50.0%, small 50.0%" in markdown
    assert msgspec.json.decode(report.to_json())["policy"]["score"] == 0.75


def test_against_another_artifact() -> None:
    # α = 1 and τ_hard = 0.3: every prompt is "hard" and goes to the best Q̂ (large).
    other = make_artifact(alpha=1.0, hard=0.3, version="v-quality")
    report = evaluate_artifact(ReferenceRouter(make_artifact()), tiny(), against=other)
    assert report.against is not None
    assert (report.against.name, report.against.score, report.against.cost_usd) == ("against v-quality", 1.0, 1.0)
    assert report.per_task["qa"].against_score == 1.0 and report.per_task["qa"].against_cost_usd == 1.0
    assert "| against v-quality |" in report.to_markdown()


def test_splits() -> None:
    data = tiny()
    assert evaluate_artifact(make_artifact(), data, split="train").rows == 1
    assert evaluate_artifact(make_artifact(), data, split="all").rows == 7  # the unlabelled row is dropped
    with pytest.raises(EvaluationError, match="no usable rows in split 'nope'"):
        evaluate_artifact(make_artifact(), data, split="nope")


def test_unknown_models_cannot_be_evaluated() -> None:
    data = tiny()
    two = make_dataset(
        data.scores[:, :2],
        data.costs[:, :2],
        prompts=data.prompts,
        models=("large", "medium"),
        splits=list(data.splits),
    )
    with pytest.raises(
        EvaluationError,
        match=r"routes to 3 models; .* has labels for 2 of them \(large, medium\)\. "
        r"Missing: small\.",
    ):
        evaluate_artifact(make_artifact(), two)
    with pytest.raises(EvaluationError, match="Missing: small"):  # fitting the baseline first says the same
        fit_baseline(ReferenceRouter(make_artifact()), two)


def test_routed_choices_map_to_dataset_columns() -> None:
    data = tiny().split("test")
    extra = make_dataset(
        np.column_stack([np.zeros(len(data)), data.scores]),
        np.column_stack([np.zeros(len(data)), data.costs]),
        prompts=data.prompts,
        models=("aaa", *MODELS),
    )
    columns, buckets = routed_choices(ReferenceRouter(make_artifact()), extra)
    assert [extra.models[c] for c in columns] == ["medium"] * 3 + ["small"] * 3 + ["small"]
    assert set(buckets.tolist()) == {1}


# -- validation -----------------------------------------------------------------------------


def test_validation_without_parent_uses_the_cheapest_model_floor() -> None:
    report = validate_candidate(
        ReferenceRouter(make_artifact()), tiny().split("test"), decision_slo_ms=1000.0, min_rows=5
    )
    assert report.passed and report.parent is None and report.rows == 6  # the unlabelled row is dropped
    assert [c.name for c in report.checks] == ["enough_rows", "quality_floor", "decision_latency"]
    floor = report.checks[1]
    assert floor.passed and floor.threshold == report.cheapest_single.score
    assert set(report.decision_ms) == {"p50", "p99", "mean"}
    assert "## Validation: passed (6 held-out rows)" in report.to_markdown()


def test_validation_against_a_better_parent_fails() -> None:
    parent = ReferenceRouter(make_artifact(alpha=1.0, hard=0.3, version="v-quality"))
    report = validate_candidate(
        ReferenceRouter(make_artifact()), tiny().split("test"), parent=parent, decision_slo_ms=1000.0, min_rows=5
    )
    assert not report.passed
    checks = {c.name: c for c in report.checks}
    assert checks["enough_rows"].passed
    assert not checks["quality_non_inferior"].passed
    assert report.parent is not None
    # The test reads the lower confidence bound of the paired difference against −2% of the parent's score.
    assert checks["quality_non_inferior"].threshold == pytest.approx(-0.02 * report.parent.score)
    assert report.difference is not None and checks["quality_non_inferior"].value == report.difference.lower
    assert report.difference.difference == pytest.approx(report.candidate.score - report.parent.score, abs=1e-6)
    assert checks["cost_not_higher"].passed  # cheaper than the parent
    assert "| quality_non_inferior | NO |" in report.to_markdown()
    assert "Score difference candidate − current:" in report.to_markdown()
    error = ValidationFailed(report)
    assert error.report is report and "quality_non_inferior" in str(error) and "cost_not_higher" not in str(error)
    # The roles reversed: the parent is cheaper and worse, so cost fails and quality passes.
    reverse = validate_candidate(
        parent, tiny().split("test"), parent=ReferenceRouter(make_artifact()), decision_slo_ms=1000.0, min_rows=5
    )
    assert [c.name for c in reverse.checks if not c.passed] == ["cost_not_higher"]
    costly = next(c for c in reverse.checks if c.name == "cost_not_higher")
    # The one-line refusal carries the figures, not only the check's name.
    assert f"({costly.value:.4g} vs {costly.threshold:.4g}, +" in str(ValidationFailed(reverse))


def test_a_chain_of_retrains_cannot_drift_from_its_first_artifact() -> None:
    # An outside test retrained four times, each within the margin of its parent, and the last
    # was −0.030 ± 0.012 below the first. The lineage's first artifact is compared with too.
    data = tiny().split("test")
    first = ReferenceRouter(make_artifact(alpha=1.0, hard=0.3, version="v-first"))
    step = ReferenceRouter(make_artifact(version="v-step"))  # the candidate's parent: the same routing
    drifted = validate_candidate(
        ReferenceRouter(make_artifact()), data, parent=step, root=first, decision_slo_ms=1000.0, min_rows=5
    )
    checks = {c.name: c for c in drifted.checks}
    assert checks["quality_non_inferior"].passed and checks["cost_not_higher"].passed  # fine against its parent
    assert not drifted.passed and not checks["quality_non_inferior_to_root"].passed
    assert "v-first" in checks["quality_non_inferior_to_root"].message
    same = validate_candidate(
        ReferenceRouter(make_artifact()), data, parent=step, root=step, decision_slo_ms=1000.0, min_rows=5
    )
    assert same.passed and {c.name: c for c in same.checks}["quality_non_inferior_to_root"].passed
    # A first artifact that trained on the held-out prompts cannot be compared with: refused, saying how to go on.
    seen = TrainedPrompts.of(data.prompts)
    blind = validate_candidate(
        ReferenceRouter(make_artifact()),
        data,
        parent=step,
        root=step,
        root_trained=seen,
        decision_slo_ms=1000.0,
        min_rows=5,
    )
    check = {c.name: c for c in blind.checks}["quality_non_inferior_to_root"]
    assert not check.passed and check.value == 0 and "--no-parent" in check.message


def test_a_point_estimate_inside_the_margin_is_not_enough() -> None:
    # Candidate and parent differ on a few prompts by ±1: the mean difference is −1/60 (inside −2%),
    # but 60 prompts cannot bound it above −2%: refused, and the report says why.
    n = 60
    scores = np.column_stack([np.ones(n), np.ones(n), np.ones(n)])
    scores[:3, 1] = 0.0  # medium fails 3 of the parent's prompts...
    scores[3:5, 0] = 0.0  # ...and large fails 2 of them
    data = make_dataset(
        scores,
        np.column_stack([np.full(n, 1.0), np.full(n, 0.3), np.full(n, 0.1)]),
        prompts=[CODE_PROMPTS[i % 3] + f" #{i}" for i in range(n)],
        models=MODELS,
    )
    parent = ReferenceRouter(make_artifact(alpha=1.0, hard=0.3, version="v-quality"))  # large everywhere
    candidate = ReferenceRouter(make_artifact())  # medium for code prompts
    report = validate_candidate(candidate, data, parent=parent, decision_slo_ms=1000.0, min_rows=10)
    assert report.difference is not None
    assert report.difference.difference == pytest.approx(-1 / 60)  # −3/60 + 2/60
    assert report.parent is not None
    assert -0.02 * report.parent.score < report.difference.difference  # the point estimate alone would pass
    check = next(c for c in report.checks if c.name == "quality_non_inferior")
    assert not check.passed and "too few rows for a decision" in check.message


def test_too_few_rows_for_a_decision_are_refused() -> None:
    parent = ReferenceRouter(make_artifact(alpha=0.0, version="v-cheap"))
    report = validate_candidate(
        ReferenceRouter(make_artifact()), tiny().split("test"), parent=parent, decision_slo_ms=1000.0
    )
    assert not report.passed
    enough = next(c for c in report.checks if c.name == "enough_rows")
    assert not enough.passed and enough.value == 6 and enough.threshold == 100
    assert "too few for a decision" in enough.message
    assert "enough_rows" in str(ValidationFailed(report))


def test_a_first_artifact_needs_enough_rows_too() -> None:
    # No parent: the knob and the quality floor are read on the holdout, so 6 rows are still too few.
    report = validate_candidate(ReferenceRouter(make_artifact()), tiny().split("test"), decision_slo_ms=1000.0)
    assert not report.passed and report.parent is None
    assert [c.name for c in report.checks if not c.passed] == ["enough_rows"]


def test_unusable_rows_are_said_and_refused_above_one_percent() -> None:
    data = tiny()
    report = evaluate_artifact(make_artifact(), data, split="all")
    assert report.rows == 7 and report.unusable_rows == 1  # the unlabelled row is left out, and counted
    assert report.unusable_problem() is not None and "1 of the 8 rows" in str(report.unusable_problem())
    assert "Left out: 1 unusable rows" in report.to_markdown()
    clean = evaluate_artifact(make_artifact(), data, split="train")
    assert clean.unusable_rows == 0 and clean.unusable_problem() is None
    assert "Left out" not in clean.to_markdown()


def test_latency_check_is_reported() -> None:
    # A negative budget cannot be met whatever the machine: the check fails and says so.
    report = validate_candidate(
        ReferenceRouter(make_artifact()), tiny().split("test"), decision_slo_ms=-1.0, min_rows=5
    )
    assert [c.name for c in report.checks if not c.passed] == ["decision_latency"]


def test_decision_times() -> None:
    router = ReferenceRouter(make_artifact())
    assert decision_times(router, []) == {"p50": 0.0, "p99": 0.0, "mean": 0.0}
    times = decision_times(router, CODE_PROMPTS * 3, sample=4)
    assert set(times) == {"p50", "p99", "mean"} and all(v >= 0 for v in times.values())


# -- the real dataset -----------------------------------------------------------------------


def test_bootstrapped_artifact_on_the_real_test_split(bootstrapped: tuple[Artifact, BootstrapReport]) -> None:
    artifact, _ = bootstrapped
    report = evaluate_artifact(artifact, require_real_dataset())
    assert report.rows == 500 and report.dataset == str(REAL_DATASET)
    means = {s.name: s.score for s in report.singles}
    assert report.best_single.name == max(means, key=means.__getitem__)
    assert report.best_single.score_vs_best == 1.0 and report.best_single.cost_vs_best == 1.0
    assert report.cheapest_single.cost_usd == min(s.cost_usd for s in report.singles)
    assert report.oracle.score >= max(means.values())
    assert report.oracle.score >= report.policy.score
    assert sum(t.rows for t in report.per_task.values()) == 500
    assert sum(report.model_share.values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(report.bucket_share.values()) == pytest.approx(1.0, abs=1e-3)
    assert set(report.model_share) == set(artifact.models)
    assert report.policy.cost_vs_best == pytest.approx(report.policy.cost_usd / report.best_single.cost_usd, abs=1e-6)
    # A useful router: far better than the cheapest model alone, much cheaper than the best one.
    assert report.policy.score > report.cheapest_single.score
    assert report.policy.cost_usd < report.best_single.cost_usd
    assert report.goal.met == (report.goal.score_ok and report.goal.cost_ok)
    lo, hi = report.score_diff_vs_best.ci95
    assert lo <= report.score_diff_vs_best.mean <= hi


def test_the_knob_is_checked_on_the_held_out_figures() -> None:
    # The candidate scores 0.75 at 20% of the cost of "large" (the holdout's best) on these rows.
    rows, router = tiny().split("test"), ReferenceRouter(make_artifact())
    ok = validate_candidate(
        router, rows, decision_slo_ms=1000.0, max_cost_share=0.25, min_quality_share=0.7, min_rows=5
    )
    assert ok.passed
    assert [c.name for c in ok.checks] == [
        "enough_rows",
        "quality_floor",
        "cost_share",
        "quality_share",
        "decision_latency",
    ]
    bad = validate_candidate(
        router, rows, decision_slo_ms=1000.0, max_cost_share=0.15, min_quality_share=0.8, min_rows=5
    )
    assert [c.name for c in bad.checks if not c.passed] == ["cost_share", "quality_share"]
    message = str(ValidationFailed(bad))
    assert "held-out mean cost share of large's (requested ≤ 15%)" in message
    assert "held-out score share of large's (requested ≥ 80%)" in message
    # Shares are relative to the reference the caller names (the training rows' best), not the holdout's own best.
    medium = validate_candidate(
        router, rows, decision_slo_ms=1000.0, reference="medium", max_cost_share=0.5, min_rows=5
    )
    share = next(c for c in medium.checks if c.name == "cost_share")
    assert not share.passed and share.value == pytest.approx(0.2 / 0.3, abs=1e-6)


def test_the_reference_model_is_chosen_on_the_train_split() -> None:
    # On the train rows "medium" is the best model; on the test rows "large" is (1.0 vs 0.95).
    base = tiny()
    train_scores = np.tile([0.5, 1.0, 0.0], (4, 1))
    data = make_dataset(
        np.vstack([base.scores[:6], train_scores]),
        np.vstack([base.costs[:6], base.costs[:4]]),
        prompts=[*base.prompts[:6], *(f"train prompt {i}" for i in range(4))],
        tasks=["code"] * 3 + ["qa"] * 3 + ["code"] * 4,
        splits=["test"] * 6 + ["train"] * 4,
        models=MODELS,
    )
    report = evaluate_artifact(make_artifact(), data)
    assert report.best_single.name == "medium" and report.reference_chosen_on == "train split"
    assert report.best_on_split is not None and report.best_on_split.name == "large"
    assert report.best_on_split.score == 1.0 and report.best_single.score == 0.95
    assert report.goal.score_floor == pytest.approx(0.98 * 0.95)
    assert report.policy.cost_vs_best == pytest.approx(0.2 / 0.3, abs=1e-6)
    markdown = report.to_markdown()
    assert "chosen on the train split): `medium`; on these rows `large` scores higher (1.0000 vs 0.9500" in markdown
    # When the train split's best is also the evaluated rows' best, nothing else is named.
    same = evaluate_artifact(make_artifact(), tiny())
    assert same.best_single.name == "large" and same.best_on_split is None
    # Without a train split the evaluated rows' best is the reference.
    alone = evaluate_artifact(make_artifact(), tiny().split("test"))
    assert alone.best_single.name == "large" and alone.reference_chosen_on == "evaluated rows"
    explicit = evaluate_artifact(make_artifact(), data, reference="large")
    assert explicit.best_single.name == "large" and explicit.reference_chosen_on == "caller's choice"


def test_the_training_split_is_evaluated_with_a_warning() -> None:
    # The artifact was fitted on the train split: its scores there are optimistic, said, not refused.
    base = tiny()
    data = make_dataset(
        np.vstack([base.scores[:6], base.scores[:6]]),
        np.vstack([base.costs[:6], base.costs[:6]]),
        prompts=[*base.prompts[:6], *base.prompts[:6]],
        tasks=["code"] * 3 + ["qa"] * 3 + ["code"] * 3 + ["qa"] * 3,
        splits=["test"] * 6 + ["train"] * 6,
        models=MODELS,
    )
    train = evaluate_artifact(make_artifact(), data, split="train")
    assert train.rows == 6 and len(train.warnings) == 1
    assert train.warnings[0].startswith("split 'train' is the training split: the artifact was fitted on these rows")
    assert "optimistic" in train.warnings[0]
    assert f"**Warning:** {train.warnings[0]}" in train.to_markdown()
    assert msgspec.json.decode(train.to_json())["warnings"] == train.warnings
    assert evaluate_artifact(make_artifact(), data, split="train", train_split="test").warnings == []
    # The held-out split, and "all" (how validation evaluates a holdout labelled train), carry none.
    assert evaluate_artifact(make_artifact(), data).warnings == []
    assert evaluate_artifact(make_artifact(), data, split="all").warnings == []
    assert "Warning" not in evaluate_artifact(make_artifact(), data).to_markdown()


def test_copies_of_a_few_prompts_are_not_enough_rows() -> None:
    # 150 held-out rows that are 25 copies each of 6 prompts: six observations, not 150.
    holdout = tiny().split("test")
    usable = np.flatnonzero(holdout.valid_rows())
    copies = holdout.take(np.repeat(usable, 25))
    report = validate_candidate(ReferenceRouter(make_artifact()), copies, decision_slo_ms=1000.0)
    enough = next(c for c in report.checks if c.name == "enough_rows")
    assert not report.passed and not enough.passed and enough.value == len(usable)
    assert f"({25 * len(usable)} rows, copies counted once)" in enough.message


def test_copies_of_held_out_prompts_do_not_narrow_the_bound() -> None:
    # An outside test padded the (public, digest-assigned) holdout with 5 copies of every prompt: the
    # bootstrap resampled rows, its SE fell from 0.0070 to 0.0030, and a candidate significantly worse
    # on the test split was signed. Prompts are resampled now, so copies add no evidence.
    n = 60
    scores = np.column_stack([np.ones(n), np.ones(n), np.ones(n)])
    scores[:3, 1] = 0.0
    scores[3:5, 0] = 0.0
    data = make_dataset(
        scores,
        np.column_stack([np.full(n, 1.0), np.full(n, 0.3), np.full(n, 0.1)]),
        prompts=[CODE_PROMPTS[i % 3] + f" #{i}" for i in range(n)],
        models=MODELS,
    )
    parent = ReferenceRouter(make_artifact(alpha=1.0, hard=0.3, version="v-quality"))
    candidate = ReferenceRouter(make_artifact())
    once = validate_candidate(candidate, data, parent=parent, decision_slo_ms=1000.0, min_rows=10)
    padded = validate_candidate(
        candidate, data.take(np.repeat(np.arange(n), 5)), parent=parent, decision_slo_ms=1000.0, min_rows=10
    )
    assert once.difference is not None and padded.difference is not None
    assert padded.difference.difference == pytest.approx(once.difference.difference)
    assert padded.difference.standard_error == pytest.approx(once.difference.standard_error, rel=0.15)
    assert once.parent is not None and padded.difference.lower < -0.02 * once.parent.score  # still refused
    assert not padded.passed and padded.rows == 60  # validation reads one row per prompt
    # Near-copies (case, spacing, invisible characters: one prompt key) that the router may route
    # differently: still one row each, not an average of several decisions (an outside test's bypass).
    variants = [str.upper, lambda p: p.replace(" ", "   "), lambda p: p + "\u200b", lambda p: "\ufeff" + p]
    near = data.take(np.tile(np.arange(n), 5))
    near = dataclasses.replace(
        near,
        prompts=data.prompts + [v(p) for v in variants for p in data.prompts],
        prompt_ids=[f"r{i}" for i in range(5 * n)],
    )
    nearly = validate_candidate(candidate, near, parent=parent, decision_slo_ms=1000.0, min_rows=10)
    assert nearly.rows == 60 and nearly.difference is not None
    assert nearly.difference.standard_error == once.difference.standard_error
    # evaluate itself resamples prompts (copies in one group), so its SE does not shrink either.
    direct = evaluate_artifact(candidate, data.take(np.repeat(np.arange(n), 5)), split="all", against=parent)
    assert direct.against_difference is not None and "over 60 prompts" in direct.against_difference.method
    # The same rows resampled one by one (the old bootstrap) read a bound √5 narrower.
    from bifrost.trainer.stats import paired_bootstrap

    rows = paired_bootstrap(
        np.repeat(np.r_[np.zeros(3), np.ones(57)], 5), np.repeat(np.r_[np.ones(3), np.zeros(2), np.ones(55)], 5)
    )
    assert rows.standard_error < 0.6 * padded.difference.standard_error


def test_evaluating_prompts_the_artifact_was_fitted_on_is_said(
    bootstrapped: tuple[Artifact, BootstrapReport], sample: FullInfoDataset
) -> None:
    # An outside test relabelled the test rows as train, trained, then evaluated on the original file:
    # 114% of the best model, "goal met", and no warning. The artifact's record of fitted prompts says so.
    artifact, _ = bootstrapped
    clean = evaluate_artifact(artifact, sample, split="test")
    assert clean.warnings == []
    train, _ = sample.training_split("train")
    spread = np.linspace(0, len(train) - 1, 200).astype(np.int64)  # rows come in digest order: low digests are held out
    relabelled = dataclasses.replace(train.take(spread), splits=np.array(["test"] * 200, dtype=object))
    report = evaluate_artifact(artifact, relabelled, split="test")
    fitted = sum(p in (trained_prompts(artifact) or ()) for p in relabelled.prompts)
    assert fitted > 100  # most train rows are fit rows (the rest: the holdout)
    assert report.warnings == [
        f"{fitted} of the 200 evaluated rows have a prompt this artifact was fitted on (its record of trained "
        "prompts): its scores on them are optimistic, not an estimate for new prompts"
    ]


def test_a_reference_that_costs_nothing_is_refused() -> None:
    # An outside test added a model labelled (score 1, cost 0) only on the evaluated rows: it became the
    # reference and the report read "cost … vs ceiling 0 (0.0% of the best model's cost)".
    data = tiny()
    free = dataclasses.replace(data, costs=np.where(np.arange(3) == 0, 0.0, data.costs))
    with pytest.raises(EvaluationError, match="reference model 'large' .* costs nothing on these rows"):
        evaluate_artifact(make_artifact(), free)
