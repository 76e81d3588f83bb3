"""Artifact format: canonical encoding, consistency checks, Ed25519 signing and verification."""

from __future__ import annotations

import base64
import json

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import (
    Artifact,
    ArtifactFormatError,
    ArtifactVerificationError,
    LinearQuality,
    Thresholds,
    decode,
    encode,
    load_verified,
    sha256_hex,
    sign,
    verify,
)
from bifrost.router.keys import key_id, public_key_pem
from tests.router.artifacts import MODELS, make_artifact, signed

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def artifact() -> Artifact:
    return make_artifact(alpha=0.4, cheap=0.6, hard=0.7, context={"small": 1000})


def broken(artifact: Artifact, **changes: object) -> Artifact:
    """A copy with some fields replaced, without running ``check()``."""
    return msgspec.structs.replace(artifact, **changes)


# -- encoding -------------------------------------------------------------------------------


def test_encode_decode_round_trip_is_canonical(artifact: Artifact) -> None:
    data = encode(artifact)
    again = decode(data)
    assert again == artifact
    assert encode(again) == data
    # Keys are sorted at every level, so the bytes do not depend on construction order.
    parsed = json.loads(data)
    assert list(parsed) == sorted(parsed)
    assert list(parsed["gbdt"]) == sorted(parsed["gbdt"])
    assert list(parsed["qhat"]) == sorted(parsed["qhat"])


