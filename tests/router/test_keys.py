"""Signing keys: files and environment, PEM and base64 seeds, errors that never leak key material."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bifrost.router.keys import (
    SIGNING_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    VERIFY_KEY_ENV,
    PublicKeySource,
    SigningKeyError,
    find_public_key,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    public_key_from_environment,
    public_key_pem,
)


def raw_private(key: Ed25519PrivateKey) -> bytes:
    """The 32-byte seed of a key."""
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def raw_public(key: Ed25519PrivateKey) -> bytes:
    """The 32-byte public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def same_key(a: Ed25519PrivateKey, b: Ed25519PrivateKey) -> bool:
    return raw_private(a) == raw_private(b)


KEY = Ed25519PrivateKey.generate()
SEED_B64 = base64.b64encode(raw_private(KEY)).decode()
PEM = pem(KEY)


def secrets_of(key: Ed25519PrivateKey) -> list[str]:
    """Strings that must never appear in an error message."""
    body = [line for line in pem(key).decode().splitlines() if not line.startswith("-----")]
    return [base64.b64encode(raw_private(key)).decode(), raw_private(key).hex(), *body]


# -- private keys ---------------------------------------------------------------------------


def test_load_private_key_from_pem_file(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(PEM)
    assert same_key(load_private_key(path, environ={}), KEY)
    assert same_key(load_private_key(str(path), environ={}), KEY)


def test_load_private_key_from_base64_seed_file(tmp_path: Path) -> None:
    path = tmp_path / "k.b64"
    path.write_text(SEED_B64 + "\n")
    assert same_key(load_private_key(path, environ={}), KEY)


@pytest.mark.parametrize("value", [PEM.decode(), SEED_B64, f"  {SEED_B64}\n"])
def test_load_private_key_from_env(value: str) -> None:
    assert same_key(load_private_key(environ={SIGNING_KEY_ENV: value}), KEY)


def test_load_private_key_from_env_file(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(PEM)
    assert same_key(load_private_key(environ={SIGNING_KEY_FILE_ENV: str(path)}), KEY)


def test_precedence_path_then_env_then_env_file(tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate()
    third = Ed25519PrivateKey.generate()
    path = tmp_path / "k.pem"
    path.write_bytes(pem(other))
    env_file = tmp_path / "third.pem"
    env_file.write_bytes(pem(third))
    environ = {SIGNING_KEY_ENV: SEED_B64, SIGNING_KEY_FILE_ENV: str(env_file)}
    assert same_key(load_private_key(path, environ=environ), other)
    assert same_key(load_private_key(environ=environ), KEY)
    assert same_key(load_private_key(environ={SIGNING_KEY_FILE_ENV: str(env_file)}), third)


def test_load_private_key_uses_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIGNING_KEY_ENV, SEED_B64)
    assert same_key(load_private_key(), KEY)


def test_no_key_anywhere() -> None:
    with pytest.raises(SigningKeyError, match="no signing key") as caught:
        load_private_key(environ={})
    assert SIGNING_KEY_ENV in str(caught.value) and SIGNING_KEY_FILE_ENV in str(caught.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(SigningKeyError, match=f"key file {missing} does not exist"):
        load_private_key(missing, environ={})
    with pytest.raises(SigningKeyError, match=f"key file {missing} does not exist"):
        load_private_key(environ={SIGNING_KEY_FILE_ENV: str(missing)})


def test_directory_is_not_readable_as_key(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="cannot be read"):
        load_private_key(tmp_path, environ={})


def bad_contents() -> list[tuple[str, bytes, str]]:
    """(label, file content, expected message part) of unusable private keys."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    encrypted = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    )
    truncated = PEM[: len(PEM) // 2] + b"\n-----END PRIVATE KEY-----\n"
    return [
        ("ec", ec_pem, "not an Ed25519 key"),
        ("encrypted", encrypted, "not an unencrypted PEM private key"),
        ("truncated", truncated, "not an unencrypted PEM private key"),
        ("public-pem", public_key_pem(KEY), "not an unencrypted PEM private key"),
        ("short-seed", base64.b64encode(raw_private(KEY)[:31]), "neither a PEM key nor a base64 32-byte Ed25519 seed"),
        ("hex-seed", raw_private(KEY).hex().encode(), "neither a PEM key nor a base64 32-byte Ed25519 seed"),
        ("garbage", b"\x00\xff" * 20, "neither a PEM key"),
    ]


@pytest.mark.parametrize(("label", "content", "message"), bad_contents(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_key_files_give_clear_errors_without_key_material(
    tmp_path: Path, label: str, content: bytes, message: str
) -> None:
    path = tmp_path / f"{label}.key"
    path.write_bytes(content)
    with pytest.raises(SigningKeyError) as from_file:
        load_private_key(path, environ={})
    assert message in str(from_file.value)
    assert str(path) in str(from_file.value)
    text_content = content.decode("latin-1")
    with pytest.raises(SigningKeyError) as from_env:
        load_private_key(environ={SIGNING_KEY_ENV: text_content})
    assert f"${SIGNING_KEY_ENV}" in str(from_env.value)
    for error in (from_file.value, from_env.value):
        text = str(error)
        for secret in secrets_of(KEY):
            assert secret not in text
        # Any base64 body line of a PEM input, and the raw input itself, stay out of the message.
        for line in text_content.splitlines():
            if len(line) > 16 and not line.startswith("-----"):
                assert line not in text
        # No chained low-level exception (whose text could quote the input) is shown either.
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


# -- public keys ----------------------------------------------------------------------------


def test_load_public_key_from_every_source(tmp_path: Path) -> None:
    public_pem = public_key_pem(KEY)
    raw_b64 = base64.b64encode(raw_public(KEY)).decode()
    file = tmp_path / "verify.pem"
    file.write_bytes(public_pem)
    private_file = tmp_path / "sign.pem"
    private_file.write_bytes(PEM)
    b64_file = tmp_path / "verify.b64"
    b64_file.write_text(raw_b64)
    sources: list[PublicKeySource] = [
        KEY,
        KEY.public_key(),
        public_pem,
        public_pem.decode(),
        raw_b64,
        raw_b64.encode(),
        file,
        str(file),
        private_file,
        PEM,
        PEM.decode(),
        b64_file,
    ]
    expected = raw_public(KEY)
    for source in sources:
        key = load_public_key(source)
        assert key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == expected, source


def test_load_public_key_errors(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="does not exist"):
        load_public_key(tmp_path / "missing.pem")
    with pytest.raises(SigningKeyError, match="does not exist"):
        load_public_key("relative/missing.pem")
    with pytest.raises(SigningKeyError, match="neither a PEM key nor a base64 32-byte Ed25519 public key"):
        load_public_key(b"garbage")
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_public_key(ec_public)
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_public_key_from_environment(tmp_path: Path) -> None:
    expected = raw_public(KEY)

    def raw(key: Ed25519PublicKey | None) -> bytes:
        assert key is not None
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    assert public_key_from_environment({}) is None
    assert raw(public_key_from_environment({VERIFY_KEY_ENV: public_key_pem(KEY).decode()})) == expected
    assert raw(public_key_from_environment({VERIFY_KEY_ENV: base64.b64encode(expected).decode()})) == expected
    assert raw(public_key_from_environment({SIGNING_KEY_ENV: SEED_B64})) == expected
    path = tmp_path / "k.pem"
    path.write_bytes(PEM)
    assert raw(public_key_from_environment({SIGNING_KEY_FILE_ENV: str(path)})) == expected
    other = Ed25519PrivateKey.generate()
    # The explicit verification key wins over the signing key.
    mixed = {VERIFY_KEY_ENV: public_key_pem(other).decode(), SIGNING_KEY_ENV: SEED_B64}
    assert raw(public_key_from_environment(mixed)) == raw_public(other)


def test_key_id_is_a_stable_public_fingerprint() -> None:
    assert key_id(KEY) == key_id(KEY.public_key())
    assert key_id(KEY).startswith("ed25519:") and len(key_id(KEY)) == len("ed25519:") + 16
    assert key_id(KEY) != key_id(Ed25519PrivateKey.generate())
    assert SEED_B64 not in key_id(KEY)


# -- generation -----------------------------------------------------------------------------


def test_generate_private_key_creates_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nested" / "signing.pem"
    key = generate_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert same_key(load_private_key(path, environ={}), key)
    assert [p.name for p in path.parent.iterdir()] == ["signing.pem"]  # no temp file left


def test_generate_private_key_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    first = generate_private_key(path)
    before = path.read_bytes()
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_private_key(path)
    assert path.read_bytes() == before
    assert same_key(load_private_key(path, environ={}), first)


def test_generated_keys_differ(tmp_path: Path) -> None:
    a = generate_private_key(tmp_path / "a.pem")
    b = generate_private_key(tmp_path / "b.pem")
    assert not same_key(a, b)
    assert os.path.getsize(tmp_path / "a.pem") > 0


def test_find_public_key_order_path_then_environment_then_default(tmp_path: Path) -> None:
    given, inline, fallback = (Ed25519PrivateKey.generate() for _ in range(3))
    given_file, default_file = tmp_path / "given.pem", tmp_path / "default.pem"
    given_file.write_bytes(public_key_pem(given))
    default_file.write_bytes(public_key_pem(fallback))
    environ = {VERIFY_KEY_ENV: public_key_pem(inline).decode()}
    found = [
        find_public_key(given_file, default=default_file, environ=environ),
        find_public_key(default=default_file, environ=environ),
        find_public_key(default=default_file, environ={}),
    ]
    assert [key and key_id(key) for key in found] == [key_id(given), key_id(inline), key_id(fallback)]
    assert find_public_key(default=tmp_path / "missing.pem", environ={}) is None
    with pytest.raises(SigningKeyError, match="does not exist"):
        find_public_key(tmp_path / "missing.pem", environ={})
