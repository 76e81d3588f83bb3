"""The rollout state machine (pure): commands and window closes in, new state out.

idle → canary 5% → 25% → 50% → promoted (100%); any stage → rolled back (a gate tripped,
or forced); paused ⇄ canary; emergency stop from anywhere (all traffic to the last good
artifact; every start is refused until an operator's ``resume``, which returns to idle).
With ``require_approval`` a start waits in ``awaiting_approval`` until an ``approve``.

Commands arrive through :func:`handle_command`, which first authenticates them
(``auth.py``: signature by an allow-listed key, role, freshness, nonce); a refused one
changes nothing and is reported as ``Decision.unauthorized``. Only versions recorded by
an ``artifact_verified`` command (the worker's artifact listener checked sha256 and the
trainer's signature) may start. A promotion past gates that are not all passing is an
operator override, recorded in ``RolloutState.overrides``.

The gates run at every look (:func:`on_look`: every stage-2 snapshot of the router's
windows, i.e. every ingest batch), on the stage's data so far; their tests are
always-valid, so looking often costs no false rollbacks. A stage advances when it is
*ripe by data*: ``min_stage_seconds`` covered by closed windows with traffic in both arms
(gaps without data and a window ahead of the data never count) and ``min_samples`` per
arm, with every gate passing, none holding and no SLO blocking. A stage that has neither
advanced nor rolled back after ``stage_timeout_seconds`` of traffic pauses with the
reasons (:class:`~bifrost.schemas.rollout.StallRecord`). Each stage spends its share of
the rollout's false-rollback budget (``alpha_shares``), so a whole rollout rolls back a
good canary with probability at most ``alpha``.

Time is the event time of the router's metrics (``clock``), never the wall clock, so a
simulator that compresses an hour into seconds runs a whole rollout in seconds.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from bifrost.schemas.rollout import (
    CommandKind,
    CommandOutcome,
    GateResult,
    GateStatus,
    OverrideRecord,
    Phase,
    RollbackEvent,
    RolloutCommand,
    RolloutState,
    StallRecord,
    StopRecord,
    VerifiedArtifact,
)
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.auth import Keyring, Unauthorized, authenticate, remember_nonce
from bifrost.streams.rollout.gates.config import ROLLBACK_GATES, stage_alpha_shares
from bifrost.streams.rollout.gates.dispersion import ArmFigures, StageWindow, WindowSums

ACTIVE = (Phase.CANARY, Phase.PAUSED)
#: A window counts toward a stage's time only with at least this share of the typical
#: window's control traffic (see :func:`_credible`).
CREDIBLE_TRAFFIC_SHARE = 0.125
STARTABLE = (Phase.IDLE, Phase.PROMOTED, Phase.ROLLED_BACK)


class GateVerdict(Protocol):
    """What the controller needs from a gate evaluation."""

    @property
    def results(self) -> list[GateResult]: ...  # read-only, so frozen reports fit

    @property
    def rollback(self) -> GateResult | None: ...

    @property
    def promotion_blocked(self) -> bool: ...

    def blockers(self) -> list[str]: ...


#: ``evaluate(look, alpha_share)``: the gates on the stage's data at one look, spending
#: ``alpha_share`` of the rollout's false-rollback budget.
Evaluate = Callable[["Look", float], GateVerdict]


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """Stages, the minimums a stage must meet before it advances, and its timeout.

    ``stage_timeout_seconds``: traffic time (closed windows with requests in either arm)
    after which a stage that neither advanced nor rolled back pauses with the reasons;
    ``None`` means four times ``min_stage_seconds``, ``0`` never.
    """

    stages: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    min_stage_seconds: float = 900.0
    min_samples: int = 100
    require_approval: bool = False
    max_verified: int = 50  # verified versions remembered per router (newest kept)
    max_overrides: int = 20  # override records kept per router (newest kept)
    stage_timeout_seconds: float | None = None

    @property
    def timeout_seconds(self) -> float:
        """The stage timeout in seconds of traffic (``inf``: none)."""
        if self.stage_timeout_seconds is None:
            return 4.0 * self.min_stage_seconds
        return self.stage_timeout_seconds if self.stage_timeout_seconds > 0 else float("inf")

    def ripe(self, covered_seconds: float, canary_requests: int, control_requests: int) -> bool:
        """Whether a stage is ripe by data: ``min_stage_seconds`` covered and ``min_samples``
        requests per arm (when it may advance, and when the gates make their fixed look)."""
        return (
            covered_seconds >= self.min_stage_seconds
            and canary_requests >= self.min_samples
            and control_requests >= self.min_samples
        )

    def alpha_share(self, index: int) -> float:
        """Share of the rollout's false-rollback budget stage ``index`` spends."""
        shares = stage_alpha_shares(self.stages)
        return shares[index] if 0 <= index < len(shares) else 0.0