def test_artifacts_written_before_the_linear_section_keep_their_bytes(artifact: Artifact) -> None:
    # An artifact signed by an older trainer has no "linear" key: decoding and re-encoding it must
    # give the same bytes, or every stored artifact would fail the canonical check after an upgrade.
    legacy = json.loads(encode(artifact))
    assert "linear" not in legacy["prompt_models"]
    legacy_bytes = json.dumps(legacy, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert legacy_bytes == encode(artifact)
    key = Ed25519PrivateKey.generate()
    loaded = load_verified(legacy_bytes, sign(legacy_bytes, key), key.public_key())
    assert loaded.prompt_models.linear is None and encode(loaded) == legacy_bytes
    # With a linear section the bytes carry it and round-trip canonically too.
    width = len(artifact.gbdt.feature_schema.names)
    blended = msgspec.structs.replace(
        artifact,
        prompt_models=msgspec.structs.replace(
            artifact.prompt_models,
            linear=LinearQuality(
                mean=[0.0] * width,
                scale=[1.0] * width,
                blend=0.5,
                weights={m: [0.25] * (width + 1) for m in artifact.models},
            ),
        ),
    )
    data = encode(blended)
    assert json.loads(data)["prompt_models"]["linear"]["blend"] == 0.5
    assert encode(load_verified(data, sign(data, key), key.public_key())) == data


def test_encoding_does_not_depend_on_dict_insertion_order(artifact: Artifact) -> None:
    reordered = broken(
        artifact, chat=dict(reversed(list(artifact.chat.items()))), qhat=dict(reversed(list(artifact.qhat.items())))
    )
    assert encode(reordered) == encode(artifact)
    assert sha256_hex(encode(reordered)) == sha256_hex(encode(artifact))


def test_models_are_sorted(artifact: Artifact) -> None:
    assert artifact.models == sorted(MODELS)


def test_decode_rejects_garbage_with_format_error() -> None:
    with pytest.raises(ArtifactFormatError, match="not an artifact"):
        decode(b"{not json")
    with pytest.raises(ArtifactFormatError, match="not an artifact"):
        decode(b'{"version": "x", "format": 2}')
    with pytest.raises(ArtifactFormatError, match="not an artifact"):
        decode(b"[1, 2]")


def test_old_and_newer_formats_fail_with_a_version_error(artifact: Artifact) -> None:
    # A format-1 artifact (per-cluster Q̂ only, no prompt_models): a clear version error, not a decode error.
    old = msgspec.json.decode(encode(artifact))
    old.pop("prompt_models")
    old["format"] = 1
    with pytest.raises(ArtifactFormatError) as caught:
        decode(msgspec.json.encode(old))
    message = str(caught.value)
    assert "artifact v-test-1 has format 1; this router reads format 2" in message
    assert "retrain" in message and "bifrost-opt train" in message
    # No format field at all is format 1 too.
    with pytest.raises(ArtifactFormatError, match="has format 1; this router reads format 2"):
        decode(b'{"version": "x"}')
    newer = {**msgspec.json.decode(encode(artifact)), "format": 3}
    with pytest.raises(ArtifactFormatError, match="has format 3; this router reads format 2.*upgrade the router"):
        decode(msgspec.json.encode(newer))


def test_decode_runs_check(artifact: Artifact) -> None:
    data = encode(broken(artifact, alpha=1.5))
    with pytest.raises(ArtifactFormatError, match="alpha 1.5 outside"):
        decode(data)


# -- check ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"centroids": "drop-one"}, "1 centroids for 2 clusters"),
        ({"qhat": "drop-model"}, "qhat and chat name different models"),
        ({"alpha": -0.1}, "alpha -0.1 outside [0, 1]"),
        ({"alpha": 1.01}, "alpha 1.01 outside [0, 1]"),
        ({"alpha": float("nan")}, "not finite"),
        ({"thresholds": Thresholds(cheap=1.2, hard=0.5)}, "thresholds.cheap 1.2 outside [0, 1]"),
        ({"thresholds": Thresholds(cheap=0.5, hard=float("nan"))}, "thresholds.hard nan outside [0, 1]"),
        ({"chat": "nan-cost"}, "not finite"),
        ({"qhat": "inf-quality"}, "not finite"),
        ({"penalties": {"small": float("nan")}}, "not finite"),
        ({"centroids": "nan-centroid"}, "not finite"),
        ({"centroids": "short-centroid"}, "a centroid is not 256-dimensional"),
        ({"qhat": "short-row"}, "a qhat row does not have 2 clusters"),
        ({"buckets": {"cheap": ["small"], "hard": ["large"]}}, "buckets must be exactly"),
        ({"buckets": {"cheap": [], "mid": ["small"], "hard": ["large"]}}, "bucket cheap lists no models"),
        (
            {"buckets": {"cheap": ["tiny"], "mid": ["small"], "hard": ["large"]}},
            "bucket cheap lists no models or unknown",
        ),
        ({"penalties": {"nobody": 0.1}}, "penalties or context name unknown models"),
        ({"context": {"nobody": 10}}, "penalties or context name unknown models"),
        ({"format": 3}, "format 3 (this router reads 2)"),
        ({"prompt_models": "drop-quality"}, "prompt_models quality, calibration and cost must name exactly"),
        ({"prompt_models": "empty-cost"}, "a prompt model string is empty"),
        ({"prompt_models": "bad-calibration"}, "a calibration is not [a, b]"),
        ({"prompt_models": "zero-unit"}, "cost_unit_usd 0.0 is not a positive number"),
        ({"prompt_models": "nan-calibration"}, "not finite"),
        ({"prompt_models": "unknown-size"}, "cost_per 'words_typed' is neither 'request' nor a feature"),
        ({"prompt_models": "linear-short"}, "prompt_models.linear standardizes 3 features, the schema has"),
        ({"prompt_models": "linear-models"}, "prompt_models.linear.weights must give"),
        ({"prompt_models": "linear-blend"}, "prompt_models.linear.blend 1.5 outside [0, 1]"),
        ({"prompt_models": "linear-scale"}, "prompt_models.linear.scale has a value ≤ 0"),
        ({"prompt_models": "linear-nan"}, "a prompt_models.linear number is not finite"),
        ({"chat": {}, "qhat": {}, "penalties": {}}, "no models"),
    ],
)
def test_check_rejects_inconsistent_artifacts(artifact: Artifact, changes: dict[str, object], message: str) -> None:
    resolved: dict[str, object] = {}
    for field, value in changes.items():
        if value == "drop-one":
            value = artifact.centroids[:1]
        elif value == "nan-centroid":
            value = [[float("nan"), *artifact.centroids[0][1:]], artifact.centroids[1]]
        elif value == "short-centroid":
            value = [artifact.centroids[0][:-1], artifact.centroids[1]]
        elif value == "drop-model":
            value = {m: q for m, q in artifact.qhat.items() if m != "small"}
        elif value == "inf-quality":
            value = {**artifact.qhat, "small": [float("inf"), 0.5]}
        elif value == "short-row":
            value = {**artifact.qhat, "small": [0.5]}
        elif value == "nan-cost":
            value = {**artifact.chat, "small": float("nan")}
        elif isinstance(value, str) and field == "prompt_models":
            pm = artifact.prompt_models
            value = {
                "drop-quality": lambda pm=pm: msgspec.structs.replace(
                    pm, quality={m: q for m, q in pm.quality.items() if m != "small"}
                ),
                "empty-cost": lambda pm=pm: msgspec.structs.replace(pm, cost={**pm.cost, "small": ""}),
                "bad-calibration": lambda pm=pm: msgspec.structs.replace(
                    pm, calibration={**pm.calibration, "small": [1.0]}
                ),
                "zero-unit": lambda pm=pm: msgspec.structs.replace(pm, cost_unit_usd=0.0),
                "nan-calibration": lambda pm=pm: msgspec.structs.replace(
                    pm, calibration={**pm.calibration, "small": [float("nan"), 0.0]}
                ),
                "unknown-size": lambda pm=pm: msgspec.structs.replace(pm, cost_per="words_typed"),
                "linear-short": lambda pm=pm: msgspec.structs.replace(pm, linear=linear(artifact, mean=[0.0] * 3)),
                "linear-models": lambda pm=pm: msgspec.structs.replace(pm, linear=linear(artifact, drop="small")),
                "linear-blend": lambda pm=pm: msgspec.structs.replace(pm, linear=linear(artifact, blend=1.5)),
                "linear-scale": lambda pm=pm: msgspec.structs.replace(pm, linear=linear(artifact, scale_zero=True)),
                "linear-nan": lambda pm=pm: msgspec.structs.replace(pm, linear=linear(artifact, nan=True)),
            }[value]()
        resolved[field] = value
    bad = broken(artifact, **resolved)
    with pytest.raises(ArtifactFormatError) as caught:
        bad.check()
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"artifact {artifact.version}: ")


