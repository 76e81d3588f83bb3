"""Offline evaluation of an artifact on a full-information split (``test`` by default).

Every prompt is routed by the reference router from its text (feature extraction
included), and the chosen model's score and cost are read from the dataset. The report
compares the artifact with every single model, the oracle (per prompt, the cheapest
model with the best score), optionally another artifact (paired bootstrap of the score
difference), and optionally the baseline to beat (:mod:`bifrost.trainer.baseline`: a
per-model logistic regression on the same features, λ chosen on the train split to
spend what the artifact spends), with the paired score difference and its standard
error; per task too.

**The reference ("best single") model is chosen on the train split**, not on the rows
being evaluated: picking it on the test rows would let near-ties between two models flip
the goal. Costs and scores "vs best" are relative to it; when the evaluated rows' own best
model differs, the report names both (``best_on_split``). Without a train split the
reference is the evaluated rows' best model (``reference_chosen_on`` says which).
The baseline is fitted on the train split minus every prompt (normalized text) that is in
another split: like the artifact, it never sees a prompt it is evaluated on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from bifrost.common.errors import ExitCode
from bifrost.router.artifact import BUCKETS, Artifact
from bifrost.router.reference import BatchDecisions, ReferenceRouter
from bifrost.storage.dataset import (
    MAX_COST_USD_PER_CALL,
    PROMPT_KEY_VERSION,
    FullInfoDataset,
    best_model,
    load_dataset,
    prompt_digest,
    prompt_groups,
)
from bifrost.trainer import baseline as lr
from bifrost.trainer.quality import QualityThresholds
from bifrost.trainer.stats import PairedComparison, grouped_standard_error, paired_bootstrap


class EvaluationError(ValueError):
    """The artifact cannot be evaluated on this dataset (e.g. it routes to unknown models)."""

    exit_code = ExitCode.FAILURE


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


class BaselineComparison(msgspec.Struct, frozen=True, kw_only=True):
    """The artifact against the logistic-regression baseline at (about) the same cost."""

    method: str
    l2: float
    cost_weight: float
    target_cost_share: float
    train_cost_share: float
    policy: PolicyMetrics
    score_difference: PairedComparison
    cost_difference_vs_best: float
    frontier_score_at_cost: float


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
    against_difference: PairedComparison | None = None
    baseline: BaselineComparison | None = None
    reference_chosen_on: str = "evaluated rows"
    best_on_split: PolicyMetrics | None = None  # the evaluated rows' own best model, when it is not the reference
    #: Rows of the split left out (a score outside [0, 1], a cost missing, negative or absurd, an
    #: empty prompt) and undecodable lines of the file (their split unknown): said, never silent.
    unusable_rows: int = 0
    malformed_lines: int = 0
    file_lines: int = 0
    #: malformed lines that may be rows of this split: naming it, or no readable split
    malformed_in_split: int = 0
    #: Why the figures may mislead without being wrong, e.g. rows the artifact was fitted on
    #: (:func:`training_rows_warning`); ``bifrost-opt evaluate`` repeats them on stderr.
    warnings: list[str] = []

    def unusable_problem(self) -> str | None:
        """Why these figures should not be trusted, when more of the split's rows were unusable
        or of the file's lines malformed than ``train`` accepts (:class:`QualityThresholds`'
        ``max_invalid_fraction`` / ``max_malformed_fraction``); None otherwise. ``bifrost-opt
        evaluate`` refuses then: the verdict would silently be about the rows left.

        >>> def report(rows, unusable, malformed=0, lines=6000):
        ...     fields = {f: None for f in EvaluationReport.__struct_fields__}
        ...     fields.update(split="test", rows=rows, unusable_rows=unusable)
        ...     fields.update(malformed_lines=malformed, file_lines=lines, malformed_in_split=0)
        ...     return EvaluationReport(**fields)
        >>> print(report(490, 10).unusable_problem()[:47])
        10 of the 500 rows of split 'test' are unusable
        >>> report(996, 4).unusable_problem() is None
        True

        A malformed line that names this split, or no readable split, also counts as a missing
        row of it (an outside test broke 50 of the 500 test rows' JSON: under 1% of the file, so
        the verdict was silently about 450 rows):

        >>> def broken(malformed, in_split):
        ...     r = report(490, 0, malformed=malformed)
        ...     return msgspec.structs.replace(r, malformed_in_split=in_split).unusable_problem()
        >>> print(broken(50, 50)[:46])
        0 of the 490 rows of split 'test' are unusable
        >>> broken(6, 0) is None  # six broken train lines do not block a clean test split
        True
        """
        limits = QualityThresholds()
        total = self.rows + self.unusable_rows
        if (
            self.unusable_rows > limits.max_invalid_fraction * total
            or self.malformed_lines > limits.max_malformed_fraction * max(self.file_lines, 1)
            or self.unusable_rows + self.malformed_in_split
            > limits.max_invalid_fraction * (total + self.malformed_in_split)
        ):
            return (
                f"{self.unusable_rows} of the {total} rows of split {self.split!r} are unusable (score outside "
                f"[0, 1], cost missing, negative or above {MAX_COST_USD_PER_CALL:g} USD, or an empty prompt) and "
                f"{self.malformed_lines} of the file's {self.file_lines} lines are malformed "
                f"({self.malformed_in_split} of them rows of this split or of no readable split) — more than "
                f"the {limits.max_invalid_fraction:.0%} of the split's rows / {limits.max_malformed_fraction:.0%} of "
                "the file's lines allowed: fix the dataset "
                "(the figures would be about the rows left, not the ones asked for)"
            )
        return None

    def to_json(self) -> bytes:
        return msgspec.json.format(msgspec.json.encode(self), indent=2)

    def to_markdown(self) -> str:
        """Summary, all policies, and per-task tables."""
        rows = [
            self.policy,
            *([self.against] if self.against else []),
            *([self.baseline.policy] if self.baseline else []),
            self.oracle,
            *self.singles,
        ]
        lines = [
            f"## Evaluation of {self.artifact} on {Path(self.dataset).name} ({self.split}, {self.rows} prompts)",
            "",
            *(line for warning in self.warnings for line in (f"**Warning:** {warning}", "")),
            *(
                [
                    f"Left out: {self.unusable_rows} unusable rows of this split (score outside [0, 1], cost "
                    f"missing, negative or above {MAX_COST_USD_PER_CALL:g} USD, or an empty prompt) and "
                    f"{self.malformed_lines} malformed lines of the file; the figures below are over the rest.",
                    "",
                ]
                if self.unusable_rows or self.malformed_lines
                else []
            ),
            "| policy | mean score | mean cost (USD) | score vs best single | cost vs best single |",
            "|---|---|---|---|---|",
        ]
        for m in rows:
            lines.append(
                f"| {m.name} | {m.score:.4f} | {m.cost_usd:.3g} | {m.score_vs_best:.1%} | {m.cost_vs_best:.1%} |"
            )
        g = self.goal
        lines += [
            "",
            f"Reference (best single model, chosen on the {self.reference_chosen_on}): "
            f"`{self.best_single.name}`"
            + (
                f"; on these rows `{self.best_on_split.name}` scores higher ({self.best_on_split.score:.4f} vs "
                f"{self.best_single.score:.4f}, at {self.best_on_split.cost_vs_best:.1%} of the reference's cost)."
                if self.best_on_split is not None
                else "."
            ),
        ]
        lines += [
            "",
            f"Goal (best single `{self.best_single.name}` score −2% at ≤ 50% of its cost): "
            f"{'met' if g.met else 'NOT met'} — score {self.policy.score:.4f} vs floor {g.score_floor:.4f} "
            f"({g.score_margin:+.4f}), cost {self.policy.cost_usd:.3g} vs ceiling {g.cost_ceiling_usd:.3g} "
            f"({self.policy.cost_vs_best:.1%} of the best model's cost). Paired score difference vs the best "
            f"single model: {self.score_diff_vs_best.mean:+.4f} ± {self.score_diff_vs_best.standard_error:.4f} (SE), "
            f"95% CI [{self.score_diff_vs_best.ci95[0]:+.4f}, {self.score_diff_vs_best.ci95[1]:+.4f}].",
            "",
        ]
        if self.against_difference is not None and self.against is not None:
            lines += [f"Against `{self.against.name}`: score difference {self.against_difference.describe()}.", ""]
        if self.baseline is not None:
            b = self.baseline
            lines += [
                f"Baseline ({b.method}; λ={b.cost_weight:.4g} chosen on the train split, where it spends "
                f"{b.train_cost_share:.1%} of the best model's cost, target {b.target_cost_share:.1%}): score "
                f"{b.policy.score:.4f} at {b.policy.cost_vs_best:.1%} of the best model's cost. Artifact − baseline: "
                f"{b.score_difference.describe()}; cost difference {b.cost_difference_vs_best:+.1%} "
                "of the best model's "
                f"cost. The baseline's own frontier on these rows, interpolated at the artifact's cost: "
                f"{b.frontier_score_at_cost:.4f} (artifact {self.policy.score - b.frontier_score_at_cost:+.4f}).",
                "",
            ]
        lines += [
            "| task | rows | score | cost (USD) | best single score | best single cost | oracle score |"
            + (" against score | against cost |" if self.against else ""),
            "|---|---|---|---|---|---|---|" + ("---|---|" if self.against else ""),
        ]
        for task, t in self.per_task.items():
            line = (
                f"| {task} | {t.rows} | {t.score:.3f} | {t.cost_usd:.3g} | {t.best_single_score:.3f} | "
                f"{t.best_single_cost_usd:.3g} | {t.oracle_score:.3f} |"
            )
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
    columns, batch = route_dataset(router, dataset)
    return columns[batch.chosen], batch.buckets


def route_dataset(router: ReferenceRouter, dataset: FullInfoDataset) -> tuple[np.ndarray, BatchDecisions]:
    """(dataset column of each of the artifact's models, the batch of decisions with predictions)."""
    check_models(router, dataset)
    batch = router.route_many(dataset.prompts)
    column = {m: j for j, m in enumerate(dataset.models)}
    return np.array([column[m] for m in batch.models], dtype=np.int64), batch


@dataclass(frozen=True)
class FittedBaseline:
    """The logistic baseline fitted on a train split, in the artifact's model order."""

    model: lr.LogisticModels
    price: np.ndarray  # normalized cost per token-feature unit per model
    size_column: int
    train_oof: np.ndarray
    train_costs: np.ndarray
    train_unit: float
    train_features: np.ndarray
    reference: str = ""  # the best single model on the train split (any model of the dataset)
    train_rows: int = 0
    dropped_overlap: int = 0  # train rows left out: their prompt is in another split

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p̂ per model, normalized cost per model) of feature rows."""
        return self.model.predict(X), X[:, self.size_column, None] * self.price


def check_models(router: ReferenceRouter, dataset: FullInfoDataset) -> None:
    """Raise :class:`EvaluationError` unless the dataset has labels for every model the artifact routes to."""
    missing = sorted(set(router.tables.models) - set(dataset.models))
    if missing:
        have = sorted(set(router.tables.models) & set(dataset.models))
        raise EvaluationError(
            f"artifact {router.version} routes to {len(router.tables.models)} models; "
            f"{Path(dataset.source).name or 'the dataset'} "
            f"has labels for {len(have)} of them ({', '.join(have) or 'none'}). Missing: {', '.join(missing)}. "
            "Its decisions for those models cannot be scored: evaluate on a dataset with every model it routes to"
        )


def training_rows_warning(split: str, train_rows: int, *, train_split: str = "train") -> str | None:
    """The warning for an evaluation on rows the artifact was fitted on: ``split`` is the training
    split, or ``all`` with ``train_rows`` of it among the rows; None otherwise. Its scores there
    are optimistic, not an estimate for new prompts; it is said, not refused.

    >>> training_rows_warning("test", 0) is None
    True
    >>> print(training_rows_warning("train", 5608).split(":")[0])
    split 'train' is the training split
    >>> print(training_rows_warning("all", 5608).split(":")[0])
    split 'all' includes the 5608 rows of the training split 'train'
    """
    if split == train_split:
        where = f"split {split!r} is the training split"
    elif split == "all" and train_rows:
        where = f"split 'all' includes the {train_rows} rows of the training split {train_split!r}"
    else:
        return None
    return (
        f"{where}: the artifact was fitted on these rows, so its scores on them are optimistic, "
        "not an estimate for new prompts; evaluate on a held-out split (the default, 'test') for that"
    )


TRAINED_PROMPTS = "trained_prompts"
TRAINED_PROMPTS_KEY = "trained_prompts_key"  # the prompt_key version the record was made with (absent: 1)


@dataclass(frozen=True)
class TrainedPrompts:
    """An artifact's record of the prompts it was fitted on: their digests and the
    :func:`~bifrost.storage.dataset.prompt_key` version they were taken with."""

    digests: frozenset[str]
    key_version: int = PROMPT_KEY_VERSION

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, prompt: object) -> bool:
        """Whether this prompt (its text) is one the artifact was fitted on."""
        return isinstance(prompt, str) and prompt_digest(prompt, version=self.key_version) in self.digests

    def record(self) -> dict[str, Any]:
        """The fields :func:`trained_prompts` reads back from ``reports.training``."""
        return {TRAINED_PROMPTS: sorted(self.digests), TRAINED_PROMPTS_KEY: self.key_version}

    @classmethod
    def of(cls, prompts: Iterable[str]) -> TrainedPrompts:
        """The record of these prompts, with the current key."""
        return cls(frozenset(prompt_digest(p) for p in prompts))


def trained_prompts(artifact: Artifact) -> TrainedPrompts | None:
    """The prompts an artifact records as trained on (``None``: an artifact from before they were
    recorded, or one trained from logs, which carry features, not prompts)."""
    recorded = artifact.reports.training.get(TRAINED_PROMPTS)
    if not isinstance(recorded, list) or not recorded:
        return None
    version = artifact.reports.training.get(TRAINED_PROMPTS_KEY, 1)
    return TrainedPrompts(frozenset(str(d) for d in recorded), version if isinstance(version, int) else 1)


LINEAGE_ROOT = "lineage_root"


def lineage_root(parent: Artifact | None) -> str | None:
    """The version of the first artifact of the lineage a child of ``parent`` belongs to (``None``:
    no parent, the child starts one). Recorded in ``reports.training`` so a later retrain finds it
    without walking the store; an artifact from before the record is its own lineage's root."""
    if parent is None:
        return None
    recorded = parent.reports.training.get(LINEAGE_ROOT)
    return recorded if isinstance(recorded, str) and recorded else parent.version


