"""Data-quality assessment: is this data good enough to train on? If not, say why.

Two stages share one report. :func:`assess_dataset` looks at the raw rows (decoding,
coverage of every model's label, null and range checks, duplicates, size); after
clustering and labelling, :func:`assess_training_set` adds samples per cluster and per
bucket and the class balance of the triage labels. A failed check raises
:class:`DataQualityError`, which carries the report.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np

from bifrost.common.errors import ExitCode
from bifrost.storage.dataset import MAX_COST_USD_PER_CALL, FullInfoDataset, best_model, prompt_key, valid_costs

Status = Literal["pass", "warn", "fail"]


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One check: what was measured, against what, and the verdict."""

    name: str
    status: Status
    value: float | int | str
    threshold: str
    message: str = ""


class ModelStats(msgspec.Struct, frozen=True, kw_only=True):
    """Per-model label coverage and means (over rows where the label exists)."""

    coverage: float
    mean_score: float
    mean_cost_usd: float


class QualityThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """What the data must satisfy; the defaults suit a few thousand prompts."""

    min_train_rows: int = 200
    min_models: int = 2
    min_label_coverage: float = 0.99
    max_invalid_fraction: float = 0.01
    max_malformed_fraction: float = 0.01
    max_duplicate_fraction: float = 0.01
    min_class_rows: int = 10
    warn_class_fraction: float = 0.05
    warn_cluster_rows: int = 5


class QualityReport(msgspec.Struct, kw_only=True):
    """Everything the assessment saw; ``passed`` is false if any check failed."""

    source: str
    passed: bool = True
    rows: int = 0
    usable_rows: int = 0
    splits: dict[str, int] = {}
    per_task: dict[str, int] = {}
    per_model: dict[str, ModelStats] = {}
    per_cluster: dict[str, int] = {}
    per_bucket: dict[str, int] = {}
    time_coverage: str = "n/a (full-information set: no event times)"
    checks: list[Check] = []

    def add(self, check: Check) -> None:
        self.checks.append(check)
        if check.status == "fail":
            self.passed = False

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        """The checks that warn: training goes on, but a refusal should repeat them."""
        return [c for c in self.checks if c.status == "warn"]

    def to_markdown(self) -> str:
        """A human-readable report: verdict, checks, and the sample counts."""
        lines = [
            f"## Data quality: {'passed' if self.passed else 'FAILED'}",
            "",
            f"Source: `{self.source}`  ",
            f"Rows: {self.rows} read, {self.usable_rows} usable; splits {dict(self.splits)}",
            "",
            "| check | status | value | threshold | note |",
            "|---|---|---|---|---|",
        ]
        for c in self.checks:
            lines.append(f"| {c.name} | {c.status} | {c.value} | {c.threshold} | {c.message} |")
        lines += ["", "| model | coverage | mean score | mean cost (USD) |", "|---|---|---|---|"]
        for model, s in self.per_model.items():
            lines.append(f"| {model} | {s.coverage:.3f} | {s.mean_score:.3f} | {s.mean_cost_usd:.3g} |")
        for title, counts in (("task", self.per_task), ("cluster", self.per_cluster), ("bucket", self.per_bucket)):
            if counts:
                lines += ["", f"Samples per {title}: " + ", ".join(f"{k}={v}" for k, v in counts.items())]
        return "\n".join(lines) + "\n"


class DataQualityError(ValueError):
    """The data failed a quality check; ``report`` says which and why."""

    exit_code = ExitCode.FAILURE

    def __init__(self, report: QualityReport) -> None:
        self.report = report
        reasons = "; ".join(f"{c.name}: {c.message}" for c in report.failures)
        super().__init__(f"data quality check failed ({reasons})")


