"""Who may command rollouts (pure): the key allow-list, roles, and the authentication checks.

Every command on ``rollout-commands`` must be signed (``bifrost.schemas.command_signing``)
by a key on the allow-list (``BIFROST_COMMAND_KEYS`` / ``BIFROST_COMMAND_KEYS_FILE``:
entries ``name:role:base64-public-key``, separated by commas or newlines). Roles:

- ``operator`` — every command, and overrides (``promote --override``);
- ``pipeline`` — only ``start`` and ``artifact_verified`` (the workers' artifact listener).

:func:`authenticate` runs the checks in this order and names the first that fails:
``unsigned``, ``unknown_key``, ``bad_signature``, ``insufficient_role``, ``bad_nonce``,
``stale`` (``issued_at`` further than the max age from the worker's wall clock, either
way) and ``replayed`` (nonce already seen for this router, or issued at or before the
oldest time the router still remembers nonces for). Seen nonces live in the router's
:class:`RolloutState` (so they survive restarts through the table's changelog) and are
forgotten once their command is stale; forgetting one raises ``nonce_floor`` to its
``issued_at``, so a replay of a forgotten nonce is refused whatever the clocks say.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bifrost.config.settings import SettingsError
from bifrost.schemas.command_signing import CommandSigner, nonce_is_valid, signature_valid
from bifrost.schemas.rollout import CommandKind, RolloutCommand, RolloutState

MAX_NONCES = 1000  # per router; past it the oldest are forgotten (and the floor rises)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class Role(str, enum.Enum):
    OPERATOR = "operator"
    PIPELINE = "pipeline"


PIPELINE_KINDS = frozenset({CommandKind.START, CommandKind.ARTIFACT_VERIFIED})


def may_send(role: Role, kind: CommandKind) -> bool:
    """Whether a key of ``role`` may send a command of ``kind``."""
    return role is Role.OPERATOR or kind in PIPELINE_KINDS


class KeyringError(SettingsError):
    """The command-key allow-list cannot be read; the message names the entry (never a private key)."""


@dataclass(frozen=True, slots=True)
class CommandKey:
    """One allow-listed public key."""

    name: str
    role: Role
    public_key: Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class Keyring:
    """The allow-list, by key name."""

    keys: Mapping[str, CommandKey]

    def get(self, name: str) -> CommandKey | None:
        return self.keys.get(name)

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[CommandKey]:
        return iter(self.keys.values())

    @classmethod
    def parse(cls, *sources: tuple[str, str]) -> Keyring:
        """Keys from ``(text, where)`` pairs; ``where`` names the source in error messages.

        Entries are ``name:role:base64`` separated by commas or newlines; blank entries
        and lines starting with ``#`` are ignored. A name may appear only once.
        """
        keys: dict[str, CommandKey] = {}
        for text, where in sources:
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip().startswith("#"):
                    continue
                for entry in filter(None, (part.strip() for part in line.split(","))):
                    key = _parse_entry(entry, f"{where} line {number}")
                    if key.name in keys:
                        raise KeyringError(f"{where} line {number}: key name {key.name!r} is listed twice")
                    keys[key.name] = key
        return cls(keys)


def _parse_entry(entry: str, where: str) -> CommandKey:
    parts = entry.split(":")
    if len(parts) != 3:
        raise KeyringError(f"{where}: {entry[:40]!r}… is not name:role:base64-public-key")
    name, role_text, material = (p.strip() for p in parts)
    if not NAME.match(name):
        raise KeyringError(f"{where}: key name {name[:40]!r} is not 1-64 of letters, digits, '.', '_', '@', '-'")
    try:
        role = Role(role_text)
    except ValueError:
        raise KeyringError(f"{where}: key {name!r} has role {role_text[:20]!r}; roles are operator, pipeline") from None
    try:
        raw = base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise KeyringError(f"{where}: key {name!r} is not the base64 of a 32-byte Ed25519 public key")
    return CommandKey(name=name, role=role, public_key=Ed25519PublicKey.from_public_bytes(raw))


def load_keyring(inline: str, file: str) -> Keyring:
    """The allow-list from ``BIFROST_COMMAND_KEYS`` (``inline``) and ``BIFROST_COMMAND_KEYS_FILE``."""
    sources = [(inline, "BIFROST_COMMAND_KEYS")] if inline.strip() else []
    if file:
        try:
            sources.append((Path(file).read_text(), f"BIFROST_COMMAND_KEYS_FILE {file}"))
        except OSError as exc:
            raise KeyringError(f"BIFROST_COMMAND_KEYS_FILE {file} cannot be read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise KeyringError(f"BIFROST_COMMAND_KEYS_FILE {file} is not text") from None
    return Keyring.parse(*sources)


def raw_public_base64(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The 32-byte public key, base64 (the third field of an allow-list entry)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def public_line(name: str, role: Role | str, key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The allow-list entry ``name:role:base64`` of a key."""
    return f"{name}:{Role(role).value}:{raw_public_base64(key)}"


