"""Signed "apply this recommendation" commands: canonical bytes, signing, the signature check.

The same scheme as rollout commands (:mod:`bifrost.schemas.command_signing`) with its own
domain prefix, so a signature made for one kind of message is never valid for the other:

    b"bifrost-recommendation-command/v1\\n" + msgspec JSON of the command with ``signature=""``,
    object keys sorted

Every field is covered (``recommendation_id``, ``router_id``, ``key_id``, ``nonce``,
``issued_at``, ``note``). Keys and the allow-list are the rollout ones
(``BIFROST_COMMAND_KEYS``); only ``operator`` keys may apply recommendations.
"""

from __future__ import annotations

import base64
import binascii
import time

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bifrost.schemas.command_signing import new_nonce
from bifrost.schemas.recommendations import RecommendationCommand

DOMAIN = b"bifrost-recommendation-command/v1\n"


def canonical_bytes(command: RecommendationCommand) -> bytes:
    """What a command's signature covers (see the module docstring)."""
    return DOMAIN + msgspec.json.encode(msgspec.structs.replace(command, signature=""), order="sorted")


def sign_apply(command: RecommendationCommand, private_key: Ed25519PrivateKey, key_id: str, *,
               now: float | None = None, nonce: str | None = None) -> RecommendationCommand:
    """A copy of ``command`` with ``key_id``, a fresh ``nonce``, ``issued_at`` and its signature."""
    stamped = msgspec.structs.replace(command, key_id=key_id, nonce=nonce or new_nonce(),
                                      issued_at=time.time() if now is None else now, signature="")
    signature = base64.b64encode(private_key.sign(canonical_bytes(stamped))).decode("ascii")
    return msgspec.structs.replace(stamped, signature=signature)


def apply_signature_valid(command: RecommendationCommand, public_key: Ed25519PublicKey) -> bool:
    """Whether ``command.signature`` is the key's signature of the command's canonical bytes."""
    try:
        raw = base64.b64decode(command.signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 64:
        return False
    try:
        public_key.verify(raw, canonical_bytes(command))
    except InvalidSignature:
        return False
    return True