def assess_dataset(
    dataset: FullInfoDataset, thresholds: QualityThresholds = QualityThresholds(), *, train_split: str = "train"
) -> QualityReport:
    """Raw-row checks. Returns the report (``passed`` may be false; see :func:`require`)."""
    report = QualityReport(source=dataset.source, rows=len(dataset))
    report.splits = dict(sorted(Counter(dataset.splits.tolist()).items()))
    report.per_task = dict(sorted(Counter(dataset.tasks[dataset.splits == train_split].tolist()).items()))
    valid = dataset.valid_rows()
    report.usable_rows = int(valid.sum())

    malformed = len(dataset.problems) / max(dataset.lines, 1)
    report.add(
        at_most(
            "malformed_lines",
            malformed,
            thresholds.max_malformed_fraction,
            f"{len(dataset.problems)} of {dataset.lines} lines do not decode"
            + (f" (first: {dataset.problems[0][:120]})" if dataset.problems else ""),
        )
    )

    n_models = len(dataset.models)
    report.add(at_least("models", n_models, thresholds.min_models, "models with labels"))
    unnamed = sum(1 for m in dataset.models if not m.strip())
    report.add(
        Check(
            name="model_names",
            status="fail" if unnamed else "pass",
            value=unnamed,
            threshold="0 empty",
            message="model ids that are empty or only whitespace (a router cannot call them)",
        )
    )

    for j, model in enumerate(dataset.models):
        have = np.isfinite(dataset.scores[:, j]) & np.isfinite(dataset.costs[:, j])
        coverage = float(have.mean()) if len(dataset) else 0.0
        report.per_model[model] = ModelStats(
            coverage=round(coverage, 4),
            mean_score=round(float(np.nanmean(dataset.scores[:, j])) if have.any() else float("nan"), 4),
            mean_cost_usd=float(np.nanmean(dataset.costs[:, j])) if have.any() else float("nan"),
        )
    coverage = min((s.coverage for s in report.per_model.values()), default=0.0)
    worst = min(report.per_model, key=lambda m: report.per_model[m].coverage) if report.per_model else "-"
    report.add(
        at_least(
            "label_coverage",
            coverage,
            thresholds.min_label_coverage,
            f"lowest: {worst} (share of rows with its score and cost)",
        )
    )

    report.add(_invalid_values(dataset, report.usable_rows, thresholds))
    report.add(_label_signal(dataset.scores[(dataset.splits == train_split) & valid]))

    keyed = list(zip(dataset.splits.tolist(), dataset.prompt_ids))
    duplicates = len(keyed) - len(set(keyed))
    report.add(
        at_most(
            "duplicate_prompt_ids",
            duplicates / max(len(dataset), 1),
            thresholds.max_duplicate_fraction,
            f"{duplicates} prompt ids repeated within a split",
        )
    )
    keys = [prompt_key(p) for p in dataset.prompts]
    elsewhere = {k for k, split in zip(keys, dataset.splits.tolist()) if split != train_split}
    is_train = dataset.splits == train_split
    overlap = sum(1 for k, t, ok in zip(keys, is_train, valid) if t and ok and k in elsewhere)
    report.add(
        Check(
            name="split_overlap",
            status="warn" if overlap else "pass",
            value=overlap,
            threshold="0",
            message=f"rows of split '{train_split}' whose prompt text (normalized) also appears in another "
            "split: dropped from training, so nothing evaluated on is trained on",
        )
    )
    groups: dict[str, list[int]] = {}
    for i, (k, t, ok) in enumerate(zip(keys, is_train, valid)):
        if t and ok:
            groups.setdefault(k, []).append(i)
    repeated = [rows for rows in groups.values() if len(rows) > 1]
    conflicting = sum(1 for rows in repeated if np.ptp(dataset.scores[rows], axis=0).max() > 1e-9)
    report.add(
        Check(
            name="duplicate_prompts",
            status="warn" if conflicting else "pass",
            value=conflicting,
            threshold="0 with conflicting scores",
            message=f"{len(repeated)} prompt texts repeated in split '{train_split}' "
            f"({sum(map(len, repeated))} rows), {conflicting} of them with different scores for "
            "the same model (noisy or contradictory labels); copies stay on one side of every "
            "fold and holdout",
        )
    )

    report.add(_reference_priced(dataset, is_train & valid))
    train_rows = int((is_train & valid).sum()) - overlap
    distinct = sum(1 for k in groups if k not in elsewhere)
    report.add(
        at_least(
            "train_rows",
            # Copies of a prompt are one observation: a file of one prompt 5,000 times is one row of evidence.
            distinct,
            thresholds.min_train_rows,
            f"distinct prompts in split '{train_split}' that are in no other split"
            + (f" ({train_rows} rows, copies counted once)" if distinct < train_rows else ""),
        )
    )
    return report


