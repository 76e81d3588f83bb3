"""`bifrost-opt config`: every setting's effective value and where it comes from.

Sources: ``env`` (the variable is set), ``default`` (it is not), or ``file PATH`` for a
secret read from its ``*_FILE`` variable. Secrets are never shown, only whether they are
set; a secret's file that is missing, unreadable or empty is shown as such (``(file
missing)``, ``(file unreadable: …)``, ``(file empty)``), not as set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

HIDDEN = "(set, hidden)"

#: A secret variable and the variable naming the file it can be read from instead.
SECRET_FILES = {
    "BIFROST_WEB_TOKEN": "BIFROST_WEB_TOKEN_FILE",
    "BIFROST_KAFKA_SASL_PASSWORD": "BIFROST_KAFKA_SASL_PASSWORD_FILE",
    "BIFROST_SIGNING_KEY": "BIFROST_SIGNING_KEY_FILE",
    "BIFROST_OPENROUTER_API_KEY": "BIFROST_OPENROUTER_API_KEY_FILE",
    "BIFROST_OPENAI_API_KEY": "BIFROST_OPENAI_API_KEY_FILE",
    "BIFROST_GEMINI_API_KEY": "BIFROST_GEMINI_API_KEY_FILE",
    "BIFROST_WEBHOOK_SECRET": "BIFROST_WEBHOOK_SECRET_FILE",
}


@dataclass(frozen=True, slots=True)
class SettingRow:
    variable: str
    value: str
    source: str
    doc: str

    def as_dict(self) -> dict[str, str]:
        return {"variable": self.variable, "value": self.value, "source": self.source, "doc": self.doc}


def effective_settings(environ: Mapping[str, str] | None = None) -> list[SettingRow]:
    """Rows for the worker's, the Kafka clients' and the trainer's settings, each variable once.

    Raises what ``Settings.from_env`` raises for a malformed value (a usage error).
    """
    from bifrost.config import Settings
    from bifrost.kafka.security import KafkaSecurity
    from bifrost.trainer.settings import TrainerSettings

    environ = os.environ if environ is None else environ
    settings = Settings.from_env(environ)
    trainer = TrainerSettings.from_env(environ)
    rows: dict[str, SettingRow] = {}
    for owner in (settings, settings.kafka_security, trainer):
        for f in fields(owner):
            env = f.metadata.get("env")
            if env is None or env in rows:
                continue
            secret = bool(f.metadata.get("secret")) or env in SECRET_FILES
            rows[env] = _row(env, getattr(owner, f.name), secret, f.metadata["doc"], environ)
    for env, doc in (
        ("BIFROST_SIGNING_KEY", "Inline signing key (trainer; wins over BIFROST_SIGNING_KEY_FILE)."),
        ("BIFROST_VERIFY_KEY", "Inline public key artifacts are verified with (wins over the file)."),
    ):
        rows.setdefault(env, _row(env, environ.get(env, ""), True, doc, environ))
    assert all(isinstance(o, (Settings, KafkaSecurity, TrainerSettings)) for o in (settings, trainer))
    return list(rows.values())


def _row(env: str, value: Any, secret: bool, doc: str, environ: Mapping[str, str]) -> SettingRow:
    given = environ.get(env, "") != ""
    file_env = SECRET_FILES.get(env)
    if secret:
        if given:
            return SettingRow(env, HIDDEN, "env", doc)
        if file_env and environ.get(file_env):
            path = environ[file_env]
            return SettingRow(env, secret_file_state(path), f"file {path}", doc)
        return SettingRow(env, "(not set)", "default", doc)
    return SettingRow(env, _show(value), "env" if given else "default", doc)


def secret_file_state(path: str) -> str:
    """``(set, hidden)`` when the file at ``path`` holds a secret, else why it does not; never its content.

    >>> secret_file_state("/nonexistent/bifrost-token")
    '(file missing)'
    """
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        return "(file missing)"
    except OSError as exc:
        return f"(file unreadable: {exc.strerror or type(exc).__name__})"
    return HIDDEN if content.strip() else "(file empty)"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value != "" else '""'


def render(rows: list[SettingRow]) -> str:
    """A table: variable, effective value, source, meaning."""
    width_var = max(len(r.variable) for r in rows)
    width_value = min(40, max(len(r.value) for r in rows))
    width_source = max(len(r.source) for r in rows)
    return "\n".join(
        f"{r.variable:{width_var}}  {r.value:{width_value}}  {r.source:{width_source}}  {r.doc}" for r in rows
    )