def trained_rows_warning(artifact: Artifact, data: FullInfoDataset) -> str | None:
    """The warning for an evaluation on prompts the artifact records as fitted on (any split's
    rows: an outside test relabelled the test rows as train, trained, then evaluated on the
    original file and read 114% of the best model with no warning); None when there are none."""
    trained = trained_prompts(artifact)
    if not trained:
        return None
    seen = sum(p in trained for p in data.prompts)
    if not seen:
        return None
    return (
        f"{seen} of the {len(data)} evaluated rows have a prompt this artifact was fitted on "
        f"(its record of trained prompts): its scores on them are optimistic, not an estimate for new prompts"
    )


def reference_model(full: FullInfoDataset, data: FullInfoDataset, *, train_split: str = "train") -> tuple[int, str]:
    """(column of the reference model, where it was chosen): the best mean score on ``train_split``'s
    rows whose prompt is in no other split, else on ``data`` itself (:func:`best_model`)."""
    train, _ = full.training_split(train_split)
    if len(train):
        return best_model(train.scores), f"{train_split} split"
    return best_model(data.scores), "evaluated rows"


def fit_baseline(
    router: ReferenceRouter,
    full: FullInfoDataset,
    *,
    train_split: str = "train",
    folds: int = 5,
    l2: float = lr.DEFAULT_L2,
    seed: int = 0,
) -> FittedBaseline:
    """Fit the logistic baseline on ``train_split`` with the artifact's feature extractor.

    Rows whose prompt (normalized text) is in another split are left out, as in training.
    """
    check_models(router, full)
    train, dropped = full.training_split(train_split)
    if len(train) < 2 * folds:
        raise EvaluationError(f"the baseline needs a '{train_split}' split to fit on ({len(train)} usable rows)")
    column = {m: j for j, m in enumerate(full.models)}
    cols = np.array([column[m] for m in router.tables.models], dtype=np.int64)
    X_train = np.asarray([router.extractor.extract(p)[0] for p in train.prompts], dtype=np.float64)
    size_column = list(router.artifact.gbdt.feature_schema.names).index("tokens_approx")
    S_train, C_train = train.scores[:, cols], train.costs[:, cols]
    best_train = best_model(train.scores)
    unit = float(train.costs[:, best_train].mean()) or 1.0
    price = lr.price_per_unit(X_train[:, size_column], C_train) / unit
    groups = prompt_groups(train.prompts)  # copies of a prompt in one fold
    fold_of = (np.random.default_rng(seed).permutation(int(groups.max()) + 1) % folds)[groups]
    return FittedBaseline(
        model=lr.fit_logistic(X_train, S_train, l2=l2),
        price=price,
        size_column=size_column,
        train_oof=lr.out_of_fold(X_train, S_train, fold_of, l2=l2),
        train_costs=C_train,
        train_unit=unit,
        train_features=X_train,
        reference=full.models[best_train],
        train_rows=len(train),
        dropped_overlap=dropped,
    )