def assess_training_set(
    report: QualityReport,
    clusters: np.ndarray,
    labels: np.ndarray,
    *,
    n_clusters: int,
    classes: tuple[str, ...],
    thresholds: QualityThresholds = QualityThresholds(),
) -> QualityReport:
    """Add per-cluster and per-bucket samples and the triage class balance to ``report``."""
    cluster_counts = np.bincount(clusters, minlength=n_clusters)
    report.per_cluster = {str(c): int(n) for c, n in enumerate(cluster_counts)}
    small = int((cluster_counts < thresholds.warn_cluster_rows).sum())
    report.add(
        Check(
            name="cluster_sizes",
            status="warn" if small else "pass",
            value=int(cluster_counts.min()),
            threshold=f">= {thresholds.warn_cluster_rows} per cluster",
            message=f"{small} clusters below; their Q̂ leans on the model's overall mean",
        )
    )
    counts = np.bincount(labels, minlength=len(classes))
    report.per_bucket = {name: int(n) for name, n in zip(classes, counts)}
    report.add(class_balance(counts, classes, thresholds))
    return report


def class_balance(
    counts: np.ndarray, classes: tuple[str, ...], thresholds: QualityThresholds = QualityThresholds()
) -> Check:
    """The triage labels' class balance: a warning, not a stop.

    A rare or missing class means the escalation gate cannot separate it; the search then
    decides how much to use the gate (it can switch it off), so training goes on.
    """
    smallest = int(counts.min())
    share = smallest / max(int(counts.sum()), 1)
    thin = smallest < thresholds.min_class_rows or share < thresholds.warn_class_fraction
    return Check(
        name="class_balance",
        status="warn" if thin else "pass",
        value=round(share, 4),
        threshold=f">= {thresholds.min_class_rows} rows and {thresholds.warn_class_fraction:.0%} per class (warn)",
        message="triage labels "
        + ", ".join(f"{k}={int(v)}" for k, v in zip(classes, counts))
        + ("; a thin class: the gate can barely separate it, the search decides whether to use it" if thin else ""),
    )


def require(report: QualityReport) -> QualityReport:
    """Raise :class:`DataQualityError` if the report failed; else return it."""
    if not report.passed:
        raise DataQualityError(report)
    return report


def _label_signal(scores: np.ndarray) -> Check:
    """Fails when on every training prompt every model scores the same (the score may vary by
    prompt): there is nothing to route by, and the reference model would be picked by a tie
    (outside tests: all scores 1.0, or one score per prompt, were refused about costs instead).

    >>> _label_signal(np.ones((5, 3))).status, _label_signal(np.arange(5.0)[:, None] * np.ones(3)).status
    ('fail', 'fail')
    >>> _label_signal(np.eye(3)).status
    'pass'
    """
    rows = scores[np.isfinite(scores).all(axis=1)]
    # One model: nothing to choose between (the ``models`` check says so).
    same = rows.size > 0 and rows.shape[1] > 1 and bool((rows.max(axis=1) == rows.min(axis=1)).all())
    return Check(
        name="label_signal",
        status="fail" if same else "pass",
        value="no prompt on which models differ" if same else "models differ",
        threshold="models score differently on some prompts",
        message="on every training prompt every model scores the same: nothing to learn which model to use"
        if same
        else "",
    )


def _invalid_values(dataset: FullInfoDataset, usable_rows: int, thresholds: QualityThresholds) -> Check:
    """The share of rows :meth:`FullInfoDataset.valid_rows` drops, and why: null labels, scores
    outside [0, 1], costs negative, infinite or above :data:`MAX_COST_USD_PER_CALL` (an absurd
    per-call price would swamp every mean cost), empty prompts."""
    nulls = int(np.isnan(dataset.scores).sum() + np.isnan(dataset.costs).sum())
    bad_scores = int(((dataset.scores < 0) | (dataset.scores > 1)).sum())
    bad_costs = int((~valid_costs(dataset.costs) & ~np.isnan(dataset.costs)).sum())
    empty_prompts = sum(1 for p in dataset.prompts if not p.strip())
    return at_most(
        "null_or_out_of_range",
        1.0 - usable_rows / max(len(dataset), 1),
        thresholds.max_invalid_fraction,
        f"{nulls} null labels, {bad_scores + bad_costs} out of range ({bad_scores} scores ∉ [0,1], {bad_costs} "
        f"costs negative, infinite or above {MAX_COST_USD_PER_CALL:g} USD per call), "
        f"{empty_prompts} empty prompts; such rows are dropped",
    )


