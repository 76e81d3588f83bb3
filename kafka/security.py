"""How every bifrost Kafka client authenticates: TLS and SASL, one typed settings group.

Read from ``BIFROST_KAFKA_*`` variables and shared by the worker, the trainer, the CLI
and the client library, so a managed Kafka service that requires ``SASL_SSL`` is one
set of variables away for all of them. Secrets (the SASL password, the TLS key's
password) never appear in ``repr``, logs or ``bifrost-opt config``.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from bifrost.common import envsettings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SECRET_MASK = "********"


class KafkaSecurityError(ValueError):
    """The Kafka security settings are inconsistent or point at unreadable files."""


_setting = envsettings.setting


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL settings of a Kafka client.

    Example:
        >>> KafkaSecurity().client_options()
        {'security_protocol': 'PLAINTEXT'}
        >>> KafkaSecurity(protocol="SASL_SSL", sasl_username="u", sasl_password="p")
        KafkaSecurity(protocol='SASL_SSL', sasl_mechanism='SCRAM-SHA-512', sasl_username='u',
                      sasl_password_file='', ssl_cafile='', ssl_certfile='', ssl_keyfile='', ssl_check_hostname=True)
    """

    protocol: str = _setting(
        "PLAINTEXT", "BIFROST_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str = _setting(
        "SCRAM-SHA-512", "BIFROST_KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL protocols only)."
    )
    sasl_username: str = _setting("", "BIFROST_KAFKA_SASL_USERNAME", "SASL user name.")
    sasl_password: str = _setting(
        "", "BIFROST_KAFKA_SASL_PASSWORD", "SASL password (prefer the _FILE variant; never logged).", secret=True
    )
    sasl_password_file: str = _setting(
        "", "BIFROST_KAFKA_SASL_PASSWORD_FILE", "File holding the SASL password (trailing newline ignored)."
    )
    ssl_cafile: str = _setting(
        "",
        "BIFROST_KAFKA_SSL_CAFILE",
        "PEM file of the CA that signed the brokers' certificates (system CAs if empty).",
    )
    ssl_certfile: str = _setting("", "BIFROST_KAFKA_SSL_CERTFILE", "Client certificate (PEM) for mutual TLS.")
    ssl_keyfile: str = _setting("", "BIFROST_KAFKA_SSL_KEYFILE", "Private key (PEM) of the client certificate.")
    ssl_key_password: str = _setting(
        "", "BIFROST_KAFKA_SSL_KEY_PASSWORD", "Password of the client key, if encrypted (never logged).", secret=True
    )
    ssl_check_hostname: bool = _setting(
        True, "BIFROST_KAFKA_SSL_CHECK_HOSTNAME", "Verify that the broker's certificate names the host connected to."
    )

    # ------------------------------------------------------------------ env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        """The group from ``environ`` (default ``os.environ``); empty values mean unset."""
        try:
            values = envsettings.read_env(cls, environ)
        except envsettings.SettingsError as exc:
            raise KafkaSecurityError(str(exc)) from None
        # Names and paths lose a stray space or newline; a secret is used exactly as given.
        for f in fields(cls):
            if isinstance(values.get(f.name), str) and not f.metadata["secret"]:
                values[f.name] = values[f.name].strip()
        security = cls(**values)
        security.validate()
        return security

    def to_env(self) -> dict[str, str]:
        """Variables that reproduce this group in a child process (secrets included)."""
        return {f.metadata["env"]: str(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) != ""}

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) of every setting of the group."""
        return envsettings.describe(cls)

    @classmethod
    def secret_variables(cls) -> frozenset[str]:
        """Variables whose values must never be shown."""
        return frozenset(f.metadata["env"] for f in fields(cls) if f.metadata["secret"])

    # ------------------------------------------------------------------ checks

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def validate(self) -> None:
        """Raise :class:`KafkaSecurityError` with what to change, for any inconsistency."""
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"BIFROST_KAFKA_SECURITY_PROTOCOL={self.protocol!r}: use one of {', '.join(PROTOCOLS)}"
            )
        if self.uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaSecurityError(
                    f"BIFROST_KAFKA_SASL_MECHANISM={self.sasl_mechanism!r}: use one of {', '.join(SASL_MECHANISMS)}"
                )
            if not self.sasl_username:
                raise KafkaSecurityError(f"{self.protocol} needs BIFROST_KAFKA_SASL_USERNAME")
            if not self.sasl_password and not self.sasl_password_file:
                raise KafkaSecurityError(
                    f"{self.protocol} needs BIFROST_KAFKA_SASL_PASSWORD_FILE (or BIFROST_KAFKA_SASL_PASSWORD)"
                )
        for env, path in (
            ("BIFROST_KAFKA_SASL_PASSWORD_FILE", self.sasl_password_file),
            ("BIFROST_KAFKA_SSL_CAFILE", self.ssl_cafile),
            ("BIFROST_KAFKA_SSL_CERTFILE", self.ssl_certfile),
            ("BIFROST_KAFKA_SSL_KEYFILE", self.ssl_keyfile),
        ):
            if path and not Path(path).is_file():
                raise KafkaSecurityError(f"{env}={path!r} is not a readable file")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise KafkaSecurityError("mutual TLS needs both BIFROST_KAFKA_SSL_CERTFILE and BIFROST_KAFKA_SSL_KEYFILE")

    # ------------------------------------------------------------------ clients

    def password(self) -> str:
        """The SASL password, from the file when one is given."""
        if self.sasl_password_file:
            try:
                return Path(self.sasl_password_file).read_text().rstrip("\r\n")
            except OSError as exc:
                raise KafkaSecurityError(f"cannot read BIFROST_KAFKA_SASL_PASSWORD_FILE: {exc.strerror}") from None
        return self.sasl_password

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL protocols (None for plaintext ones)."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.ssl_cafile or None)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, password=self.ssl_key_password or None)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSecurityError(f"cannot set up TLS from the BIFROST_KAFKA_SSL_* files: {exc}") from None
        context.check_hostname = self.ssl_check_hostname
        if not self.ssl_check_hostname:
            context.verify_mode = ssl.CERT_REQUIRED  # still verify the chain, just not the name
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (consumer, producer, admin)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.password()
        return options

    def faust_credentials(self) -> Any:
        """Faust ``broker_credentials`` (None for PLAINTEXT)."""
        import faust  # only the worker needs Faust

        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.password(),
                ssl_context=self.ssl_context,
                mechanism=self.sasl_mechanism,
            )
        if self.uses_tls:
            return faust.SSLCredentials(self.ssl_context)
        return None


def mask_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with secret values replaced, for printing."""
    secret = KafkaSecurity.secret_variables()
    return {k: (SECRET_MASK if k in secret and v else v) for k, v in env.items()}


SettingsT = TypeVar("SettingsT")


def settings_from_env(
    cls: type[SettingsT], environ: Mapping[str, str] | None, overrides: Mapping[str, Any]
) -> SettingsT:
    """A settings class with a ``kafka_security`` group: its own variables, the group's, then ``overrides``.

    Raises:
        SettingsError: a variable is malformed or the group is inconsistent (a usage error).
    """
    values = envsettings.read_env(cls, environ)
    if "kafka_security" not in overrides:
        try:
            values["kafka_security"] = KafkaSecurity.from_env(environ)
        except KafkaSecurityError as exc:
            raise envsettings.SettingsError(str(exc)) from None
    values.update(overrides)
    return cls(**values)