@dataclass(frozen=True, slots=True)
class Look:
    """What the controller sees at one look: the current stage's data so far.

    ``windows``: both arms' figures in every window of the stage that has data (start at
    or after the stage's ``since``), oldest first; the newest may still be open.
    ``canary``/``control``: the arms' statistics summed over those windows. ``clock``: the
    event time of the newest data. ``history``: the router's windows before the stage
    (summed), from which the gates learn how clustered its traffic is.
    """

    clock: float
    window_seconds: int
    windows: Sequence[StageWindow]
    canary: WindowStats = field(default_factory=WindowStats)
    control: WindowStats = field(default_factory=WindowStats)
    history: WindowSums | None = None
    totals: tuple[ArmFigures, ArmFigures] | None = None  # the arms' figures summed over ``windows``
    #: Set by :func:`on_look` (whatever the caller put here): the rollback gates that may
    #: make their one fixed-horizon look of the stage at this look (the stage is ripe by data
    #: and they have not made it yet).
    fixed_looks: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Decision:
    """The new state, whether it differs from the old one, and what else to publish.

    ``rollback``: a rollback event; ``override``: an operator override just recorded (to
    log); ``unauthorized``: the command failed authentication — ``state`` is the old one,
    unchanged, and the refusal goes to the DLQ.
    """

    state: RolloutState
    changed: bool
    rollback: RollbackEvent | None = None
    override: OverrideRecord | None = None
    unauthorized: Unauthorized | None = None
    stalled: StallRecord | None = None  # the stage just timed out and paused (to alert on)


class Refused(Exception):
    """A command that cannot apply to the current state; the message says why."""


@dataclass(frozen=True, slots=True)
class _Step:
    state: RolloutState
    rollback: RollbackEvent | None = None
    note: str | None = None  # the outcome's reason when it is not the state's reason
    override: OverrideRecord | None = None


def handle_command(
    state: RolloutState,
    command: RolloutCommand,
    *,
    keyring: Keyring,
    arm_traffic: Mapping[str, int],
    wall: float,
    max_age: float,
    policy: RolloutPolicy = RolloutPolicy(),
) -> Decision:
    """Authenticate a command from ``rollout-commands``, then apply or refuse it (never raises).

    ``wall`` is the worker's wall clock (freshness of commands is judged by it, unlike
    the stages, which run on event time). An authentication refusal leaves ``state``
    untouched (``changed`` false, ``unauthorized`` set); an authenticated command's nonce
    is recorded whether the state machine then accepts or refuses it.
    """
    key = authenticate(command, state, keyring, wall=wall, max_age=max_age)
    if isinstance(key, Unauthorized):
        return Decision(state, False, unauthorized=key)
    state = remember_nonce(state, command, wall=wall, max_age=max_age)
    return apply_command(state, command, arm_traffic=arm_traffic, wall=wall, policy=policy, issued_by=key.name)


def apply_command(
    state: RolloutState,
    command: RolloutCommand,
    *,
    arm_traffic: Mapping[str, int],
    wall: float,
    policy: RolloutPolicy = RolloutPolicy(),
    issued_by: str = "",
) -> Decision:
    """Apply an authenticated command, or refuse it with a reason (never raises).

    ``issued_by`` is the verified key name (:func:`handle_command` passes it; direct
    callers are trusted code such as the gate simulation). ``arm_traffic`` is how many
    requests each arm served recently: it identifies known routers and the current
    (control) artifact when none is recorded yet.
    """
    try:
        step = _transition(state, command, arm_traffic, wall, policy, issued_by)
    except Refused as refusal:
        outcome = CommandOutcome(
            command_id=command.command_id,
            kind=command.kind,
            accepted=False,
            reason=str(refusal),
            at=wall,
            issued_by=issued_by,
        )
        return Decision(msgspec.structs.replace(state, last_command=outcome, revision=state.revision + 1), True)
    outcome = CommandOutcome(
        command_id=command.command_id,
        kind=command.kind,
        accepted=True,
        reason=step.note or step.state.reason or "",
        at=wall,
        issued_by=issued_by,
    )
    final = msgspec.structs.replace(step.state, last_command=outcome, revision=state.revision + 1)
    rollback = step.rollback
    if rollback is not None:
        rollback = msgspec.structs.replace(rollback, revision=final.revision)
    return Decision(final, True, rollback, override=step.override)


