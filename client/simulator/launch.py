"""Opening a dataset replay from operator inputs: dataset file, artifact store, key, arms.

Everything that can be wrong before the first request (a missing dataset, an empty
store, an unreadable key, an arm that does not verify) raises :class:`ReplaySetupError`
with a message naming the option to fix; nothing is published by then.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bifrost.client.simulator.arms import ArmPool, ArmUnavailable, KeyNotFound, store_loader, verify_key
from bifrost.client.simulator.replay import ReplayError, ReplayTraffic
from bifrost.router.keys import SigningKeyError
from bifrost.storage.artifact_store import DEFAULT_ROOT, ArtifactStore
from bifrost.storage.dataset import DatasetError, load_dataset


class ReplaySetupError(ValueError):
    """A replay cannot start as asked; the message names the option to fix."""


def open_replay(
    dataset: str | Path,
    *,
    store: str | Path | None = None,
    key: str | Path | None = None,
    arms: Mapping[str, float] | None = None,
    split: str = "train",
) -> tuple[ReplayTraffic, dict[str, float]]:
    """A replay of ``dataset`` whose arms are verified artifacts of ``store``.

    Args:
        dataset: full-information JSONL(.gz) file.
        store: artifact store folder (default ``var/artifacts``).
        key: verification key file (default: see :func:`~bifrost.client.simulator.arms.verify_key`).
        arms: version → weight (default: the store's current version, weight 1).
        split: rows to replay (``train``, ``test`` or ``all``).

    Returns:
        The traffic source (later versions named by rollout-state are loaded from the
        store, verified, on first use) and the starting arm weights.

    Raises:
        ReplaySetupError: a missing or unreadable dataset, key or store; an arm that is
            not stored, fails verification, or routes to models the dataset lacks.
    """
    try:
        data = load_dataset(dataset)
    except DatasetError as exc:
        raise ReplaySetupError(f"--dataset: {exc}") from None
    try:
        public_key = verify_key(key)
    except (KeyNotFound, SigningKeyError) as exc:
        raise ReplaySetupError(f"--verify-key: {exc}") from None
    artifacts = ArtifactStore(store if store is not None else DEFAULT_ROOT)
    option = "--arms" if arms else f"--store {artifacts.root} (its current version)"
    if not arms:
        current = artifacts.current()
        if current is None:
            raise ReplaySetupError(
                f"--store: {artifacts.root} has no current artifact; publish one first "
                "(`bifrost-opt train --dataset FILE`) or pass --store DIR"
            )
        arms = {current: 1.0}
    load = store_loader(artifacts, public_key)
    routers = {}
    for version in arms:
        try:
            routers[version] = load(version)
        except ArmUnavailable as exc:
            raise ReplaySetupError(f"{option}: {exc}") from None
    try:
        traffic = ReplayTraffic(data, ArmPool(routers, load=load), split=split)
    except ReplayError as exc:
        raise ReplaySetupError(f"--split: {exc}") from None
    for version in arms:
        if traffic.router(version) is None:
            raise ReplaySetupError(f"{option}: arm {version}: {traffic.pool.failures.get(version, 'unavailable')}")
    return traffic, dict(arms)


__all__ = ["ReplaySetupError", "open_replay"]
