"""`bifrost-opt simulate --dataset`: misuse is explained (exit 2, no traceback) before Kafka."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.cli.main import main
from bifrost.storage.artifact_store import ArtifactStore
from tests.client import replay_data
from tests.integration.harness import free_port


@dataclass(frozen=True)
class Setup:
    dataset: Path
    store: Path
    empty_store: Path
    key: Path
    other_key: Path
    garbage_key: Path
    version: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    dataset = replay_data.dataset_path()
    artifact, key = replay_data.signed_artifact()
    root = tmp_path_factory.mktemp("replay-cli")
    store = ArtifactStore(root / "artifacts")
    version = replay_data.publish(store, artifact, key)
    replay_data.publish(store, artifact, Ed25519PrivateKey.generate(), version="forged", make_current=False)
    (root / "garbage.pem").write_text("not a key\n")
    return Setup(
        dataset=dataset,
        store=store.root,
        empty_store=root / "empty",
        key=replay_data.write_public_key(root / "key.pem", key),
        other_key=replay_data.write_public_key(root / "other.pem", Ed25519PrivateKey.generate()),
        garbage_key=root / "garbage.pem",
        version=version,
    )


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BIFROST_* settings or keys from the caller; no var/keys in the working directory."""
    for name in [n for n in os.environ if n.startswith("BIFROST_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def simulate(setup: Setup, *options: str) -> list[str]:
    """``simulate`` arguments with the fixture's paths substituted for @names."""
    paths = {f"@{name}": str(value) for name, value in vars(setup).items()}
    return ["simulate", "--duration", "1m", "--speed", "0", *(paths.get(o, o) for o in options)]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (("--dataset", "/no/such/file.jsonl"), "--dataset: dataset /no/such/file.jsonl does not exist"),
        (("--dataset", "@dataset", "--store", "@store"), "--verify-key: no artifact verification key"),
        (("--dataset", "@dataset", "--store", "@store", "--verify-key", "@garbage_key"), "--verify-key: key file"),
        (("--dataset", "@dataset", "--store", "@empty_store", "--verify-key", "@key"), "has no current artifact"),
        (("--dataset", "@dataset", "--store", "@store", "--verify-key", "@other_key"), "fails verification"),
        (
            ("--dataset", "@dataset", "--store", "@store", "--verify-key", "@key", "--arms", "forged=1"),
            "arm forged: refused",
        ),
        (
            ("--dataset", "@dataset", "--store", "@store", "--verify-key", "@key", "--arms", "ghost=1"),
            "no complete version 'ghost'",
        ),
        (
            ("--dataset", "@dataset", "--store", "@store", "--verify-key", "@key", "--split", "dev"),
            "no usable rows in split 'dev'",
        ),
        (("--dataset", "@dataset", "--exploration", "1.5"), "--exploration"),
        (("--dataset", "@dataset", "--latency-factor", "v2=2"), "--latency-factor shape synthetic traffic only"),
        (("--store", "@store"), "--store: only with --dataset"),
    ],
)
def test_replay_misuse_explains_itself(
    setup: Setup, capsys: pytest.CaptureFixture[str], options: tuple[str, ...], fragment: str
) -> None:
    code = main(simulate(setup, *options))
    out, err = capsys.readouterr()
    assert code == 2, err
    assert fragment in err
    assert "Traceback" not in out + err


def test_a_valid_replay_gets_as_far_as_kafka(
    setup: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIFROST_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("BIFROST_VERIFY_KEY", Path(setup.key).read_text())
    code = main(simulate(setup, "--dataset", "@dataset", "--store", "@store", "--split", "test", "--ignore-rollouts"))
    _, err = capsys.readouterr()
    assert code == 3 and "cannot reach Kafka" in err, err
