"""The reference router: verified loading and routing decisions on a hand-made artifact."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import (
    Artifact,
    ArtifactFormatError,
    ArtifactVerificationError,
    LinearQuality,
    encode,
    sha256_hex,
)
from bifrost.router.features import BASE_FEATURES
from bifrost.router.keys import public_key_pem
from bifrost.router.reference import ARTIFACT_FILE, DIGEST_FILE, SIGNATURE_FILE, ReferenceRouter
from tests.router.artifacts import (
    CODE_PROMPTS,
    QUESTION_PROMPTS,
    constant_model_string,
    make_artifact,
    prompt_models,
    signed,
)

KEY = Ed25519PrivateKey.generate()


def write_version(folder: Path, artifact: Artifact, key: Ed25519PrivateKey = KEY, *, digest: bool = True) -> Path:
    """Write artifact.json, artifact.sig (and artifact.sha256) like the store does; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    data, signature = signed(artifact, key)
    (folder / ARTIFACT_FILE).write_bytes(data)
    (folder / SIGNATURE_FILE).write_text(signature + "\n")
    if digest:
        (folder / DIGEST_FILE).write_text(f"{sha256_hex(data)}  {ARTIFACT_FILE}\n")
    return folder


# -- loading --------------------------------------------------------------------------------


def test_load_from_folder_file_and_bytes(tmp_path: Path) -> None:
    artifact = make_artifact()
    folder = write_version(tmp_path / "v1", artifact)
    for source in (folder, str(folder), folder / ARTIFACT_FILE):
        router = ReferenceRouter.load(source, KEY.public_key())
        assert router.artifact == artifact and router.version == artifact.version
    data, signature = signed(artifact, KEY)
    assert ReferenceRouter.load(data, public_key_pem(KEY), signature=signature).artifact == artifact
    # Without a digest file the signature alone is checked.
    bare = write_version(tmp_path / "bare", artifact, digest=False)
    assert ReferenceRouter.load(bare, KEY).version == artifact.version


def test_load_refuses_missing_signature(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "v1", make_artifact())
    (folder / SIGNATURE_FILE).unlink()
    with pytest.raises(ArtifactVerificationError, match="no artifact.sig beside it; refusing to load"):
        ReferenceRouter.load(folder, KEY.public_key())
    data, _ = signed(make_artifact(), KEY)
    with pytest.raises(ArtifactVerificationError, match="no signature given"):
        ReferenceRouter.load(data, KEY.public_key())


def test_load_refuses_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(ArtifactVerificationError, match="cannot read artifact"):
        ReferenceRouter.load(tmp_path / "nothing-here", KEY.public_key())


def test_load_refuses_tampered_artifact(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "v1", make_artifact(alpha=0.5))
    path = folder / ARTIFACT_FILE
    original = path.read_bytes()
    tampered = original.replace(b'"alpha":0.5', b'"alpha":0.9')
    assert tampered != original
    path.write_bytes(tampered)
    with pytest.raises(ArtifactVerificationError, match="sha256 mismatch"):
        ReferenceRouter.load(folder, KEY.public_key())
    # Updating the digest too is not enough: the signature no longer matches.
    (folder / DIGEST_FILE).write_text(sha256_hex(tampered) + "\n")
    with pytest.raises(ArtifactVerificationError, match="signature check failed"):
        ReferenceRouter.load(folder, KEY.public_key())


def test_load_refuses_another_key(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "v1", make_artifact(), key=Ed25519PrivateKey.generate())
    with pytest.raises(ArtifactVerificationError, match="signed by another key"):
        ReferenceRouter.load(folder, KEY.public_key())


@pytest.mark.parametrize("name", [SIGNATURE_FILE, DIGEST_FILE])
@pytest.mark.parametrize("bit", [0x01, 0x80])
def test_flipped_bytes_in_signature_or_digest_file_fail_verification(tmp_path: Path, name: str, bit: int) -> None:
    folder = write_version(tmp_path / "v1", make_artifact())
    path = folder / name
    original = path.read_bytes()
    meaningful = 64 if name == DIGEST_FILE else len(original) - 1  # the hex digest / the base64 text
    for position in range(0, meaningful, 5):
        changed = bytearray(original)
        changed[position] ^= bit
        path.write_bytes(bytes(changed))
        with pytest.raises(ArtifactVerificationError):
            ReferenceRouter.load(folder, KEY.public_key())
    path.write_bytes(original)
    assert ReferenceRouter.load(folder, KEY.public_key()).version == "v-test-1"


def test_empty_digest_file_fails_verification(tmp_path: Path) -> None:
    folder = write_version(tmp_path / "v1", make_artifact())
    (folder / DIGEST_FILE).write_text("")
    with pytest.raises(ArtifactVerificationError, match="sha256 mismatch"):
        ReferenceRouter.load(folder, KEY.public_key())


