"""A dict standing in for the ingest table: the fold only needs ``load`` and ``apply`` (tests and the bench)."""

from __future__ import annotations

from bifrost.streams.aggregates.partial import WindowPartial, decode_partial, encode_partial


class DictStore:
    """Encoded partials by key, as the table keeps them."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def load(self, key: str) -> WindowPartial | None:
        raw = self.data.get(key)
        return None if raw is None else decode_partial(raw)

    def apply(self, changed: dict[str, WindowPartial], expired: list[str]) -> None:
        for key, partial in changed.items():
            self.data[key] = encode_partial(partial)
        for key in expired:
            self.data.pop(key, None)

    def count(self, arm: str) -> int:
        """Requests of ``arm`` over every stored window."""
        return sum(p.arms[arm].count for p in map(decode_partial, self.data.values()) if arm in p.arms)