def _reference_priced(dataset: FullInfoDataset, rows: np.ndarray) -> Check:
    """The best single model on the usable train rows must cost something: every cost (the
    search's, the knob's, the baseline's) is a share of its mean cost."""
    if not rows.any() or not len(dataset.models):
        return Check(name="reference_priced", status="pass", value="-", threshold="> 0", message="no train rows")
    best = best_model(dataset.scores[rows])
    mean_cost = float(dataset.costs[rows, best].mean())
    return Check(
        name="reference_priced",
        status="pass" if mean_cost > 0 else "fail",
        value=mean_cost,
        threshold="> 0",
        message=f"mean cost of the best single model ({dataset.models[best]}) on the train rows: costs are "
        "measured as shares of it, so it needs a price (are all costs zero?)",
    )


def at_most(name: str, value: float, limit: float, message: str) -> Check:
    """A check that fails above ``limit`` (``value`` kept to 4 decimals).

    >>> at_most("nulls", 0.02, 0.01, "null labels").status
    'fail'
    """
    return Check(
        name=name,
        status="pass" if value <= limit else "fail",
        value=round(value, 4),
        threshold=f"<= {limit}",
        message=message,
    )


def at_least(name: str, value: float, limit: float, message: str) -> Check:
    """A check that fails below ``limit`` (``value`` kept to 4 decimals; a count stays a count).

    >>> at_least("rows", 300, 2000, "usable rows").value, at_least("coverage", 0.99951, 0.99, "labels").value
    (300, 0.9995)
    """
    return Check(
        name=name,
        status="pass" if value >= limit else "fail",
        value=round(value, 4),
        threshold=f">= {limit}",
        message=message,
    )


def shift_from_parent(
    report: QualityReport,
    parent_quality: Mapping[str, Any],
    *,
    min_change: float = 0.1,
    z: float = 4.0,
) -> list[Check]:
    """Warnings where this data's labels differ from the data the parent was trained on.

    Validation compares candidate and parent on *this* data's labels, so labels that moved
    (a model's pass rate drifting, or a broken judge scoring one model low) pass it unseen:
    a model whose mean score moved by at least ``min_change`` of the larger of the two means
    (relative: scores on any scale within [0, 1]) and by more than ``z`` standard errors
    (``m(1 − m)/n`` bounds each mean's variance), and a change of the best model by mean score
    (a new model included), are named. A genuine change is a reason to retrain, so
    these warn; they never refuse. ``parent_quality``: the parent's ``reports.training["quality"]``.

    >>> now = QualityReport(source="new", usable_rows=4000, per_model={
    ...     "a": ModelStats(coverage=1.0, mean_score=0.43, mean_cost_usd=1.0),
    ...     "b": ModelStats(coverage=1.0, mean_score=0.55, mean_cost_usd=1.0)})
    >>> old = {"usable_rows": 4000, "per_model": {"a": {"mean_score": 0.62}, "b": {"mean_score": 0.55}}}
    >>> [(c.name, c.status) for c in shift_from_parent(now, old)]
    [('label_shift', 'warn'), ('best_model_shift', 'warn')]
    """
    before_models = parent_quality.get("per_model") or {}
    n_before = int(parent_quality.get("usable_rows") or 0)
    before = {
        m: float(s["mean_score"])
        for m, s in before_models.items()
        if isinstance(s, Mapping) and isinstance(s.get("mean_score"), int | float) and math.isfinite(s["mean_score"])
    }
    now = {m: s.mean_score for m, s in report.per_model.items() if math.isfinite(s.mean_score)}
    shared = sorted(set(before) & set(now))
    if not shared or n_before < 1 or report.usable_rows < 1:
        return []
    moved = []
    for m in shared:
        a, b = before[m], now[m]
        se = math.sqrt(a * (1 - a) / n_before + b * (1 - b) / report.usable_rows)
        if abs(b - a) >= min_change * max(a, b) and abs(b - a) > z * se:
            moved.append(f"{m} {a:.3f} → {b:.3f}")
    checks = []
    if moved:
        checks.append(
            Check(
                name="label_shift",
                status="warn",
                value=len(moved),
                threshold=f"|Δ mean score| < {min_change:.0%} or within {z:g} SE of the parent's training data",
                message="mean scores moved since the parent's training data: "
                + "; ".join(moved)
                + " (the task mix or the labels changed; validation compares with the parent on these labels "
                "only: if the judge was not expected to change, check it)",
            )
        )
    best_before, best_now = max(before, key=before.__getitem__), max(now, key=now.__getitem__)
    if best_before != best_now:
        checks.append(
            Check(
                name="best_model_shift",
                status="warn",
                value=best_now,
                threshold=best_before,
                message=f"the best model by mean score was {best_before} in the parent's training data "
                f"and is {best_now} here"
                + ("" if best_now in before else " (a model the parent's data did not have)")
                + " (the reference every cost and score share is measured against moves with it)",
            )
        )
    return checks


