"""Rollout gauges of the routers a worker controls (pure: states in, figures out).

The controller of a router lives on exactly one worker (the owner of the router's
partition). :class:`RolloutBoard` keeps the newest state that worker's controller looked
at or published, and is cleared on every rebalance, so a router's gauges come from one
worker at a time. Figures are derived when Prometheus scrapes, not at every look.
"""

from __future__ import annotations

from dataclasses import dataclass

from bifrost.schemas.rollout import GateStatus, Phase, RolloutState
from bifrost.streams.metrics.labels import LabelBudget

PHASES: tuple[str, ...] = tuple(phase.value for phase in Phase)
GATE_STATES: tuple[str, ...] = tuple(status.value for status in GateStatus)


@dataclass(frozen=True, slots=True)
class GateFigure:
    """One gate's state and, for rollback gates, its evidence (share of the way to a rollback, 0..1)."""

    gate: str
    state: str
    evidence: float | None


@dataclass(frozen=True, slots=True)
class RolloutFigures:
    """What the rollout gauges show for one router."""

    router: str
    phase: str
    stage_index: int  # -1 outside a stage
    stage_share: float  # the stage's canary share, 0 outside a stage
    canary_share: float  # the canary's traffic weight now (0 after a rollback)
    gates: tuple[GateFigure, ...]
    versions: tuple[tuple[str, str], ...]  # (role, version): control, canary, last_good
    promotion_blockers: int


def rollout_figures(state: RolloutState) -> RolloutFigures:
    """The gauges of one router's rollout state.

    Example:
        >>> from bifrost.schemas.rollout import RolloutState, Phase
        >>> f = rollout_figures(RolloutState(router_id="r", phase=Phase.CANARY, control_version="a",
        ...                                  canary_version="b", stage_index=0, weights={"a": 0.95, "b": 0.05}))
        >>> f.phase, f.stage_index, f.stage_share, f.canary_share, f.versions
        ('canary', 0, 0.05, 0.05, (('control', 'a'), ('canary', 'b')))
    """
    in_stage = 0 <= state.stage_index < len(state.stages)
    canary = state.canary_version
    versions = tuple(
        (role, version)
        for role, version in (
            ("control", state.control_version),
            ("canary", canary),
            ("last_good", state.last_good_version),
        )
        if version
    )
    return RolloutFigures(
        router=state.router_id,
        phase=state.phase.value,
        stage_index=state.stage_index if in_stage else -1,
        stage_share=state.stages[state.stage_index] if in_stage else 0.0,
        canary_share=float(state.weights.get(canary, 0.0)) if canary else 0.0,
        gates=tuple(GateFigure(g.gate, g.status.value, g.evidence) for g in state.gates),
        versions=versions,
        promotion_blockers=len(state.promotion_blocked_by),
    )


class RolloutBoard:
    """Newest rollout state per router seen by this worker's controllers (bounded)."""

    def __init__(self, max_routers: int) -> None:
        self._budget = LabelBudget(max_routers)
        self._states: dict[str, RolloutState] = {}

    @property
    def dropped(self) -> int:
        """States not shown because the router budget was spent."""
        return self._budget.folded

    def label(self, router: str) -> str:
        """``router`` as a label value: itself within the budget, else ``"other"``."""
        return router if router in self._states else self._budget.admit(router)

    def update(self, state: RolloutState) -> None:
        """Remember ``state`` as its router's newest (routers past the budget are not shown)."""
        router = state.router_id
        if router in self._states or self._budget.admit(router) == router:
            self._states[router] = state

    def clear(self) -> None:
        """Forget every router (partitions moved: their controllers may be elsewhere now)."""
        self._states.clear()

    def figures(self) -> list[RolloutFigures]:
        """Figures of every router on the board, sorted by router."""
        return [rollout_figures(self._states[r]) for r in sorted(self._states)]
