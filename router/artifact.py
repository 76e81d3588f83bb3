"""The routing artifact: what the trainer exports and every router loads.

An artifact is a msgspec struct with a canonical JSON encoding (keys sorted, shortest
float representation), so its bytes, sha256 and Ed25519 signature are reproducible:
``sha256(canonical bytes)`` identifies it, ``sign(canonical bytes)`` authenticates it.
A router never uses an artifact whose bytes fail :func:`verify`.

Layout (format 2)::

    {format: 2, version, created_at, parent, alpha, thresholds {cheap, hard},
     penalties {model: p}, buckets {cheap|mid|hard: [models]}, context {model: max input tokens},
     centroids [[...] per cluster], gbdt {framework, framework_version, model, classes,
     feature_schema}, prompt_models {framework, framework_version, quality {model: model
     string}, calibration {model: [a, b]}, cost {model: model string}, cost_per, cost_unit_usd},
     qhat {model: [q per cluster]}, chat {model: normalized mean cost}, reports {training, validation}}

Routing uses the per-prompt models: ``q̂(m | x)`` (a LightGBM cross-entropy model per LLM,
Platt-calibrated: ``sigmoid(a·raw + b)``; a success probability for pass/fail scores, an
expected score for graded ones) and ``ĉ(m | x)`` (a LightGBM gamma model per LLM of the
cost per ``cost_per`` unit — approximate input tokens — so input and output prices and
the prompt's expected answer length all enter), in units of ``cost_unit_usd`` (the
reference model's mean cost per request in training). ``qhat`` (per cluster) and ``chat``
(per model) are summaries of the same data, kept for reports and as the spec's
per-cluster view; the router does not route with them.

Format 1 artifacts (per-cluster Q̂ only) are refused with a clear version error: a
router of this version cannot route them the way they were validated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.common.errors import ExitCode
from bifrost.router.features import FeatureSchema
from bifrost.router.keys import PublicKeySource, SigningKeyError, key_id, load_public_key

ARTIFACT_FORMAT = 2
BUCKETS: tuple[str, ...] = ("cheap", "mid", "hard")
COST_PER_REQUEST = "request"


class ArtifactError(ValueError):
    """An artifact cannot be used."""

    exit_code = ExitCode.FAILURE


class ArtifactVerificationError(ArtifactError):
    """The artifact's bytes do not match their sha256 or signature: it was changed or not signed by us."""


class ArtifactFormatError(ArtifactError):
    """The artifact decodes but is inconsistent (shapes, model sets, ranges)."""


class ArtifactVersionError(ArtifactFormatError):
    """The artifact has another format version than this router reads."""


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """Triage thresholds: P(hard) ≥ hard → hard, else P(cheap) ≥ cheap → cheap, else mid."""

    cheap: float
    hard: float


class Gbdt(msgspec.Struct, frozen=True, kw_only=True):
    """The triage model: a LightGBM multiclass model string over ``feature_schema``."""

    framework: str
    framework_version: str
    model: str
    feature_schema: FeatureSchema
    classes: list[str] = msgspec.field(default_factory=lambda: list(BUCKETS))


class LinearQuality(msgspec.Struct, frozen=True, kw_only=True):
    """Per-LLM logistic regressions over the standardized feature vector, blended into q̂.

    ``z = (x − mean) / scale``; ``q_linear(m) = sigmoid(z · weights[m][:-1] + weights[m][-1])``;
    the router's quality is ``blend · q_tree(m) + (1 − blend) · q_linear(m)``.
    """

    mean: list[float]
    scale: list[float]
    weights: dict[str, list[float]]
    blend: float


