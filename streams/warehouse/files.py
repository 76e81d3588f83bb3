"""Warehouse files: buffered raw records into an Arrow table, written atomically as Parquet.

These functions run in the sink's writer thread, never on the event loop. A table's
columns are the event's fields in declaration order (enums as their string values),
then ``_partition`` and ``_offset`` — the same columns the sink has always written.
"""

from __future__ import annotations

import enum
import functools
import logging
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from bifrost.common.files import atomic_path
from bifrost.streams.warehouse.layout import temp_path

log = logging.getLogger("bifrost.warehouse")


@functools.cache
def _decoder(event_type: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(event_type)


@functools.cache
def _enum_fields(event_type: type[msgspec.Struct]) -> frozenset[str]:
    """Fields whose values may be enum members (stored as their ``.value``)."""
    names: set[str] = set()
    struct = msgspec.inspect.type_info(event_type)
    assert isinstance(struct, msgspec.inspect.StructType)  # a Struct class's type info
    for info in struct.fields:
        kinds = info.type.types if isinstance(info.type, msgspec.inspect.UnionType) else (info.type,)
        if any(isinstance(kind, msgspec.inspect.EnumType) for kind in kinds):
            names.add(info.name)
    return frozenset(names)


CHUNK_ROWS = 4096
"""Rows converted per step: a step holds the GIL for a few milliseconds only, and only one
step's decoded events exist at a time (the table itself is ~220 bytes per routing event)."""


def event_table(
    event_type: type[msgspec.Struct], values: Sequence[bytes], partition: int, offsets: Sequence[int]
) -> tuple[pa.Table, int]:
    """Decode raw record values (already validated once) into one table, column by column.

    Works in chunks of :data:`CHUNK_ROWS`; column types are inferred per chunk and then
    unified (a column that is all null in one chunk takes the type of the others), which
    gives the same table as inferring over all rows at once.

    Returns the table and how many values failed to decode; those rows are left out and
    logged (it cannot happen for values that passed the sink's validating decoder, but a
    single bad value must not make the whole file unwritable).
    """
    batches: list[pa.RecordBatch] = []
    skipped = 0
    for start in range(0, len(values), CHUNK_ROWS):
        batch, bad = _chunk(
            event_type, values[start : start + CHUNK_ROWS], partition, offsets[start : start + CHUNK_ROWS]
        )
        batches.append(batch)
        skipped += bad
    if not batches:
        return pa.table(_columns(event_type, [], partition, [])), 0
    schema = pa.unify_schemas([batch.schema for batch in batches], promote_options="permissive")
    return pa.Table.from_batches([batch.cast(schema) for batch in batches], schema), skipped


def _chunk(
    event_type: type[msgspec.Struct], values: Sequence[bytes], partition: int, offsets: Sequence[int]
) -> tuple[pa.RecordBatch, int]:
    decoder = _decoder(event_type)
    events: list[Any] = []
    kept: list[int] = []
    skipped = 0
    for value, offset in zip(values, offsets, strict=True):
        try:
            events.append(decoder.decode(value))
        except Exception as exc:  # noqa: BLE001 - one bad value is one skipped row
            skipped += 1
            log.warning("event=warehouse.row_skipped partition=%d offset=%d error=%r", partition, offset, exc)
            continue
        kept.append(offset)
    return pa.RecordBatch.from_pydict(_columns(event_type, events, partition, kept)), skipped


def _columns(event_type: type[msgspec.Struct], events: list[Any], partition: int, offsets: list[int]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name in event_type.__struct_fields__:
        column = list(map(operator.attrgetter(name), events))
        if name in _enum_fields(event_type):
            column = [value.value if isinstance(value, enum.Enum) else value for value in column]
        columns[name] = column
    columns["_partition"] = pa.array([partition] * len(offsets), pa.int64())
    columns["_offset"] = pa.array(offsets, pa.int64())
    return columns


def write_atomically(path: Path, rows: pa.Table | list[dict[str, Any]]) -> None:
    """Write a table (or rows as dicts) as one Parquet file that appears complete or not at all.

    Written to a hidden temp name, fsynced, renamed over ``path``, and the folder fsynced
    so the rename survives a power loss. Writing the same path twice leaves one file.
    Raises on any I/O error (the temp file is removed); the caller decides about retries.
    """
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
    with atomic_path(path, temp=temp_path(path)) as temp:
        pq.write_table(table, temp)


def write_events_file(
    path: Path, event_type: type[msgspec.Struct], partition: int, values: Sequence[bytes], offsets: Sequence[int]
) -> int:
    """Build and atomically write one warehouse file; returns the number of rows written."""
    table, _ = event_table(event_type, values, partition, offsets)
    write_atomically(path, table)
    return table.num_rows