def linear(
    artifact: Artifact,
    *,
    mean: list[float] | None = None,
    drop: str | None = None,
    blend: float = 0.5,
    scale_zero: bool = False,
    nan: bool = False,
) -> LinearQuality:
    """A consistent linear section for the artifact's schema, broken as asked."""
    width = len(artifact.gbdt.feature_schema.names)
    weights = {m: [0.0] * (width + 1) for m in artifact.models if m != drop}
    if nan:
        weights[artifact.models[0]] = [float("nan")] * (width + 1)
    return LinearQuality(
        mean=mean if mean is not None else [0.0] * width,
        scale=[0.0 if scale_zero else 1.0] * width,
        weights=weights,
        blend=blend,
    )


def test_check_reports_every_problem_at_once(artifact: Artifact) -> None:
    bad = broken(artifact, alpha=2.0, centroids=artifact.centroids[:1])
    with pytest.raises(ArtifactFormatError) as caught:
        bad.check()
    assert "alpha 2.0" in str(caught.value) and "1 centroids for 2 clusters" in str(caught.value)


def test_check_rejects_gbdt_classes_in_another_order(artifact: Artifact) -> None:
    gbdt = msgspec.structs.replace(artifact.gbdt, classes=["hard", "mid", "cheap"])
    with pytest.raises(ArtifactFormatError, match="gbdt classes"):
        broken(artifact, gbdt=gbdt).check()


def test_check_returns_self_when_consistent(artifact: Artifact) -> None:
    assert artifact.check() is artifact


# -- sign / verify --------------------------------------------------------------------------


def test_sign_and_verify(artifact: Artifact) -> None:
    data, signature = signed(artifact, KEY)
    assert len(base64.b64decode(signature)) == 64
    digest = verify(data, signature, KEY.public_key(), expected_sha256=sha256_hex(data))
    assert digest == sha256_hex(data)
    # Raw signature bytes, the private key, a PEM public key and upper-case digests all work.
    assert verify(data, base64.b64decode(signature), KEY) == digest
    assert verify(data, signature.encode(), public_key_pem(KEY).decode(), expected_sha256=digest.upper()) == digest
    assert load_verified(data, signature, KEY.public_key(), expected_sha256=digest) == artifact