class PromptModels(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Per-prompt quality and cost models: one LightGBM model string per LLM, over ``gbdt.feature_schema``.

    ``quality[m]`` (objective cross_entropy) gives a raw score ``r``; the calibrated
    quality is ``sigmoid(a·r + b)`` with ``[a, b] = calibration[m]``. ``cost[m]``
    (objective gamma, log link) gives ``exp(r)`` USD per unit of the ``cost_per``
    feature (or per request when ``cost_per`` is ``"request"``); the router's normalized
    cost is that × the feature's value / ``cost_unit_usd``. ``linear`` (optional) blends a
    logistic regression per LLM into the quality (:class:`LinearQuality`).

    Encoding: ``linear`` is left out when absent (``omit_defaults``; it is the only field
    with a default), so artifacts written before it existed keep their canonical bytes
    and signatures.
    """

    framework: str
    framework_version: str
    quality: dict[str, str]
    calibration: dict[str, list[float]]
    cost: dict[str, str]
    cost_unit_usd: float
    cost_per: str
    linear: LinearQuality | None = None


class Reports(msgspec.Struct, frozen=True, kw_only=True):
    """Training (data quality, CV, search) and validation reports, as plain JSON."""

    training: dict[str, Any] = {}
    validation: dict[str, Any] = {}


class Artifact(msgspec.Struct, frozen=True, kw_only=True):
    """One routing policy, complete: everything a router needs to route a prompt."""

    version: str
    created_at: str
    parent: str | None
    alpha: float
    thresholds: Thresholds
    penalties: dict[str, float]
    qhat: dict[str, list[float]]
    chat: dict[str, float]
    buckets: dict[str, list[str]]
    centroids: list[list[float]]
    gbdt: Gbdt
    prompt_models: PromptModels
    context: dict[str, int] = {}
    reports: Reports = Reports()
    format: int = ARTIFACT_FORMAT

    @property
    def models(self) -> list[str]:
        """Every model the artifact can route to, in a stable order."""
        return sorted(self.chat)

    def check(self) -> Artifact:
        """Raise :class:`ArtifactFormatError` unless the parts fit together; return self."""
        problems = []
        if self.format != ARTIFACT_FORMAT:
            problems.append(f"format {self.format} (this router reads {ARTIFACT_FORMAT})")
        if not 0.0 <= self.alpha <= 1.0:
            problems.append(f"alpha {self.alpha} outside [0, 1]")
        for name in ("cheap", "hard"):
            value = getattr(self.thresholds, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"thresholds.{name} {value} outside [0, 1]")
        models = set(self.chat)
        if not models:
            problems.append("no models")
        if set(self.qhat) != models:
            problems.append("qhat and chat name different models")
        k = self.gbdt.feature_schema.clusters
        if len(self.centroids) != k:
            problems.append(f"{len(self.centroids)} centroids for {k} clusters")
        dims = self.gbdt.feature_schema.text.dimensions
        if any(len(row) != dims for row in self.centroids):
            problems.append(f"a centroid is not {dims}-dimensional")
        if any(len(q) != k for q in self.qhat.values()):
            problems.append(f"a qhat row does not have {k} clusters")
        if set(self.buckets) != set(BUCKETS):
            problems.append(f"buckets must be exactly {list(BUCKETS)}")
        for bucket, members in self.buckets.items():
            if not members or not set(members) <= models:
                problems.append(f"bucket {bucket} lists no models or unknown models")
        if not set(self.penalties) <= models or not set(self.context) <= models:
            problems.append("penalties or context name unknown models")
        if list(self.gbdt.classes) != list(BUCKETS):
            problems.append(f"gbdt classes {self.gbdt.classes} are not {list(BUCKETS)}")
        pm = self.prompt_models
        if set(pm.quality) != models or set(pm.cost) != models or set(pm.calibration) != models:
            problems.append("prompt_models quality, calibration and cost must name exactly the routed models")
        if any(not text for text in (*pm.quality.values(), *pm.cost.values())):
            problems.append("a prompt model string is empty")
        if any(len(ab) != 2 for ab in pm.calibration.values()):
            problems.append("a calibration is not [a, b]")
        if not (math.isfinite(pm.cost_unit_usd) and pm.cost_unit_usd > 0):
            problems.append(f"prompt_models.cost_unit_usd {pm.cost_unit_usd} is not a positive number")
        if pm.cost_per != COST_PER_REQUEST and pm.cost_per not in self.gbdt.feature_schema.names:
            problems.append(f"prompt_models.cost_per {pm.cost_per!r} is neither 'request' nor a feature of the schema")
        if pm.linear is not None:
            width = len(self.gbdt.feature_schema.names)
            lin = pm.linear
            if len(lin.mean) != width or len(lin.scale) != width:
                problems.append(f"prompt_models.linear standardizes {len(lin.mean)} features, the schema has {width}")
            if set(lin.weights) != models or any(len(w) != width + 1 for w in lin.weights.values()):
                problems.append(
                    f"prompt_models.linear.weights must give {width} + 1 weights for exactly the routed models"
                )
            if not 0.0 <= lin.blend <= 1.0:
                problems.append(f"prompt_models.linear.blend {lin.blend} outside [0, 1]")
            if any(v <= 0 for v in lin.scale):
                problems.append("prompt_models.linear.scale has a value ≤ 0")
            linear_numbers = [*lin.mean, *lin.scale, *(v for w in lin.weights.values() for v in w), lin.blend]
            if not all(math.isfinite(v) for v in linear_numbers):
                problems.append("a prompt_models.linear number is not finite")
        numbers = [self.alpha, *self.penalties.values(), *self.chat.values(), pm.cost_unit_usd]
        numbers += [v for ab in pm.calibration.values() for v in ab]
        numbers += [v for q in self.qhat.values() for v in q]
        numbers += [v for row in self.centroids for v in row]  # NaN/inf would encode as null: unreadable
        if not all(math.isfinite(v) for v in numbers):
            problems.append("a number is not finite")
        if problems:
            raise ArtifactFormatError(f"artifact {self.version}: " + "; ".join(problems))
        return self


def encode(artifact: Artifact) -> bytes:
    """The canonical JSON bytes of an artifact (what is hashed and signed)."""
    return msgspec.json.encode(artifact, order="sorted")


class _Header(msgspec.Struct, kw_only=True):
    version: str = "?"
    format: int = 1


def decode(data: bytes) -> Artifact:
    """Decode and check artifact bytes (no signature check: use :func:`load_verified`).

    Raises:
        ArtifactFormatError: not an artifact, an inconsistent one, or another format
            version (the message names both versions).
    """
    try:
        header = msgspec.json.decode(data, type=_Header)
    except msgspec.DecodeError as exc:
        raise ArtifactFormatError(f"not an artifact: {exc}") from None
    if header.format != ARTIFACT_FORMAT:
        hint = (
            " (per-cluster Q̂ only; format 2 routes with per-prompt quality and cost models): retrain it with "
            "`bifrost-opt train --dataset FILE`, or keep a router of the version that wrote it"
            if header.format < ARTIFACT_FORMAT
            else ": it was written by a newer trainer; upgrade the router"
        )
        raise ArtifactVersionError(
            f"artifact {header.version} has format {header.format}; this router reads format {ARTIFACT_FORMAT}{hint}"
        )
    try:
        artifact = msgspec.json.decode(data, type=Artifact)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ArtifactFormatError(f"not an artifact: {exc}") from None
    return artifact.check()


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of artifact bytes."""
    return hashlib.sha256(data).hexdigest()


def sign(data: bytes, private_key: Ed25519PrivateKey) -> str:
    """Ed25519 signature of the bytes, base64 (the content of ``artifact.sig``)."""
    return base64.b64encode(private_key.sign(data)).decode()


def verify(
    artifact_bytes: bytes,
    signature: str | bytes,
    public_key: PublicKeySource,
    *,
    expected_sha256: str | None = None,
) -> str:
    """Check the signature (and the sha256 when given); return the sha256.

    Args:
        artifact_bytes: the artifact exactly as stored or received.
        signature: base64 text (``artifact.sig``) or the raw 64 signature bytes.
        public_key: the trusted verification key (object, PEM, base64 or file path).
        expected_sha256: the published digest, if there is one.

    Raises:
        ArtifactVerificationError: any byte of the artifact, digest or signature differs
            from what the key's owner signed.

    Example:
        >>> key = Ed25519PrivateKey.generate()
        >>> sig = sign(b'{"a":1}', key)
        >>> len(verify(b'{"a":1}', sig, key.public_key()))
        64
    """
    digest = sha256_hex(artifact_bytes)
    if expected_sha256 is not None and expected_sha256.strip().lower() != digest:
        raise ArtifactVerificationError(
            f"sha256 mismatch: the artifact hashes to {digest[:16]}…, the published digest is "
            f"{expected_sha256.strip()[:16]}…; the artifact was modified"
        )
    raw = _signature_bytes(signature)
    try:
        key = load_public_key(public_key)
    except SigningKeyError as exc:
        raise ArtifactVerificationError(f"cannot verify: {exc}") from None
    try:
        key.verify(raw, artifact_bytes)
    except InvalidSignature:
        raise ArtifactVerificationError(
            f"signature check failed for artifact sha256 {digest[:16]}…: it was modified, or signed by another "
            f"key than the one it was checked with ({key_id(key)})"
        ) from None
    return digest


def load_verified(
    artifact_bytes: bytes, signature: str | bytes, public_key: PublicKeySource, *, expected_sha256: str | None = None
) -> Artifact:
    """Verify, then decode and check: the only way a router should read an artifact."""
    verify(artifact_bytes, signature, public_key, expected_sha256=expected_sha256)
    artifact = decode(artifact_bytes)
    if encode(artifact) != artifact_bytes:
        raise ArtifactFormatError(f"artifact {artifact.version} is signed but not in canonical encoding")
    return artifact


def _signature_bytes(signature: str | bytes) -> bytes:
    if isinstance(signature, bytes) and len(signature) == 64:
        return signature
    text = signature.decode("ascii", "replace") if isinstance(signature, bytes) else signature
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ArtifactVerificationError("signature is not base64") from None
    if len(raw) != 64:
        raise ArtifactVerificationError(f"signature has {len(raw)} bytes, an Ed25519 signature has 64")
    return raw
