"""Logged routing events of a time window, read from the warehouse, as aligned arrays.

The warehouse sink writes ``<root>/<topic>/date=YYYY-MM-DD/hour=HH/p<partition>-<first>-<last>.parquet``
(one file per input partition, offset range and event hour). Only the hour folders that
overlap the window are opened. Feedback grades join their request by ``request_id``
(the newest grade wins over the quality logged with the event). Rows repeated by an
at-least-once producer are dropped by ``request_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bifrost.router.artifact import BUCKETS

EVENT_COLUMNS = ["request_id", "ts", "router_id", "arm", "model", "bucket", "cluster_id", "features", "tokens_in",
                 "cost_usd", "latency_ms", "success", "propensity", "quality"]
FEEDBACK_COLUMNS = ["request_id", "grade"]


class WarehouseError(ValueError):
    """The warehouse cannot be read (missing folder, unreadable file)."""


@dataclass(frozen=True)
class LoggedData:
    """Logged requests as arrays; ``model`` indexes ``models``; NaN where a value is missing.

    ``features`` is ``(rows, width)`` with ``width`` the longest logged vector; rows whose
    vector is shorter are marked in ``features_ok`` = False.
    """

    models: tuple[str, ...]
    request_ids: np.ndarray
    ts: np.ndarray
    router_ids: np.ndarray
    arms: np.ndarray
    model: np.ndarray
    bucket: np.ndarray
    cluster: np.ndarray
    features: np.ndarray
    features_ok: np.ndarray
    tokens_in: np.ndarray
    cost: np.ndarray
    latency: np.ndarray
    success: np.ndarray
    propensity: np.ndarray
    quality: np.ndarray
    files: int = 0
    window: tuple[float, float] = (0.0, 0.0)

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: np.ndarray) -> "LoggedData":
        """The rows at these indices (or where this mask is true)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        arrays = {name: getattr(self, name)[rows] for name in _ROW_ARRAYS}
        return LoggedData(models=self.models, files=self.files, window=self.window, **arrays)


_ROW_ARRAYS = ("request_ids", "ts", "router_ids", "arms", "model", "bucket", "cluster", "features", "features_ok",
               "tokens_in", "cost", "latency", "success", "propensity", "quality")


def hour_folders(root: Path, topic: str, window_from: float, window_to: float) -> list[Path]:
    """Existing ``date=…/hour=…`` folders of ``topic`` that overlap ``[window_from, window_to)``."""
    base = root / topic
    if not base.is_dir():
        return []
    first = int(window_from // 3600) * 3600
    folders = []
    for start in range(first, int(np.ceil(window_to / 3600.0)) * 3600, 3600):
        moment = datetime.fromtimestamp(start, UTC)
        folder = base / f"date={moment:%Y-%m-%d}" / f"hour={moment:%H}"
        if folder.is_dir():
            folders.append(folder)
    return folders


def _read(folders: list[Path], columns: list[str]) -> tuple[pa.Table | None, int]:
    tables, files = [], 0
    for folder in folders:
        for path in sorted(folder.glob("p*.parquet")):
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowInvalid) as exc:
                raise WarehouseError(f"cannot read {path}: {exc}") from None
            present = [c for c in columns if c in table.column_names]
            tables.append(table.select(present))
            files += 1
    if not tables:
        return None, 0
    return pa.concat_tables(tables, promote_options="permissive"), files


