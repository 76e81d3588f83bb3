"""TLS and SCRAM material of a SASL_SSL local broker (no JVM needed)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bifrost.devkafka import BrokerError, LocalBroker
from bifrost.devkafka.broker import _escape_property, _read_properties, _write_properties
from bifrost.devkafka.secure import (
    ensure_certificates,
    ensure_password,
    java_argfile,
    scram_config_arguments,
    scram_format_arguments,
    secure_files,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_certificates_name_localhost_and_chain_to_the_ca_whose_key_is_not_kept(tmp_path: Path) -> None:
    files = secure_files(tmp_path)
    assert ensure_certificates(files) is True
    assert _mode(files.folder) == 0o700 and _mode(files.keystore_file) == 0o600
    key_pem, chain_pem = files.keystore_pem()
    key = load_pem_private_key(key_pem.encode(), password=None)  # PKCS#8, as Kafka's PEM key store wants
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    leaf, ca_in_chain = x509.load_pem_x509_certificates(chain_pem.encode())
    (ca,) = x509.load_pem_x509_certificates(files.ca_file.read_bytes())
    assert ca_in_chain == ca and leaf.issuer == ca.subject
    assert leaf.public_key() == key.public_key()
    ca_key, signed_with = ca.public_key(), leaf.signature_algorithm_parameters
    assert isinstance(ca_key, ec.EllipticCurvePublicKey) and isinstance(signed_with, ec.ECDSA)  # P-256 keys
    ca_key.verify(leaf.signature, leaf.tbs_certificate_bytes, signed_with)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=365)
    # Only the CA *certificate* is kept: nothing in the folder holds a second private key.
    private = [p.name for p in files.folder.iterdir() if b"PRIVATE KEY" in p.read_bytes()]
    assert private == ["broker.pem"]
    # Python's TLS accepts the CA file (what BIFROST_KAFKA_SSL_CAFILE points at).
    ssl.create_default_context(cafile=str(files.ca_file))


def test_certificates_and_password_are_made_once_per_data_dir(tmp_path: Path) -> None:
    files = secure_files(tmp_path)
    ensure_certificates(files)
    ca = files.ca_file.read_bytes()
    assert ensure_certificates(files) is False and files.ca_file.read_bytes() == ca
    password, created = ensure_password(files)
    assert created and len(password) >= 32 and _mode(files.password_file) == 0o600
    assert ensure_password(files) == (password, False)
    assert ensure_password(secure_files(tmp_path / "other"))[0] != password  # random per data dir


def test_secure_files_are_written_with_their_modes_and_leave_no_temp_files(tmp_path: Path) -> None:
    files = secure_files(tmp_path)
    ensure_certificates(files)
    ensure_password(files)
    assert _mode(files.ca_file) == 0o644  # public: clients read it
    assert _mode(files.keystore_file) == 0o600 and _mode(files.password_file) == 0o600
    assert sorted(p.name for p in files.folder.iterdir()) == ["broker.pem", "ca.pem", "password"]


def test_properties_files_are_replaced_whole_with_their_modes(tmp_path: Path) -> None:
    public, private = tmp_path / "log4j.properties", tmp_path / "server.properties"
    _write_properties(public, {"a": "1"}, "header")
    _write_properties(private, {"secret": "x\ny"}, "header", private=True)
    private.chmod(0o644)  # a file left behind with other bits is made private again on rewrite
    _write_properties(private, {"secret": "z"}, "again", private=True)
    assert _mode(public) == 0o644 and _mode(private) == 0o600
    assert public.read_text() == "# header\na=1\n" and _read_properties(private) == {"secret": "z"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log4j.properties", "server.properties"]


def test_scram_arguments_cover_both_mechanisms() -> None:
    assert scram_format_arguments("bifrost", "pw") == [
        "--add-scram",
        "SCRAM-SHA-512=[name=bifrost,password=pw,iterations=8192]",
        "--add-scram",
        "SCRAM-SHA-256=[name=bifrost,password=pw,iterations=8192]",
    ]
    runs = scram_config_arguments("127.0.0.1:1", "bifrost", "pw")
    assert [r[-1] for r in runs] == [
        "SCRAM-SHA-512=[iterations=8192,password=pw]",
        "SCRAM-SHA-256=[iterations=8192,password=pw]",
    ]


def test_java_argfile_is_private_and_quotes_what_needs_it(tmp_path: Path) -> None:
    ref = java_argfile(tmp_path / "a.args", ["Main", "plain", "with space", 'q"uote', "back\\slash"])
    path = Path(ref[1:])
    assert ref.startswith("@") and _mode(path) == 0o600
    assert path.read_text().splitlines() == ["Main", "plain", '"with space"', '"q\\"uote"', '"back\\\\slash"']


def test_property_values_escape_line_breaks_and_backslashes() -> None:
    assert _escape_property("a\nb\\c") == "a\\nb\\\\c"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"security": "kerberos"}, "security='kerberos': use one of plaintext, sasl_ssl"),
        ({"security": "sasl_ssl", "sasl_username": "a b"}, "sasl_username='a b'"),
    ],
)
def test_bad_broker_options_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BrokerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LocalBroker(**kwargs)


def test_security_details_need_a_sasl_ssl_broker() -> None:
    with pytest.raises(BrokerError, match="no SASL_SSL listener"):
        _ = LocalBroker().ca_file
    assert LocalBroker().client_security().protocol == "PLAINTEXT"
    with pytest.raises(BrokerError, match="not started"):
        _ = LocalBroker(security="sasl_ssl").sasl_password_file
    assert LocalBroker(security="SASL-SSL").secure  # spelled as the protocol works too
