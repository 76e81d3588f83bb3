"""Logged traffic without Kafka: the dataset's prompts replayed through an artifact, as LoggedData."""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from bifrost.client.simulator.replay import ReplayConfig, ReplayTraffic
from bifrost.router.artifact import Artifact
from bifrost.router.reference import ReferenceRouter
from bifrost.storage.dataset import FullInfoDataset
from bifrost.storage.logged import LoggedData

START_TS = 1_750_000_000.0


def replayed_logs(
    dataset: FullInfoDataset,
    parent: Artifact,
    *,
    events: int,
    hours: float,
    exploration: float = 0.3,
    seed: int = 3,
    split: str = "train",
) -> LoggedData:
    """``events`` requests over ``hours`` through ``parent`` with ``exploration``, as the warehouse would hold them."""
    replay = ReplayTraffic(dataset, {parent.version: ReferenceRouter(parent)}, split=split)
    config = ReplayConfig(
        arms={parent.version: 1.0},
        routers=("router-a",),
        exploration=exploration,
        rate_per_second=events / (hours * 3600),
        duration_seconds=hours * 3600,
        start_ts=START_TS,
        seed=seed,
    )
    rows = [item.event for item in replay.generate(config) if item.event is not None]
    models = tuple(sorted({e.model for e in rows}))
    index = {m: j for j, m in enumerate(models)}
    buckets = {"cheap": 0, "mid": 1, "hard": 2}

    def column(name: str, dtype: DTypeLike = np.float64) -> np.ndarray:
        return np.array([np.nan if getattr(e, name) is None else getattr(e, name) for e in rows], dtype=dtype)

    features = np.array([e.features for e in rows], dtype=np.float32)
    return LoggedData(
        models=models,
        request_ids=np.array([e.request_id for e in rows], dtype=object),
        ts=column("ts"),
        router_ids=np.array([e.router_id for e in rows], dtype=object),
        arms=np.array([e.arm for e in rows], dtype=object),
        model=np.array([index[e.model] for e in rows], dtype=np.int64),
        bucket=np.array([buckets.get(str(getattr(e.bucket, "value", e.bucket)), -1) for e in rows], dtype=np.int64),
        cluster=np.array([e.cluster_id for e in rows], dtype=np.int64),
        features=features,
        features_ok=np.ones(len(rows), dtype=bool),
        tokens_in=column("tokens_in"),
        cost=column("cost_usd"),
        latency=column("latency_ms"),
        success=np.array([e.success for e in rows], dtype=bool),
        propensity=column("propensity"),
        quality=column("quality"),
        files=1,
        window=(START_TS, START_TS + hours * 3600),
    )
