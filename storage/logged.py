"""Logged routing events of a time window, read from the warehouse, as aligned arrays.

The warehouse sink writes ``<root>/<topic>/date=YYYY-MM-DD/hour=HH/p<partition>-<first>-<last>.parquet``
(one file per input partition, offset range and event hour). Only the hour folders that
overlap the window are opened. Feedback grades join their request by ``request_id``
(the newest grade wins over the quality logged with the event). Rows repeated by an
at-least-once producer are dropped by ``request_id``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bifrost.router.artifact import BUCKETS

EVENT_COLUMNS = [
    "request_id",
    "ts",
    "router_id",
    "arm",
    "model",
    "bucket",
    "cluster_id",
    "features",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "latency_ms",
    "success",
    "propensity",
    "quality",
]
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
    tokens_out: np.ndarray | None = None  # None: not logged (older files); priced as 0 output tokens

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, rows: np.ndarray) -> LoggedData:
        """The rows at these indices (or where this mask is true)."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        arrays = {name: getattr(self, name)[rows] for name in _ROW_ARRAYS}
        return LoggedData(
            models=self.models,
            files=self.files,
            window=self.window,
            tokens_out=None if self.tokens_out is None else self.tokens_out[rows],
            **arrays,
        )


_ROW_ARRAYS = (
    "request_ids",
    "ts",
    "router_ids",
    "arms",
    "model",
    "bucket",
    "cluster",
    "features",
    "features_ok",
    "tokens_in",
    "cost",
    "latency",
    "success",
    "propensity",
    "quality",
)


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


def _read_file(path: Path, columns: list[str]) -> pa.Table:
    try:
        with pq.ParquetFile(path) as handle:
            names = set(handle.schema_arrow.names)
            # Only the columns the trainer uses; files are read in parallel, not their columns.
            return handle.read(columns=[c for c in columns if c in names], use_threads=False)
    except (OSError, pa.ArrowInvalid) as exc:
        raise WarehouseError(f"cannot read {path}: {exc}") from None


def _read(folders: list[Path], columns: list[str]) -> tuple[pa.Table | None, int]:
    paths = [path for folder in folders for path in sorted(folder.glob("p*.parquet"))]
    if not paths:
        return None, 0
    # Arrow releases the GIL while it decodes: a few threads overlap the per-file work
    # (opening, footer, decoding), which dominates when the sink wrote many small files.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        tables = list(pool.map(lambda path: _read_file(path, columns), paths))
    return pa.concat_tables(tables, promote_options="permissive"), len(paths)


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
        raise WarehouseError(
            f"warehouse folder {root} does not exist (is the worker's sink enabled? BIFROST_WAREHOUSE_DIR)"
        )
    table, files = _read(hour_folders(root, events_topic, window_from, window_to), EVENT_COLUMNS)
    if table is None:
        return _empty(files, (window_from, window_to))
    # Rows are selected and ordered as indices into the table; every column is converted
    # to NumPy once and indexed (no Arrow filter/take of the wide feature-list column).
    ts = _float(table, "ts")
    keep = (ts >= window_from) & (ts < window_to)
    if router_id is not None:
        keep &= np.asarray(
            pc.fill_null(pc.equal(table["router_id"], router_id), False).to_numpy(zero_copy_only=False), dtype=bool
        )
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return _empty(files, (window_from, window_to))
    # Event-time order, whatever the file layout: a run over the same window is reproducible.
    rows = rows[np.argsort(ts[rows], kind="stable")]
    request_ids = np.asarray(table["request_id"].to_numpy(zero_copy_only=False), dtype=object)[rows]
    if pc.count_distinct(table["request_id"], mode="all").as_py() < table.num_rows:
        _, first = np.unique(request_ids, return_index=True)
        if len(first) < len(request_ids):
            first = np.sort(first)  # the earliest copy of a request wins
            rows, request_ids = rows[first], request_ids[first]
    quality = _float(table, "quality")[rows]
    if feedback_topic is not None:
        quality = _join_feedback(root, feedback_topic, window_from, window_to, request_ids, quality)
    models, model_index = _codes(table["model"], rows)
    features, features_ok = _features(table, rows)
    bucket_names, bucket_index = _codes(pc.fill_null(table["bucket"], ""), rows)  # a missing bucket is -1
    bucket = np.full(len(rows), -1, dtype=np.int64)
    for index, name in enumerate(BUCKETS):
        bucket[np.isin(bucket_index, np.flatnonzero(bucket_names == name))] = index
    return LoggedData(
        models=tuple(str(m) for m in models),
        request_ids=request_ids,
        ts=ts[rows],
        router_ids=_labels(table["router_id"], rows),
        arms=_labels(table["arm"], rows),
        model=model_index,
        bucket=bucket,
        cluster=np.nan_to_num(_float(table, "cluster_id")[rows], nan=-1).astype(np.int64),
        features=features,
        features_ok=features_ok,
        tokens_in=_float(table, "tokens_in")[rows],
        tokens_out=_float(table, "tokens_out")[rows],
        cost=_float(table, "cost_usd")[rows],
        latency=_float(table, "latency_ms")[rows],
        success=np.asarray(table["success"].to_numpy(zero_copy_only=False), dtype=bool)[rows],
        propensity=_float(table, "propensity")[rows],
        quality=quality,
        files=files,
        window=(window_from, window_to),
    )


