"""Files a SASL_SSL local broker needs: a throw-away CA, the broker's certificate, a password.

Everything lives in ``<data_dir>/sasl-ssl/`` (mode 0700; secrets 0600) and is made once
per data dir, so a restarted broker keeps its CA file and its user's password:

- ``ca.pem`` — the self-signed CA certificate clients trust (``BIFROST_KAFKA_SSL_CAFILE``).
  The CA's private key is never written anywhere: it signs the broker certificate and is
  dropped, so nobody can mint another certificate this CA vouches for.
- ``broker.pem`` (0600) — the broker's PKCS#8 private key, then its certificate and the
  CA certificate; the certificate names ``127.0.0.1`` and ``localhost``. Kafka gets them
  as a PEM key store given inline (``ssl.keystore.type=PEM``, ``ssl.keystore.key``,
  ``ssl.keystore.certificate.chain`` in the 0600 ``server.properties``): a PEM key store
  *file* needs an encrypted key, and Java 17 cannot decrypt the PBES2 keys that
  ``cryptography`` writes ("PBES2 SecretKeyFactory not available").
- ``password`` — the SCRAM user's random password (``BIFROST_KAFKA_SASL_PASSWORD_FILE``).

Secrets are never logged and never put on a command line (the broker tools get them in a
``java @argfile`` written 0600 and removed after use).
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bifrost.common.files import write_atomic

SECURE_DIR = "sasl-ssl"
CA_FILE = "ca.pem"
KEYSTORE_FILE = "broker.pem"
PASSWORD_FILE = "password"

SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
"""Enabled on the SASL_SSL listener; the user has credentials for both."""

SCRAM_ITERATIONS = 8192
CERT_HOSTS = ("127.0.0.1", "localhost")
_CERT_DAYS = 825
_RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class SecureFiles:
    """Paths of a data dir's TLS/SASL material (see the module docstring)."""

    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / CA_FILE

    @property
    def keystore_file(self) -> Path:
        return self.folder / KEYSTORE_FILE

    @property
    def password_file(self) -> Path:
        return self.folder / PASSWORD_FILE

    def keystore_pem(self) -> tuple[str, str]:
        """(private key PEM, certificate chain PEM) of the broker, for Kafka's inline PEM key store."""
        text = self.keystore_file.read_text()
        start = text.index("-----BEGIN CERTIFICATE-----")
        return text[:start].strip() + "\n", text[start:].strip() + "\n"

    def password(self) -> str:
        return self.password_file.read_text().strip()


def secure_files(data_dir: Path) -> SecureFiles:
    return SecureFiles(data_dir / SECURE_DIR)


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (created 0600, replaced atomically)."""
    write_atomic(path, text.encode(), mode=0o600)


def new_password() -> str:
    """A random password: 32 URL-safe characters (192 bits), nothing to quote anywhere."""
    return secrets.token_urlsafe(24)


def ensure_password(files: SecureFiles) -> tuple[str, bool]:
    """The SCRAM password of this data dir; made (and stored 0600) on first use.

    Returns:
        (password, created): ``created`` is True when it did not exist before.
    """
    files.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if files.password_file.is_file():
        password = files.password()
        if password:
            return password, False
    password = new_password()
    write_secret(files.password_file, password + "\n")
    return password, True


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bifrost devkafka"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate_valid(path: Path, now: datetime.datetime) -> bool:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return False
    return bool(certs) and all(c.not_valid_after_utc - _RENEW_BEFORE > now for c in certs)


def ensure_certificates(files: SecureFiles, hosts: tuple[str, ...] = CERT_HOSTS) -> bool:
    """Make the CA and the broker key store unless valid ones exist (renewed a week before expiry).

    Returns:
        True when new files were written.
    """
    now = datetime.datetime.now(datetime.UTC)
    files.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _certificate_valid(files.ca_file, now) and _certificate_valid(files.keystore_file, now):
        return False
    start = now - datetime.timedelta(minutes=5)  # tolerate a little clock skew
    end = now + datetime.timedelta(days=_CERT_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"bifrost devkafka CA {secrets.token_hex(4)}")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    write_secret(files.keystore_file, key_pem.decode() + chain.decode())
    write_atomic(files.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return True


def scram_format_arguments(username: str, password: str) -> list[str]:
    """``kafka-storage format`` arguments that create ``username`` for every SCRAM mechanism."""
    args: list[str] = []
    for mechanism in SCRAM_MECHANISMS:
        args += ["--add-scram", f"{mechanism}=[name={username},password={password},iterations={SCRAM_ITERATIONS}]"]
    return args


def scram_config_arguments(bootstrap: str, username: str, password: str) -> list[list[str]]:
    """``kafka-configs`` (``kafka.admin.ConfigCommand``) runs that set ``username``'s SCRAM
    credentials over the (internal, PLAINTEXT) listener at ``bootstrap``: one run per
    mechanism (the broker refuses two credentials of one user in one request)."""
    return [
        [
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            username,
            "--add-config",
            f"{mechanism}=[iterations={SCRAM_ITERATIONS},password={password}]",
        ]
        for mechanism in SCRAM_MECHANISMS
    ]


def java_argfile(path: Path, args: list[str]) -> str:
    """Write ``args`` as a ``java @argfile`` (0600) and return the ``@path`` argument.

    The launcher reads the file before the JVM starts, so secrets in ``args`` never show up
    in the process list (``/proc/<pid>/cmdline`` has only ``@path``). The caller removes it.
    """

    def quote(arg: str) -> str:
        if any(c in arg for c in " \t\n\"'#\\"):
            return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return arg

    write_secret(path, "\n".join(quote(a) for a in args) + "\n")
    return f"@{path}"