def test_explicit_signature_and_digest_override_the_files(tmp_path: Path) -> None:
    artifact = make_artifact()
    folder = write_version(tmp_path / "v1", artifact)
    data, signature = signed(artifact, KEY)
    (folder / SIGNATURE_FILE).write_text("garbage")
    (folder / DIGEST_FILE).write_text("0" * 64)
    router = ReferenceRouter.load(folder, KEY, signature=signature, expected_sha256=sha256_hex(data))
    assert router.version == artifact.version


def test_load_refuses_non_canonical_bytes(tmp_path: Path) -> None:
    from bifrost.router.artifact import sign

    pretty = msgspec.json.format(encode(make_artifact()), indent=2)
    with pytest.raises(ArtifactFormatError, match="canonical"):
        ReferenceRouter.load(pretty, KEY, signature=sign(pretty, KEY))


def test_tree_models_must_match_the_schema() -> None:
    artifact = make_artifact(model_string=constant_model_string((0.2, 0.5, 0.3), 5))
    with pytest.raises(ArtifactFormatError, match="the triage model reads 5 features, the feature schema has 28"):
        ReferenceRouter(artifact)
    good = make_artifact()
    narrow = prompt_models(5)
    bad = msgspec.structs.replace(
        good,
        prompt_models=msgspec.structs.replace(
            good.prompt_models, quality={**good.prompt_models.quality, "small": narrow.quality["small"]}
        ),
    )
    with pytest.raises(ArtifactFormatError, match=r"the quality\[small\] model reads 5 features"):
        ReferenceRouter(bad)
    garbage = msgspec.structs.replace(
        good,
        prompt_models=msgspec.structs.replace(
            good.prompt_models, cost={**good.prompt_models.cost, "large": "not a model"}
        ),
    )
    with pytest.raises(ArtifactFormatError, match="a tree model cannot be read"):
        ReferenceRouter(garbage)


def test_decision_carries_per_prompt_quality_and_cost() -> None:
    router = ReferenceRouter(make_artifact())
    code, question = router.route(CODE_PROMPTS[0]), router.route(QUESTION_PROMPTS[0])
    assert code.quality == pytest.approx({"large": 0.9, "medium": 0.6, "small": 0.2})
    assert question.quality == pytest.approx({"large": 0.8, "medium": 0.78, "small": 0.7})
    assert code.cost_usd == pytest.approx({"large": 0.001, "medium": 0.0003, "small": 0.0001})


# -- routing --------------------------------------------------------------------------------


def test_routes_by_cluster_and_utility() -> None:
    # P = (0.2, 0.5, 0.3), τ = 0.5 → mid = {medium, small}; α = 0.5.
    # code (cluster 0): medium 0.5·0.6−0.5·0.3 = 0.15, small 0.5·0.2−0.05 = 0.05 → medium
    # questions (cluster 1): medium 0.39−0.15 = 0.24, small 0.35−0.05 = 0.30 → small
    router = ReferenceRouter(make_artifact())
    for prompt in CODE_PROMPTS:
        decision = router.route(prompt)
        assert (decision.model, decision.bucket, decision.cluster_id) == ("medium", "mid", 0)
        assert decision.scores == pytest.approx({"medium": 0.15, "small": 0.05})
        assert decision.guardrail is None and decision.propensity == 1.0
    for prompt in QUESTION_PROMPTS:
        decision = router.route(prompt)
        assert (decision.model, decision.bucket, decision.cluster_id) == ("small", "mid", 1)
        assert decision.scores == pytest.approx({"medium": 0.24, "small": 0.30})
        assert decision.probabilities == pytest.approx({"cheap": 0.2, "mid": 0.5, "hard": 0.3})
        assert decision.features is not None and len(decision.features) == len(BASE_FEATURES) + 2


def test_thresholds_and_penalties_change_the_decision() -> None:
    # τ_hard = 0.3 → hard (all models); α = 0.5, cluster 1: large 0.4−0.5 = −0.1, medium 0.24, small 0.30.
    assert ReferenceRouter(make_artifact(hard=0.3)).route(QUESTION_PROMPTS[0]).bucket == "hard"
    # α = 1: quality only → large in the hard bucket.
    decision = ReferenceRouter(make_artifact(hard=0.3, alpha=1.0)).route(QUESTION_PROMPTS[0])
    assert (decision.model, decision.bucket) == ("large", "hard")
    # τ_cheap = 0.2 (P(cheap) = 0.2 ≥ 0.2) → cheap = {small}.
    decision = ReferenceRouter(make_artifact(cheap=0.2)).route(CODE_PROMPTS[0])
    assert (decision.model, decision.bucket) == ("small", "cheap")
    # A penalty of 0.1 on small: medium 0.24 > small 0.20 for questions.
    decision = ReferenceRouter(make_artifact(penalties={"small": 0.1})).route(QUESTION_PROMPTS[0])
    assert decision.model == "medium"
    assert decision.scores["small"] == pytest.approx(0.20)


def test_context_guardrail_escalates() -> None:
    router = ReferenceRouter(make_artifact(context={"small": 10, "medium": 10, "large": 100_000}))
    short = router.route(QUESTION_PROMPTS[0])
    assert short.model == "small" and short.guardrail is None
    long_prompt = QUESTION_PROMPTS[0] + " please" * 40  # ≈ 90 tokens
    decision = router.route(long_prompt)
    assert decision.model == "large" and decision.guardrail == "context"
    assert set(decision.scores) == {"large"}
    assert decision.bucket == "mid"  # the triaged bucket is still reported
    # An explicit token count overrides the prompt's size.
    assert router.route(long_prompt, tokens=5).model == "small"


