"""A retrain on bad or too little logged data stops at data quality, signs nothing."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.storage.logged import LoggedData
from bifrost.trainer.retrain import RetrainConfig, RetrainStopped, retrain_from_logs
from tests.router.artifacts import make_artifact


def logged(n: int, width: int, *, propensity: float = 0.5, quality: float = 0.8, hours: float = 24.0) -> LoggedData:
    rng = np.random.default_rng(0)
    return LoggedData(
        models=("large", "medium", "small"),
        request_ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        ts=np.sort(rng.uniform(0, hours * 3600, n)),
        router_ids=np.array(["web"] * n, dtype=object),
        arms=np.array(["v1"] * n, dtype=object),
        model=rng.integers(3, size=n),
        bucket=np.ones(n, dtype=np.int64),
        cluster=np.zeros(n, dtype=np.int64),
        features=rng.random((n, width)).astype(np.float32),
        features_ok=np.ones(n, dtype=bool),
        tokens_in=np.full(n, 100.0),
        cost=np.full(n, 0.001),
        latency=np.full(n, 300.0),
        success=np.ones(n, dtype=bool),
        propensity=np.full(n, propensity),
        quality=np.full(n, quality),
        files=1,
        window=(0.0, hours * 3600),
    )


@pytest.mark.parametrize(
    ("data", "failed"),
    [
        (dict(n=300), "rows"),
        (dict(n=3000, propensity=np.nan), "propensity_coverage"),
        (dict(n=3000, quality=np.nan), "label_coverage"),
        (dict(n=3000, hours=24.0 * 30), "time_coverage"),
    ],
)
def test_bad_or_thin_data_stops_with_a_report_naming_the_check(data: dict, failed: str) -> None:
    parent = make_artifact()
    width = len(parent.gbdt.feature_schema.names)
    window = logged(width=width, **data)
    if failed == "time_coverage":  # traffic in the first and the last hour of thirty days: a long gap
        gap = np.where(np.arange(len(window.ts)) % 2 == 0, window.ts / 720, window.ts.max() - window.ts / 720)
        window = LoggedData(**{**window.__dict__, "ts": np.sort(gap)})
    with pytest.raises(RetrainStopped) as stopped:
        retrain_from_logs(window, parent, signing_key=Ed25519PrivateKey.generate(), config=RetrainConfig(trials=5))
    report = stopped.value.report
    assert report.stopped_at == "quality" and not report.passed and report.signature == ""
    assert report.quality is not None
    assert failed in [c.name for c in report.quality.failures]
    assert "FAILED" in report.to_markdown() and failed in report.to_markdown()


def test_feature_vectors_of_another_schema_are_not_trained_on() -> None:
    parent = make_artifact()
    with pytest.raises(RetrainStopped) as stopped:
        retrain_from_logs(logged(3000, width=5), parent, signing_key=Ed25519PrivateKey.generate())
    quality = stopped.value.report.quality
    assert quality is not None and "null_or_out_of_range" in [c.name for c in quality.failures]


def test_absurd_logged_costs_are_out_of_range_not_trained_on() -> None:
    # An event's cost is only "finite and ≥ 0" on the wire; 1e300 USD would overflow every mean.
    parent = make_artifact()
    window = logged(3000, width=len(parent.gbdt.feature_schema.names))
    cost = window.cost.copy()
    cost[::10] = 1e300
    with pytest.raises(RetrainStopped) as stopped:
        retrain_from_logs(
            LoggedData(**{**window.__dict__, "cost": cost}), parent, signing_key=Ed25519PrivateKey.generate()
        )
    quality = stopped.value.report.quality
    assert quality is not None and "null_or_out_of_range" in [c.name for c in quality.failures]
    assert quality.usable_rows == 2700
