"""Signed "apply this recommendation" commands: canonical bytes, signing, the signature check.

The same scheme as rollout commands (:mod:`bifrost.schemas.signing`) with its own
domain prefix, so a signature made for one kind of message is never valid for the other:

    b"bifrost-recommendation-command/v1\\n" + msgspec JSON of the command with ``signature=""``,
    object keys sorted

Every field is covered (``recommendation_id``, ``router_id``, ``key_id``, ``nonce``,
``issued_at``, ``note``). Keys and the allow-list are the rollout ones
(``BIFROST_COMMAND_KEYS``); only ``operator`` keys may apply recommendations.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bifrost.schemas import signing
from bifrost.schemas.recommendations import RecommendationCommand

DOMAIN = b"bifrost-recommendation-command/v1\n"


def canonical_bytes(command: RecommendationCommand) -> bytes:
    """What a command's signature covers (see the module docstring)."""
    return signing.canonical_bytes(DOMAIN, command)


def sign_apply(
    command: RecommendationCommand,
    private_key: Ed25519PrivateKey,
    key_id: str,
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> RecommendationCommand:
    """A copy of ``command`` with ``key_id``, a fresh ``nonce``, ``issued_at`` and its signature."""
    return signing.sign(DOMAIN, command, private_key, key_id, now=now, nonce=nonce)


def apply_signature_valid(command: RecommendationCommand, public_key: Ed25519PublicKey) -> bool:
    """Whether ``command.signature`` is the key's signature of the command's canonical bytes."""
    return signing.signature_valid(DOMAIN, command, public_key)
