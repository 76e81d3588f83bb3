"""docker-compose.yml is the production shape: validate its structure (no Docker here)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bifrost.cli.main import _parser
from bifrost.config import Settings
from bifrost.trainer.settings import TrainerSettings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_dependencies() -> None:
    services = compose()["services"]
    assert {"kafka", "worker", "trainer"} <= set(services)
    assert set(services["trainer"].get("secrets", [])) <= set(compose().get("secrets", {}))
    assert services["kafka"]["image"].startswith("apache/kafka:3.9")
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    assert services["worker"]["deploy"]["replicas"] >= 2  # scale-out in one consumer group


def test_environment_uses_real_settings_and_commands() -> None:
    known = {env for env, _, _ in [*Settings.describe(), *TrainerSettings.describe()]}
    subcommands = set(_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        unknown = {k for k in service.get("environment", {}) if k.startswith("BIFROST_")} - known
        assert not unknown, f"{name} sets unknown settings {unknown}"
        assert service["command"][0] in subcommands
        _parser().parse_args(service["command"])  # the command line itself is valid
    worker_env = compose()["services"]["worker"]["environment"]
    assert worker_env["BIFROST_STORE"].startswith("rocksdb")
    assert worker_env["BIFROST_KAFKA_BOOTSTRAP"].split(":")[0] == "kafka"


def test_dockerfile_copies_every_package_folder() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    import tomllib

    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for folder in set(mapping.values()):
        assert f"COPY {folder} {folder}" in dockerfile


def test_command_keys_workers_get_the_allow_list_and_the_pipeline_key_only() -> None:
    spec = compose()
    worker, trainer = spec["services"]["worker"], spec["services"]["trainer"]
    env = worker["environment"]
    for variable in ("BIFROST_COMMAND_KEYS_FILE", "BIFROST_PIPELINE_KEY_FILE"):
        secret = env[variable].removeprefix("/run/secrets/")
        assert env[variable].startswith("/run/secrets/") and secret in worker["secrets"] and secret in spec["secrets"]
    assert env["BIFROST_PIPELINE_KEY_NAME"] == "pipeline"
    # Nobody in the deployment holds an operator key (operators sign from their own machines),
    # and the trainer signs artifacts, not rollout commands.
    for name, service in spec["services"].items():
        assert not any(k.startswith("BIFROST_OPERATOR_KEY") for k in service.get("environment", {})), name
    assert not {"command_keys", "pipeline_command_key"} & set(trainer.get("secrets", []))
    assert not any(k.startswith(("BIFROST_PIPELINE_KEY", "BIFROST_COMMAND_KEYS")) for k in trainer["environment"])
