"""The settings machinery: typed dataclass fields read from ``BIFROST_*`` environment variables.

A settings class is a frozen dataclass whose fields are made with :func:`setting` (or
:meth:`Var.field`, for a variable several services read, so it is defined once). Each
field names its variable, its documented default and whether it is a secret (left out
of ``repr``; ``bifrost-opt config`` shows only whether it is set). :func:`read_env`
parses the variables by the fields' types; :func:`describe` lists them for the docs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from bifrost.common.errors import ExitCode

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """An environment variable holds a value of the wrong kind (a usage error)."""

    exit_code = ExitCode.USAGE


def setting(default: Any, env: str, doc: str, *, secret: bool = False) -> Any:
    """A dataclass field read from ``env``; ``doc`` is its line in ``bifrost-opt config``."""
    return field(default=default, repr=not secret, metadata={"env": env, "doc": doc, "secret": secret})


@dataclass(frozen=True, slots=True)
class Var(Generic[T]):
    """One variable's name, default and meaning, for settings classes of several services."""

    env: str
    default: T
    doc: str
    secret: bool = False

    def field(self) -> T:
        """The dataclass field of this variable."""
        value: T = setting(self.default, self.env, self.doc, secret=self.secret)
        return value


def env_fields(settings: Any) -> list[Field[Any]]:
    """The fields of a settings class (or instance) that are read from a variable."""
    return [f for f in fields(settings) if "env" in f.metadata]


def parse(raw: str, kind: Any, env: str) -> Any:
    """``raw`` as the field type ``kind`` (bool, int, float, else text).

    Example:
        >>> parse("On", "bool", "BIFROST_X"), parse("8", int, "BIFROST_Y")
        (True, 8)
        >>> parse("x", "float", "BIFROST_Z")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        bifrost.common.envsettings.SettingsError: BIFROST_Z='x' is not a valid float
    """
    name = kind if isinstance(kind, str) else kind.__name__
    if name == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{env}={raw!r} is not a boolean (true/false)")
    try:
        if name == "int":
            return int(raw)
        if name == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"{env}={raw!r} is not a valid {name}") from None
    return raw


def read_env(cls: Any, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Field values of ``cls`` from the variables set in ``environ`` (default ``os.environ``); empty means unset."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in env_fields(cls):
        raw = environ.get(f.metadata["env"])
        if raw:
            values[f.name] = parse(raw, f.type, f.metadata["env"])
    return values


def to_env(settings: Any) -> dict[str, str]:
    """The variables that reproduce ``settings``' plain fields in a child process."""
    return {f.metadata["env"]: str(getattr(settings, f.name)) for f in env_fields(settings)}


def describe(cls: Any) -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every field of ``cls`` read from a variable."""
    return [
        (f.metadata["env"], repr(f.default) if f.default is not MISSING else "", f.metadata["doc"])
        for f in env_fields(cls)
    ]


def secret_value(settings: Any, name: str) -> str:
    """A secret given inline (field ``name``) or in a file (field ``<name>_file``); "" when neither is set.

    Raises:
        SettingsError: the file cannot be read. Messages name the variable, never the secret.
    """
    inline = str(getattr(settings, name))
    if inline:
        return inline.strip()
    path = str(getattr(settings, f"{name}_file"))
    if not path:
        return ""
    env = next(f.metadata["env"] for f in fields(settings) if f.name == f"{name}_file")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SettingsError(f"{env}={path} cannot be read: {reason}") from None
