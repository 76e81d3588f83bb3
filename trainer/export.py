"""The last step of every training run: attach the reports, encode, hash, sign."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import Artifact, Reports, encode, sha256_hex, sign
from bifrost.router.keys import key_id
from bifrost.trainer.progress import step


@dataclass(frozen=True, slots=True)
class Signed:
    """A finished artifact: ``encode(artifact)`` are the bytes ``signature`` covers."""

    artifact: Artifact
    sha256: str
    signature: str
    key_id: str


def sign_artifact(
    candidate: Artifact, *, training: dict[str, Any], validation: dict[str, Any], key: Ed25519PrivateKey
) -> Signed:
    """The candidate with its reports, checked, in canonical bytes, hashed and signed."""
    artifact = msgspec.structs.replace(candidate, reports=Reports(training=training, validation=validation)).check()
    data = encode(artifact)
    signed = Signed(artifact=artifact, sha256=sha256_hex(data), signature=sign(data, key), key_id=key_id(key))
    step("export", version=artifact.version, bytes=len(data), sha256=signed.sha256[:16], key=signed.key_id)
    return signed