def _transition(
    state: RolloutState,
    command: RolloutCommand,
    arm_traffic: Mapping[str, int],
    wall: float,
    policy: RolloutPolicy,
    issued_by: str,
) -> _Step:
    kind = command.kind
    if command.override and kind is not CommandKind.PROMOTE:
        raise Refused("an override applies only to promote")
    if kind is CommandKind.ARTIFACT_VERIFIED:
        return _verified(state, command, wall, policy, issued_by)
    if state.revision == 0 and not arm_traffic:
        raise Refused(f"unknown router {state.router_id!r}: no traffic and no rollout seen for it")
    if kind is not CommandKind.START and command.artifact and command.artifact != state.canary_version:
        current = state.canary_version or "none"
        raise Refused(f"{kind.value} names artifact {command.artifact!r}, but the canary is {current}")
    if kind is CommandKind.START:
        return _Step(_start(state, command, arm_traffic, policy))
    if kind is CommandKind.APPROVE:
        _require(state, (Phase.AWAITING_APPROVAL,), kind)
        return _Step(_enter_stage(state, 0, policy, reason="approved"))
    if kind is CommandKind.PAUSE:
        _require(state, (Phase.CANARY,), kind)
        return _Step(
            msgspec.structs.replace(
                state,
                phase=Phase.PAUSED,
                reason=command.reason or "paused by operator",
                blockers=[_PAUSED_BLOCKER, *_unpaused(state.blockers)],
            )
        )
    if kind is CommandKind.RESUME:
        _require(state, (Phase.PAUSED, Phase.EMERGENCY_STOPPED), kind)
        if state.phase is Phase.PAUSED:
            # The stage timeout counts again from here; a stall record is cleared.
            return _Step(
                msgspec.structs.replace(
                    state,
                    phase=Phase.CANARY,
                    reason="resumed",
                    stall=None,
                    timeout_from=state.frontier,
                    active_seconds=0.0,
                    blockers=_unpaused(state.blockers),
                )
            )
        return _Step(
            msgspec.structs.replace(
                state,
                phase=Phase.IDLE,
                stopped=None,
                since=state.clock,
                reason=f"resumed by {issued_by or 'an operator'} after the emergency stop; rollouts may start again",
            )
        )
    if kind is CommandKind.PROMOTE:
        _require(state, ACTIVE, kind)
        return _promote(state, command, policy, wall, issued_by)
    if kind is CommandKind.FORCE_ROLLBACK:
        _require(state, (*ACTIVE, Phase.AWAITING_APPROVAL), kind)
        reason = command.reason or "forced by operator"
        manual = GateResult(gate="manual", status=GateStatus.FAIL, method="operator command")
        rolled, event = _roll_back(state, manual, [manual], reason=reason, wall=wall)
        return _Step(rolled, event)
    if kind is CommandKind.EMERGENCY_STOP:
        safe = state.last_good_version or state.control_version
        if safe is None:
            raise Refused("no last good artifact is known for this router; nothing to stop to")
        reason = command.reason or "emergency stop: all traffic to the last good artifact"
        return _Step(
            msgspec.structs.replace(
                state,
                phase=Phase.EMERGENCY_STOPPED,
                control_version=safe,
                canary_version=None,
                weights={safe: 1.0},
                stage_index=-1,
                since=state.clock,
                reason=reason,
                stopped=StopRecord(by=issued_by or "unknown", at=wall, reason=reason),
            )
        )
    raise Refused(f"unsupported command {kind.value!r}")  # pragma: no cover - enum is exhaustive


