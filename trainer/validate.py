"""Validation of a candidate artifact before it is published.

On held-out rows (never used for clustering, the outcome models, the triage model or the
search), the candidate is routed from prompt text exactly as a router would. With a
current artifact (the parent) this is a **non-inferiority test** on paired outcomes:

* ``enough_rows``: at least ``min_rows`` *distinct* held-out prompts (copies of one prompt
  count once: 250 copies of one prompt are one observation), else the run is refused
  (too few rows for a decision) — with or without a parent;
* ``quality_non_inferior``: the one-sided ``confidence`` lower bound of the paired score
  difference (candidate − parent, bootstrap over prompts) is above ``−tolerance ×``
  the parent's score — a point estimate that happens to clear −2% is not enough;
* ``cost_not_higher``: mean cost not above the parent's;
* ``decision_latency``: median routing decision (feature extraction included) within
  ``decision_slo_ms``;
* ``cost_share`` / ``quality_share`` (when the cost/quality knob asked for them): the
  held-out cost share ≤ ``max_cost_share`` and score share ≥ ``min_quality_share`` of the
  reference model's. The search aimed at a 95% prediction bound for exactly these
  figures, so a violation here means the knob's promise does not hold on new prompts.

Without a parent the candidate must score at least the cheapest single model (a
sanity floor). A candidate that fails is not published (:class:`ValidationFailed`
carries the report, which names each failed check and why).
"""

from __future__ import annotations

import time

import msgspec
import numpy as np

from bifrost.common.errors import ExitCode
from bifrost.router.reference import ReferenceRouter
from bifrost.storage.dataset import FullInfoDataset, prompt_key
from bifrost.trainer.evaluate import EvaluationReport, PolicyMetrics, TrainedPrompts, evaluate_artifact
from bifrost.trainer.stats import DEFAULT_CONFIDENCE, PairedComparison


