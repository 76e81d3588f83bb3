"""CLI misuse and unreachable services: a clear message and exit code, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.harness import free_port


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def closed_port_url() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("args", "env", "code", "fragment"),
    [
        (("frobnicate",), {}, 2, "invalid choice"),
        ((), {}, 2, "COMMAND"),
        (("metrics",), {}, 2, "--router"),
        (("metrics", "--router", "a", "--since", "soon"), {}, 2, "not a duration"),
        (("metrics", "--router", " "), {}, 2, "not blank"),
        (("analyze", "--router", ""), {}, 2, "not blank"),
        (("rollout", "status", "--router", ""), {}, 2, "not blank"),
        (("retrain", "--router", "r" * 129), {}, 2, "at most 128"),
        (("schema", "nope"), {}, 2, "choose one of"),
        (("config",), {"BIFROST_PARTITIONS": "many"}, 2, "BIFROST_PARTITIONS"),
        (("simulate", "--arms", "v1=lots"), {}, 2, "NAME=NUMBER"),
        (("simulate", "--rate", "-1"), {}, 2, "--rate"),
        (
            ("simulate", "--duration", "1m", "--speed", "0"),
            {"BIFROST_KAFKA_BOOTSTRAP": "@closed"},
            3,
            "cannot reach Kafka",
        ),
        (("metrics", "--router", "a"), {"BIFROST_WORKER_URL": "http://@closed"}, 3, "cannot reach a worker"),
        (("worker",), {"BIFROST_KAFKA_BOOTSTRAP": "@closed"}, 3, "cannot reach Kafka"),
        (("rollout", "start", "--router", "a"), {}, 2, "--artifact"),
        (("rollout", "launch", "--router", "a"), {}, 2, "invalid choice"),
        (("rollout", "rollback", "--router", "a"), {}, 2, "--reason"),
        (
            ("rollout", "pause", "--router", "a"),
            {"BIFROST_KAFKA_BOOTSTRAP": "@closed", "BIFROST_OPERATOR_KEY_FILE": "@key"},
            3,
            "cannot reach Kafka",
        ),
        (("rollout", "pause", "--router", "a"), {}, 2, "bifrost-opt keys create --name NAME --role operator"),
        (
            ("rollout", "stop", "--router", "a"),
            {"BIFROST_OPERATOR_KEY_FILE": "/nonexistent/op.pem"},
            2,
            "does not exist",
        ),
        (
            ("rollout", "pause", "--router", "a"),
            {"BIFROST_OPERATOR_KEY_FILE": "@key", "BIFROST_OPERATOR_KEY_NAME": "a b"},
            2,
            "key name",
        ),
        (
            ("rollout", "promote", "--router", "a", "--override"),
            {"BIFROST_OPERATOR_KEY_FILE": "@key"},
            2,
            "--override needs --reason",
        ),
        (("keys",), {}, 2, "ACTION"),
        (("keys", "create", "--name", "a/b", "--out", "/tmp"), {}, 2, "--name"),
        (("keys", "export-public", "--key", "/nonexistent/op.pem"), {}, 2, "does not exist"),
        (("rollout", "status", "--router", "a"), {"BIFROST_WORKER_URL": "http://@closed"}, 3, "cannot reach a worker"),
        (("simulate-gates", "--rollouts", "many"), {}, 2, "--rollouts"),
        (("config",), {"BIFROST_ROLLOUT_REQUIRE_APPROVAL": "perhaps"}, 2, "not a boolean"),
        (("trainer", "--bogus"), {}, 2, "unrecognized arguments"),
        (("trainer",), {"BIFROST_SIGNING_KEY_FILE": "/nonexistent/key.pem"}, 2, "does not exist"),
        (("trainer",), {"BIFROST_TRAINER_TRIALS": "many"}, 2, "BIFROST_TRAINER_TRIALS"),
        (
            ("trainer", "--once"),
            {"BIFROST_SIGNING_KEY": "A" * 43 + "=", "BIFROST_KAFKA_BOOTSTRAP": "@closed"},
            3,
            "cannot reach Kafka",
        ),
        (("train",), {}, 2, "--dataset"),
        (("train", "--dataset", "/nonexistent.jsonl"), {}, 2, "does not exist"),
        (("evaluate", "v1", "--dataset", "/nonexistent.jsonl"), {}, 2, "does not exist"),
        (("artifacts", "explode"), {}, 2, "invalid choice"),
        (("artifacts", "--store", "/nonexistent-store", "show", "v1"), {}, 2, "no complete version"),
    ],
)
def test_misuse_and_unreachable_services_explain_themselves(
    args: tuple[str, ...], env: dict[str, str], code: int, fragment: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if any(v == "@key" for v in env.values()):
        from bifrost.router.keys import generate_private_key

        key = tmp_path_factory.mktemp("keys") / "operator.pem"
        generate_private_key(key)
        env = {k: str(key) if v == "@key" else v for k, v in env.items()}
    env = {k: v.replace("@closed", closed_port_url()) for k, v in env.items()}
    result = run(*args, env=env)
    assert result.returncode == code, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_schema_command_prints_json_schema() -> None:
    result = run("schema", "routing-event")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$defs"]["RoutingEvent"]["properties"]["latency_ms"]["minimum"] == 0


def test_config_lists_every_variable() -> None:
    result = run("config")
    assert result.returncode == 0
    assert "BIFROST_KAFKA_BOOTSTRAP" in result.stdout and "BIFROST_GRACE_SECONDS" in result.stdout
    assert "BIFROST_TRAINER_TRIALS" in result.stdout and "BIFROST_VERIFY_KEY_FILE" in result.stdout
