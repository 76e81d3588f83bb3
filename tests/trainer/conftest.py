"""Shared trainer fixtures: the real full-information dataset, a sample of it, a bootstrapped artifact."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import Artifact
from bifrost.storage.dataset import FullInfoDataset, load_dataset
from tests.datasets import ROUTING_EVAL, routing_eval

if TYPE_CHECKING:
    from bifrost.trainer.bootstrap import BootstrapReport

REAL_DATASET = ROUTING_EVAL
SAMPLE_ROWS = 1500
TRIALS = 20
CLUSTERS = 8


def require_real_dataset() -> Path:
    """The real dataset's path (bundled with the repository)."""
    return routing_eval()


def write_sample_file(target: Path, rows: int, *, seed: int = 0) -> Path:
    """Copy ``rows`` random lines of the real dataset (byte for byte) into ``target`` (.gz or plain)."""
    with gzip.open(require_real_dataset(), "rb") as handle:
        lines = [line for line in handle if line.strip()]
    chosen = np.sort(np.random.default_rng(seed).choice(len(lines), size=rows, replace=False))
    content = b"".join(lines[i] for i in chosen)
    if target.name.endswith(".gz"):
        target.write_bytes(gzip.compress(content))
    else:
        target.write_bytes(content)
    return target


@pytest.fixture(scope="session")
def real_dataset() -> FullInfoDataset:
    return load_dataset(require_real_dataset())


@pytest.fixture(scope="session")
def sample(real_dataset: FullInfoDataset) -> FullInfoDataset:
    return real_dataset.sample(SAMPLE_ROWS, seed=0)


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def bootstrapped(sample: FullInfoDataset, signing_key: Ed25519PrivateKey) -> tuple[Artifact, BootstrapReport]:
    """(artifact, report) of one small bootstrap on the sample (shared: it is the slow part)."""
    from bifrost.trainer.bootstrap import BootstrapConfig, bootstrap_artifact

    return bootstrap_artifact(
        sample,
        trials=TRIALS,
        seed=0,
        signing_key=signing_key,
        version="v-boot-1",
        config=BootstrapConfig(clusters=CLUSTERS, decision_slo_ms=1000.0),
    )
