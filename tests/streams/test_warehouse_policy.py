"""Warehouse sink decisions (pure) and the file builder (no Kafka)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bifrost.client.simulator import TrafficConfig, generate
from bifrost.schemas.codec import encode
from bifrost.schemas.events import FeedbackEvent, Outcome, RoutingEvent
from bifrost.streams.warehouse.files import CHUNK_ROWS, event_table, write_atomically, write_events_file
from bifrost.streams.warehouse.layout import FileSpan, file_path, hour_of, temp_files
from bifrost.streams.warehouse.policy import (
    ROW_OVERHEAD_BYTES,
    buffer_expired,
    buffer_full,
    buffers_to_flush,
    offsets_to_commit,
    retry_delay,
    row_cost,
)


def test_row_cost_is_the_value_length_plus_overhead() -> None:
    assert row_cost(0) == ROW_OVERHEAD_BYTES
    assert row_cost(500) == 500 + ROW_OVERHEAD_BYTES


def test_buffer_is_full_by_rows_or_by_bytes() -> None:
    assert not buffer_full(9, 99, max_rows=10, max_file_bytes=100)
    assert buffer_full(10, 1, max_rows=10, max_file_bytes=100)
    assert buffer_full(1, 100, max_rows=10, max_file_bytes=100)


def test_buffer_expires_after_its_age() -> None:
    assert not buffer_expired(100.0, 159.9, max_age_s=60.0)
    assert buffer_expired(100.0, 160.0, max_age_s=60.0)


def test_biggest_buffers_are_flushed_first_until_the_excess_is_covered() -> None:
    sizes = {"a": 10, "b": 50, "c": 30, "d": 5}  # 95 bytes buffered
    assert buffers_to_flush(sizes, in_flight=0, incoming=5, limit=100) == []  # exactly fits
    assert buffers_to_flush(sizes, in_flight=0, incoming=20, limit=100) == ["b"]  # 15 over
    assert buffers_to_flush(sizes, in_flight=0, incoming=70, limit=100) == ["b", "c"]  # 65 over
    # Writes in flight free memory when they finish: they count towards the excess.
    assert buffers_to_flush(sizes, in_flight=20, incoming=0, limit=100) == []  # 15 over, 20 in flight
    assert buffers_to_flush(sizes, in_flight=20, incoming=40, limit=100) == ["b"]  # 55 over, 35 to go
    assert buffers_to_flush({}, in_flight=0, incoming=500, limit=100) == []  # nothing to flush


@given(
    sizes=st.dictionaries(st.integers(0, 50), st.integers(0, 10_000), max_size=20),
    in_flight=st.integers(0, 50_000),
    incoming=st.integers(0, 5_000),
    limit=st.integers(1, 100_000),
)
def test_flushing_the_chosen_buffers_makes_room(
    sizes: dict[int, int], in_flight: int, incoming: int, limit: int
) -> None:
    chosen = buffers_to_flush(sizes, in_flight=in_flight, incoming=incoming, limit=limit)
    assert len(set(chosen)) == len(chosen) and set(chosen) <= set(sizes)
    remaining = sum(size for key, size in sizes.items() if key not in chosen)
    # Once the chosen buffers and the writes in flight are written, the record fits
    # (or every buffer was chosen: nothing more can be done but wait).
    assert remaining + incoming <= limit or set(chosen) == set(sizes)
    # Biggest first, and no more than needed.
    chosen_sizes = [sizes[key] for key in chosen]
    assert chosen_sizes == sorted(chosen_sizes, reverse=True)
    if chosen:
        assert all(sizes[key] <= chosen_sizes[-1] for key in sizes if key not in chosen)
        assert remaining + chosen_sizes[-1] + incoming > limit


def test_retry_delay_doubles_and_is_capped() -> None:
    assert [retry_delay(n) for n in range(1, 9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_only_owned_partitions_whose_files_grew_are_committed() -> None:
    stored = {"p0": 9, "p1": 4, "p2": 7}
    assert offsets_to_commit(stored, {}, {"p0", "p1", "p2"}) == {"p0": 10, "p1": 5, "p2": 8}
    assert offsets_to_commit(stored, {"p0": 9, "p1": 2}, {"p0", "p1"}) == {"p1": 5}
    assert offsets_to_commit(stored, {}, set()) == {}


def _routing_events(n: int) -> list[RoutingEvent]:
    config = TrafficConfig(
        routers=("r",), rate_per_second=100, duration_seconds=n / 100 + 1, start_ts=1_700_000_000.0, seed=3
    )
    return [g.event for g in generate(config) if g.event is not None][:n]


def test_event_table_has_the_columns_the_sink_always_wrote() -> None:
    events = _routing_events(300)
    events[7] = msgspec.structs.replace(events[7], win=Outcome.WIN, quality=0.5)
    values = [encode(e) for e in events]
    table, skipped = event_table(RoutingEvent, values, 3, list(range(100, 400)))
    # The previous sink: msgspec.to_builtins per event, _partition/_offset, Table.from_pylist.
    rows = []
    for offset, event in zip(range(100, 400), events, strict=True):
        row = msgspec.to_builtins(event)
        row["_partition"], row["_offset"] = 3, offset
        rows.append(row)
    assert skipped == 0
    assert table.equals(pa.Table.from_pylist(rows))
    assert table.column("win").to_pylist()[7] == "win"


def test_a_value_that_does_not_decode_is_left_out_not_fatal() -> None:
    good = FeedbackEvent(request_id="r1", ts=1.0, router_id="a", arm="v1", model="m", grade=0.5)
    table, skipped = event_table(FeedbackEvent, [encode(good), b"{broken", b'{"request_id": "x"}'], 0, [5, 6, 7])
    assert skipped == 2
    assert table.column("_offset").to_pylist() == [5]
    assert table.column("grade").to_pylist() == [0.5]


def test_write_events_file_writes_atomically(tmp_path: Path) -> None:
    events = _routing_events(50)
    path = file_path(tmp_path, "t", hour_of(events[0].ts), FileSpan(1, 0, 49))
    assert write_events_file(path, RoutingEvent, 1, [encode(e) for e in events], list(range(50))) == 50
    assert pq.read_table(path).column("request_id").to_pylist() == [e.request_id for e in events]
    assert not list(tmp_path.rglob("*.tmp"))
    # The same span written again is still one file.
    write_events_file(path, RoutingEvent, 1, [encode(e) for e in events], list(range(50)))
    assert len(list(tmp_path.rglob("*.parquet"))) == 1


def test_a_failed_write_leaves_no_temp_file_and_raises(tmp_path: Path) -> None:
    path = file_path(tmp_path, "t", hour_of(0), FileSpan(0, 0, 0))
    path.parent.mkdir(parents=True)
    path.mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        write_atomically(path, [{"a": 1}])
    assert not list(tmp_path.rglob("*.tmp"))


def test_temp_files_of_given_partitions_are_found(tmp_path: Path) -> None:
    for partition in (0, 1):
        final = file_path(tmp_path, "t", hour_of(0), FileSpan(partition, 0, 9))
        final.parent.mkdir(parents=True, exist_ok=True)
        final.with_name(f".{final.name}.tmp").write_bytes(b"half")
    write_atomically(file_path(tmp_path, "t", hour_of(0), FileSpan(0, 10, 19)), [{"a": 1}])
    found = temp_files(tmp_path, "t", {0})
    assert [p.name for p in found] == [".p0-0-9.parquet.tmp"]
    assert temp_files(tmp_path, "missing", {0}) == []


def test_event_table_unifies_chunks_like_one_inference() -> None:
    # A column that is null in the first chunk and set in a later one (quality, win).
    events = _routing_events(CHUNK_ROWS + 10)
    events[-1] = msgspec.structs.replace(events[-1], win=Outcome.LOSS, quality=0.25)
    table, _ = event_table(RoutingEvent, [encode(e) for e in events], 0, list(range(len(events))))
    assert table.schema.field("quality").type == pa.float64()
    assert table.column("win").to_pylist()[-2:] == [None, "loss"]
    assert table.num_rows == len(events)
    empty, skipped = event_table(RoutingEvent, [], 0, [])
    assert empty.num_rows == 0 and skipped == 0 and empty.column_names[-2:] == ["_partition", "_offset"]
