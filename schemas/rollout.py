"""Rollout wire types: operator commands, the state routers obey, rollback events."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

Version = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
RouterId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class CommandKind(str, enum.Enum):
    """What an operator (or the artifact pipeline) asks the controller to do."""

    START = "start"
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    FORCE_ROLLBACK = "force_rollback"
    EMERGENCY_STOP = "emergency_stop"


class RolloutCommand(msgspec.Struct, frozen=True, kw_only=True):
    """One command on ``rollout-commands`` (keyed by router id).

    ``artifact`` names the version to start; for other commands it is optional and,
    when given, must match the current canary (a guard against acting on the wrong one).
    """

    command_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    router_id: RouterId
    kind: CommandKind
    artifact: Version | None = None
    control: Version | None = None
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    issued_by: Annotated[str, msgspec.Meta(max_length=128)] = "unknown"
    issued_at: float = 0.0


class Phase(str, enum.Enum):
    """Where a router's rollout is."""

    IDLE = "idle"
    AWAITING_APPROVAL = "awaiting_approval"
    CANARY = "canary"
    PAUSED = "paused"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    EMERGENCY_STOPPED = "emergency_stopped"


class GateStatus(str, enum.Enum):
    """Outcome of one gate at one evaluation."""

    PASS = "pass"
    FAIL = "fail"
    INSUFFICIENT = "insufficient"
    BLOCKED = "blocked"


class GateResult(msgspec.Struct, frozen=True, kw_only=True):
    """One gate's verdict with its evidence (figures compared, statistic, bound, method)."""

    gate: str
    status: GateStatus
    canary: float | None = None
    control: float | None = None
    threshold: float | None = None
    statistic: float | None = None
    bound: float | None = None
    method: str = ""
    alpha: float | None = None
    canary_samples: int = 0
    control_samples: int = 0


class CommandOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of the last command: applied, or refused with the reason."""

    command_id: str
    kind: CommandKind
    accepted: bool
    reason: str
    at: float


class RolloutState(msgspec.Struct, frozen=True, kw_only=True):
    """What routers obey (compacted ``rollout-state``, keyed by router id).

    ``weights`` maps artifact versions to traffic shares summing to 1. ``since`` is when
    the current stage or phase began, ``clock`` the event time the controller last saw
    (both epoch seconds of event time, so compressed simulations read consistently).
    """

    router_id: RouterId
    phase: Phase = Phase.IDLE
    control_version: str | None = None
    canary_version: str | None = None
    last_good_version: str | None = None
    stages: list[float] = msgspec.field(default_factory=lambda: [0.05, 0.25, 0.5, 1.0])
    stage_index: int = -1
    weights: dict[str, float] = {}
    since: float = 0.0
    clock: float = 0.0
    gates: list[GateResult] = []
    promotion_blocked_by: list[str] = []
    reason: str | None = None
    revision: int = 0
    last_command: CommandOutcome | None = None

    @property
    def stage_percent(self) -> float | None:
        """Canary share of the current stage in percent (None outside a rollout)."""
        if 0 <= self.stage_index < len(self.stages):
            return self.stages[self.stage_index] * 100.0
        return None


class RollbackEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Published on ``rollbacks`` when a gate trips or an operator forces a rollback."""

    router_id: RouterId
    canary_version: str
    control_version: str | None
    gate: str
    stage_index: int
    stage_percent: float | None
    evidence: list[GateResult]
    reason: str
    window_end: float
    at: float
    revision: int