def baseline_comparison(
    router: ReferenceRouter,
    full: FullInfoDataset,
    data: FullInfoDataset,
    artifact_scores: np.ndarray,
    artifact_costs: np.ndarray,
    *,
    train_split: str = "train",
    l2: float = lr.DEFAULT_L2,
    seed: int = 0,
    features: np.ndarray | None = None,
    fitted: FittedBaseline | None = None,
    groups: np.ndarray | None = None,
) -> BaselineComparison:
    """The logistic baseline on ``data`` (λ chosen on ``train_split``) against the artifact's per-row outcomes.

    ``features`` and ``groups`` (:func:`~bifrost.storage.dataset.prompt_groups` of ``data``), when
    the caller has them, save computing them again.

    Cost shares on both sides are relative to the same model, the one chosen on the train
    split (:attr:`FittedBaseline.reference`): λ is picked so the baseline's out-of-fold
    train cost share matches the artifact's share on ``data``.
    """
    fitted = fitted or fit_baseline(router, full, train_split=train_split, l2=l2, seed=seed)
    column = {m: j for j, m in enumerate(data.models)}
    cols = np.array([column[m] for m in router.tables.models], dtype=np.int64)
    X_eval = features if features is not None else np.asarray([router.extractor.extract(p)[0] for p in data.prompts])
    S, C = data.scores[:, cols], data.costs[:, cols]
    ref = column[fitted.reference] if fitted.reference in column else best_model(data.scores)
    ref_s, ref_c = float(data.scores[:, ref].mean()), float(data.costs[:, ref].mean()) or 1.0
    target = float(artifact_costs.mean()) / ref_c
    train_cost = fitted.train_features[:, fitted.size_column, None] * fitted.price
    weight, train_share = lr.weight_for_share(
        fitted.train_oof, train_cost, fitted.train_costs, fitted.train_unit, target
    )
    q_eval, c_eval = fitted.predict(X_eval)
    chosen = lr.route(q_eval, c_eval, weight)
    rows = np.arange(len(data))
    b_scores, b_costs = S[rows, chosen], C[rows, chosen]
    curve = [(c, s) for _, s, c in lr.frontier(q_eval, c_eval, S, C)]
    at_cost = _upper_envelope_at(curve, float(artifact_costs.mean()))
    score, cost = float(b_scores.mean()), float(b_costs.mean())
    return BaselineComparison(
        method="per-model logistic regression on the artifact's features, argmax p̂ − λ·cost",
        l2=l2,
        cost_weight=weight,
        target_cost_share=round(target, 6),
        train_cost_share=round(train_share, 6),
        policy=PolicyMetrics(
            name=f"baseline logistic (λ={weight:.3g})",
            score=round(score, 6),
            cost_usd=cost,
            score_vs_best=round(score / ref_s, 6) if ref_s else 0.0,
            cost_vs_best=round(cost / ref_c, 6),
        ),
        score_difference=paired_bootstrap(
            artifact_scores, b_scores, seed=seed, groups=prompt_groups(data.prompts) if groups is None else groups
        ),
        cost_difference_vs_best=round(float((artifact_costs.mean() - cost) / ref_c), 6),
        frontier_score_at_cost=round(at_cost, 6),
    )