def _float(table: pa.Table, column: str) -> np.ndarray:
    if column not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return np.asarray(pc.cast(table[column], pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _codes(column: pa.ChunkedArray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(column[rows], return_inverse=True)`` of a string column, via its dictionary encoding."""
    if column.null_count or column.num_chunks == 0:
        return np.unique(np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)[rows], return_inverse=True)
    encoded = pc.dictionary_encode(column)  # one dictionary shared by every chunk
    dictionary = np.asarray(encoded.chunk(0).dictionary.to_numpy(zero_copy_only=False), dtype=object)
    indices = np.concatenate([np.asarray(chunk.indices.to_numpy(), dtype=np.int64) for chunk in encoded.chunks])
    used, inverse = np.unique(indices[rows], return_inverse=True)
    names = dictionary[used]
    order = np.argsort(names)  # by name, as np.unique of the names would be
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return names[order], rank[inverse.reshape(-1)]


def _labels(column: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """A low-cardinality string column at ``rows`` as an object array (one str object per distinct value)."""
    if column.null_count or column.num_chunks == 0:
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)[rows]
    names, index = _codes(column, rows)
    return names[index] if len(names) else np.zeros(len(rows), dtype=object)


def _features(table: pa.Table, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    if "features" not in table.column_names:
        return np.zeros((n, 0), dtype=np.float32), np.zeros(n, dtype=bool)
    column = table["features"]
    all_lengths = np.asarray(pc.fill_null(pc.list_value_length(column), 0).to_numpy(), dtype=np.int64)
    lengths = all_lengths[rows]
    width = int(lengths.max()) if n else 0
    ok = lengths == width
    matrix = np.zeros((n, width), dtype=np.float32)
    if width and ok.any():
        # Every vector's values, back to back in table order (null vectors contribute none).
        values = np.asarray(pc.cast(pc.list_flatten(column), pa.float32()).to_numpy(), dtype=np.float32)
        if (all_lengths == width).all():
            matrix = values.reshape(-1, width)[rows]
        else:
            starts = np.cumsum(all_lengths) - all_lengths
            wanted = np.flatnonzero(ok)
            offsets = np.arange(width)
            for lo in range(0, len(wanted), 65_536):
                block = wanted[lo : lo + 65_536]
                matrix[block] = values[starts[rows[block]][:, None] + offsets]
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
    # Later rows (newer offsets) win: look each request up in the reversed feedback rows.
    ids = table["request_id"].combine_chunks()[::-1]
    grades = np.asarray(pc.cast(table["grade"], pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)[::-1]
    found = pc.index_in(pa.array(request_ids, type=ids.type), value_set=ids)
    hit = np.asarray(pc.is_valid(found).to_numpy(zero_copy_only=False), dtype=bool)
    out = quality.copy()
    out[hit] = grades[np.asarray(pc.fill_null(found, 0).to_numpy(), dtype=np.int64)[hit]]
    return out


def _empty(files: int, window: tuple[float, float]) -> LoggedData:
    zeros = np.zeros(0)
    return LoggedData(
        models=(),
        request_ids=np.zeros(0, dtype=object),
        ts=zeros,
        router_ids=np.zeros(0, dtype=object),
        arms=np.zeros(0, dtype=object),
        model=np.zeros(0, dtype=np.int64),
        bucket=np.zeros(0, dtype=np.int64),
        cluster=np.zeros(0, dtype=np.int64),
        features=np.zeros((0, 0), dtype=np.float32),
        features_ok=np.zeros(0, dtype=bool),
        tokens_in=zeros,
        cost=zeros,
        latency=zeros,
        success=np.zeros(0, dtype=bool),
        propensity=zeros,
        quality=zeros,
        files=files,
        window=window,
    )
