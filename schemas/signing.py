"""Ed25519 signatures of command structs, one scheme for every kind of signed command.

The canonical bytes of a command are its kind's domain prefix (e.g.
``b"bifrost-rollout-command/v1\\n"``) followed by the msgspec JSON of the struct with
``signature=""``, object keys sorted. The prefix keeps a signature made for one kind of
message from ever being valid for another signed with the same key. A signed struct has
the fields ``key_id``, ``nonce``, ``issued_at`` and ``signature`` (base64 of the 64-byte
Ed25519 signature); ``nonce`` is 128 random bits in hex.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Protocol, TypeVar, cast

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

NONCE_BYTES = 16  # 128 bits
MIN_NONCE_HEX = 2 * NONCE_BYTES
SIGNATURE_BYTES = 64

S = TypeVar("S", bound=msgspec.Struct)


class _Signed(Protocol):
    signature: str


def canonical_bytes(domain: bytes, command: msgspec.Struct) -> bytes:
    """What a command's signature covers: ``domain`` + its sorted JSON with an empty signature."""
    return domain + msgspec.json.encode(msgspec.structs.replace(command, signature=""), order="sorted")


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


def sign(
    domain: bytes,
    command: S,
    private_key: Ed25519PrivateKey,
    key_id: str,
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> S:
    """A copy of ``command`` with ``key_id``, a fresh ``nonce``, ``issued_at`` and its signature."""
    stamped = msgspec.structs.replace(
        command, key_id=key_id, nonce=nonce or new_nonce(), issued_at=time.time() if now is None else now, signature=""
    )
    signature = base64.b64encode(private_key.sign(canonical_bytes(domain, stamped))).decode("ascii")
    return msgspec.structs.replace(stamped, signature=signature)


def signature_valid(domain: bytes, command: msgspec.Struct, public_key: Ed25519PublicKey) -> bool:
    """Whether ``command.signature`` is the key's signature of the command's canonical bytes."""
    try:
        raw = base64.b64decode(cast(_Signed, command).signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != SIGNATURE_BYTES:
        return False
    try:
        public_key.verify(raw, canonical_bytes(domain, command))
    except InvalidSignature:
        return False
    return True
