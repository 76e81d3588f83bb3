"""Ed25519 keys for signing and verifying artifacts.

Private keys come from a file (PKCS#8 PEM, or the raw 32-byte seed in base64) or from the
``BIFROST_SIGNING_KEY`` environment variable (same two encodings); public keys from a PEM
or raw base64 file or string, or derived from a private key. Error messages name the
source (a path or a variable), never the key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bifrost.common.errors import ExitCode
from bifrost.common.files import write_atomic

SIGNING_KEY_ENV = "BIFROST_SIGNING_KEY"
SIGNING_KEY_FILE_ENV = "BIFROST_SIGNING_KEY_FILE"
VERIFY_KEY_ENV = "BIFROST_VERIFY_KEY"
DEFAULT_KEY_PATH = Path("var/keys/artifact-signing.pem")
DEFAULT_PUBLIC_KEY_PATH = Path("var/keys/artifact-signing.pub.pem")  # what workers and routers verify with

PublicKeySource = Ed25519PublicKey | Ed25519PrivateKey | bytes | str | Path


class SigningKeyError(ValueError):
    """A key could not be found or read; the message says where it was looked for."""

    exit_code = ExitCode.USAGE


class PrivateKeyGiven(SigningKeyError):
    """A private key was given where only a public key belongs (a worker's or router's verification key)."""


def load_private_key(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey:
    """The signing key from ``path``, else ``BIFROST_SIGNING_KEY``, else ``BIFROST_SIGNING_KEY_FILE``.

    Raises:
        SigningKeyError: nothing found, or the content is not an Ed25519 private key.
    """
    environ = os.environ if environ is None else environ
    if path is not None:
        return _private_from_bytes(_read(Path(path)), f"key file {path}")
    if environ.get(SIGNING_KEY_ENV):
        return _private_from_bytes(environ[SIGNING_KEY_ENV].encode(), f"${SIGNING_KEY_ENV}")
    if environ.get(SIGNING_KEY_FILE_ENV):
        file = Path(environ[SIGNING_KEY_FILE_ENV])
        return _private_from_bytes(_read(file), f"key file {file} (${SIGNING_KEY_FILE_ENV})")
    raise SigningKeyError(f"no signing key: pass a key file, or set ${SIGNING_KEY_ENV} or ${SIGNING_KEY_FILE_ENV}")


def load_public_key(source: PublicKeySource) -> Ed25519PublicKey:
    """A verification key from a key object, PEM or raw-base64 bytes/text, or a file path.

    A private key (object, PEM or file) yields its public half. Raw base64 of 32 bytes is
    read as a public key.
    """
    if isinstance(source, Ed25519PublicKey):
        return source
    if isinstance(source, Ed25519PrivateKey):
        return source.public_key()
    if isinstance(source, Path) or (isinstance(source, str) and not _looks_inline(source)):
        path = Path(source)
        return _public_from_bytes(_read(path), f"key file {path}")
    data = source.encode() if isinstance(source, str) else source
    return _public_from_bytes(data, "the given key")


def public_key_from_environment(environ: Mapping[str, str] | None = None) -> Ed25519PublicKey | None:
    """``BIFROST_VERIFY_KEY``, else the public half of the signing key variables; None if unset."""
    environ = os.environ if environ is None else environ
    if environ.get(VERIFY_KEY_ENV):
        return _public_from_bytes(environ[VERIFY_KEY_ENV].encode(), f"${VERIFY_KEY_ENV}")
    if environ.get(SIGNING_KEY_ENV) or environ.get(SIGNING_KEY_FILE_ENV):
        return load_private_key(environ=environ).public_key()
    return None


def find_public_key(
    path: str | Path | None = None, *, default: str | Path = DEFAULT_KEY_PATH, environ: Mapping[str, str] | None = None
) -> Ed25519PublicKey | None:
    """The artifact verification key, or None when none is given or configured.

    Order: ``path``; else ``BIFROST_VERIFY_KEY`` (or the public half of the signing-key
    variables); else ``default`` if that file exists. A key that is given but unreadable
    raises :class:`SigningKeyError`.
    """
    if path is not None:
        return load_public_key(Path(path))
    from_env = public_key_from_environment(environ)
    if from_env is not None:
        return from_env
    default = Path(default)
    return load_public_key(default) if default.exists() else None


def public_key_only(data: bytes, where: str) -> Ed25519PublicKey:
    """The public key in ``data`` (PEM or raw base64); a private key raises :class:`PrivateKeyGiven`.

    Processes that only verify must never hold the signing key, so a private key is an
    error here, not a source of its public half. (A raw base64 32-byte value cannot be
    told apart from a seed; it is read as a public key.)
    """
    if holds_private_key(data):
        raise PrivateKeyGiven(f"{where} holds a private signing key; only the public key belongs here")
    return _public_from_bytes(data, where)


def holds_private_key(data: bytes) -> bool:
    """True for PEM private-key material (any algorithm)."""
    head = data.lstrip()
    return head.startswith(b"-----BEGIN") and b"PRIVATE KEY-----" in head


def generate_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Create a new Ed25519 key as a PKCS#8 PEM file readable only by its owner."""
    path = Path(path)
    if path.exists():
        raise SigningKeyError(f"key file {path} already exists; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_atomic(path, pem, mode=0o600)
    return key


def public_key_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM (safe to share)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """A short fingerprint of the public key, for logs and reports."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def _looks_inline(text: str) -> bool:
    return text.lstrip().startswith("-----BEGIN") or (len(text.strip()) == 44 and text.strip().endswith("="))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise SigningKeyError(f"key file {path} cannot be read: {exc.strerror}") from None


def _raw_base64(data: bytes) -> bytes | None:
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _not_ed25519(key: object, where: str) -> SigningKeyError:
    """The error for a PEM file holding another kind of key."""
    return SigningKeyError(f"{where} holds a {type(key).__name__}, not an Ed25519 key")


def _raw_key(data: bytes, where: str, what: str) -> bytes:
    """The 32 bytes of a base64 key file; else the error for a file that is neither PEM nor that."""
    raw = _raw_base64(data)
    if raw is None:
        raise SigningKeyError(f"{where} is neither a PEM key nor a base64 32-byte Ed25519 {what}")
    return raw


def _private_from_bytes(data: bytes, where: str) -> Ed25519PrivateKey:
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise SigningKeyError(f"{where} is not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise _not_ed25519(key, where)
        return key
    return Ed25519PrivateKey.from_private_bytes(_raw_key(data, where, "seed"))


def _public_from_bytes(data: bytes, where: str) -> Ed25519PublicKey:
    if data.lstrip().startswith(b"-----BEGIN") and b"PRIVATE KEY" in data:
        return _private_from_bytes(data, where).public_key()
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise SigningKeyError(f"{where} is not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise _not_ed25519(key, where)
        return key
    return Ed25519PublicKey.from_public_bytes(_raw_key(data, where, "public key"))
