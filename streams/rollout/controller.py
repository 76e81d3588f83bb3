"""The rollout state machine (pure): commands and window closes in, new state out.

idle → canary 5% → 25% → 50% → promoted (100%); any stage → rolled back (a gate tripped,
or forced); paused ⇄ canary; emergency stop from anywhere (all traffic to the last good
artifact, no automatic restart). With ``require_approval`` a start waits in
``awaiting_approval`` until an ``approve`` command.

Time is the event time of the router's metrics (``clock``), never the wall clock, so a
simulator that compresses an hour into seconds runs a whole rollout in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import msgspec

from bifrost.schemas.rollout import (
    CommandKind,
    CommandOutcome,
    GateResult,
    GateStatus,
    Phase,
    RollbackEvent,
    RolloutCommand,
    RolloutState,
)
from bifrost.streams.aggregates.stats import WindowStats

ACTIVE = (Phase.CANARY, Phase.PAUSED)
STARTABLE = (Phase.IDLE, Phase.PROMOTED, Phase.ROLLED_BACK, Phase.EMERGENCY_STOPPED)


class GateVerdict(Protocol):
    """What the controller needs from a gate evaluation."""

    results: list[GateResult]

    @property
    def rollback(self) -> GateResult | None: ...

    @property
    def promotion_blocked(self) -> bool: ...


Evaluate = Callable[[WindowStats, WindowStats], GateVerdict]


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """Stages and the minimums a stage must meet before it advances."""

    stages: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    min_stage_seconds: float = 900.0
    min_samples: int = 100
    require_approval: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The new state, whether it differs from the old one, and a rollback to publish."""

    state: RolloutState
    changed: bool
    rollback: RollbackEvent | None = None


class Refused(Exception):
    """A command that cannot apply to the current state; the message says why."""


def apply_command(
    state: RolloutState,
    command: RolloutCommand,
    *,
    arm_traffic: Mapping[str, int],
    wall: float,
    policy: RolloutPolicy = RolloutPolicy(),
) -> Decision:
    """Apply an operator command, or refuse it with a reason (never raises).

    ``arm_traffic`` is how many requests each arm served recently: it identifies known
    routers and the current (control) artifact when none is recorded yet.
    """
    try:
        new_state, rollback = _transition(state, command, arm_traffic, wall, policy)
    except Refused as refusal:
        outcome = CommandOutcome(command_id=command.command_id, kind=command.kind, accepted=False, reason=str(refusal), at=wall)
        return Decision(msgspec.structs.replace(state, last_command=outcome, revision=state.revision + 1), True)
    outcome = CommandOutcome(command_id=command.command_id, kind=command.kind, accepted=True, reason=new_state.reason or "", at=wall)
    final = msgspec.structs.replace(new_state, last_command=outcome, revision=state.revision + 1)
    if rollback is not None:
        rollback = msgspec.structs.replace(rollback, revision=final.revision)
    return Decision(final, True, rollback)


def _transition(
    state: RolloutState, command: RolloutCommand, arm_traffic: Mapping[str, int], wall: float, policy: RolloutPolicy
) -> tuple[RolloutState, RollbackEvent | None]:
    kind = command.kind
    if state.revision == 0 and not arm_traffic:
        raise Refused(f"unknown router {state.router_id!r}: no traffic and no rollout seen for it")
    if kind is not CommandKind.START and command.artifact and command.artifact != state.canary_version:
        current = state.canary_version or "none"
        raise Refused(f"{kind.value} names artifact {command.artifact!r}, but the canary is {current}")
    if kind is CommandKind.START:
        return _start(state, command, arm_traffic, policy), None
    if kind is CommandKind.APPROVE:
        _require(state, (Phase.AWAITING_APPROVAL,), kind)
        return _enter_stage(state, 0, policy, reason="approved"), None
    if kind is CommandKind.PAUSE:
        _require(state, (Phase.CANARY,), kind)
        return msgspec.structs.replace(state, phase=Phase.PAUSED, reason=command.reason or "paused by operator"), None
    if kind is CommandKind.RESUME:
        _require(state, (Phase.PAUSED,), kind)
        return msgspec.structs.replace(state, phase=Phase.CANARY, reason="resumed"), None
    if kind is CommandKind.PROMOTE:
        _require(state, ACTIVE, kind)
        return _advance(state, policy, reason="promoted by operator"), None
    if kind is CommandKind.FORCE_ROLLBACK:
        _require(state, (*ACTIVE, Phase.AWAITING_APPROVAL), kind)
        reason = command.reason or "forced by operator"
        manual = GateResult(gate="manual", status=GateStatus.FAIL, method="operator command")
        return _roll_back(state, manual, [manual], reason=reason, wall=wall)
    if kind is CommandKind.EMERGENCY_STOP:
        safe = state.last_good_version or state.control_version
        if safe is None:
            raise Refused("no last good artifact is known for this router; nothing to stop to")
        return (
            msgspec.structs.replace(
                state,
                phase=Phase.EMERGENCY_STOPPED,
                canary_version=None,
                weights={safe: 1.0},
                stage_index=-1,
                since=state.clock,
                reason=command.reason or "emergency stop: all traffic to the last good artifact",
            ),
            None,
        )
    raise Refused(f"unsupported command {kind.value!r}")  # pragma: no cover - enum is exhaustive


def _require(state: RolloutState, phases: tuple[Phase, ...], kind: CommandKind) -> None:
    if state.phase not in phases:
        allowed = ", ".join(p.value for p in phases)
        raise Refused(f"cannot {kind.value} while {state.phase.value}; allowed when: {allowed}")


