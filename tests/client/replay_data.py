"""The public full-information dataset and small signed artifacts for replay tests.

The dataset is read-only shared data (``shared/data/routing-eval/`` beside the repository,
or ``BIFROST_EVAL_DATASET``); tests that need it are skipped when it is absent.
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
from bifrost.trainer.dataset import FullInfoDataset, load_dataset
from bifrost.trainer.store import ArtifactStore

DATASET_ENV = "BIFROST_EVAL_DATASET"
DEFAULT_DATASET = Path(__file__).resolve().parents[3] / "shared" / "data" / "routing-eval" / "llmrouter-dc.jsonl.gz"


def dataset_path() -> Path:
    """Where the evaluation dataset is; skips the calling test if it is not there."""
    path = Path(os.environ.get(DATASET_ENV) or DEFAULT_DATASET)
    if not path.is_file():
        pytest.skip(f"full-information dataset not found at {path} (set {DATASET_ENV})")
    return path


def load() -> FullInfoDataset:
    """The evaluation dataset (skips if absent)."""
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
    artifact, _ = bootstrap_artifact(_load(path).sample(1200), trials=10, seed=0, signing_key=key,
                                     config=BootstrapConfig(clusters=6))
    return artifact, key


def publish(store: ArtifactStore, artifact: Artifact, key: Ed25519PrivateKey, *, version: str | None = None,
            make_current: bool = True) -> str:
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
