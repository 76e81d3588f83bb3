"""The settings machinery: parsing by field type, empty means unset, one definition per variable."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from bifrost.common import envsettings, variables
from bifrost.common.envsettings import SettingsError, setting
from bifrost.common.errors import ExitCode, exit_code_of
from bifrost.config import Settings
from bifrost.trainer.settings import TrainerSettings


@dataclass(frozen=True, slots=True)
class _Example:
    name: str = setting("a", "BIFROST_T_NAME", "A name.")
    count: int = setting(3, "BIFROST_T_COUNT", "A count.")
    ratio: float = setting(0.5, "BIFROST_T_RATIO", "A ratio.")
    flag: bool = setting(False, "BIFROST_T_FLAG", "A flag.")
    token: str = setting("", "BIFROST_T_TOKEN", "A secret.", secret=True)


def test_read_env_parses_by_type_and_skips_empty_values() -> None:
    values = envsettings.read_env(
        _Example, {"BIFROST_T_COUNT": "7", "BIFROST_T_RATIO": "1e-3", "BIFROST_T_FLAG": " Yes", "BIFROST_T_NAME": ""}
    )
    assert values == {"count": 7, "ratio": 0.001, "flag": True}
    assert envsettings.describe(_Example)[1] == ("BIFROST_T_COUNT", "3", "A count.")


@pytest.mark.parametrize(
    ("env", "raw"), [("BIFROST_T_COUNT", "1.5"), ("BIFROST_T_RATIO", "x"), ("BIFROST_T_FLAG", "2")]
)
def test_a_malformed_value_is_a_usage_error_naming_the_variable(env: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=env) as info:
        envsettings.read_env(_Example, {env: raw})
    assert exit_code_of(info.value) == ExitCode.USAGE


def test_a_secret_stays_out_of_repr() -> None:
    assert "hunter2" not in repr(_Example(token="hunter2"))


def test_variables_read_by_worker_and_trainer_are_one_definition() -> None:
    shared = {v.env: v for v in vars(variables).values() if isinstance(v, envsettings.Var)}
    for cls in (Settings, TrainerSettings):
        by_env = {f.metadata["env"]: f for f in fields(cls) if "env" in f.metadata}
        for env, var in shared.items():
            assert by_env[env].default == var.default and by_env[env].metadata["doc"] == var.doc, (cls, env)
    worker = {e for e, _, _ in Settings.describe()}
    trainer = {e for e, _, _ in TrainerSettings.describe()}
    assert worker & trainer == set(shared)  # nothing else is defined twice
