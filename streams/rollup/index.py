"""In-memory index of the per-router table: which partials exist for which window."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bifrost.streams.aggregates.partial import WindowPartial, router_window_key


@dataclass(slots=True)
class RouterIndex:
    """router → window start → source partition → (table key, last folded offset)."""

    routers: dict[str, dict[int, dict[str, tuple[str, int]]]] = field(default_factory=dict)

    def is_newer(self, partial: WindowPartial) -> bool:
        """True unless an equal or newer snapshot of this partial is already stored."""
        known = self.routers.get(partial.router_id, {}).get(partial.window_start, {}).get(partial.source_key)
        return known is None or partial.last_offset > known[1]

    def record(self, partial: WindowPartial) -> str:
        """Remember ``partial`` as stored; return its table key."""
        key = router_window_key(partial)
        windows = self.routers.setdefault(partial.router_id, {})
        windows.setdefault(partial.window_start, {})[partial.source_key] = (key, partial.last_offset)
        return key

    def newest_window_end(self, router_id: str, window_seconds: int) -> int | None:
        windows = self.routers.get(router_id)
        if not windows:
            return None
        return max(windows) + window_seconds

    def keys_between(self, router_id: str, from_ts: int, to_ts: int) -> list[str]:
        """Table keys of the router's partials with window start in ``[from_ts, to_ts)``."""
        windows = self.routers.get(router_id, {})
        return [key for start, parts in windows.items() if from_ts <= start < to_ts for key, _ in parts.values()]

    def expire(self, router_id: str, horizon: int) -> list[str]:
        """Forget windows starting before ``horizon``; return their table keys."""
        windows = self.routers.get(router_id, {})
        old = [start for start in windows if start < horizon]
        keys: list[str] = []
        for start in old:
            keys.extend(key for key, _ in windows.pop(start).values())
        return keys

    def __len__(self) -> int:
        return sum(len(parts) for windows in self.routers.values() for parts in windows.values())

    @classmethod
    def build(cls, partials: Iterable[WindowPartial]) -> "RouterIndex":
        index = cls()
        for partial in partials:
            index.record(partial)
        return index
