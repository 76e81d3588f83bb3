"""Bootstrap on a sample of the real dataset: a signed, verified, routable artifact; validation gates it."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC
from typing import Any

import msgspec
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import bifrost.trainer.export as export_module
import bifrost.trainer.pipeline as pipeline_module
from bifrost.router.artifact import Artifact, Reports, Thresholds, encode, load_verified, sha256_hex
from bifrost.router.keys import key_id
from bifrost.router.reference import ReferenceRouter
from bifrost.storage.dataset import PROMPT_KEY_VERSION, FullInfoDataset, prompt_digest, prompt_groups, prompt_key
from bifrost.trainer.bootstrap import BootstrapConfig, BootstrapReport, bootstrap_artifact, holdout_mask, new_version
from bifrost.trainer.evaluate import LINEAGE_ROOT, TRAINED_PROMPTS, TRAINED_PROMPTS_KEY, lineage_root, trained_prompts
from bifrost.trainer.outcomes import OutcomeModels
from bifrost.trainer.quality import DataQualityError, cost_tails
from bifrost.trainer.triage import stratified_folds
from bifrost.trainer.validate import ValidationFailed
from tests.trainer.conftest import CLUSTERS, TRIALS

CONFIG = BootstrapConfig(clusters=CLUSTERS, decision_slo_ms=1000.0)


def routing_parameters(artifact: Artifact) -> dict[str, object]:
    """Everything that decides a route (not the version, time or parent)."""
    return {
        "alpha": artifact.alpha,
        "thresholds": artifact.thresholds,
        "penalties": artifact.penalties,
        "qhat": artifact.qhat,
        "chat": artifact.chat,
        "buckets": artifact.buckets,
        "centroids": artifact.centroids,
        "context": artifact.context,
        "model": artifact.gbdt.model,
        "schema": artifact.gbdt.feature_schema,
    }


@pytest.fixture(scope="module")
def rerun(
    sample: FullInfoDataset, signing_key: Ed25519PrivateKey, bootstrapped: tuple[Artifact, BootstrapReport]
) -> tuple[Artifact, BootstrapReport]:
    """The same bootstrap again (same seed, the rows shuffled), validated against the first artifact
    as its parent."""
    return bootstrap_artifact(
        sample.take(np.random.default_rng(7).permutation(len(sample))),
        trials=TRIALS,
        seed=0,
        signing_key=signing_key,
        version="v-boot-2",
        config=CONFIG,
        parent=bootstrapped[0],
    )


def test_bootstrap_exports_a_verifiable_signed_artifact(
    bootstrapped: tuple[Artifact, BootstrapReport], signing_key: Ed25519PrivateKey, sample: FullInfoDataset
) -> None:
    artifact, report = bootstrapped
    data = encode(artifact)
    assert report.sha256 == sha256_hex(data)
    assert report.key_id == key_id(signing_key)
    verified = load_verified(data, report.signature, signing_key.public_key(), expected_sha256=report.sha256)
    assert encode(verified) == data
    assert routing_parameters(verified) == routing_parameters(artifact)
    assert artifact.version == report.version == "v-boot-1" and artifact.parent is None and report.parent is None
    assert artifact.models == sorted(sample.models)
    assert artifact.gbdt.feature_schema.clusters == len(artifact.centroids) == CLUSTERS
    assert artifact.gbdt.framework == "lightgbm"
    assert set(artifact.buckets["cheap"]) <= set(artifact.buckets["mid"]) <= set(artifact.buckets["hard"])
    assert artifact.buckets["hard"] == artifact.models
    assert max(artifact.chat.values()) == 1.0
    # The reports travel inside the signed artifact.
    assert artifact.reports.validation["passed"] is True
    assert artifact.reports.training["search"]["trials"] == TRIALS
    assert artifact.reports.training["rows"] == report.rows


def test_bootstrap_report(bootstrapped: tuple[Artifact, BootstrapReport], sample: FullInfoDataset) -> None:
    _, report = bootstrapped
    rows = report.rows
    assert rows["dataset"] == len(sample)
    # Train rows whose prompt text is in the test split are dropped before anything is fitted.
    kept, dropped = sample.training_split("train")
    assert rows["dropped_overlap"] == dropped and rows["train"] == len(kept)
    assert rows["train"] + dropped == int((sample.splits == "train").sum())
    assert rows["fit"] + rows["holdout"] == rows["train"]
    assert rows["holdout"] == pytest.approx(0.15 * rows["train"], rel=0.1)
    assert report.quality.passed and report.quality.per_bucket and len(report.quality.per_cluster) == CLUSTERS
    assert report.cv.folds == 5 and sum(report.cv.label_counts.values()) == rows["fit"]
    assert report.search.trials == TRIALS and report.search.rows == rows["fit"]
    assert report.validation.passed and report.validation.rows == rows["holdout"]
    assert [c.name for c in report.validation.checks] == [
        "enough_rows",
        "quality_floor",
        "cost_share",
        "decision_latency",
    ]
    # The default knob: the search's 95% bound ≤ 40% of the reference's cost; validation holds the holdout to
    # the goal's 50% (a 95% bound is exceeded in about one run in twenty: a default run was refused at 40.5%).
    share = next(c for c in report.validation.checks if c.name == "cost_share")
    assert share.passed and share.threshold == 0.50 and share.value == report.validation.candidate.cost_vs_best
    assert report.search.feasible and report.search.cost_upper is not None and report.search.cost_upper <= 0.40
    assert report.search.cost_upper > report.search.cost_ratio
    assert {"load", "quality", "cluster", "features", "cv", "search", "validate", "export", "total"} <= set(
        report.timings
    )
    markdown = report.to_markdown()
    for heading in (
        "# Training run v-boot-1",
        "## Data quality: passed",
        "## Per-prompt outcome models",
        "## Buckets (learned) and triage",
        "## Search",
        "## Validation: passed",
    ):
        assert heading in markdown
    # Per-prompt models: every model fitted out-of-fold, calibrated, with a cost model.
    assert set(report.outcomes.per_model) == set(sample.models)
    for fit in report.outcomes.per_model.values():
        assert fit.rows == rows["fit"] and fit.quality_rounds >= 1 and not fit.fallback
        assert 0.0 <= fit.ece < 0.1 and fit.auc is not None and fit.auc > 0.6
        assert fit.cost_mape < 0.05  # the bundled costs are a price per token × tokens: learned almost exactly
    assert {"outcomes", "buckets"} <= set(report.timings)
    assert msgspec.json.decode(report.to_json())["sha256"] == report.sha256


def test_bootstrapped_artifact_routes_prompts(
    bootstrapped: tuple[Artifact, BootstrapReport], signing_key: Ed25519PrivateKey, sample: FullInfoDataset
) -> None:
    artifact, report = bootstrapped
    router = ReferenceRouter.load(encode(artifact), signing_key.public_key(), signature=report.signature)
    for prompt in (
        "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\nFix this code.",
        "What is 17 * 23? Show your steps.",
        "Who wrote Hamlet?",
        "",
    ):
        decision = router.route(prompt)
        assert decision.model in artifact.models
        assert decision.model in artifact.buckets[decision.bucket] or decision.guardrail == "context"
        assert 0 <= decision.cluster_id < CLUSTERS
        if artifact.thresholds.hard > 0:
            assert sum(decision.probabilities.values()) == pytest.approx(1.0)
        else:  # the escalation gate is off: the triage is not evaluated
            assert decision.probabilities == {} and decision.bucket == "hard"
    batch = router.route_many(sample.prompts[:60])
    assert batch.model_names() == [router.route(p).model for p in sample.prompts[:60]]
    assert len(set(batch.clusters.tolist())) > 1  # prompts spread over clusters


def test_same_seed_same_routing_parameters_whatever_the_row_order(
    bootstrapped: tuple[Artifact, BootstrapReport], rerun: tuple[Artifact, BootstrapReport]
) -> None:
    first, first_report = bootstrapped
    second, second_report = rerun
    assert routing_parameters(second) == routing_parameters(first)
    assert second_report.cv == first_report.cv
    assert second_report.search.top == first_report.search.top
    assert second.version != first.version and second_report.sha256 != first_report.sha256


def test_parent_makes_validation_compare_against_it(
    bootstrapped: tuple[Artifact, BootstrapReport], rerun: tuple[Artifact, BootstrapReport]
) -> None:
    artifact, report = rerun
    assert artifact.parent == "v-boot-1" and report.parent == "v-boot-1"
    # The lineage's first artifact is recorded, so a grandchild is compared with it too.
    assert artifact.reports.training[LINEAGE_ROOT] == "v-boot-1" == lineage_root(artifact)
    assert bootstrapped[0].reports.training[LINEAGE_ROOT] is None and lineage_root(bootstrapped[0]) == "v-boot-1"
    validation = report.validation
    assert [c.name for c in validation.checks] == [
        "enough_rows",
        "enough_unseen_rows",
        "quality_non_inferior",
        "cost_not_higher",
        "cost_share",
        "decision_latency",
    ]
    assert validation.difference is not None and validation.difference.difference == 0.0
    # Same seed, same data: the parent never trained on this holdout, so every held-out row is compared.
    assert validation.checks[1].value == validation.checks[0].value and validation.difference.rows == validation.rows
    assert validation.parent is not None and validation.parent.name == "against v-boot-1"
    # Same parameters: exactly the parent's score and cost on the holdout.
    assert validation.candidate.score == validation.parent.score
    assert validation.candidate.cost_usd == validation.parent.cost_usd
    assert validation.passed


def test_a_candidate_worse_than_its_parent_is_not_signed(
    bootstrapped: tuple[Artifact, BootstrapReport],
    sample: FullInfoDataset,
    signing_key: Ed25519PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, _ = bootstrapped
    # The parent sends every prompt to the cheapest model (α = 0, everything "cheap"): the candidate,
    # which pays for larger models, is more expensive than the current artifact and must be refused.
    cheap_parent = msgspec.structs.replace(
        first, version="v-cheap", alpha=0.0, thresholds=Thresholds(cheap=0.0, hard=1.0)
    ).check()
    signatures: list[bytes] = []

    def fake_sign(data: bytes, key: Ed25519PrivateKey) -> str:
        signatures.append(data)
        return "sig"

    monkeypatch.setattr(export_module, "sign", fake_sign)
    with pytest.raises(ValidationFailed) as caught:
        bootstrap_artifact(
            sample, trials=TRIALS, seed=0, signing_key=signing_key, version="v-bad", config=CONFIG, parent=cheap_parent
        )
    assert signatures == []
    report = caught.value.report
    assert not report.passed
    failed = [c.name for c in report.checks if not c.passed]
    assert failed == ["cost_not_higher"]
    assert report.parent is not None and report.candidate.cost_usd > report.parent.cost_usd
    assert "cost_not_higher" in str(caught.value)
    assert "## Validation: FAILED" in report.to_markdown()


def test_a_candidate_forced_to_the_cheapest_model_fails_quality(
    bootstrapped: tuple[Artifact, BootstrapReport],
    sample: FullInfoDataset,
    signing_key: Ed25519PrivateKey,
) -> None:
    # A search space that only allows α = 0 with everything in the mid bucket: the candidate routes
    # every prompt to the cheapest model. The parent routes by quality alone (α = 1, all hard).
    space = msgspec.structs.replace(
        CONFIG.space, cost_weight=(1e4, 1e4), tau_cheap=(1.0, 1.0), tau_hard=(1.0, 1.0), penalties="none"
    )
    first, _ = bootstrapped
    quality_parent = msgspec.structs.replace(
        first, version="v-quality", alpha=1.0, thresholds=Thresholds(cheap=1.0, hard=0.0)
    ).check()
    with pytest.raises(ValidationFailed) as caught:
        bootstrap_artifact(
            sample,
            trials=3,
            seed=0,
            signing_key=signing_key,
            version="v-floor",
            config=msgspec.structs.replace(CONFIG, space=space),
            parent=quality_parent,
        )
    report = caught.value.report
    assert [c.name for c in report.checks if not c.passed] == ["quality_non_inferior"]
    assert report.parent is not None and report.candidate.score < 0.98 * report.parent.score
    assert report.candidate.cost_usd < report.parent.cost_usd


def test_bad_data_stops_before_training(sample: FullInfoDataset, signing_key: Ed25519PrivateKey) -> None:
    tiny = sample.take(np.arange(50))
    with pytest.raises(DataQualityError, match="train_rows"):
        bootstrap_artifact(tiny, trials=2, seed=0, signing_key=signing_key, config=CONFIG)


def test_no_prompt_of_the_test_split_is_trained_on(real_dataset: FullInfoDataset) -> None:
    # The bundled set repeats 119 test prompts word for word in its train split (gpqa, human_eval, mbpp).
    kept, dropped = real_dataset.training_split("train")
    assert dropped == 119 and len(kept) == 5608 - 119
    test = {prompt_key(p) for p in real_dataset.split("test").prompts}
    assert not test & {prompt_key(p) for p in kept.prompts}


def test_copies_of_a_prompt_stay_on_one_side(
    sample: FullInfoDataset, signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every train prompt twice (another id, same text): the holdout and the outcome models' folds keep
    # both copies together, and both copies of a prompt that is also in the test split are dropped.
    train, _ = sample.training_split("train")
    train = train.take(np.arange(400))
    copies = np.concatenate([np.arange(400), np.arange(400), np.arange(20)])
    data = train.take(copies)
    data = FullInfoDataset(
        prompt_ids=[f"r{i}" for i in range(len(data))],
        prompts=data.prompts,
        tasks=data.tasks,
        splits=np.array(["train"] * 800 + ["test"] * 20, dtype=object),
        models=data.models,
        scores=data.scores,
        costs=data.costs,
        source="copies",
    )
    seen: dict[str, np.ndarray] = {}
    original = pipeline_module.train_outcome_models  # the one pipeline fits every run's outcome models

    def spy(X: np.ndarray, scores: np.ndarray, costs: np.ndarray, folds: np.ndarray, **kwargs: Any) -> OutcomeModels:
        seen["X"], seen["folds"] = np.asarray(X), np.asarray(folds)
        return original(X, scores, costs, folds, **kwargs)

    monkeypatch.setattr(pipeline_module, "train_outcome_models", spy)
    # ~15% of 380 distinct prompts held out (46 here, each twice): validation counts distinct prompts,
    # so lower its floor.
    config = msgspec.structs.replace(CONFIG, min_validation_rows=30)
    _, report = bootstrap_artifact(data, trials=3, seed=0, signing_key=signing_key, config=config)
    assert report.rows["dropped_overlap"] == 40  # both copies of the 20 prompts that are also test prompts
    assert report.rows["train"] == 760 and report.rows["fit"] + report.rows["holdout"] == 760
    assert report.rows["holdout"] % 2 == 0 and report.rows["fit"] % 2 == 0  # whole pairs on each side
    X, folds = seen["X"], seen["folds"]
    _, row_group = np.unique(X, axis=0, return_inverse=True)
    row_group = row_group.reshape(-1)
    assert np.bincount(row_group).max() == 2  # the copies, and nothing else, share a feature vector
    for group in np.flatnonzero(np.bincount(row_group) == 2):
        assert len(set(folds[row_group == group].tolist())) == 1


def test_grouped_folds_and_holdout_keep_copies_together() -> None:
    prompts = [f"prompt {i % 30}" if i < 60 else f"Prompt   {i % 30}" for i in range(90)]  # 3 copies each
    groups = prompt_groups(prompts)
    assert len(set(groups.tolist())) == 30
    tasks = np.array(["a" if (i % 30) < 20 else "b" for i in range(90)], dtype=object)
    folds = stratified_folds(tasks, 5, seed=0, groups=groups)
    mask = holdout_mask(prompts, tasks, 0.2)
    for g in range(30):
        rows = groups == g
        assert len(set(folds[rows].tolist())) == 1 and len(set(mask[rows].tolist())) == 1
    assert int(mask.sum()) % 3 == 0 and 0 < int(mask.sum()) < 90  # whole prompts, three copies each
    assert sorted(np.bincount(folds).tolist()) == [18, 18, 18, 18, 18]
    assert np.array_equal(folds, stratified_folds(tasks, 5, seed=0, groups=groups))


def test_holdout_mask_is_stratified_by_task() -> None:
    tasks = np.array(["a"] * 4000 + ["b"] * 20 + ["c"] * 1 + ["d"] * 3, dtype=object)
    prompts = [f"question {i}" for i in range(len(tasks))]
    mask = holdout_mask(prompts, tasks, 0.25)
    assert 0.23 < mask[tasks == "a"].mean() < 0.27  # about the fraction: each prompt is held with p = 0.25
    assert 1 <= int(mask[tasks == "b"].sum()) <= 19  # at least one held and one kept
    # Tasks under 1/0.25 = 4 prompts (c: 1, d: 3) share one pooled stratum: at least one held, one kept.
    assert 1 <= int(mask[(tasks == "c") | (tasks == "d")].sum()) <= 3
    assert not holdout_mask(prompts, tasks, 0.0).any()
    # Every prompt its own task, or two prompts a task (outside tests: nothing held out; half held out):
    # pooled, so about the fraction is still held out.
    singles = np.array([f"task-{i}" for i in range(2000)], dtype=object)
    assert 0.13 < holdout_mask(prompts[:2000], singles, 0.15).mean() < 0.17
    pairs = np.array([f"task-{i // 2}" for i in range(2000)], dtype=object)
    assert 0.13 < holdout_mask(prompts[:2000], pairs, 0.15).mean() < 0.17


def test_holdout_mask_depends_on_the_prompt_only() -> None:
    """A retrain on reordered, grown or trimmed data holds out the same prompts (its parent never saw them)."""
    rng = np.random.default_rng(5)
    prompts = [f"prompt number {i}: {rng.integers(10**9)}" for i in range(3000)]
    tasks = np.array([f"t{i % 7}" for i in range(3000)], dtype=object)
    mask = holdout_mask(prompts, tasks, 0.15)
    held = {p for p, h in zip(prompts, mask, strict=True) if h}
    order = rng.permutation(3000)
    shuffled = holdout_mask([prompts[i] for i in order], tasks[order], 0.15)
    assert {prompts[i] for i, h in zip(order, shuffled, strict=True) if h} == held
    grown = prompts + [f"new prompt {i}" for i in range(500)]
    grown_tasks = np.concatenate([tasks, np.array([f"t{i % 7}" for i in range(500)], dtype=object)])
    grown_mask = holdout_mask(grown, grown_tasks, 0.15)
    assert {p for p, h in zip(grown, grown_mask, strict=True) if h} & set(prompts) == held
    trimmed = holdout_mask(prompts[:2000], tasks[:2000], 0.15)
    assert {p for p, h in zip(prompts[:2000], trimmed, strict=True) if h} == held & set(prompts[:2000])
    # Copies that differ only in case and spacing stay on one side.
    assert holdout_mask(["Same  Prompt", "same prompt", "other"], np.array(["a"] * 3, dtype=object), 0.5).tolist()[
        :2
    ] in (
        [True, True],
        [False, False],
    )


def test_near_copies_do_not_hide_a_test_prompt_in_training(real_dataset: FullInfoDataset) -> None:
    # Outside tests copied test prompts into the train split, changed so a person reads the same prompt:
    # U+200B appended (the overlap check missed all 500; the test score rose from 0.5766 to 0.6206), a
    # trailing "." (+0.034), Cyrillic look-alike letters (+0.012), Greek capitals and Armenian letters
    # (+0.010 overall, +0.042 on the prompts leaked), the minus sign and the modifier apostrophe.
    test = real_dataset.split("test")
    look_alikes = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х"})
    greek_capitals = str.maketrans({"H": "Η", "N": "Ν", "M": "Μ", "Y": "Υ", "E": "Ε", "T": "Τ"})
    armenian = str.maketrans({"o": "օ", "u": "ս", "h": "հ", "n": "ո", "q": "զ"})
    others = str.maketrans({"i": "ı", "'": "ʼ", "-": "−", "A": "Ꭺ", "o": "ᴏ"})
    # A second outside round: stroke letters, Cherokee small letters, negative squared letters, a
    # trailing null notehead (+0.030 on the test score with all 500 copied), private-use characters.
    strokes = str.maketrans({"o": "ø", "l": "ł", "d": "đ", "a": "ꭺ", "T": "🆃", "e": "e\ue000"})
    disguises = [
        lambda p: p + "\u200b",
        lambda p: "\ufeff" + p.replace(" ", " \u00ad", 1),
        lambda p: p.rstrip() + ".",
        lambda p: p.translate(look_alikes),
        lambda p: p.replace(",", "").replace("  ", " ").replace("?", " ?").upper(),
        lambda p: p.upper().translate(greek_capitals),
        lambda p: p.translate(armenian),
        lambda p: p.translate(others) + "\u200b",
        lambda p: p.translate(strokes) + "\U0001d159",
    ]
    padded = dataclasses.replace(
        test.take(np.arange(100)),
        prompts=[disguises[i % len(disguises)](p) for i, p in enumerate(test.prompts[:100])],
        splits=np.array(["train"] * 100, dtype=object),
        prompt_ids=[f"leak-{i}" for i in range(100)],
    )
    assert all(a != b for a, b in zip(padded.prompts, test.prompts[:100], strict=True))
    combined = dataclasses.replace(
        real_dataset,
        prompt_ids=real_dataset.prompt_ids + padded.prompt_ids,
        prompts=real_dataset.prompts + padded.prompts,
        tasks=np.concatenate([real_dataset.tasks, padded.tasks]),
        splits=np.concatenate([real_dataset.splits, padded.splits]),
        scores=np.concatenate([real_dataset.scores, padded.scores]),
        costs=np.concatenate([real_dataset.costs, padded.costs]),
    )
    kept, dropped = combined.training_split("train")
    assert dropped == 119 + 100 and len(kept) == 5608 - 119


def test_new_version_is_sortable_and_unique() -> None:
    from datetime import datetime

    version = new_version(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert re.fullmatch(r"v20250102-030405-[0-9a-f]{6}", version)
    assert new_version() != new_version()


def test_heavy_tailed_costs_are_capped_for_training_and_warned_about(
    sample: FullInfoDataset, signing_key: Ed25519PrivateKey
) -> None:
    # An outside test multiplied every cost by 1 + Pareto(1.1): one call carried ~95% of a model's
    # cost variance, and the search's cost bound (101% for a policy estimated at 10%) refused
    # every policy. Training now reads costs capped at each model's 99.9th percentile and warns.
    rng = np.random.default_rng(0)
    costs = sample.costs * (1.0 + rng.pareto(1.1, sample.costs.shape))
    costs[np.flatnonzero(sample.splits == "train")[0]] *= 1e4  # and one runaway call on every model
    heavy = dataclasses.replace(sample, costs=costs)
    artifact, report = bootstrap_artifact(
        heavy, trials=TRIALS, seed=0, signing_key=signing_key, version="v-heavy", config=CONFIG
    )
    tails = next(c for c in report.quality.checks if c.name == "cost_tails")
    assert tails.status == "warn" and tails.value == len(sample.models), tails
    assert "quantile" in tails.message and "cost per unit of prompt size capped" in tails.message
    assert report.search.feasible and report.search.cost_upper is not None and report.search.cost_upper <= 0.40
    # The sample's own (real) costs are not touched.
    train, _ = sample.training_split("train")
    calm, capped = cost_tails(train.costs, train.models, np.array([len(p) / 4.0 for p in train.prompts]))
    assert calm.status == "pass" and calm.value == 0 and capped is None


def test_the_parent_is_compared_only_on_prompts_it_was_not_trained_on(
    bootstrapped: tuple[Artifact, BootstrapReport], sample: FullInfoDataset, signing_key: Ed25519PrivateKey
) -> None:
    # An outside test: another seed (or a few rows fewer) moved a per-seed holdout onto the parent's
    # training rows; scored on what it had learned, the parent looked 5 points better than a better
    # candidate. The holdout is now assigned by prompt digest: another seed holds out the same prompts.
    parent, _ = bootstrapped
    trained = trained_prompts(parent)
    assert trained is not None and len(trained) > 500
    config = msgspec.structs.replace(CONFIG, min_validation_rows=10)

    def validation_against(current: Artifact, seed: int) -> Any:
        try:  # signed or refused (e.g. on cost): either way the comparison read only the parent's unseen rows
            return bootstrap_artifact(
                sample,
                trials=TRIALS,
                seed=seed,
                signing_key=signing_key,
                version=f"v-seed-{seed}",
                config=config,
                parent=current,
            )[1].validation
        except ValidationFailed as refused:
            return refused.report

    validation = validation_against(parent, seed=1)
    checks = {c.name: c for c in validation.checks}
    assert checks["enough_unseen_rows"].value == checks["enough_rows"].value  # the whole holdout
    assert validation.difference is not None and validation.difference.rows == validation.rows
    # A parent that trained on some of these prompts (one trained before the digest holdout did):
    # only the others are compared.
    train, _ = sample.training_split("train")
    held = [
        p
        for p, h in zip(train.prompts, holdout_mask(train.prompts, train.tasks, CONFIG.holdout_fraction), strict=True)
        if h
    ]
    fitted = [p for p in train.prompts if p in trained]
    # Recorded with the current prompt key, or (an artifact from before it) with version 1's.
    for version in (PROMPT_KEY_VERSION, 1):
        seen = {prompt_digest(p, version=version) for p in [*fitted, *held[::2]]}
        record = {TRAINED_PROMPTS: sorted(seen)} | ({TRAINED_PROMPTS_KEY: version} if version > 1 else {})
        training = {k: v for k, v in parent.reports.training.items() if k != TRAINED_PROMPTS_KEY} | record
        older = msgspec.structs.replace(parent, reports=Reports(training=training, validation={}))
        validation = validation_against(older, seed=1)
        checks = {c.name: c for c in validation.checks}
        assert checks["enough_unseen_rows"].value == len(held) - len(held[::2]) < checks["enough_rows"].value
        assert validation.difference is not None
        assert validation.difference.rows == checks["enough_unseen_rows"].value  # no copies in the sample
    unrecorded = msgspec.structs.replace(parent, reports=Reports(training={}, validation={}))
    assert trained_prompts(unrecorded) is None