def load_signer(path: str, name: str, *, what: str) -> CommandSigner:
    """A signer from a private key file (PEM or base64 seed); ``what`` names the setting in errors."""
    from bifrost.router.keys import SigningKeyError, load_private_key

    if not NAME.match(name or ""):
        raise SigningKeyError(f"{what}: key name {name[:40]!r} is not 1-64 of letters, digits, '.', '_', '@', '-'")
    return CommandSigner(name=name, key=load_private_key(path))


class Check(str, enum.Enum):
    """Which authentication check refused a command."""

    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    INSUFFICIENT_ROLE = "insufficient_role"
    BAD_NONCE = "bad_nonce"
    STALE = "stale"
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True)
class Unauthorized:
    """An authentication refusal: the command must not touch router state."""

    check: Check
    message: str

    def __str__(self) -> str:
        return f"{self.check.value}: {self.message}"


class SignedCommand(Protocol):
    """What every signed command carries (rollout and recommendation commands)."""

    @property
    def key_id(self) -> str: ...
    @property
    def signature(self) -> str: ...
    @property
    def nonce(self) -> str: ...
    @property
    def issued_at(self) -> float: ...


def verify_signed(
    command: SignedCommand,
    keyring: Keyring,
    *,
    signature_ok: Callable[[Ed25519PublicKey], bool],
    role_refusal: Callable[[CommandKey], str | None],
    wall: float,
    max_age: float,
) -> CommandKey | Unauthorized:
    """The verified key of a signed command, or the first check it fails.

    In order: ``unsigned``, ``unknown_key``, ``bad_signature`` (``signature_ok`` with the
    key), ``insufficient_role`` (``role_refusal`` says why, or None), ``bad_nonce`` and
    ``stale``. Replay checks, where a kind of command has them, come after.
    """
    if not command.signature or not command.key_id:
        return Unauthorized(Check.UNSIGNED, "the command carries no key_id/signature; sign it with an allow-listed key")
    key = keyring.get(command.key_id)
    if key is None:
        return Unauthorized(
            Check.UNKNOWN_KEY, f"key {command.key_id[:64]!r} is not on this worker's allow-list (BIFROST_COMMAND_KEYS)"
        )
    if not signature_ok(key.public_key):
        return Unauthorized(Check.BAD_SIGNATURE, f"the signature is not key {key.name!r}'s signature of this command")
    refusal = role_refusal(key)
    if refusal is not None:
        return Unauthorized(Check.INSUFFICIENT_ROLE, refusal)
    if not nonce_is_valid(command.nonce):
        return Unauthorized(Check.BAD_NONCE, "the nonce must be at least 128 random bits in hex (32 characters)")
    skew = wall - command.issued_at
    if abs(skew) > max_age:
        direction = "old" if skew > 0 else "in the future"
        return Unauthorized(
            Check.STALE,
            f"issued {abs(skew):.0f} s {direction} by this worker's clock (max age {max_age:.0f} s, both directions)",
        )
    return key


def authenticate(
    command: RolloutCommand, state: RolloutState, keyring: Keyring, *, wall: float, max_age: float
) -> CommandKey | Unauthorized:
    """The verified key of ``command``, or the first check it fails (see the module docstring)."""

    def role_refusal(key: CommandKey) -> str | None:
        if not may_send(key.role, command.kind):
            return (
                f"key {key.name!r} has role {key.role.value}, which may send only start and artifact_verified, "
                f"not {command.kind.value}"
            )
        if command.override and key.role is not Role.OPERATOR:
            return f"key {key.name!r} has role {key.role.value}; only operators override"
        return None

    key = verify_signed(
        command,
        keyring,
        signature_ok=lambda public_key: signature_valid(command, public_key),
        role_refusal=role_refusal,
        wall=wall,
        max_age=max_age,
    )
    if isinstance(key, Unauthorized):
        return key
    if command.nonce in state.seen_nonces:
        return Unauthorized(
            Check.REPLAYED, f"nonce {command.nonce[:16]}… was already used for router {state.router_id!r}"
        )
    if command.issued_at <= state.nonce_floor:
        return Unauthorized(
            Check.REPLAYED,
            f"issued at {command.issued_at:.3f}, at or before {state.nonce_floor:.3f}, "
            "the oldest time this router still remembers nonces for",
        )
    return key


def remember_nonce(
    state: RolloutState, command: RolloutCommand, *, wall: float, max_age: float, max_nonces: int = MAX_NONCES
) -> RolloutState:
    """``state`` with the command's nonce recorded and nonces of stale commands forgotten.

    Forgetting a nonce raises ``nonce_floor`` to its ``issued_at``; past ``max_nonces``
    the oldest are forgotten the same way.
    """
    seen = {nonce: at for nonce, at in state.seen_nonces.items() if at >= wall - max_age}
    floor = max([state.nonce_floor, *(at for nonce, at in state.seen_nonces.items() if nonce not in seen)])
    seen[command.nonce] = command.issued_at
    if len(seen) > max_nonces:
        ordered = sorted(seen.items(), key=lambda item: item[1])
        dropped, kept = ordered[: len(seen) - max_nonces], ordered[len(seen) - max_nonces :]
        floor = max(floor, dropped[-1][1])
        seen = dict(kept)
    return msgspec.structs.replace(state, seen_nonces=seen, nonce_floor=floor)
