"""What the controller sees of a router at one look, built from the per-router window store.

The worker looks at a router's rollout on every stored snapshot of its windows (one per
ingest batch and input partition). Each look needs the stage's per-window figures of both
arms, their sums since the stage began and the dispersion sums of the hour before it;
rebuilding those from the table at every snapshot would decode every partial of the stage
again, so they are cached per window and keyed by the window's version (its partials'
last offsets): only the window that changed — normally the open one — is decoded again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bifrost.schemas.rollout import RolloutState
from bifrost.streams.aggregates.stats import WindowStats, merged
from bifrost.streams.rollout.controller import Look
from bifrost.streams.rollout.gates.dispersion import ArmFigures, StageWindow, WindowSums
from bifrost.streams.rollup.store import RouterWindows

Version = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class _Window:
    version: Version
    canary: WindowStats
    control: WindowStats
    figures: StageWindow
    clock: float  # newest event time in the window


class LookBuilder:
    """Builds :class:`~bifrost.streams.rollout.controller.Look` objects for routers in a rollout.

    ``history_seconds``: how far before the stage the dispersion of the router's traffic
    is measured (an hour by default).
    """

    def __init__(self, windows: RouterWindows, *, window_seconds: int, history_seconds: int = 3600) -> None:
        self._windows = windows
        self._window_seconds = window_seconds
        self._history_seconds = history_seconds
        self._cache: dict[tuple[str, str, str], dict[int, _Window]] = {}
        self._prefix: dict[tuple[str, str, str], tuple[tuple[tuple[int, Version], ...], WindowStats, WindowStats]] = {}
        self._history: dict[tuple[str, str, str], tuple[int, tuple[tuple[int, Version], ...], WindowSums]] = {}

    def invalidate(self) -> None:
        """Forget everything (partitions moved)."""
        self._cache.clear()
        self._prefix.clear()
        self._history.clear()

    def look(self, state: RolloutState) -> Look | None:
        """The look at ``state``'s router now, or ``None`` without a rollout or data."""
        router, canary, control = state.router_id, state.canary_version, state.control_version
        newest_end = self._windows.clock(router)
        if canary is None or control is None or newest_end is None:
            return None
        key = (router, canary, control)
        since = int(state.since)
        cache = self._cache.setdefault(key, {})
        stage = [
            self._window(key, cache, start, version)
            for start, version in sorted(self._windows.window_versions(router, since, newest_end).items())
        ]
        stage = [w for w in stage if w.canary.count or w.control.count]
        history = self._history_sums(key, cache, since)
        for start in [s for s in cache if s < since - self._history_seconds]:
            del cache[start]
        canary_total, control_total = self._totals(key, stage)
        clock = max((w.clock for w in stage), default=float(newest_end - self._window_seconds))
        return Look(
            clock=clock,
            window_seconds=self._window_seconds,
            windows=[w.figures for w in stage],
            canary=canary_total,
            control=control_total,
            history=history,
        )

    def _window(self, key: tuple[str, str, str], cache: dict[int, _Window], start: int, version: Version) -> _Window:
        cached = cache.get(start)
        if cached is not None and cached.version == version:
            return cached
        router, canary_arm, control_arm = key
        canary, control = WindowStats(), WindowStats()
        clock = 0.0
        for partial in self._windows.window_partials(router, start):
            clock = max(clock, partial.max_event_ts)
            if canary_arm in partial.arms:
                canary.merge(partial.arms[canary_arm])
            if control_arm in partial.arms:
                control.merge(partial.arms[control_arm])
        window = _Window(
            version, canary, control, StageWindow(start, ArmFigures.of(canary), ArmFigures.of(control)), clock
        )
        cache[start] = window
        return window

    def _totals(self, key: tuple[str, str, str], stage: list[_Window]) -> tuple[WindowStats, WindowStats]:
        """Both arms summed over the stage: the closed windows' sum is cached, the newest added."""
        if not stage:
            return WindowStats(), WindowStats()
        closed, newest = stage[:-1], stage[-1]
        signature = tuple((w.figures.start, w.version) for w in closed)
        cached = self._prefix.get(key)
        if cached is None or cached[0] != signature:
            cached = (signature, merged([w.canary for w in closed]), merged([w.control for w in closed]))
            self._prefix[key] = cached
        _, canary, control = cached
        return merged([canary, newest.canary]), merged([control, newest.control])

    def _history_sums(self, key: tuple[str, str, str], cache: dict[int, _Window], since: int) -> WindowSums:
        versions = self._windows.window_versions(key[0], since - self._history_seconds, since)
        signature = tuple(sorted(versions.items()))
        cached = self._history.get(key)
        if cached is not None and cached[0] == since and cached[1] == signature:
            return cached[2]
        windows = [self._window(key, cache, start, version).figures for start, version in signature]
        sums = WindowSums.of(windows)
        self._history[key] = (since, signature, sums)
        return sums