def _start(state: RolloutState, command: RolloutCommand, arm_traffic: Mapping[str, int], policy: RolloutPolicy) -> RolloutState:
    if state.phase not in STARTABLE:
        raise Refused(
            f"a rollout of {state.canary_version} is {state.phase.value}; "
            "force_rollback, or wait for it to finish, before starting another"
        )
    if not command.artifact:
        raise Refused("start needs the artifact version to roll out")
    control = command.control or state.control_version or _dominant(arm_traffic)
    if control is None:
        raise Refused("no control artifact is known for this router; pass the control version")
    if command.control and state.control_version and command.control != state.control_version and state.revision:
        raise Refused(f"the router's current artifact is {state.control_version}, not {command.control}")
    if command.artifact == control:
        raise Refused(f"artifact {command.artifact} is already the router's current artifact")
    prepared = msgspec.structs.replace(
        state,
        control_version=control,
        last_good_version=state.last_good_version or control,
        canary_version=command.artifact,
        gates=[],
        promotion_blocked_by=[],
    )
    if policy.require_approval:
        return msgspec.structs.replace(
            prepared, phase=Phase.AWAITING_APPROVAL, weights={control: 1.0}, stage_index=-1,
            since=state.clock, reason=f"{command.artifact} waits for approval",
        )
    return _enter_stage(prepared, 0, policy, reason=f"canary {command.artifact} started")


def _dominant(arm_traffic: Mapping[str, int]) -> str | None:
    return max(arm_traffic, key=lambda arm: arm_traffic[arm]) if arm_traffic else None


def _enter_stage(state: RolloutState, index: int, policy: RolloutPolicy, *, reason: str) -> RolloutState:
    share = policy.stages[index]
    assert state.canary_version is not None and state.control_version is not None
    if share >= 1.0:
        return _promoted(state, index, reason)
    return msgspec.structs.replace(
        state,
        phase=Phase.CANARY,
        stages=list(policy.stages),
        stage_index=index,
        weights={state.control_version: round(1.0 - share, 6), state.canary_version: share},
        since=state.clock,
        gates=[],
        reason=reason,
    )


def _promoted(state: RolloutState, index: int, reason: str) -> RolloutState:
    canary = state.canary_version
    assert canary is not None
    return msgspec.structs.replace(
        state,
        phase=Phase.PROMOTED,
        stage_index=index,
        control_version=canary,
        last_good_version=canary,
        canary_version=None,
        weights={canary: 1.0},
        since=state.clock,
        reason=f"{canary} promoted to 100% ({reason})",
    )


def _advance(state: RolloutState, policy: RolloutPolicy, *, reason: str) -> RolloutState:
    return _enter_stage(state, min(state.stage_index + 1, len(policy.stages) - 1), policy, reason=reason)


def _roll_back(
    state: RolloutState, tripped: GateResult, evidence: list[GateResult], *, reason: str, wall: float
) -> tuple[RolloutState, RollbackEvent]:
    assert state.canary_version is not None
    control = state.control_version
    weights = {control: 1.0} if control else {}
    if control:
        weights[state.canary_version] = 0.0
    new_state = msgspec.structs.replace(
        state, phase=Phase.ROLLED_BACK, weights=weights, gates=evidence, since=state.clock, reason=reason,
    )
    event = RollbackEvent(
        router_id=state.router_id,
        canary_version=state.canary_version,
        control_version=control,
        gate=tripped.gate,
        stage_index=state.stage_index,
        stage_percent=state.stage_percent,
        evidence=evidence,
        reason=reason,
        window_end=state.clock,
        at=wall,
        revision=state.revision,
    )
    return new_state, event


def on_window_closed(
    state: RolloutState,
    *,
    clock: float,
    canary: WindowStats,
    control: WindowStats,
    evaluate: Evaluate,
    wall: float,
    policy: RolloutPolicy = RolloutPolicy(),
) -> Decision:
    """Evaluate the gates after a window closed; roll back, advance, or hold.

    ``canary`` and ``control`` are the cumulative statistics of both arms since the
    current stage began. A stage advances only after ``min_stage_seconds`` of event
    time with every gate passing and no SLO blocking promotion (which includes too few
    samples, so missing or stale metrics never promote).
    """
    if state.phase not in ACTIVE:
        return Decision(state, False)
    state = msgspec.structs.replace(state, clock=max(state.clock, clock))
    verdict = evaluate(canary, control)
    tripped = verdict.rollback
    if tripped is not None:
        reason = f"gate {tripped.gate} failed at stage {state.stage_percent:.0f}%"
        new_state, event = _roll_back(state, tripped, list(verdict.results), reason=reason, wall=wall)
        new_state = msgspec.structs.replace(new_state, revision=state.revision + 1)
        return Decision(new_state, True, msgspec.structs.replace(event, revision=new_state.revision))
    blocked = [r.gate for r in verdict.results if r.status is not GateStatus.PASS]
    held = msgspec.structs.replace(state, gates=list(verdict.results), promotion_blocked_by=blocked)
    ripe = state.clock - state.since >= policy.min_stage_seconds
    enough = canary.count >= policy.min_samples and control.count >= policy.min_samples
    if state.phase is Phase.CANARY and ripe and enough and not verdict.promotion_blocked:
        advanced = _advance(held, policy, reason=f"stage {state.stage_percent:.0f}% passed every gate")
        return Decision(msgspec.structs.replace(advanced, revision=state.revision + 1), True)
    changed = held.gates != state.gates or held.clock != state.clock
    return Decision(msgspec.structs.replace(held, revision=state.revision + (1 if changed else 0)), changed)
