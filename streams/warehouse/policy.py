"""The warehouse sink's decisions, as pure functions (no I/O, no clock, no Kafka).

The sink buffers each input partition's valid records until one of these says "write":
the buffer holds ``max_rows`` rows or ``max_file_bytes`` bytes (:func:`buffer_full`), it
is older than the flush interval (:func:`buffer_expired`), the next event belongs to
another hour, or the sink as a whole would go over its memory bound — then the biggest
buffers go first (:func:`buffers_to_flush`). Failed writes are retried after
:func:`retry_delay`; offsets are committed as :func:`offsets_to_commit` says, which only
ever reads what the writer reported as stored.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

ROW_OVERHEAD_BYTES = 64
"""Memory a buffered row costs beyond its value bytes: the ``bytes`` object header (33),
its slot in the value list (8), its offset in an ``array('q')`` (8), rounded up."""


def row_cost(value_length: int) -> int:
    """Estimated memory of one buffered row whose Kafka record value is ``value_length`` bytes.

    The sink keeps the record's raw value (not a decoded dict, which costs ~3x as much),
    so this estimate is close to the real footprint.
    """
    return value_length + ROW_OVERHEAD_BYTES


def buffer_full(rows: int, nbytes: int, *, max_rows: int, max_file_bytes: int) -> bool:
    """A partition's buffer is big enough to become a file of its own."""
    return rows >= max_rows or nbytes >= max_file_bytes


def buffer_expired(opened_at: float, now: float, *, max_age_s: float) -> bool:
    """A buffer has waited long enough (monotonic seconds) and is written whatever its size."""
    return now - opened_at >= max_age_s


def buffers_to_flush(sizes: Mapping[K, int], *, in_flight: int, incoming: int, limit: int) -> list[K]:
    """Which buffers to write so that ``incoming`` more bytes fit under ``limit``.

    Memory held is what is buffered plus what is being written (``in_flight``, freed when
    its writes finish). When adding ``incoming`` would go over ``limit``, the excess must
    be written out; writes already in flight count towards it, and the biggest buffers
    cover the rest (fewest, largest files). Returns [] when it fits or when in-flight
    writes alone free enough (the caller then waits for them).

    Example:
        >>> buffers_to_flush({"a": 50, "b": 30, "c": 10}, in_flight=0, incoming=20, limit=100)
        ['a']
        >>> buffers_to_flush({"a": 50, "b": 30}, in_flight=40, incoming=20, limit=100)
        []
    """
    excess = sum(sizes.values()) + in_flight + incoming - limit
    need = excess - in_flight
    chosen: list[K] = []
    if excess <= 0 or need <= 0:
        return chosen
    covered = 0
    for key, size in sorted(sizes.items(), key=lambda item: item[1], reverse=True):
        if covered >= need:
            break
        chosen.append(key)
        covered += size
    return chosen


def retry_delay(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Seconds before retry number ``attempt`` (1, 2, …) of a failed file write: doubling, capped.

    Example:
        >>> [retry_delay(n) for n in (1, 2, 3, 8)]
        [0.5, 1.0, 2.0, 30.0]
    """
    return min(cap_s, base_s * 2 ** max(0, attempt - 1))


def offsets_to_commit(stored: Mapping[K, int], committed: Mapping[K, int], owned: Collection[K]) -> dict[K, int]:
    """Kafka offsets (next offset to read) to commit: owned partitions whose stored range grew.

    ``stored`` holds, per partition, the highest offset the files cover; only the writer
    advances it, after a file's rename, so nothing committed here is without its file.

    Example:
        >>> offsets_to_commit({"p0": 9, "p1": 4, "p2": 7}, {"p0": 9, "p1": 2}, {"p0", "p1"})
        {'p1': 5}
    """
    return {key: last + 1 for key, last in stored.items() if key in owned and last > committed.get(key, -1)}