def test_flipping_any_artifact_byte_fails_verification(artifact: Artifact) -> None:
    data, signature = signed(artifact, KEY)
    for position in range(0, len(data), max(1, len(data) // 97)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        with pytest.raises(ArtifactVerificationError, match="signature check failed"):
            verify(bytes(changed), signature, KEY.public_key())
        with pytest.raises(ArtifactVerificationError, match="sha256 mismatch"):
            verify(bytes(changed), signature, KEY.public_key(), expected_sha256=sha256_hex(data))


def test_flipping_any_signature_byte_fails_verification(artifact: Artifact) -> None:
    data, signature = signed(artifact, KEY)
    raw = base64.b64decode(signature)
    for position in range(len(raw)):
        for bit in (0x01, 0x80):
            changed = bytearray(raw)
            changed[position] ^= bit
            with pytest.raises(ArtifactVerificationError):
                verify(data, base64.b64encode(bytes(changed)).decode(), KEY.public_key())
            with pytest.raises(ArtifactVerificationError):
                verify(data, bytes(changed), KEY.public_key())


def test_flipping_any_signature_text_character_fails_verification(artifact: Artifact) -> None:
    data, signature = signed(artifact, KEY)
    for position in range(len(signature)):
        changed = bytearray(signature.encode())
        changed[position] ^= 0x01
        with pytest.raises(ArtifactVerificationError):
            verify(data, bytes(changed), KEY.public_key())


def test_wrong_sha256_fails(artifact: Artifact) -> None:
    data, signature = signed(artifact, KEY)
    digest = sha256_hex(data)
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(ArtifactVerificationError, match="sha256 mismatch"):
        verify(data, signature, KEY.public_key(), expected_sha256=wrong)
    with pytest.raises(ArtifactVerificationError, match="sha256 mismatch"):
        load_verified(data, signature, KEY.public_key(), expected_sha256="")


def test_another_key_fails(artifact: Artifact) -> None:
    data, signature = signed(artifact, KEY)
    with pytest.raises(ArtifactVerificationError, match="signed by another key") as failed:
        verify(data, signature, OTHER_KEY.public_key())
    assert f"checked with ({key_id(OTHER_KEY)})" in str(failed.value)  # which key, so the operator can tell
    with pytest.raises(ArtifactVerificationError):
        load_verified(data, signature, OTHER_KEY.public_key())
    _, other_signature = signed(artifact, OTHER_KEY)
    with pytest.raises(ArtifactVerificationError):
        verify(data, other_signature, KEY.public_key())


@pytest.mark.parametrize("signature", ["not base64!", base64.b64encode(b"x" * 63).decode(), "", b"\xff" * 10])
def test_malformed_signatures_fail_cleanly(artifact: Artifact, signature: str | bytes) -> None:
    data, _ = signed(artifact, KEY)
    with pytest.raises(ArtifactVerificationError):
        verify(data, signature, KEY.public_key())


def test_unusable_public_key_is_a_verification_error(artifact: Artifact) -> None:
    data, signature = signed(artifact, KEY)
    with pytest.raises(ArtifactVerificationError, match="cannot verify"):
        verify(data, signature, b"definitely not a key")


def test_load_verified_rejects_non_canonical_bytes(artifact: Artifact) -> None:
    pretty = msgspec.json.format(encode(artifact), indent=2)
    assert pretty != encode(artifact) and decode(pretty) == artifact
    signature = sign(pretty, KEY)
    assert verify(pretty, signature, KEY.public_key())  # the signature itself is fine
    with pytest.raises(ArtifactFormatError, match="not in canonical encoding"):
        load_verified(pretty, signature, KEY.public_key())


def test_load_verified_rejects_a_signed_inconsistent_artifact(artifact: Artifact) -> None:
    data = encode(broken(artifact, alpha=3.0))
    with pytest.raises(ArtifactFormatError, match="alpha 3.0"):
        load_verified(data, sign(data, KEY), KEY.public_key())


def test_signature_is_deterministic(artifact: Artifact) -> None:
    data = encode(artifact)
    assert sign(data, KEY) == sign(data, KEY)  # Ed25519 is deterministic
    assert sign(data, KEY) != sign(data, OTHER_KEY)