def load_window(
    root: str | Path,
    events_topic: str,
    feedback_topic: str | None,
    window_from: float,
    window_to: float,
    *,
    router_id: str | None = None,
) -> LoggedData:
    """Every logged routing event with ``window_from <= ts < window_to`` (of one router, if given)."""
    root = Path(root)
    if not root.is_dir():
        raise WarehouseError(f"warehouse folder {root} does not exist (is the worker's sink enabled? BIFROST_WAREHOUSE_DIR)")
    table, files = _read(hour_folders(root, events_topic, window_from, window_to), EVENT_COLUMNS)
    if table is None:
        return _empty(files, (window_from, window_to))
    mask = pc.and_(pc.greater_equal(table["ts"], window_from), pc.less(table["ts"], window_to))
    if router_id is not None:
        mask = pc.and_(mask, pc.equal(table["router_id"], router_id))
    table = table.filter(mask)
    if table.num_rows == 0:
        return _empty(files, (window_from, window_to))
    # Event-time order, whatever the file layout: a run over the same window is reproducible.
    table = table.take(pa.array(np.argsort(_float(table, "ts"), kind="stable")))
    request_ids = np.asarray(table["request_id"].to_numpy(zero_copy_only=False), dtype=object)
    _, first = np.unique(request_ids, return_index=True)
    if len(first) < len(request_ids):
        table = table.take(pa.array(np.sort(first)))
        request_ids = request_ids[np.sort(first)]
    quality = _float(table, "quality")
    if feedback_topic is not None:
        quality = _join_feedback(root, feedback_topic, window_from, window_to, request_ids, quality)
    model_names = np.asarray(table["model"].to_numpy(zero_copy_only=False), dtype=object)
    models, model_index = np.unique(model_names, return_inverse=True)
    features, features_ok = _features(table)
    bucket_names = np.asarray(table["bucket"].to_numpy(zero_copy_only=False), dtype=object)
    bucket = np.full(len(bucket_names), -1, dtype=np.int64)
    for index, name in enumerate(BUCKETS):
        bucket[bucket_names == name] = index
    return LoggedData(
        models=tuple(str(m) for m in models),
        request_ids=request_ids,
        ts=_float(table, "ts"),
        router_ids=np.asarray(table["router_id"].to_numpy(zero_copy_only=False), dtype=object),
        arms=np.asarray(table["arm"].to_numpy(zero_copy_only=False), dtype=object),
        model=model_index.astype(np.int64),
        bucket=bucket,
        cluster=np.nan_to_num(_float(table, "cluster_id"), nan=-1).astype(np.int64),
        features=features,
        features_ok=features_ok,
        tokens_in=_float(table, "tokens_in"),
        cost=_float(table, "cost_usd"),
        latency=_float(table, "latency_ms"),
        success=np.asarray(table["success"].to_numpy(zero_copy_only=False), dtype=bool),
        propensity=_float(table, "propensity"),
        quality=quality,
        files=files,
        window=(window_from, window_to),
    )


def _float(table: pa.Table, column: str) -> np.ndarray:
    if column not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return np.asarray(pc.cast(table[column], pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _features(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    if "features" not in table.column_names:
        return np.zeros((table.num_rows, 0), dtype=np.float32), np.zeros(table.num_rows, dtype=bool)
    column = table["features"].combine_chunks()
    lengths = np.asarray(pc.fill_null(pc.list_value_length(column), 0).to_numpy(), dtype=np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    ok = lengths == width
    matrix = np.zeros((table.num_rows, width), dtype=np.float32)
    if width and ok.any():
        values = np.asarray(pc.list_flatten(column.filter(pa.array(ok))).to_numpy(zero_copy_only=False), dtype=np.float32)
        matrix[ok] = values.reshape(-1, width)
    return matrix, ok


def _join_feedback(
    root: Path, topic: str, window_from: float, window_to: float, request_ids: np.ndarray, quality: np.ndarray
) -> np.ndarray:
    # Feedback carries its request's event time, so it lives in the same hour folders.
    table, _ = _read(hour_folders(root, topic, window_from, window_to), FEEDBACK_COLUMNS)
    if table is None or "grade" not in table.column_names:
        return quality
    table = table.filter(pc.is_valid(table["grade"]))
    if table.num_rows == 0:
        return quality
    ids = np.asarray(table["request_id"].to_numpy(zero_copy_only=False), dtype=object)
    grades = np.asarray(table["grade"].to_numpy(zero_copy_only=False), dtype=np.float64)
    latest = dict(zip(ids.tolist(), grades.tolist()))  # later rows (newer offsets) win
    out = quality.copy()
    for row, request_id in enumerate(request_ids.tolist()):
        grade = latest.get(request_id)
        if grade is not None:
            out[row] = grade
    return out


def _empty(files: int, window: tuple[float, float]) -> LoggedData:
    zeros = np.zeros(0)
    return LoggedData(
        models=(), request_ids=np.zeros(0, dtype=object), ts=zeros, router_ids=np.zeros(0, dtype=object),
        arms=np.zeros(0, dtype=object), model=np.zeros(0, dtype=np.int64), bucket=np.zeros(0, dtype=np.int64),
        cluster=np.zeros(0, dtype=np.int64), features=np.zeros((0, 0), dtype=np.float32),
        features_ok=np.zeros(0, dtype=bool), tokens_in=zeros, cost=zeros, latency=zeros,
        success=np.zeros(0, dtype=bool), propensity=zeros, quality=zeros, files=files, window=window,
    )