def _verified(
    state: RolloutState, command: RolloutCommand, wall: float, policy: RolloutPolicy, issued_by: str
) -> _Step:
    """Record that a worker verified ``command.artifact`` (sha256 + trainer signature) for this router."""
    if not command.artifact or not command.sha256:
        raise Refused("artifact_verified needs the artifact version and its sha256")
    known = next((v for v in state.verified if v.version == command.artifact), None)
    if known is not None and known.sha256 != command.sha256:
        raise Refused(
            f"{command.artifact} was verified with sha256 {known.sha256[:16]}…, not {command.sha256[:16]}…; "
            "one version cannot have two contents"
        )
    record = VerifiedArtifact(
        version=command.artifact, sha256=command.sha256, verified_by=issued_by or "unknown", at=wall
    )
    verified = [v for v in state.verified if v.version != command.artifact] + [record]
    verified = verified[-policy.max_verified :] if policy.max_verified > 0 else []
    note = f"{command.artifact} verified (sha256 {command.sha256[:16]}…) by {record.verified_by}"
    return _Step(msgspec.structs.replace(state, verified=verified), note=note)


def _promote(state: RolloutState, command: RolloutCommand, policy: RolloutPolicy, wall: float, issued_by: str) -> _Step:
    """Advance one stage now: only with every gate of the stage passing, unless an operator overrides."""
    failing = [g for g in state.gates if g.status is not GateStatus.PASS]
    evaluated = bool(state.gates)
    stage = f"{state.stage_percent:.0f}%" if state.stage_percent is not None else "the current stage"
    how = "`rollout promote --override --reason TEXT` promotes anyway (recorded)"
    if not command.override:
        if not evaluated:
            raise Refused(f"no gate has been evaluated at {stage} yet (insufficient evidence); {how}")
        if failing:
            listed = ", ".join(f"{g.gate} {g.status.value}" for g in failing)
            raise Refused(f"gates not passing at {stage}: {listed}; {how}")
        return _Step(_advance(state, policy, reason="promoted by operator (every gate passing)"))
    if not (command.reason or "").strip():
        raise Refused("an override needs a reason (--reason TEXT); it is recorded")
    advanced = _advance(state, policy, reason=f"promoted by {issued_by or 'an operator'} with an override")
    assert state.canary_version is not None
    record = OverrideRecord(
        by=issued_by or "unknown",
        at=wall,
        command_id=command.command_id,
        canary_version=state.canary_version,
        from_stage_percent=state.stage_percent,
        to_stage_percent=advanced.stage_percent,
        failing_gates=failing,
        gates_evaluated=evaluated,
        reason=(command.reason or "").strip(),
    )
    overrides = [*state.overrides, record][-policy.max_overrides :] if policy.max_overrides > 0 else []
    return _Step(msgspec.structs.replace(advanced, overrides=overrides), override=record)


def _stopped_message(stopped: StopRecord | None) -> str:
    if stopped is None:  # stopped before stop records existed
        return "router is emergency-stopped; an operator must resume"
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stopped.at))
    return f"router stopped by {stopped.by} at {at}; an operator must resume"


def _require(state: RolloutState, phases: tuple[Phase, ...], kind: CommandKind) -> None:
    if state.phase is Phase.EMERGENCY_STOPPED and state.phase not in phases:
        raise Refused(f"cannot {kind.value}: {_stopped_message(state.stopped)}")
    if state.phase not in phases:
        allowed = ", ".join(p.value for p in phases)
        raise Refused(f"cannot {kind.value} while {state.phase.value}; allowed when: {allowed}")


def _start(
    state: RolloutState, command: RolloutCommand, arm_traffic: Mapping[str, int], policy: RolloutPolicy
) -> RolloutState:
    if state.phase is Phase.EMERGENCY_STOPPED:
        raise Refused(_stopped_message(state.stopped))
    if state.phase not in STARTABLE:
        raise Refused(
            f"a rollout of {state.canary_version} is {state.phase.value}; "
            "force_rollback, or wait for it to finish, before starting another"
        )
    if not command.artifact:
        raise Refused("start needs the artifact version to roll out")
    if not any(v.version == command.artifact for v in state.verified):
        raise Refused(
            f"artifact {command.artifact} is not verified for router {state.router_id}: only versions announced on "
            "the artifacts topic whose sha256 and trainer signature a worker checked can start"
        )
    if (
        command.control
        and command.control != state.control_version
        and command.control not in arm_traffic
        and not any(v.version == command.control for v in state.verified)
    ):
        # The control is what an emergency stop falls back to: it must be a version that
        # serves this router's traffic now, or one a worker verified, never a bare name.
        raise Refused(
            f"control {command.control} is neither the router's current artifact, nor serving its traffic, "
            "nor a verified version"
        )
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
            prepared,
            phase=Phase.AWAITING_APPROVAL,
            weights={control: 1.0},
            stage_index=-1,
            since=state.clock,
            reason=f"{command.artifact} waits for approval",
        )
    return _enter_stage(prepared, 0, policy, reason=f"canary {command.artifact} started")


