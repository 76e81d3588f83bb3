"""Reading a window of logged events back from warehouse Parquet files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bifrost.schemas.events import Bucket, FeedbackEvent, RoutingEvent
from bifrost.storage.logged import WarehouseError, load_window

HOUR = 3600.0
T0 = 1_700_000_000.0 - (1_700_000_000.0 % HOUR)


def event(
    i: int,
    ts: float,
    *,
    model: str = "m-a",
    router: str = "web",
    quality: float | None = None,
    features: list[float] | None = None,
) -> RoutingEvent:
    return RoutingEvent(
        request_id=f"r{i}",
        ts=ts,
        router_id=router,
        arm="v1",
        model=model,
        provider="p",
        bucket=Bucket.MID,
        latency_ms=100.0 + i,
        cost_usd=0.001 * (i + 1),
        success=True,
        cluster_id=1,
        features=[float(i), 1.0] if features is None else features,
        tokens_in=10 * (i + 1),
        propensity=0.5,
        quality=quality,
    )


def write(root: Path, topic: str, hour: str, name: str, rows: Sequence[msgspec.Struct]) -> None:
    folder = root / topic / hour
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([msgspec.to_builtins(r) for r in rows]), folder / name)


def test_a_window_spans_hour_folders_filters_by_router_and_time_and_joins_feedback(tmp_path: Path) -> None:
    early = [event(0, T0 + 10, quality=0.2), event(1, T0 + 20, model="m-b"), event(2, T0 + 30, router="other")]
    late = [event(3, T0 + HOUR + 5, quality=0.9), event(1, T0 + 20, model="m-b")]  # r1 re-delivered
    outside = [event(4, T0 + 5 * HOUR)]
    write(tmp_path, "routing-events", "date=2023-11-14/hour=22", "p0-0-2.parquet", early)
    write(tmp_path, "routing-events", "date=2023-11-14/hour=23", "p0-3-4.parquet", late)
    write(tmp_path, "routing-events", "date=2023-11-15/hour=03", "p0-5-5.parquet", outside)
    grade = FeedbackEvent(request_id="r1", ts=T0 + 20, router_id="web", arm="v1", model="m-b", grade=0.75)
    write(tmp_path, "feedback", "date=2023-11-14/hour=22", "p0-0-0.parquet", [grade])
    data = load_window(tmp_path, "routing-events", "feedback", T0, T0 + 2 * HOUR, router_id="web")
    assert data.request_ids.tolist() == ["r0", "r1", "r3"]  # event-time order, r1 once, other router left out
    assert data.models == ("m-a", "m-b")
    assert [data.models[m] for m in data.model] == ["m-a", "m-b", "m-a"]
    assert data.quality.tolist() == [0.2, 0.75, 0.9]  # r1's grade from feedback
    assert data.features.shape == (3, 2) and data.features_ok.all()
    assert data.features[:, 0].tolist() == [0.0, 1.0, 3.0]
    assert data.propensity.tolist() == [0.5, 0.5, 0.5]
    assert data.files == 2


def test_short_feature_vectors_are_marked_and_an_empty_window_is_empty(tmp_path: Path) -> None:
    write(
        tmp_path,
        "routing-events",
        "date=2023-11-14/hour=22",
        "p0-0-1.parquet",
        [event(0, T0 + 1), event(1, T0 + 2, features=[1.0])],
    )
    data = load_window(tmp_path, "routing-events", None, T0, T0 + HOUR)
    assert data.features_ok.tolist() == [True, False]
    assert np.isnan(data.quality).all()
    assert len(load_window(tmp_path, "routing-events", None, T0 + 10 * HOUR, T0 + 11 * HOUR)) == 0
    with pytest.raises(WarehouseError, match="does not exist"):
        load_window(tmp_path / "missing", "routing-events", None, T0, T0 + HOUR)
