"""The public full-information dataset and small signed artifacts for replay tests.

The dataset is the copy bundled in ``data/routing-eval/`` (or ``BIFROST_EVAL_DATASET``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import Artifact, encode, sign
from bifrost.router.keys import public_key_pem
from bifrost.storage.artifact_store import ArtifactStore
from bifrost.storage.dataset import FullInfoDataset, load_dataset
from tests.datasets import ROUTING_EVAL

DATASET_ENV = "BIFROST_EVAL_DATASET"
DEFAULT_DATASET = ROUTING_EVAL


def dataset_path() -> Path:
    """Where the evaluation dataset is (the bundled copy unless the variable names another)."""
    path = Path(os.environ.get(DATASET_ENV) or DEFAULT_DATASET)
    if not path.is_file():
        pytest.fail(f"full-information dataset not found at {path} (check {DATASET_ENV})")
    return path


def load() -> FullInfoDataset:
    """The evaluation dataset."""
    return _load(dataset_path())


def signed_artifact() -> tuple[Artifact, Ed25519PrivateKey]:
    """A small real artifact and its signing key, made once per session.

    Bootstrapped on 1200 rows of the dataset with 10 trials and 6 clusters.
    """
    return _bootstrap(dataset_path())


@functools.lru_cache(maxsize=1)
def _load(path: Path) -> FullInfoDataset:
    return load_dataset(path)


@functools.lru_cache(maxsize=1)
def _bootstrap(path: Path) -> tuple[Artifact, Ed25519PrivateKey]:
    from bifrost.trainer.bootstrap import BootstrapConfig, bootstrap_artifact

    key = Ed25519PrivateKey.generate()
    artifact, _ = bootstrap_artifact(
        _load(path).sample(1200), trials=10, seed=0, signing_key=key, config=BootstrapConfig(clusters=6)
    )
    return artifact, key


def publish(
    store: ArtifactStore,
    artifact: Artifact,
    key: Ed25519PrivateKey,
    *,
    version: str | None = None,
    make_current: bool = True,
) -> str:
    """Store ``artifact`` (renamed to ``version`` if given) signed with ``key``; returns its version."""
    if version is not None:
        artifact = msgspec.structs.replace(artifact, version=version)
    data = encode(artifact)
    store.publish(data, sign(data, key), make_current=make_current)
    return artifact.version


def write_public_key(path: Path, key: Ed25519PrivateKey) -> Path:
    """The verification key of ``key`` as a PEM file."""
    path.write_bytes(public_key_pem(key))
    return path
