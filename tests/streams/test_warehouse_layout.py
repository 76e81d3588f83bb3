"""Warehouse file layout: names encode offset ranges; temp files never count."""

from __future__ import annotations

from pathlib import Path

from bifrost.streams.warehouse.layout import FileSpan, file_path, hour_of, parse_name, stored_through
from bifrost.streams.warehouse.sink import write_atomically


def test_paths_are_partitioned_by_event_hour() -> None:
    path = file_path(Path("/w"), "bifrost.routing-events", hour_of(1_764_000_000.0), FileSpan(3, 10, 99))
    assert str(path) == "/w/bifrost.routing-events/date=2025-11-24/hour=16/p3-10-99.parquet"
    assert parse_name(path.name) == FileSpan(3, 10, 99)
    assert parse_name(".p3-10-99.parquet.tmp") is None


def test_stored_through_ignores_partial_files(tmp_path: Path) -> None:
    topic = "t"
    write_atomically(file_path(tmp_path, topic, hour_of(0), FileSpan(0, 0, 41)), [{"a": 1}])
    write_atomically(file_path(tmp_path, topic, hour_of(7200), FileSpan(0, 42, 80)), [{"a": 2}])
    write_atomically(file_path(tmp_path, topic, hour_of(0), FileSpan(1, 0, 5)), [{"a": 3}])
    crashed = file_path(tmp_path, topic, hour_of(0), FileSpan(0, 81, 120))
    crashed.with_name(f".{crashed.name}.tmp").write_bytes(b"half a file")
    assert stored_through(tmp_path, topic) == {0: 80, 1: 5}