def _dominant(arm_traffic: Mapping[str, int]) -> str | None:
    return max(arm_traffic, key=lambda arm: arm_traffic[arm]) if arm_traffic else None


def _enter_stage(state: RolloutState, index: int, policy: RolloutPolicy, *, reason: str) -> RolloutState:
    share = policy.stages[index]
    assert state.canary_version is not None and state.control_version is not None
    if share >= 1.0:
        return _promoted(state, index, reason)
    # The stage's data start at the frontier (the end of the newest closed window), not
    # at the newest event time: a window dated ahead of the data must not push the
    # stage's start past the traffic still arriving.
    since = state.frontier or state.clock
    return msgspec.structs.replace(
        state,
        phase=Phase.CANARY,
        stages=list(policy.stages),
        stage_index=index,
        weights={state.control_version: round(1.0 - share, 6), state.canary_version: share},
        since=since,
        gates=[],
        promotion_blocked_by=[],
        reason=reason,
        covered_seconds=0.0,
        active_seconds=0.0,
        timeout_from=since,
        alpha_share=policy.alpha_share(index),
        fixed_looks_done=[],
        stall=None,
        canary_samples=0,
        control_samples=0,
        blockers=[],
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
        state,
        phase=Phase.ROLLED_BACK,
        weights=weights,
        gates=evidence,
        since=state.clock,
        reason=reason,
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


def _closed(windows: Sequence[StageWindow], ws: int) -> list[StageWindow]:
    """The look's closed windows, oldest first.

    A window has closed when the window after it on the grid (starting within one window
    length of its end) has data, or when at least two windows with data start after its
    end (traffic resumed after a gap). One window dated ahead of the data — a skewed
    clock — therefore never closes the still-open newest window, nor is itself closed.
    """
    windows = sorted(windows, key=lambda w: w.start)
    starts = [w.start for w in windows]
    closed = []
    for w in windows:
        end = w.start + ws
        later = bisect.bisect_left(starts, end)
        if later < len(windows) and (starts[later] < end + ws or len(windows) - later >= 2):
            closed.append(w)
    return closed


def _union_seconds(windows: Sequence[StageWindow], window_seconds: int) -> float:
    """Length of the union of the windows' intervals (overlapping windows count once)."""
    total, reach = 0.0, -float("inf")
    for w in sorted(windows, key=lambda w: w.start):
        start, end = max(float(w.start), reach), float(w.start + window_seconds)
        if end > start:
            total += end - start
        reach = max(reach, end)
    return total


def coverage(state: RolloutState, look: Look) -> tuple[float, float, float]:
    """``(frontier, covered_seconds, active_seconds)`` of the stage at this look.

    ``frontier``: end of the newest closed window (never moves back). ``covered``: the
    union of the closed windows of the stage with requests in both arms — what ripens a
    stage (gaps without data count nothing, overlapping windows count once, the newest
    window counts only once a later one has data). ``active``: the union of closed windows
    with requests in either arm since the timeout began counting — what times a stage out.
    """
    ws = look.window_seconds
    windows = _dated(look.windows)
    closed = _closed(windows, ws)
    credible = _closed(_credible(windows), ws)
    frontier = max(state.frontier, max(w.start for w in credible) + ws) if credible else state.frontier
    both = _union_seconds([w for w in credible if w.canary.count > 0 and w.control.count > 0], ws)
    active = _union_seconds(
        [w for w in closed if w.start >= state.timeout_from and (w.canary.count > 0 or w.control.count > 0)], ws
    )
    return frontier, both, active


def _credible(windows: Sequence[StageWindow]) -> list[StageWindow]:
    """The windows that may count toward a stage's time (see ``CREDIBLE_TRAFFIC_SHARE``).

    A window needs at least ``CREDIBLE_TRAFFIC_SHARE`` of the *typical*
    window's control traffic: the traffic-weighted median (half the control's requests
    are in windows at least that busy). A few windows dated ahead of the data with a
    handful of requests (a skewed clock, a stray producer) would otherwise close one
    another and count as minutes of the stage: 16 of them ripened a stage after 3 real
    minutes and moved the next stage's start a day ahead (outside tester, 2026-12-03).
    The weighted median ignores them, and a single spike of traffic is not the reference
    unless it holds half the stage's requests (against the busiest window, one 9× minute
    made every other window too thin and paused the rollout). The control carries most of
    the traffic and changes slowly (a ±95% daily swing moves it by a quarter an hour at
    most), so real windows are never near the cut.
    """
    if not windows:
        return []
    counts = sorted((w.control.count for w in windows), reverse=True)
    half, seen, typical = sum(counts) / 2.0, 0, 0
    for typical in counts:
        seen += typical
        if seen >= half:
            break
    # The newest window is still filling (a look comes every batch): it never counts
    # itself, it only closes the one before, so its traffic so far is not held against it.
    newest = max(w.start for w in windows)
    return [w for w in windows if w.start == newest or w.control.count >= CREDIBLE_TRAFFIC_SHARE * typical]


def _dated(windows: Sequence[StageWindow]) -> list[StageWindow]:
    """The windows with a usable start (a finite number): an infinite, absurd-typed or
    missing start is no point in time, and would move the frontier to it."""
    return [w for w in windows if isinstance(w.start, (int, float)) and math.isfinite(w.start)]


def on_look(
    state: RolloutState,
    look: Look,
    *,
    evaluate: Evaluate,
    wall: float,
    policy: RolloutPolicy = RolloutPolicy(),
) -> Decision:
    """Evaluate the gates on the stage's data so far; roll back, advance, pause, or hold.

    Called at every look (every new snapshot of the router's windows). A failing gate
    rolls back at once. A stage advances only when it is ripe by data — at least
    ``min_stage_seconds`` covered by closed windows with traffic in both arms and
    ``min_samples`` requests per arm — with no gate blocking (insufficient or missing
    data, a gate holding on building evidence, an SLO breached), so missing or stale
    metrics never promote. A stage still undecided after ``policy.timeout_seconds`` of
    traffic pauses with every reason it could not advance.

    ``changed`` is set when something an observer must see happened (phase, stage,
    rollback, pause) or a window closed (the published evidence refreshes once per
    window, not at every look); only then is the revision bumped.
    """
    if state.phase not in ACTIVE:
        return Decision(state, False)
    frontier, covered, active = coverage(state, look)
    window_closed = frontier > state.frontier
    share = state.alpha_share if state.alpha_share is not None else policy.alpha_share(state.stage_index)
    state = msgspec.structs.replace(
        state,
        clock=max(state.clock, look.clock),
        frontier=frontier,
        covered_seconds=covered,
        active_seconds=active,
        alpha_share=share,
    )
    ripe = policy.ripe(covered, look.canary.count, look.control.count)
    # Each gate's one fixed-horizon look of the stage: at the first look ripe by data at which
    # the gate can test (paused or not). Its moment is set by traffic coverage and counts,
    # never by the values tested; the state records it, so no restart or later look repeats it.
    pending = frozenset(ROLLBACK_GATES).difference(state.fixed_looks_done) if ripe else frozenset()
    verdict = evaluate(dataclasses.replace(look, fixed_looks=pending), share)
    made = [r.gate for r in verdict.results if r.fixed_look and r.gate in pending]
    if made:
        state = msgspec.structs.replace(state, fixed_looks_done=[*state.fixed_looks_done, *made])
    tripped = verdict.rollback
    if tripped is not None:
        reason = f"gate {tripped.gate} failed at stage {state.stage_percent:.0f}%"
        new_state, event = _roll_back(state, tripped, list(verdict.results), reason=reason, wall=wall)
        new_state = msgspec.structs.replace(new_state, revision=state.revision + 1)
        return Decision(new_state, True, msgspec.structs.replace(event, revision=new_state.revision))
    blockers = verdict.blockers()
    blocked_by = [r.gate for r in verdict.results if r.status is not GateStatus.PASS]
    blocked_by += [line.split(" ", 1)[0] for line in blockers if " holding:" in line or " not shown " in line]
    reasons = promotion_blockers(look, covered, blockers, policy)
    held = msgspec.structs.replace(
        state,
        gates=list(verdict.results),
        promotion_blocked_by=blocked_by,
        canary_samples=look.canary.count,
        control_samples=look.control.count,
        blockers=reasons if state.phase is Phase.CANARY else [_PAUSED_BLOCKER, *reasons],
    )
    if state.phase is Phase.CANARY and ripe and not blockers:
        advanced = _advance(
            held,
            policy,
            reason=f"stage {state.stage_percent:.0f}% passed every gate ({covered / 60:.0f} min covered by data)",
        )
        return Decision(msgspec.structs.replace(advanced, revision=state.revision + 1), True)
    timeout = policy.timeout_seconds
    if state.phase is Phase.CANARY and active >= timeout:
        stall = StallRecord(
            stage_percent=state.stage_percent,
            at=state.clock,
            wall=wall,
            timeout_seconds=timeout,
            covered_seconds=covered,
            reasons=reasons,
        )
        reason = (
            f"stage {state.stage_percent:.0f}% timed out after {active / 60:.0f} min of traffic without a "
            f"decision; paused: {reasons[0] if reasons else 'no reason recorded'}"
        )
        paused = msgspec.structs.replace(
            held,
            phase=Phase.PAUSED,
            reason=reason,
            stall=stall,
            blockers=[_PAUSED_BLOCKER, *reasons],
            revision=state.revision + 1,
        )
        return Decision(paused, True, stalled=stall)
    # The fixed look must be stored at once: a look that is not stored is made again.
    changed = window_closed or not state.gates or bool(made)
    return Decision(msgspec.structs.replace(held, revision=state.revision + (1 if changed else 0)), changed)


_PAUSED_BLOCKER = "the rollout is paused (resume to let it advance; promote --override --reason to advance now)"


def router_known(state: RolloutState | None, *, has_windows: bool) -> bool:
    """Whether a router exists for this cluster: it has windows of traffic, or a rollout state
    that ever did something (a phase other than idle, an artifact, a verified version, a stop).

    A state holding nothing but a refused command (commands for unknown routers are
    answered, and that answer is stored) does not make a router known. Pure.

    Example:
        >>> router_known(None, has_windows=False), router_known(RolloutState(router_id="r"), has_windows=True)
        (False, True)
    """
    if has_windows:
        return True
    if state is None:
        return False
    return bool(
        state.phase is not Phase.IDLE
        or state.control_version
        or state.canary_version
        or state.last_good_version
        or state.verified
        or state.stopped
    )


def _unpaused(blockers: Sequence[str]) -> list[str]:
    return [line for line in blockers if line != _PAUSED_BLOCKER]


def promotion_blockers(look: Look, covered: float, gate_blockers: Sequence[str], policy: RolloutPolicy) -> list[str]:
    """Everything that keeps the stage from advancing at this look, in words (empty: it advances).

    In order: the stage's time covered by data in both arms, the requests per arm, then
    the gates' blockers (``GateVerdict.blockers``: gates not passing, SLOs, holds).
    Pure; the controller stores it in ``RolloutState.blockers`` and a stall's reasons.
    """
    reasons = list(gate_blockers)
    if look.canary.count < policy.min_samples or look.control.count < policy.min_samples:
        reasons.insert(
            0,
            f"too few requests: canary {look.canary.count:,}, control {look.control.count:,} "
            f"(need {policy.min_samples:,} each)",
        )
    if covered < policy.min_stage_seconds:
        reasons.insert(0, _coverage_reason(look, covered, policy))
    return reasons


def _coverage_reason(look: Look, covered: float, policy: RolloutPolicy) -> str:
    windows = _dated(look.windows)
    closed = _closed(windows, look.window_seconds)
    canary_windows = sum(1 for w in closed if w.canary.count > 0)
    control_windows = sum(1 for w in closed if w.control.count > 0)
    thin = len(closed) - len(_closed(_credible(windows), look.window_seconds))
    return (
        f"only {covered / 60:.0f} of {policy.min_stage_seconds / 60:.0f} min covered by data in both arms "
        f"(canary traffic in {canary_windows} of {len(closed)} closed windows, control in {control_windows}"
        + (f"; {thin} with too little traffic to count" if thin > 0 else "")
        + ")"
    )
