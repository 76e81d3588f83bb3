"""The reference router and the artifact format it shares with the trainer.

A pure library (numpy, msgspec, cryptography; no Kafka, no I/O beyond reading an
artifact): the trainer writes artifacts with it, and the simulator, the evaluator and
Python routers route with it.

Example:
    >>> from bifrost.router import ReferenceRouter
    >>> router = ReferenceRouter.load("var/artifacts/<version>", "verify.pem")  # doctest: +SKIP
    >>> decision = router.route("What is 17 * 23?")  # doctest: +SKIP
    >>> decision.model, decision.bucket, decision.cluster_id  # doctest: +SKIP
"""

from bifrost.router.artifact import (
    Artifact,
    ArtifactError,
    ArtifactFormatError,
    ArtifactVerificationError,
    ArtifactVersionError,
    Gbdt,
    LinearQuality,
    PromptModels,
    Reports,
    Thresholds,
    decode,
    encode,
    load_verified,
    sha256_hex,
    sign,
    verify,
)
from bifrost.router.features import BASE_FEATURES, FeatureExtractor, FeatureSchema, base_features
from bifrost.router.keys import SigningKeyError, load_private_key, load_public_key
from bifrost.router.reference import Decision, ReferenceRouter

__all__ = [
    "Artifact",
    "ArtifactError",
    "ArtifactFormatError",
    "ArtifactVerificationError",
    "ArtifactVersionError",
    "BASE_FEATURES",
    "Decision",
    "FeatureExtractor",
    "FeatureSchema",
    "Gbdt",
    "LinearQuality",
    "PromptModels",
    "ReferenceRouter",
    "Reports",
    "SigningKeyError",
    "Thresholds",
    "base_features",
    "decode",
    "encode",
    "load_private_key",
    "load_public_key",
    "load_verified",
    "sha256_hex",
    "sign",
    "verify",
]
