"""Rollout wire types: operator commands, the state routers obey, rollback events."""

from __future__ import annotations

import enum
import math
from typing import Annotated

import msgspec

Version = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
RouterId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class CommandKind(str, enum.Enum):
    """What an operator (or the artifact pipeline) asks the controller to do."""

    START = "start"
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    FORCE_ROLLBACK = "force_rollback"
    EMERGENCY_STOP = "emergency_stop"
    ARTIFACT_VERIFIED = "artifact_verified"


class RolloutCommand(msgspec.Struct, frozen=True, kw_only=True):
    """One signed command on ``rollout-commands`` (keyed by router id).

    ``artifact`` names the version to start (or, for ``artifact_verified``, the version
    whose ``sha256`` and trainer signature a worker checked); for other commands it is
    optional and, when given, must match the current canary (a guard against acting on
    the wrong one). ``override`` (operators, ``promote`` only, with a ``reason``) promotes
    past failing or insufficient gates.

    Authentication (``bifrost.schemas.command_signing``): ``signature`` is the Ed25519
    signature, by the allow-listed key named ``key_id``, of the command's canonical bytes
    (every other field, ``nonce`` and ``issued_at`` included). Who issued a command is
    the verified ``key_id``, never a field the sender fills in.
    """

    command_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    router_id: RouterId
    kind: CommandKind
    artifact: Version | None = None
    control: Version | None = None
    sha256: Sha256 | None = None
    reason: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    override: bool = False
    key_id: Annotated[str, msgspec.Meta(max_length=128)] = ""
    nonce: Annotated[str, msgspec.Meta(max_length=128)] = ""
    issued_at: Annotated[float, msgspec.Meta(ge=0.0, le=1e11)] = 0.0
    signature: Annotated[str, msgspec.Meta(max_length=256)] = ""


def pipeline_command_id(version: str, router_id: str, kind: CommandKind) -> str:
    """The id of the ``artifact_verified`` or ``start`` command the artifact listener sends for a
    verified artifact: derived from version and router, so a re-sent one is recognized and a
    client that waits for a new artifact's canary knows which answer to look for.

    Example:
        >>> pipeline_command_id("v2", "web", CommandKind.START) == pipeline_command_id("v2", "web", CommandKind.START)
        True
    """
    import uuid

    suffix = "/verified" if kind is CommandKind.ARTIFACT_VERIFIED else ""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{version}/{router_id}{suffix}").hex


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
    # Share of the way to a rollback, log(e-value)/log(1/alpha) in [0, 1] (rollback gates).
    evidence: float | None = None
    # Overdispersion factor the test used (1: requests independent; see the gates README).
    dispersion: float | None = None
    # Why the gate is insufficient or blocked, in words (missing data, too few samples, ...).
    note: str = ""
    # Point estimate of the relative degradation (canary vs control, positive = worse) and
    # its fixed-sample z score beyond the margin: what holds a stage (never a rollback).
    degradation: float | None = None
    z: float | None = None
    # Non-inferiority (what promotion needs): a time-uniform upper confidence bound of the
    # relative degradation and the limit it must be below (None: not measured, no claim).
    upper: float | None = None
    upper_limit: float | None = None
    # This evaluation made the gate's one fixed-horizon look of the stage (cost, win rate).
    fixed_look: bool = False


class CommandOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of the last command: applied, or refused with the reason."""

    command_id: str
    kind: CommandKind
    accepted: bool
    reason: str
    at: float
    issued_by: str = ""
    offset: int = -1  # the command's offset in its rollout-commands partition (-1: not from Kafka)


class VerifiedArtifact(msgspec.Struct, frozen=True, kw_only=True):
    """A version whose bytes a worker checked (sha256 + trainer signature) for this router."""

    version: str
    sha256: str
    verified_by: str
    at: float


class StopRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Who stopped the router and when (wall clock): no start until an operator resumes."""

    by: str
    at: float
    reason: str


class OverrideRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An operator promotion past gates that did not all pass (who, when, what, why).

    ``failing_gates`` are the gates that were not passing at that moment;
    ``gates_evaluated`` is false when no gate had been evaluated in the stage yet.
    """

    by: str
    at: float
    command_id: str
    canary_version: str
    from_stage_percent: float | None
    to_stage_percent: float | None
    failing_gates: list[GateResult]
    gates_evaluated: bool
    reason: str


class StallRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stage that reached its timeout without a decision: paused, with the reasons.

    ``at`` is the event time of the data when it timed out, ``wall`` the worker's wall
    clock; ``covered_seconds`` the stage's time covered by data in both arms.
    """

    stage_percent: float | None
    at: float
    wall: float
    timeout_seconds: float
    covered_seconds: float
    reasons: list[str]


class RolloutState(msgspec.Struct, frozen=True, kw_only=True):
    """What routers obey (compacted ``rollout-state``, keyed by router id).

    ``weights`` maps artifact versions to traffic shares summing to 1. ``since`` is when
    the current stage or phase began, ``clock`` the event time the controller last saw
    (both epoch seconds of event time, so compressed simulations read consistently).

    ``verified`` lists the versions (newest last, bounded) that may start; ``stopped`` is
    set by an emergency stop until an operator resumes; ``overrides`` records operator
    promotions past gates (newest last, bounded). ``seen_nonces`` maps the nonces of
    authenticated commands to their ``issued_at`` while a replay could still be fresh
    (pruned by age; a command issued at or before ``nonce_floor`` is treated as replayed).
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
    verified: list[VerifiedArtifact] = []
    stopped: StopRecord | None = None
    overrides: list[OverrideRecord] = []
    seen_nonces: dict[str, float] = {}
    nonce_floor: float = 0.0
    # Stage timing from data: the end of the newest closed window seen (event time), the
    # stage's time covered by windows with traffic in both arms, the traffic time the
    # stage timeout counts from (stage entry or resume), and the share of the rollout's
    # false-rollback budget this stage may spend.
    frontier: float = 0.0
    covered_seconds: float = 0.0
    active_seconds: float = 0.0
    timeout_from: float = 0.0
    alpha_share: float | None = None
    # The gates whose one fixed-horizon look of the stage was made (at the first look ripe
    # by data at which the gate could test).
    fixed_looks_done: list[str] = []
    stall: StallRecord | None = None
    # At the newest look of an active stage: requests per arm in the stage so far, and
    # everything that keeps the stage from advancing now (coverage, samples, each gate
    # not passing or holding, a pause), in words; empty when nothing does.
    canary_samples: int = 0
    control_samples: int = 0
    blockers: list[str] = []

    @property
    def stage_percent(self) -> float | None:
        """Canary share of the current stage in percent (None outside a rollout, or for a
        non-finite stage share in a record from elsewhere)."""
        if 0 <= self.stage_index < len(self.stages):
            percent = self.stages[self.stage_index] * 100.0
            return percent if math.isfinite(percent) else None
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