def _upper_envelope_at(curve: list[tuple[float, float]], cost: float) -> float:
    """Best score reachable at ``cost`` on a (cost, score) curve: its concave upper envelope
    (a mixture of two policies is attainable), interpolated at ``cost``."""
    points = sorted(set(curve))
    hull: list[tuple[float, float]] = []
    for point in points:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) >= 0:
            hull.pop()
        hull.append(point)
    left = [s for c, s in points if c <= cost]
    best = max(left) if left else points[0][1]
    for (c0, s0), (c1, s1) in zip(hull, hull[1:]):
        if c0 <= cost <= c1 and c1 > c0:
            best = max(best, s0 + (s1 - s0) * (cost - c0) / (c1 - c0))
    return float(best)


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def evaluate_artifact(
    artifact: Artifact | ReferenceRouter,
    dataset: str | Path | FullInfoDataset,
    *,
    split: str = "test",
    against: Artifact | ReferenceRouter | None = None,
    baseline: bool = False,
    seed: int = 0,
    fitted: FittedBaseline | None = None,
    reference: str | None = None,
    train_split: str = "train",
) -> EvaluationReport:
    """Evaluate an artifact (already verified) on one split of a full-information dataset.

    Args:
        artifact: the artifact, or a router built from it.
        dataset: a dataset path or a loaded dataset.
        split: which rows (``test`` unless told otherwise; ``all`` for every row). On
            ``train_split`` the report carries a warning (:func:`training_rows_warning`).
        against: another artifact to compare with (e.g. the current one).
        baseline: also fit and compare the logistic baseline (needs a ``train`` split).
        fitted: the baseline already fitted (:func:`fit_baseline`), to fit it once.
        reference: the "best single" model scores and costs are relative to (default: the
            best on ``train_split``, see the module docstring; the evaluated rows' best
            when there is no train split or ``split`` is ``all``).
    """
    router = artifact if isinstance(artifact, ReferenceRouter) else ReferenceRouter(artifact)
    full = dataset if isinstance(dataset, FullInfoDataset) else load_dataset(dataset)
    data = full if split == "all" else full.split(split)
    in_split = len(data)
    data = data.take(data.valid_rows())
    if len(data) == 0:
        raise EvaluationError(f"the dataset has no usable rows in split {split!r}")
    unusable = in_split - len(data)
    S, C = data.scores, data.costs
    rows = np.arange(len(data))
    groups = prompt_groups(data.prompts)  # copies of a prompt are one piece of evidence in every standard error
    columns, batch = route_dataset(router, data)
    chosen, buckets = columns[batch.chosen], batch.buckets

    means_s, means_c = S.mean(axis=0), C.mean(axis=0)
    if reference is not None:
        if reference not in data.models:
            raise EvaluationError(f"reference model {reference!r} has no labels in the dataset")
        best, chosen_on = data.models.index(reference), "caller's choice"
    elif fitted is not None and fitted.reference in data.models:
        best, chosen_on = data.models.index(fitted.reference), f"{train_split} split"
    else:
        best, chosen_on = (
            reference_model(full, data, train_split=train_split)
            if split != "all"
            else (best_model(S), "evaluated rows")
        )
    own_best = best_model(S)
    cheapest = int(np.argmin(means_c))
    ref_s, ref_c = float(means_s[best]), float(means_c[best])
    if not ref_c > 0:
        raise EvaluationError(
            f"the reference model {data.models[best]!r} (best single, chosen on the {chosen_on}) costs nothing on "
            "these rows: a share of its cost is undefined, so the goal cannot be read; fix its costs"
        )

    def metrics(name: str, s: np.ndarray, c: np.ndarray) -> PolicyMetrics:
        score, cost = float(s.mean()), float(c.mean())
        return PolicyMetrics(
            name=name,
            score=round(score, 6),
            cost_usd=cost,
            score_vs_best=round(score / ref_s, 6) if ref_s else 0.0,
            cost_vs_best=round(cost / ref_c, 6) if ref_c else 0.0,
        )

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
    against_difference = None
    if against_chosen is not None:
        against_difference = paired_bootstrap(S[rows, chosen], S[rows, against_chosen], seed=seed, groups=groups)
    compared = None
    if baseline:
        if fitted is None:
            fitted = fit_baseline(router, full, train_split=train_split, seed=seed)
        if fitted.reference != data.models[best]:  # an explicit reference: the baseline matches cost against it
            from dataclasses import replace

            fitted = replace(
                fitted,
                reference=data.models[best],
                train_unit=fitted.train_unit
                * _train_cost_ratio(full, train_split, fitted.reference, data.models[best]),
            )
        compared = baseline_comparison(
            router,
            full,
            data,
            S[rows, chosen],
            C[rows, chosen],
            seed=seed,
            features=batch.features,
            fitted=fitted,
            train_split=train_split,
            groups=groups,
        )
    diff = S[rows, chosen] - S[:, best]
    se = grouped_standard_error(diff, groups)
    # Only a split named as the training one: ``all`` is also how validation evaluates a holdout
    # (rows labelled train, never fitted on); the CLI, evaluating a whole file, warns for ``all``.
    warning = None if split == "all" else training_rows_warning(split, len(data), train_split=train_split)
    if warning is None and split != "all":  # a held-out split the artifact was nevertheless fitted on
        warning = trained_rows_warning(router.artifact, data)
    return EvaluationReport(
        artifact=router.version,
        dataset=data.source,
        split=split,
        rows=len(data),
        unusable_rows=unusable,
        malformed_lines=len(full.problems),
        malformed_in_split=sum(n for name, n in full.malformed_by_split.items() if split in ("all", name) or not name),
        file_lines=full.lines,
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
            mean=round(float(diff.mean()), 6),
            standard_error=round(se, 6),
            ci95=(round(float(diff.mean()) - 1.96 * se, 6), round(float(diff.mean()) + 1.96 * se, 6)),
        ),
        against_difference=against_difference,
        baseline=compared,
        reference_chosen_on=chosen_on,
        best_on_split=None if own_best == best else metrics(data.models[own_best], S[:, own_best], C[:, own_best]),
        warnings=[warning] if warning else [],
    )


def _train_cost_ratio(full: FullInfoDataset, train_split: str, old: str, new: str) -> float:
    """Mean train cost of model ``new`` over that of ``old`` (to move the baseline's cost unit)."""
    train, _ = full.training_split(train_split)
    j_old, j_new = full.models.index(old), full.models.index(new)
    return float(train.costs[:, j_new].mean()) / (float(train.costs[:, j_old].mean()) or 1.0)