def add_shift_from_parent(report: QualityReport, parent_training: Mapping[str, Any]) -> QualityReport:
    """Add :func:`shift_from_parent`'s warnings to ``report``; ``parent_training``: the parent's
    ``reports.training``. Returns the report."""
    for check in shift_from_parent(report, parent_training.get("quality") or {}):
        report.add(check)
    return report


_TOP_SHARE = 0.01  # the calls a heavy tail is judged by, and capped above
_TOP_LIMIT = 0.5
COST_CAP_QUANTILE = 1.0 - _TOP_SHARE


def _top_share(column: np.ndarray) -> float:
    """The share of the column's squared deviations carried by its top 1% of calls (at least one)."""
    deviations = (column - column.mean()) ** 2
    total = float(deviations.sum())
    if total <= 0:
        return 0.0
    k = max(1, int(np.ceil(_TOP_SHARE * len(column))))
    return float(np.partition(deviations, len(deviations) - k)[-k:].sum()) / total


def cost_tails(costs: np.ndarray, models: Sequence[str], sizes: np.ndarray) -> tuple[Check, np.ndarray | None]:
    """(check, capped costs or ``None``): are per-call costs too heavy-tailed to average?

    Means and the normal bounds on them need a model's cost variance spread over many calls.
    When 1% of the calls carry more than half of it, a handful of runaway calls decide every
    cost figure (the bundled dataset: 2–3%): an outside test multiplied costs by
    ``1 + Pareto(1.1)`` and the cost bound of a policy estimated at 10% of the reference's cost
    read 101%, so nothing could be trained. The test reads cost per unit of prompt size
    (``sizes``, e.g. approximate tokens), so a long prompt priced by its length is not a
    runaway call. A heavy model's cost per unit is capped at its 99th percentile (an outside
    test's 15 runaway calls in 5,608 each carried under a tenth of the variance and sat above
    a 99.9% cap) for training
    (search, bounds, holdout validation); the check warns, and evaluation on other splits
    still reads the real costs.

    >>> sizes = np.ones(400)
    >>> calm = np.tile([1.0, 2.0, 3.0], (400, 1)) + np.arange(400)[:, None] % 7
    >>> cost_tails(calm, ["a", "b", "c"], sizes)[0].status
    'pass'
    >>> wild = calm.copy()
    >>> wild[5, 1] = 1e6
    >>> check, capped = cost_tails(wild, ["a", "b", "c"], sizes)
    >>> check.status, check.value, bool((capped[:, 0] == calm[:, 0]).all()), bool(capped[5, 1] < 1e6)
    ('warn', 1, True, True)
    >>> long = calm.copy()
    >>> long[7] *= 1e4  # one prompt 10,000 times longer, priced by its length: not a runaway call
    >>> cost_tails(long, ["a", "b", "c"], np.where(np.arange(400) == 7, 1e4, 1.0))[0].status
    'pass'
    """
    n = len(costs)
    unit = np.maximum(np.asarray(sizes, dtype=np.float64), 1e-9)[:, None]
    per_unit = costs / unit
    capped = costs.copy()
    heavy: list[str] = []
    for j, model in enumerate(models):
        column = per_unit[:, j]
        share = _top_share(column)
        if n <= 2 or share <= _TOP_LIMIT:
            continue
        capped[:, j] = np.minimum(column, float(np.quantile(column, COST_CAP_QUANTILE))) * unit[:, 0]
        heavy.append(f"{model} ({share:.0%} in 1% of calls)")
    check = Check(
        name="cost_tails",
        status="warn" if heavy else "pass",
        value=len(heavy),
        threshold=f"1% of calls carry ≤ {_TOP_LIMIT:.0%} of a model's variance of cost per prompt size",
        message=(
            "heavy-tailed per-call costs: "
            + ", ".join(heavy)
            + f"; training reads cost per unit of prompt size capped at each one's {COST_CAP_QUANTILE:.0%} "
            "quantile (typical calls), so cost shares "
            "on new traffic vary with rare runaway calls"
        )
        if heavy
        else "models whose cost variance sits in a few calls",
    )
    return check, capped if heavy else None
