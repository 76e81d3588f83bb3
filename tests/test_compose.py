"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

Structure (services, dependencies, health checks, Kafka's two listeners, one state volume,
instance id and canonical URL per worker), keys (the private signing key reaches the
trainer only; workers get the public key, read-only), and that every command, setting and
path the compose file names exists in the image the Dockerfile builds: the entry point is a
console script of the package, each command line parses with the CLI, files come from
COPY'd folders of this repository, and every ``*_FILE`` setting points into a volume the
service mounts.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from bifrost.cli.init_cmd import ALLOW_LIST, OPERATOR_KEY, PIPELINE_KEY, SIGNING_PUBLIC, WEB_TOKEN
from bifrost.cli.main import _parser
from bifrost.config import Settings
from bifrost.trainer.cli import service_parser
from bifrost.trainer.settings import TrainerSettings

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


SPEC = compose()
SERVICES: dict[str, dict[str, Any]] = SPEC["services"]
BUILT = {name: s for name, s in SERVICES.items() if "build" in s}
WORKERS = {name: s for name, s in BUILT.items() if s["command"][0] == "worker"}


# -- the Dockerfile -------------------------------------------------------------------------


class Image:
    """What the Dockerfile builds: work dir, copied sources → destinations, packages, entry point."""

    def __init__(self, text: str) -> None:
        self.lines = [
            line.strip()
            for line in re.sub(r"\\\n", " ", text).splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        self.from_ = next(line.split()[1] for line in self.lines if line.startswith("FROM "))
        self.workdir = PurePosixPath(next(line.split()[1] for line in self.lines if line.startswith("WORKDIR ")))
        self.copies: list[tuple[list[str], PurePosixPath]] = []
        for line in self.lines:
            if line.startswith("COPY "):
                *sources, dest = line.split()[1:]
                target = PurePosixPath(dest)
                self.copies.append((sources, target if target.is_absolute() else self.workdir / target))
        entry = next(line for line in self.lines if line.startswith("ENTRYPOINT "))
        self.entrypoint: list[str] = yaml.safe_load(entry.removeprefix("ENTRYPOINT "))
        self.run = " ".join(line for line in self.lines if line.startswith("RUN "))

    def provides(self, path: str) -> bool:
        """Whether ``path`` (absolute, in the image) comes from a COPY of an existing repository path."""
        wanted = PurePosixPath(path)
        for sources, dest in self.copies:
            for source in sources:
                # One source: its content lands at dest; several: each under dest by its name.
                root = dest / PurePosixPath(source).name if len(sources) > 1 else dest
                if wanted == root or root in wanted.parents:
                    if (ROOT / source / wanted.relative_to(root)).exists():
                        return True
        return False


IMAGE = Image((ROOT / "Dockerfile").read_text())


def test_the_image_has_libgomp_and_installs_the_package_with_rocksdb() -> None:
    assert IMAGE.from_.startswith("python:3.11")
    assert "apt-get install" in IMAGE.run and "libgomp1" in IMAGE.run  # LightGBM needs OpenMP
    assert "pip install" in IMAGE.run and ".[rocksdb]" in IMAGE.run
    assert "rocksdb" in PYPROJECT["project"]["optional-dependencies"]


def test_the_image_installs_the_versions_ci_tested() -> None:
    assert "-c constraints.txt" in IMAGE.run
    assert any("constraints.txt" in sources for sources, _ in IMAGE.copies)
    assert (ROOT / "constraints.txt").is_file()


def test_every_copied_source_exists_and_every_package_folder_is_copied() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for sources, _ in IMAGE.copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not any(PurePosixPath(source).match(pattern) for pattern in ignored), f"{source} is .dockerignored"
    copied = {source for sources, _ in IMAGE.copies for source in sources}
    assert {"pyproject.toml", "README.md"} <= copied  # the build reads both
    for folder in set(PYPROJECT["tool"]["setuptools"]["package-dir"].values()):
        assert folder in copied, f"package folder {folder} is not copied"


def test_the_entry_point_is_the_packages_console_script() -> None:
    assert IMAGE.entrypoint[0] in PYPROJECT["project"]["scripts"]


# -- commands -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILT))
def test_every_command_line_parses_with_the_cli(name: str) -> None:
    command = BUILT[name]["command"]
    (actions,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    subcommands = set(actions.choices)
    assert command[0] in subcommands, f"{name}: bifrost-opt has no command {command[0]!r}"
    if command[0] == "trainer":
        service_parser().parse_args(command[1:])
    else:
        _parser().parse_args(command)


@pytest.mark.parametrize("name", sorted(BUILT))
def test_settings_are_real_and_file_settings_point_into_mounts(name: str) -> None:
    known = {env for env, _, _ in [*Settings.describe(), *TrainerSettings.describe()]}
    env = BUILT[name].get("environment", {})
    assert not {k for k in env if k.startswith("BIFROST_")} - known, f"{name} sets unknown settings"
    mounts = mount_points(BUILT[name])
    for key, value in env.items():
        if key.endswith("_FILE") or key in (
            "BIFROST_DATA_DIR",
            "BIFROST_WAREHOUSE_DIR",
            "BIFROST_ARTIFACT_STORE",
            "BIFROST_TRAINER_RUNS_DIR",
        ):
            assert any(value == m or value.startswith(m + "/") for m in mounts), f"{name}: {key}={value} is in no mount"


def test_the_bootstrap_dataset_is_in_the_image_and_its_outputs_are_where_the_others_read() -> None:
    boot = SERVICES["bootstrap"]
    args = _parser().parse_args(boot["command"])
    assert IMAGE.provides(args.dataset), f"{args.dataset} is not copied into the image"
    mounts = mount_points(boot)
    for path in (args.store, args.signing_key, args.worker_keys, args.operator_keys):
        assert any(path == m or path.startswith(m + "/") for m in mounts), f"bootstrap writes {path} outside its mounts"
    trainer_env = SERVICES["trainer"]["environment"]
    assert trainer_env["BIFROST_SIGNING_KEY_FILE"] == args.signing_key
    assert trainer_env["BIFROST_ARTIFACT_STORE"] == args.store
    for worker in WORKERS.values():
        env = worker["environment"]
        assert env["BIFROST_ARTIFACT_STORE"] == args.store
        assert env["BIFROST_VERIFY_KEY_FILE"] == f"{args.worker_keys}/{SIGNING_PUBLIC}"
        assert env["BIFROST_COMMAND_KEYS_FILE"] == f"{args.worker_keys}/{ALLOW_LIST}"
        assert env["BIFROST_PIPELINE_KEY_FILE"] == f"{args.worker_keys}/{PIPELINE_KEY}"
        assert env["BIFROST_WEB_TOKEN_FILE"] == f"{args.worker_keys}/{WEB_TOKEN}"
        assert env["BIFROST_PIPELINE_KEY_NAME"] == "pipeline"


# -- keys -----------------------------------------------------------------------------------


def volume_of(service: dict[str, Any], path: str) -> str | None:
    """The volume (or host path) mounted at the folder holding ``path`` in ``service``."""
    best = None
    for source, target, _ in mounts(service):
        if path == target or path.startswith(target + "/"):
            if best is None or len(target) > len(best[1]):
                best = (source, target)
    return best[0] if best else None


def test_workers_get_only_the_public_key_read_only_and_never_the_operators() -> None:
    boot = _parser().parse_args(SERVICES["bootstrap"]["command"])
    signing_volume = volume_of(SERVICES["bootstrap"], boot.signing_key)
    operator_volume = volume_of(SERVICES["bootstrap"], f"{boot.operator_keys}/{OPERATOR_KEY}")
    worker_volume = volume_of(SERVICES["bootstrap"], f"{boot.worker_keys}/{SIGNING_PUBLIC}")
    assert len({signing_volume, operator_volume, worker_volume}) == 3
    assert signing_volume is not None and worker_volume is not None
    assert SIGNING_PUBLIC.endswith(".pub.pem")
    for name, service in BUILT.items():
        sources = {source: mode for source, _, mode in mounts(service)}
        if name != "bootstrap":
            assert operator_volume not in sources, f"{name} mounts the operator's keys"
        if name not in ("bootstrap", "trainer"):
            assert signing_volume not in sources, f"{name} mounts the private signing key"
        if name == "trainer":
            assert sources[signing_volume] == "ro" and worker_volume not in sources
    for name, service in SERVICES.items():  # operators sign from their own machines; the trainer signs no commands
        assert not any(k.startswith("BIFROST_OPERATOR_KEY") for k in service.get("environment", {})), name
    trainer_env = SERVICES["trainer"]["environment"]
    assert not any(k.startswith(("BIFROST_PIPELINE_KEY", "BIFROST_COMMAND_KEYS")) for k in trainer_env)
    for name, worker in WORKERS.items():
        assert {s: m for s, _, m in mounts(worker)}[worker_volume] == "ro", f"{name} must mount its keys read-only"
        assert not any(k.startswith(("BIFROST_OPERATOR_KEY", "BIFROST_SIGNING_KEY")) for k in worker["environment"])
        assert "secrets" not in worker


# -- Kafka ----------------------------------------------------------------------------------


def listeners(value: str) -> dict[str, str]:
    return dict(item.split("://", 1) for item in value.split(","))


def test_kafka_listens_inside_the_network_and_from_the_host() -> None:
    kafka = SERVICES["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:3.9")
    bound, advertised = listeners(env["KAFKA_LISTENERS"]), listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) <= set(protocols) and env["KAFKA_CONTROLLER_LISTENER_NAMES"] in bound
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    inside = [name for name, address in advertised.items() if address.startswith("kafka:")]
    outside = [name for name, address in advertised.items() if address.startswith("localhost:")]
    assert len(inside) == 1 and len(outside) == 1, advertised
    inside_address, outside_address = advertised[inside[0]], advertised[outside[0]]
    # The host reaches the outside listener on the port it advertises (published on loopback only).
    host_port = outside_address.split(":")[1]
    published = [str(p) for p in kafka.get("ports", [])]
    assert f"127.0.0.1:{host_port}:{bound[outside[0]].rsplit(':', 1)[1]}" in published, published
    for name, service in BUILT.items():
        bootstrap = service.get("environment", {}).get("BIFROST_KAFKA_BOOTSTRAP")
        assert bootstrap in (None, inside_address), f"{name} must use the in-network listener, not {bootstrap}"
    assert f"1@kafka:{bound['CONTROLLER'].rsplit(':', 1)[1]}" == env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert "kafka-data" in {source for source, _, _ in mounts(kafka)}
    assert inside_address in " ".join(kafka["healthcheck"]["test"])


# -- workers, health, dependencies ----------------------------------------------------------


def test_each_worker_has_its_own_state_instance_id_and_canonical_url() -> None:
    assert len(WORKERS) >= 2  # scale-out in one consumer group
    ids, urls, states = set(), set(), []
    for name, worker in WORKERS.items():
        env = worker["environment"]
        assert env["BIFROST_STORE"].startswith("rocksdb") and env["BIFROST_WEB_HOST"] == "0.0.0.0"
        host = worker.get("hostname", name)
        assert host == name  # the canonical URL's host is the service's name on the compose network
        assert env["BIFROST_WEB_CANONICAL_URL"] == f"http://{host}:{env['BIFROST_WEB_PORT']}"
        ids.add(env["BIFROST_INSTANCE_ID"])
        urls.add(env["BIFROST_WEB_CANONICAL_URL"])
        states.append(volume_of(worker, env["BIFROST_DATA_DIR"]))
        assert "deploy" not in worker or "replicas" not in worker["deploy"]  # replicas would share one identity
        for port in worker.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond the host"
    assert len(ids) == len(urls) == len(set(states)) == len(WORKERS)
    for state in states:
        assert state in SPEC["volumes"]
        assert sum(state in {s for s, _, _ in mounts(other)} for other in SERVICES.values()) == 1


def test_health_checks_and_start_order() -> None:
    for name in ("kafka", *WORKERS):
        assert SERVICES[name]["healthcheck"]["test"], f"{name} has no health check"
    for name, worker in WORKERS.items():
        test = worker["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        compile(test[3], f"{name} healthcheck", "exec")  # valid Python, run by the image's python
        assert f"127.0.0.1:{worker['environment']['BIFROST_WEB_PORT']}/health" in test[3]  # /health needs no token
    for name in (*WORKERS, "trainer"):
        depends = SERVICES[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["bootstrap"]["condition"] == "service_completed_successfully"
    assert SERVICES["bootstrap"].get("restart") == "no"
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown service {dependency}"


def test_the_readme_explains_the_deployment() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "\n## Deploy" in readme
    deploy = readme.split("\n## Deploy", 1)[1].split("\n## ", 1)[0]
    for topic in (
        "BIFROST_PARTITIONS",
        "worker-3",
        "RocksDB",
        "SASL_SSL",
        "localhost:29092",
        "bootstrap",
        "BIFROST_WEB_CANONICAL_URL",
    ):
        assert topic in deploy, topic


# -- helpers --------------------------------------------------------------------------------


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(volume name or host path, container path, "ro" or "rw") of every mount."""
    found = []
    for entry in service.get("volumes", []):
        parts = entry.split(":") if isinstance(entry, str) else [entry["source"], entry["target"]]
        mode = parts[2] if len(parts) > 2 else "rw"
        found.append((parts[0], parts[1], mode))
    return found


def mount_points(service: dict[str, Any]) -> list[str]:
    return [target for _, target, _ in mounts(service)]


def test_the_helpers_read_the_forms_used() -> None:
    assert mounts({"volumes": ["a:/x:ro", "./b:/y"]}) == [("a", "/x", "ro"), ("./b", "/y", "rw")]
    assert IMAGE.provides("/app/README.md") and IMAGE.provides("/app/streams/app.py")
    assert not IMAGE.provides("/app/data/routing-eval/no-such-file.jsonl") and not IMAGE.provides("/etc/passwd")


def test_the_canonical_url_setting_wins_and_must_be_a_url() -> None:
    from bifrost.config.settings import SettingsError
    from bifrost.streams.app import _canonical_url

    assert _canonical_url(Settings.from_env({}, web_canonical_url="http://worker-2:6066/")) == "http://worker-2:6066"
    assert _canonical_url(Settings.from_env({}, web_host="127.0.0.1", web_port=7000)) == "http://127.0.0.1:7000"
    with pytest.raises(SettingsError, match="BIFROST_WEB_CANONICAL_URL"):
        _canonical_url(Settings.from_env({}, web_canonical_url="worker-2:6066"))
