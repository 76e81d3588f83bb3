"""Workers verify with the public key only; a private key stops them at start."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.router.keys import PrivateKeyGiven, SigningKeyError, generate_private_key, key_id, public_key_pem
from bifrost.streams.artifacts.listener import check_verify_key, verify_key


def test_the_default_is_a_public_key_file() -> None:
    assert Settings().verify_key_file == "var/keys/artifact-signing.pub.pem"


def test_a_public_key_file_or_inline_public_key_is_used(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    public = tmp_path / "k.pub.pem"
    public.write_bytes(public_key_pem(key))
    settings = Settings(verify_key_file=str(public))
    assert key_id(verify_key(settings, {})) == key_id(key)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    inline = {"BIFROST_VERIFY_KEY": base64.b64encode(raw).decode()}
    assert key_id(verify_key(Settings(verify_key_file=str(tmp_path / "none")), inline)) == key_id(key)
    check_verify_key(settings, {})  # no exception


def test_a_private_key_file_stops_the_worker_with_how_to_fix_it(tmp_path: Path) -> None:
    private = tmp_path / "signing.pem"
    generate_private_key(private)
    settings = Settings(verify_key_file=str(private))
    with pytest.raises(PrivateKeyGiven):
        verify_key(settings, {})
    with pytest.raises(SettingsError) as info:
        check_verify_key(settings, {})
    message = str(info.value)
    assert f"BIFROST_VERIFY_KEY_FILE={private} holds the private signing key" in message
    assert "export-public" in message and "public_key_pem" in message
    assert "PRIVATE KEY" not in message  # no key material


def test_an_inline_private_key_is_refused_too(tmp_path: Path) -> None:
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(SettingsError, match=r"\$BIFROST_VERIFY_KEY holds the private signing key"):
        check_verify_key(Settings(verify_key_file=str(tmp_path / "none")), {"BIFROST_VERIFY_KEY": pem})


def test_signing_key_variables_are_never_used_by_a_worker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    private = tmp_path / "signing.pem"
    generate_private_key(private)
    environ = {"BIFROST_SIGNING_KEY_FILE": str(private)}
    settings = Settings(verify_key_file=str(tmp_path / "missing.pub.pem"))
    with pytest.raises(SigningKeyError, match="does not exist"):
        verify_key(settings, environ)  # not derived from the signing key
    with caplog.at_level(logging.WARNING, logger="bifrost.artifacts"):
        check_verify_key(settings, environ)  # a missing key is not fatal: announcements go to the DLQ
    assert "BIFROST_SIGNING_KEY_FILE" in caplog.text and "no_verify_key" in caplog.text
