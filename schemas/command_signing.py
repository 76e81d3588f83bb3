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

import base64
import binascii
import secrets
import time
from dataclasses import dataclass

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bifrost.schemas.rollout import RolloutCommand

DOMAIN = b"bifrost-rollout-command/v1\n"
NONCE_BYTES = 16  # 128 bits
MIN_NONCE_HEX = 2 * NONCE_BYTES


def canonical_bytes(command: RolloutCommand) -> bytes:
    """What a command's signature covers (see the module docstring)."""
    unsigned = msgspec.structs.replace(command, signature="")
    return DOMAIN + msgspec.json.encode(unsigned, order="sorted")


def new_nonce() -> str:
    """128 random bits, hex."""
    return secrets.token_hex(NONCE_BYTES)


def nonce_is_valid(nonce: str) -> bool:
    """At least 128 bits of hex (lower or upper case)."""
    if len(nonce) < MIN_NONCE_HEX:
        return False
    try:
        bytes.fromhex(nonce)
    except ValueError:
        return False
    return True


def sign_command(
    command: RolloutCommand, private_key: Ed25519PrivateKey, key_id: str, *, now: float | None = None,
    nonce: str | None = None,
) -> RolloutCommand:
    """A copy of ``command`` with ``key_id``, a fresh ``nonce``, ``issued_at`` and its signature."""
    stamped = msgspec.structs.replace(
        command, key_id=key_id, nonce=nonce or new_nonce(), issued_at=time.time() if now is None else now, signature="",
    )
    signature = base64.b64encode(private_key.sign(canonical_bytes(stamped))).decode("ascii")
    return msgspec.structs.replace(stamped, signature=signature)


def signature_valid(command: RolloutCommand, public_key: Ed25519PublicKey) -> bool:
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


@dataclass(frozen=True, slots=True)
class CommandSigner:
    """A named private key that signs commands (the CLI's operator key, the listener's pipeline key)."""

    name: str
    key: Ed25519PrivateKey

    def sign(self, command: RolloutCommand, *, now: float | None = None) -> RolloutCommand:
        return sign_command(command, self.key, self.name, now=now)
