"""Signed rollout commands: the canonical bytes, signing, and the signature check.

The canonical bytes of a :class:`RolloutCommand` are

    b"bifrost-rollout-command/v1\\n" + msgspec JSON of the command with ``signature=""``,
    object keys sorted (``msgspec.json.encode(..., order="sorted")``)

— every field, defaults included (the struct does not omit defaults), so ``key_id``,
``nonce``, ``issued_at``, ``router_id``, ``kind``, ``artifact``, ``override``… are all
covered. The verifier re-encodes the command it decoded, so unknown JSON fields a sender
adds are neither signed nor used. The prefix keeps a command signature from ever being
valid for another kind of message signed with the same key. ``signature`` is the base64
of the 64-byte Ed25519 signature; ``nonce`` is 128 random bits in hex.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bifrost.schemas import signing
from bifrost.schemas.rollout import RolloutCommand
from bifrost.schemas.signing import MIN_NONCE_HEX, NONCE_BYTES, new_nonce, nonce_is_valid

__all__ = [
    "DOMAIN",
    "MIN_NONCE_HEX",
    "NONCE_BYTES",
    "CommandSigner",
    "canonical_bytes",
    "new_nonce",
    "nonce_is_valid",
    "sign_command",
    "signature_valid",
]

DOMAIN = b"bifrost-rollout-command/v1\n"


def canonical_bytes(command: RolloutCommand) -> bytes:
    """What a command's signature covers (see the module docstring)."""
    return signing.canonical_bytes(DOMAIN, command)


def sign_command(
    command: RolloutCommand,
    private_key: Ed25519PrivateKey,
    key_id: str,
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> RolloutCommand:
    """A copy of ``command`` with ``key_id``, a fresh ``nonce``, ``issued_at`` and its signature."""
    return signing.sign(DOMAIN, command, private_key, key_id, now=now, nonce=nonce)


def signature_valid(command: RolloutCommand, public_key: Ed25519PublicKey) -> bool:
    """Whether ``command.signature`` is the key's signature of the command's canonical bytes."""
    return signing.signature_valid(DOMAIN, command, public_key)


@dataclass(frozen=True, slots=True)
class CommandSigner:
    """A named private key that signs commands (the CLI's operator key, the listener's pipeline key)."""

    name: str
    key: Ed25519PrivateKey

    def sign(self, command: RolloutCommand, *, now: float | None = None) -> RolloutCommand:
        return sign_command(command, self.key, self.name, now=now)
