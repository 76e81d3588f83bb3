"""Where warehouse files go and what they are called (pure).

``<root>/<topic>/date=YYYY-MM-DD/hour=HH/p<partition>-<first offset>-<last offset>.parquet``

One file holds the events of one input partition, one contiguous offset range and one
event hour. Names carry the offset range, so after a restart the sink knows exactly which
offsets are already stored and neither duplicates nor loses a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_NAME = re.compile(r"^p(\d+)-(\d+)-(\d+)\.parquet$")


@dataclass(frozen=True, slots=True)
class FileSpan:
    """The input partition and offset range one warehouse file covers."""

    partition: int
    first_offset: int
    last_offset: int


def hour_of(ts: float) -> str:
    """``date=YYYY-MM-DD/hour=HH`` of an event time (UTC)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


def file_path(root: Path, topic: str, hour: str, span: FileSpan) -> Path:
    """Final path of a file."""
    return root / topic / hour / f"p{span.partition}-{span.first_offset}-{span.last_offset}.parquet"


def temp_path(path: Path) -> Path:
    """Where a file is written before its rename: a hidden name no reader or scan counts."""
    return path.with_name(f".{path.name}.tmp")


def parse_name(name: str) -> FileSpan | None:
    """The span a file name encodes, or None for anything else (temp files included)."""
    match = _NAME.match(name)
    return None if match is None else FileSpan(*(int(g) for g in match.groups()))


def stored_through(root: Path, topic: str) -> dict[int, int]:
    """Highest offset already stored per partition of ``topic``."""
    highest: dict[int, int] = {}
    base = root / topic
    if not base.exists():
        return highest
    for path in base.glob("date=*/hour=*/p*.parquet"):
        span = parse_name(path.name)
        if span is not None and span.last_offset > highest.get(span.partition, -1):
            highest[span.partition] = span.last_offset
    return highest


def temp_files(root: Path, topic: str, partitions: set[int]) -> list[Path]:
    """Temp files of ``partitions`` of ``topic`` left by a writer that died before its rename."""
    base = root / topic
    if not base.exists():
        return []
    found: list[Path] = []
    for path in base.glob("date=*/hour=*/.p*.parquet.tmp"):
        span = parse_name(path.name[1 : -len(".tmp")])
        if span is not None and span.partition in partitions:
            found.append(path)
    return found
