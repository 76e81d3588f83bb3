"""Bounded label values: a hostile or buggy producer cannot create unbounded series.

Router ids and arm names come from producers. Every distinct value becomes a Prometheus
series (and a dict entry in this process) forever, so each label keeps at most a fixed
number of distinct values, first come first served; later values are folded into
``"other"``. The figures stay complete (sums over a label are still right), only their
breakdown is coarser, and :attr:`LabelBudget.folded` says how often that happened.
"""

from __future__ import annotations

OTHER = "other"


class LabelBudget:
    """At most ``limit`` distinct values of one label; later ones become :data:`OTHER`.

    Example:
        >>> budget = LabelBudget(2)
        >>> [budget.admit(v) for v in ("a", "b", "c", "a")]
        ['a', 'b', 'other', 'a']
        >>> budget.folded
        1
    """

    __slots__ = ("limit", "folded", "_known")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a label budget keeps at least one value, got {limit}")
        self.limit = limit
        self.folded = 0
        self._known: set[str] = set()

    def admit(self, value: str) -> str:
        """``value`` itself while it is known or there is room, else :data:`OTHER`."""
        if value in self._known:
            return value
        if len(self._known) < self.limit:
            self._known.add(value)
            return value
        self.folded += 1
        return OTHER

    def __len__(self) -> int:
        return len(self._known)