def test_route_a_logged_feature_vector_matches_routing_the_prompt() -> None:
    router = ReferenceRouter(make_artifact())
    for prompt in CODE_PROMPTS + QUESTION_PROMPTS:
        from_text = router.route(prompt)
        assert from_text.features is not None  # routing a prompt logs its vector
        from_vector = router.route(np.asarray(from_text.features))
        assert from_vector.features is None
        assert (from_vector.model, from_vector.bucket, from_vector.cluster_id) == (
            from_text.model,
            from_text.bucket,
            from_text.cluster_id,
        )
        assert router.route(list(from_text.features)).model == from_text.model
    with pytest.raises(ValueError):
        router.route([1.0, 2.0])


def test_route_many_matches_route() -> None:
    router = ReferenceRouter(make_artifact(context={"small": 10, "medium": 10, "large": 100_000}))
    prompts = CODE_PROMPTS + QUESTION_PROMPTS + [QUESTION_PROMPTS[0] + " please" * 40, ""]
    batch = router.route_many(prompts)
    assert batch.model_names() == [router.route(p).model for p in prompts]
    assert [["cheap", "mid", "hard"][b] for b in batch.buckets] == [router.route(p).bucket for p in prompts]
    assert batch.clusters.tolist() == [router.route(p).cluster_id for p in prompts]
    assert batch.features.shape == (len(prompts), len(BASE_FEATURES) + 2)
    empty = router.route_many([])
    assert empty.chosen.size == 0 and empty.probabilities.shape == (0, 3)


def test_with_the_gate_off_the_triage_is_not_evaluated() -> None:
    # τ_hard = 0: every prompt is "hard" whatever the triage says, so its trees are skipped.
    gated, open_ = ReferenceRouter(make_artifact(hard=0.3)), ReferenceRouter(make_artifact(hard=0.0))
    assert gated.scorer.gate and not open_.scorer.gate
    assert len(open_.scorer.strings) == len(gated.scorer.strings) - 1
    for prompt in CODE_PROMPTS + QUESTION_PROMPTS:
        a, b = gated.route(prompt), open_.route(prompt)
        assert (a.model, a.bucket, a.scores) == (b.model, b.bucket, b.scores) and b.bucket == "hard"
        assert b.probabilities == {} and a.probabilities
    batch = open_.route_many(CODE_PROMPTS)
    assert batch.probabilities.tolist() == [[0.0, 0.0, 1.0]] * len(CODE_PROMPTS)


def test_a_blended_linear_model_enters_the_quality() -> None:
    # q̂ = blend·tree + (1 − blend)·sigmoid(z·w + b): a linear part that only has a bias makes it exact to check.
    base = make_artifact()
    width = len(base.gbdt.feature_schema.names)
    bias = {"large": -2.0, "medium": 0.0, "small": 3.0}
    linear = LinearQuality(
        mean=[0.0] * width, scale=[1.0] * width, blend=0.25, weights={m: [0.0] * width + [b] for m, b in bias.items()}
    )
    blended = msgspec.structs.replace(base, prompt_models=msgspec.structs.replace(base.prompt_models, linear=linear))
    router = ReferenceRouter(blended.check())
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    decision = router.route(CODE_PROMPTS[0])
    tree = {"large": 0.9, "medium": 0.6, "small": 0.2}
    assert decision.quality == pytest.approx({m: 0.25 * tree[m] + 0.75 * sigmoid(bias[m]) for m in tree})
    assert decision.model == "small"  # the linear part makes the cheap model look best on code now
    # A weight on a feature: standardized by mean and scale, the same in route() and route_many().
    symbols = BASE_FEATURES.index("code_symbols")
    weights = {m: [0.0] * width + [0.0] for m in bias}
    weights["medium"][symbols] = 1.0
    scaled = msgspec.structs.replace(
        linear,
        mean=[0.0] * symbols + [2.0] + [0.0] * (width - symbols - 1),
        scale=[1.0] * symbols + [4.0] + [1.0] * (width - symbols - 1),
        weights=weights,
    )
    router = ReferenceRouter(
        msgspec.structs.replace(base, prompt_models=msgspec.structs.replace(base.prompt_models, linear=scaled)).check()
    )
    for prompt in CODE_PROMPTS + QUESTION_PROMPTS:
        one = router.route(prompt)
        assert one.features is not None
        x = one.features[symbols]
        assert one.quality["medium"] == pytest.approx(
            0.25 * (0.6 if x > 0.5 else 0.78) + 0.75 * sigmoid((x - 2.0) / 4.0)
        )
    batch = router.route_many(CODE_PROMPTS + QUESTION_PROMPTS)
    assert batch.model_names() == [router.route(p).model for p in CODE_PROMPTS + QUESTION_PROMPTS]