class ValidationCheck(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    passed: bool
    value: float
    threshold: float
    message: str


class ValidationReport(msgspec.Struct, frozen=True, kw_only=True):
    """Verdict, checks, and the held-out figures behind them."""

    passed: bool
    rows: int
    candidate: PolicyMetrics
    parent: PolicyMetrics | None
    best_single: PolicyMetrics
    cheapest_single: PolicyMetrics
    oracle: PolicyMetrics
    decision_ms: dict[str, float]
    checks: list[ValidationCheck]
    difference: PairedComparison | None = None

    def to_markdown(self) -> str:
        lines = [f"## Validation: {'passed' if self.passed else 'FAILED'} ({self.rows} held-out rows)", ""]
        if self.difference is not None:
            lines += [f"Score difference candidate − current: {self.difference.describe()}.", ""]
        lines += ["| check | passed | value | threshold | note |", "|---|---|---|---|---|"]
        lines += [
            f"| {c.name} | {'yes' if c.passed else 'NO'} | {c.value:.6g} | {c.threshold:.6g} | {c.message} |"
            for c in self.checks
        ]
        lines += ["", "| policy | score | cost (USD) | cost vs best single |", "|---|---|---|---|"]
        for m in (self.candidate, self.parent, self.best_single, self.cheapest_single, self.oracle):
            if m is not None:
                lines.append(f"| {m.name} | {m.score:.4f} | {m.cost_usd:.3g} | {m.cost_vs_best:.1%} |")
        lines += [
            "",
            "Decision time (ms, feature extraction included): "
            + ", ".join(f"{k} {v:.3f}" for k, v in self.decision_ms.items()),
        ]
        return "\n".join(lines) + "\n"


class TargetUnreachable(RuntimeError):
    """No searched policy meets the requested cost/quality knob (with its confidence bound)."""

    exit_code = ExitCode.FAILURE


class ValidationFailed(RuntimeError):
    """The candidate did not pass validation; it must not be published."""

    exit_code = ExitCode.FAILURE

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        failed = "; ".join(f"{c.name}: {c.message}" for c in report.checks if not c.passed)
        super().__init__(f"candidate failed validation ({failed})")


UNRESOLVED = "these rows cannot resolve a difference that small (too few rows for a decision)"


def non_inferiority(
    name: str,
    difference: PairedComparison,
    baseline: float,
    tolerance: float,
    *,
    measured: str,
    bound: str,
    unresolved: str = UNRESOLVED,
) -> ValidationCheck:
    """The non-inferiority check of a paired difference (candidate − current), whatever estimated it.

    Passes when the one-sided lower bound is ≥ ``−tolerance × baseline`` (the current's
    quality). A failure whose bound is wider than the margin says the rows cannot decide.

    >>> from bifrost.trainer.stats import PairedComparison
    >>> d = PairedComparison(
    ...     method="m", rows=9, candidate=0.499, current=0.5, difference=-0.001, standard_error=0.01,
    ...     confidence=0.95, lower=-0.02, upper=0.02,
    ... )
    >>> check = non_inferiority("q", d, 0.5, 0.02, measured="lower bound", bound="≥ −2%")
    >>> check.passed, check.threshold, check.message.endswith("(too few rows for a decision)")
    (False, -0.01, True)
    >>> worse = msgspec.structs.replace(d, difference=-0.03, lower=-0.05, upper=-0.008)
    >>> non_inferiority("q", worse, 0.5, 0.02, measured="lower bound", bound="≥ −2%").message.split("; ")[1]
    'the candidate is worse than the current (even the upper bound, -0.0080, is below 0)'
    """
    margin = tolerance * baseline
    passed = difference.lower >= -margin
    resolvable = difference.difference - difference.lower < margin
    if passed or resolvable:
        why = ""
    elif difference.upper < 0:  # wide, but worse whatever the width: not a question of rows
        why = f"; the candidate is worse than the current (even the upper bound, {difference.upper:+.4f}, is below 0)"
    else:  # the interval is as wide as the margin: more rows (or a clearer difference) would decide
        half = difference.difference - difference.lower
        why = f"; the interval's half-width {half:.4f} is not under the margin {margin:.4f}: {unresolved}"
    return ValidationCheck(
        name=name,
        passed=passed,
        value=difference.lower,
        threshold=-margin,
        message=f"{measured} ({difference.difference:+.4f} ± {difference.standard_error:.4f} SE) {bound}{why}",
    )


def not_costlier(name: str, mine: float, theirs: float, message: str) -> ValidationCheck:
    """The candidate's mean cost is not above the current's (up to rounding).

    >>> not_costlier("cost", 1.0, 1.0 + 1e-12, "mean cost").passed
    True
    """
    more = (
        f" ({mine:.4g} vs {theirs:.4g}, {mine / theirs - 1:+.1%})" if theirs > 0 else f" ({mine:.4g} vs {theirs:.4g})"
    )
    return ValidationCheck(
        name=name, passed=mine <= theirs * (1 + 1e-9), value=mine, threshold=theirs, message=message + more
    )


def decision_times(router: ReferenceRouter, prompts: list[str], *, sample: int = 200) -> dict[str, float]:
    """Median, P99 and mean wall time of single ``route(prompt)`` calls, in milliseconds."""
    chosen = prompts[:sample]
    if not chosen:
        return {"p50": 0.0, "p99": 0.0, "mean": 0.0}
    router.route(chosen[0])  # warm caches
    times = []
    for prompt in chosen:
        start = time.perf_counter()
        router.route(prompt)
        times.append((time.perf_counter() - start) * 1000.0)
    values = np.asarray(times)
    return {
        "p50": round(float(np.median(values)), 4),
        "p99": round(float(np.percentile(values, 99)), 4),
        "mean": round(float(values.mean()), 4),
    }


def validate_candidate(
    candidate: ReferenceRouter,
    holdout: FullInfoDataset,
    *,
    parent: ReferenceRouter | None = None,
    quality_tolerance: float = 0.02,
    decision_slo_ms: float = 5.0,
    confidence: float = DEFAULT_CONFIDENCE,
    min_rows: int = 100,
    seed: int = 0,
    reference: str | None = None,
    max_cost_share: float | None = None,
    min_quality_share: float | None = None,
    parent_trained: TrainedPrompts | None = None,
    root: ReferenceRouter | None = None,
    root_trained: TrainedPrompts | None = None,
) -> ValidationReport:
    """Check the candidate on held-out rows; returns the report (see ``passed``).

    ``reference`` is the model shares are relative to (the training rows' best single
    model; default the holdout's own best); ``max_cost_share`` / ``min_quality_share`` are
    the knob's targets, checked on the held-out figures. ``parent_trained``: the prompts
    the parent was trained on (:func:`~bifrost.trainer.evaluate.trained_prompts`); the
    comparison with the parent reads only the held-out prompts outside it (an outside test:
    another seed or 50 fewer rows moved the holdout onto the parent's training rows, and the
    parent, scored on what it had learned, looked 5 points better than a candidate that was
    better on the test split). ``root`` (and ``root_trained``): the first artifact of the
    parent's lineage, when it is not the parent: the candidate must be non-inferior to it as
    well, on the held-out prompts it was not trained on, so a chain of retrains, each within
    the margin of its parent, cannot drift further than the margin from where it started.
    """
    usable = int(holdout.valid_rows().sum())
    # One row per prompt: copies are one observation, and near-copies (case, spacing, invisible
    # characters) that the router routes differently would otherwise be averaged into a narrower
    # bound (an outside test padded the holdout with four near-copies of each prompt and a
    # candidate −0.026 worse on the test split was signed).
    holdout = _one_row_per_prompt(holdout)
    unseen = None
    if parent is not None and parent_trained:
        unseen = np.array([p not in parent_trained for p in holdout.prompts], dtype=bool)
    evaluation: EvaluationReport = evaluate_artifact(
        candidate, holdout, split="all", against=parent if unseen is None else None, seed=seed, reference=reference
    )
    compared = evaluation
    new_rows = holdout.take(unseen) if unseen is not None else None
    if parent is not None and new_rows is not None and len(new_rows):
        compared = evaluate_artifact(candidate, new_rows, split="all", against=parent, seed=seed, reference=reference)
    mine = evaluation.policy
    # Every decision needs rows, the first artifact's too: its knob targets and quality floor
    # are read on the holdout as much as a successor's non-inferiority.
    # One row per distinct usable prompt now, so the row counts are the prompt counts.
    checks = [
        _enough(
            "enough_rows",
            len(holdout),
            min_rows,
            "distinct held-out prompts; fewer are too few for a decision"
            + (f" ({usable} rows, copies counted once)" if len(holdout) < usable else ""),
        )
    ]
    if new_rows is not None:
        checks.append(
            _enough(
                "enough_unseen_rows",
                len(new_rows),
                min_rows,
                "distinct held-out prompts the current artifact was not trained on: the comparison "
                "with it reads only these (holdouts are assigned by prompt digest, so a current artifact "
                "trained from a full-information dataset by this version never saw them; one trained "
                "before that, or on other data holding these prompts, did)",
            )
        )
    difference = None
    if parent is not None and compared.against is not None:
        theirs = compared.against
        difference = compared.against_difference
        assert difference is not None
        checks.append(
            non_inferiority(
                "quality_non_inferior",
                difference,
                theirs.score,
                quality_tolerance,
                measured=f"{confidence:.0%} lower bound of the paired score difference vs current {theirs.name}",
                bound=f"must be ≥ −{quality_tolerance:.0%} of its score",
            )
        )
        checks.append(
            not_costlier(
                "cost_not_higher", compared.policy.cost_usd, theirs.cost_usd, f"mean cost vs current {theirs.name}"
            )
        )
        if root is not None:
            checks.append(
                _root_check(
                    candidate, holdout, root, root_trained, quality_tolerance, confidence, min_rows, seed, reference
                )
            )
    else:
        floor = evaluation.cheapest_single.score
        checks.append(
            ValidationCheck(
                name="quality_floor",
                passed=mine.score >= floor,
                value=mine.score,
                threshold=floor,
                message=f"no current artifact: score vs cheapest single model {evaluation.cheapest_single.name}",
            )
        )
    ref = evaluation.best_single.name
    if max_cost_share is not None:
        checks.append(
            ValidationCheck(
                name="cost_share",
                passed=mine.cost_vs_best <= max_cost_share + 1e-9,
                value=mine.cost_vs_best,
                threshold=max_cost_share,
                message=f"held-out mean cost share of {ref}'s (requested ≤ {max_cost_share:.0%})",
            )
        )
    if min_quality_share is not None:
        checks.append(
            ValidationCheck(
                name="quality_share",
                passed=mine.score_vs_best >= min_quality_share - 1e-9,
                value=mine.score_vs_best,
                threshold=min_quality_share,
                message=f"held-out score share of {ref}'s (requested ≥ {min_quality_share:.0%})",
            )
        )
    timing = decision_times(candidate, holdout.prompts)
    checks.append(
        ValidationCheck(
            name="decision_latency",
            passed=timing["p50"] <= decision_slo_ms,
            value=timing["p50"],
            threshold=decision_slo_ms,
            message="median ms per routing decision from prompt text",
        )
    )
    return ValidationReport(
        passed=all(c.passed for c in checks),
        rows=evaluation.rows,
        candidate=mine,
        parent=compared.against,
        best_single=evaluation.best_single,
        cheapest_single=evaluation.cheapest_single,
        oracle=evaluation.oracle,
        decision_ms=timing,
        checks=checks,
        difference=difference,
    )


def _root_check(
    candidate: ReferenceRouter,
    holdout: FullInfoDataset,
    root: ReferenceRouter,
    root_trained: TrainedPrompts | None,
    tolerance: float,
    confidence: float,
    min_rows: int,
    seed: int,
    reference: str | None,
) -> ValidationCheck:
    """Non-inferiority to the lineage's first artifact, on the held-out prompts it did not train on."""
    name = root.artifact.version
    rows = holdout if not root_trained else holdout.take(np.array([p not in root_trained for p in holdout.prompts]))
    if len(rows) < min_rows:
        return ValidationCheck(
            name="quality_non_inferior_to_root",
            passed=False,
            value=float(len(rows)),
            threshold=float(min_rows),
            message=f"distinct held-out prompts the lineage's first artifact {name} was not trained on: fewer "
            f"than {min_rows} are too few to compare with it; retrain with --no-parent to start a new lineage",
        )
    compared = evaluate_artifact(candidate, rows, split="all", against=root, seed=seed, reference=reference)
    assert compared.against is not None and compared.against_difference is not None  # against= given
    return non_inferiority(
        "quality_non_inferior_to_root",
        compared.against_difference,
        compared.against.score,
        tolerance,
        measured=f"{confidence:.0%} lower bound of the paired score difference vs the lineage's first artifact "
        f"{name} ({len(rows)} held-out prompts it did not train on)",
        bound=f"must be ≥ −{tolerance:.0%} of its score: retrains may not drift further than that from it",
    )


def _one_row_per_prompt(rows: FullInfoDataset) -> FullInfoDataset:
    """The first usable row of every distinct prompt (:func:`~bifrost.storage.dataset.prompt_key`)."""
    seen: set[str] = set()
    keep = []
    for i, (p, ok) in enumerate(zip(rows.prompts, rows.valid_rows())):
        key = prompt_key(p)
        if ok and key not in seen:
            seen.add(key)
            keep.append(i)
    return rows if len(keep) == len(rows) else rows.take(np.asarray(keep, dtype=np.int64))


def _enough(name: str, count: int, min_rows: int, message: str) -> ValidationCheck:
    """A check that ``count`` prompts are enough for a decision."""
    return ValidationCheck(name=name, passed=count >= min_rows, value=count, threshold=min_rows, message=message)
