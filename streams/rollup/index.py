"""In-memory index of the per-router table: which partials exist for which window."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from bifrost.streams.aggregates.partial import WindowPartial, router_window_key


@dataclass(slots=True)
class RouterIndex:
    """router → window start → source partition → (table key, last folded offset)."""

    routers: dict[str, dict[int, dict[str, tuple[str, int]]]] = field(default_factory=dict)
    # router → input partition ("topic|partition") → newest window start it reported
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    # router → oldest window start held (keeps expiry checks O(1) per snapshot)
    oldest: dict[str, int] = field(default_factory=dict)
    size: int = 0

    def is_newer(self, partial: WindowPartial) -> bool:
        """True unless an equal or newer snapshot of this partial is already stored."""
        known = self.routers.get(partial.router_id, {}).get(partial.window_start, {}).get(partial.source_key)
        return known is None or partial.last_offset > known[1]

    def record(self, partial: WindowPartial) -> str:
        """Remember ``partial`` as stored; return its table key."""
        key = router_window_key(partial)
        newest = self.sources.setdefault(partial.router_id, {})
        if partial.window_start > newest.get(partial.source_key, -1):
            newest[partial.source_key] = partial.window_start
        if partial.window_start < self.oldest.get(partial.router_id, partial.window_start + 1):
            self.oldest[partial.router_id] = partial.window_start
        windows = self.routers.setdefault(partial.router_id, {})
        parts = windows.setdefault(partial.window_start, {})
        if partial.source_key not in parts:
            self.size += 1
        parts[partial.source_key] = (key, partial.last_offset)
        return key

    def newest_window_end(self, router_id: str, window_seconds: int) -> int | None:
        newest = self.sources.get(router_id)
        if not newest:
            return None
        return max(newest.values()) + window_seconds

    def frontier(self, router_id: str, window_seconds: int) -> int | None:
        """End of the second-newest window with data, or the start of the only one."""
        windows = self.routers.get(router_id)
        if not windows:
            return None
        starts = heapq.nlargest(2, windows)
        return starts[1] + window_seconds if len(starts) == 2 else starts[0]

    def settled_until(self, router_id: str, topic: str) -> int | None:
        """Start of the newest window every input partition of ``topic`` has reached.

        Windows before it have data from all partitions that carry this router, so
        comparisons over them are not skewed by partitions that lag (e.g. in a backlog).
        """
        newest = [start for source, start in self.sources.get(router_id, {}).items() if source.startswith(f"{topic}|")]
        return min(newest) if newest else None

    def oldest_window(self, router_id: str) -> int | None:
        return self.oldest.get(router_id)

    def keys_between(self, router_id: str, from_ts: int, to_ts: int) -> list[str]:
        """Table keys of the router's partials with window start in ``[from_ts, to_ts)``."""
        windows = self.routers.get(router_id, {})
        return [key for start, parts in windows.items() if from_ts <= start < to_ts for key, _ in parts.values()]

    def expire(self, router_id: str, horizon: int) -> list[str]:
        """Forget windows starting before ``horizon``; return their table keys."""
        windows = self.routers.get(router_id, {})
        if self.oldest.get(router_id, horizon) >= horizon:
            return []
        old = [start for start in windows if start < horizon]
        keys: list[str] = []
        for start in old:
            keys.extend(key for key, _ in windows.pop(start).values())
        self.size -= len(keys)
        if windows:
            self.oldest[router_id] = min(windows)
        else:
            self.oldest.pop(router_id, None)
        return keys

    def __len__(self) -> int:
        return self.size

    @classmethod
    def build(cls, partials: Iterable[WindowPartial]) -> RouterIndex:
        index = cls()
        for partial in partials:
            index.record(partial)
        return index
