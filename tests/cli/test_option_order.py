"""Options are accepted before or after a subcommand's action, and every read command has --json."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bifrost.cli.main import _parser
from bifrost.devkafka.__main__ import build_parser as kafka_parser
from bifrost.trainer.cli import artifacts_parser, evaluate_parser, train_parser


@pytest.mark.parametrize(
    ("build", "before", "after", "field", "value"),
    [
        (_parser, ["rollout", "--router", "r1", "status"], ["rollout", "status", "--router", "r1"], "router", "r1"),
        (_parser, ["rollout", "--router", "r1", "pause"], ["rollout", "pause", "--router", "r1"], "router", "r1"),
        (artifacts_parser, ["--store", "/s", "list"], ["list", "--store", "/s"], "store", "/s"),
        (artifacts_parser, ["--json", "show", "v1"], ["show", "v1", "--json"], "json", True),
        (artifacts_parser, ["--key", "k.pem", "verify", "v1"], ["verify", "v1", "--key", "k.pem"], "key", "k.pem"),
        (kafka_parser, ["--data-dir", "/d", "status"], ["status", "--data-dir", "/d"], "data_dir", Path("/d")),
        (kafka_parser, ["-v", "stop"], ["stop", "-v"], "verbose", True),
    ],
)
def test_options_in_any_order(
    build: Callable[[], argparse.ArgumentParser], before: list[str], after: list[str], field: str, value: object
) -> None:
    assert getattr(build().parse_args(before), field) == value
    assert getattr(build().parse_args(after), field) == value


def test_defaults_still_apply_when_the_option_is_given_nowhere() -> None:
    assert artifacts_parser().parse_args(["list"]).json is False
    assert kafka_parser().parse_args(["status"]).data_dir == Path("var/kafka")
    assert not hasattr(_parser().parse_args(["rollout", "status"]), "router")  # run_rollout says it is required


READ_COMMANDS = [
    ["metrics", "--router", "r"],
    ["rollout", "status", "--router", "r"],
    ["config"],
    ["retrain"],
    ["simulate"],
    ["lag"],
    ["schema", "routing-event"],
]


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=[" ".join(a[:2]) for a in READ_COMMANDS])
def test_read_commands_take_json(argv: list[str]) -> None:
    if argv[0] == "schema":
        return  # prints JSON only
    assert _parser().parse_args([*argv, "--json"]).json is True


def test_passthrough_read_commands_take_json() -> None:
    assert artifacts_parser().parse_args(["list", "--json"]).json
    assert evaluate_parser().parse_args(["v1", "--dataset", "d", "--json"]).json
    assert train_parser().parse_args(["--dataset", "d", "--json"]).json
    assert kafka_parser().parse_args(["status", "--json"]).json


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    return subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
    )


def test_version_and_effective_config(tmp_path: Path) -> None:
    version = _run("--version")
    assert version.returncode == 0 and version.stdout.startswith("bifrost-opt ")
    token = tmp_path / "token"
    token.write_text("x" * 32)
    config = _run("config", "--json", env={"BIFROST_PARTITIONS": "3", "BIFROST_WEB_TOKEN_FILE": str(token)})
    assert config.returncode == 0, config.stderr
    rows = {row["variable"]: row for row in json.loads(config.stdout)}
    assert rows["BIFROST_PARTITIONS"] == {**rows["BIFROST_PARTITIONS"], "value": "3", "source": "env"}
    assert rows["BIFROST_GRACE_SECONDS"]["source"] == "default" and rows["BIFROST_GRACE_SECONDS"]["value"] == "300"
    assert rows["BIFROST_WEB_TOKEN"] == {
        **rows["BIFROST_WEB_TOKEN"],
        "value": "(set, hidden)",
        "source": f"file {token}",
    }
    assert "x" * 32 not in config.stdout
    assert rows["BIFROST_TRAINER_TRIALS"]["value"] == "200"  # the trainer's settings too
    table = _run("config", env={"BIFROST_WEB_TOKEN": "y" * 20})
    assert table.returncode == 0 and "y" * 20 not in table.stdout
    assert any(line.split()[:3] == ["BIFROST_WEB_TOKEN", "(set,", "hidden)"] for line in table.stdout.splitlines())


def test_artifacts_verify_uses_the_verify_key_file(tmp_path: Path) -> None:
    from bifrost.router.keys import generate_private_key, load_private_key, public_key_pem

    key = tmp_path / "signing.pem"
    generate_private_key(key)
    public = tmp_path / "signing.pub.pem"
    public.write_bytes(public_key_pem(load_private_key(key)))
    store = tmp_path / "store"
    store.mkdir()
    # No version v1 in the store: the point is that the key is found (a missing key is another error).
    result = _run("artifacts", "verify", "v1", "--store", str(store), env={"BIFROST_VERIFY_KEY_FILE": str(public)})
    assert result.returncode == 2 and "no complete version 'v1'" in result.stderr, result.stderr
    missing = _run(
        "artifacts",
        "verify",
        "v1",
        "--store",
        str(store),
        env={"BIFROST_VERIFY_KEY_FILE": str(tmp_path / "absent.pem")},
    )
    assert missing.returncode == 2 and "absent.pem" in missing.stderr


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bifrost.cli", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("bifrost-opt "), result.stderr
