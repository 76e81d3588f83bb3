"""The router loop agent: per-router windows, gate evaluation, rollout commands.

One agent consumes ``window-partials`` and ``rollout-commands``; both are keyed by
router id and co-partitioned, so exactly one worker holds a router's windows and acts
as its controller, and its state table is written to that router's partition.

Commands are authenticated by the pure controller (``handle_command``) against the
allow-list ``BIFROST_COMMAND_KEYS(_FILE)``; a refused one goes to the DLQ with reason
``unauthorized`` and never touches the router's state. Undecodable commands go to the
DLQ as ``schema``.

The controller looks at a router in a rollout on every stored snapshot of its windows —
one per ingest batch and input partition — not only when a window closes
(:func:`~bifrost.streams.rollout.controller.on_look`; the gates' tests are always-valid,
so extra looks cost no false rollbacks): a gross regression rolls back as soon as the
batch that proves it is stored. The state is published when something happens (rollback,
stage change, timeout) and once per closed window (fresh evidence).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import faust
import msgspec

from bifrost.config import Settings
from bifrost.router.keys import key_id
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import RejectReason, dead_letter
from bifrost.schemas.rollout import Phase, RolloutCommand, RolloutState
from bifrost.streams import observability as obs
from bifrost.streams.aggregates.partial import WindowPartial
from bifrost.streams.metrics.rollout import RolloutBoard
from bifrost.streams.rollout.auth import Keyring, load_keyring
from bifrost.streams.rollout.controller import Decision, Look, RolloutPolicy, handle_command, on_look
from bifrost.streams.rollout.look import LookBuilder
from bifrost.streams.rollup.store import RouterWindows
from bifrost.streams.triggers.agent import TriggerEmitter

if TYPE_CHECKING:
    from bifrost.streams.rollout.gates import GateConfig, GateReport

log = logging.getLogger("bifrost.rollout")
_state_decoder = msgspec.json.Decoder(RolloutState)
_command_decoder = msgspec.json.Decoder(RolloutCommand)
_partial_decoder = msgspec.json.Decoder(WindowPartial)

T = TypeVar("T")

#: When a command arrives, the arms that served the router in this many seconds before its
#: newest window are its live ones (``apply_command``'s ``arm_traffic``: a known router, and
#: its current artifact when none is recorded yet).
RECENT_TRAFFIC_SECONDS = 900


def decode_or_none(decoder: msgspec.json.Decoder[T], raw: object) -> tuple[T | None, str]:
    """Decode one record value, or say why it cannot be: ``(value, "")`` or ``(None, error)``.

    A record on ``window-partials`` or ``rollout-commands`` that is garbage (a tombstone,
    malformed or deeply nested JSON, the wrong shape) is skipped with a log line; it must
    not stop the router loop, which would stop every router's rollout on this worker.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return None, f"value is {type(raw).__name__}, not bytes"
    try:
        return decoder.decode(raw), ""
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        return None, str(exc)[:500]
    except RecursionError:
        return None, "JSON nests too deeply"
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 — e.g. an error raised by a struct's __post_init__
        return None, f"{type(exc).__name__}: {exc}"[:500]


class RolloutStates:
    """Controller state per router, over a Faust table of encoded :class:`RolloutState`."""

    def __init__(self, table: faust.Table[str, bytes]) -> None:
        self._table = table

    def get(self, router_id: str) -> RolloutState:
        raw = self._table.get(router_id)
        return RolloutState(router_id=router_id) if raw is None else _state_decoder.decode(raw)

    def lookup(self, router_id: str) -> RolloutState | None:
        """The stored state, or None when the controller never stored one for this router."""
        raw = self._table.get(router_id)
        return None if raw is None else _state_decoder.decode(raw)

    def put(self, state: RolloutState) -> bytes:
        raw = encode(state)
        self._table[state.router_id] = raw
        return raw

    def known(self) -> list[str]:
        return sorted(self._table.keys())


def gate_config(settings: Settings) -> GateConfig:
    """Gate thresholds from settings."""
    from bifrost.streams.rollout.gates import GateConfig

    return GateConfig(
        error_rate_increase=settings.gate_error_rate_increase,
        latency_p95_increase=settings.gate_latency_p95_increase,
        cost_per_task_increase=settings.gate_cost_increase,
        win_rate_decrease=settings.gate_win_rate_decrease,
        alpha=settings.gate_alpha,
        min_samples=settings.rollout_min_samples,
        slo_p95_ms=settings.slo_p95_ms,
        slo_min_win_rate=settings.slo_min_win_rate,
    )


def rollout_policy(settings: Settings) -> RolloutPolicy:
    """Stages and minimums from settings."""
    return RolloutPolicy(
        stages=settings.stages,
        min_stage_seconds=settings.rollout_min_stage_seconds,
        min_samples=settings.rollout_min_samples,
        require_approval=settings.rollout_require_approval,
        stage_timeout_seconds=settings.rollout_stage_timeout_seconds or None,
    )


def command_keyring(settings: Settings) -> Keyring:
    """The allow-list from settings, logged by name, role and fingerprint (a bad entry raises SettingsError)."""
    keyring = load_keyring(settings.command_keys, settings.command_keys_file)
    if not len(keyring):
        log.warning(
            "event=rollout.no_command_keys note=%r",
            "BIFROST_COMMAND_KEYS is empty: every rollout command will be refused (unknown_key)",
        )
    for key in keyring:
        log.info("event=rollout.command_key name=%s role=%s key=%s", key.name, key.role.value, key_id(key.public_key))
    return keyring


def register_router_loop(
    app: faust.App,
    settings: Settings,
    *,
    loop_topic: faust.TopicT,
    state_topic: faust.TopicT,
    rollbacks_topic: faust.TopicT,
    windows: RouterWindows,
    states: RolloutStates,
    triggers: TriggerEmitter,
    board: RolloutBoard | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> None:
    """Attach the agent that keeps per-router windows and runs the controllers.

    ``on_progress(router_id)`` is called after each stored snapshot of a router this worker
    owns (the optimizer schedules its analyses from it).

    ``board`` receives every state a controller here looks at or publishes (the rollout
    gauges of ``/metrics``); it is cleared when partitions are revoked.
    """
    rollout_board = board if board is not None else RolloutBoard(settings.metrics_max_routers)
    policy = rollout_policy(settings)
    keyring = command_keyring(settings)
    partials_name = settings.topics.window_partials
    dlq_topic = app.topic(
        settings.topics.dlq, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )

    from bifrost.streams.rollout.gates import evaluate_gates

    config = gate_config(settings)
    looks = LookBuilder(windows, window_seconds=settings.window_seconds)

    def evaluate(look: Look, share: float) -> GateReport:
        return evaluate_gates(
            look.canary,
            look.control,
            config,
            windows=look.windows,
            history=look.history,
            alpha_share=share,
            fixed_looks=look.fixed_looks,
        )

    # mode types handlers with mypy_extensions' NamedArg, which no def matches under mypy 2
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def reset_on_assign(sender: object, assigned: set[object], **_: object) -> None:
        windows.invalidate()
        looks.invalidate()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # as above
    async def reset_on_revoke(sender: object, revoked: set[object], **_: object) -> None:
        windows.invalidate()
        looks.invalidate()
        rollout_board.clear()  # routers whose controller stays here come back at their next look

    async def publish(decision: Decision) -> None:
        if not decision.changed:
            return
        raw = states.put(decision.state)
        rollout_board.update(decision.state)
        await state_topic.send(key=decision.state.router_id, value=raw)
        if decision.rollback is not None:
            await rollbacks_topic.send(key=decision.state.router_id, value=encode(decision.rollback))
            obs.ROLLBACKS.labels(rollout_board.label(decision.rollback.router_id), decision.rollback.gate).inc()
            log.warning(
                "event=rollout.rollback router=%s canary=%s gate=%s stage=%s reason=%r",
                decision.rollback.router_id,
                decision.rollback.canary_version,
                decision.rollback.gate,
                decision.rollback.stage_percent,
                decision.rollback.reason,
            )

    async def on_partial(raw: bytes) -> None:
        # Decoded here only to vet the record: ``windows.store`` decodes it again (one
        # small snapshot per batch and router, so the second decode is cheap).
        _, error = decode_or_none(_partial_decoder, raw)
        if error:
            log.warning("event=rollout.partial.invalid error=%r", error)
            return
        stored = windows.store(raw)
        router = stored.partial.router_id
        if not stored.stored:
            return  # a re-delivered or older snapshot: nothing new to look at
        # A lagging partition catching up settles hours without closing a window.
        await triggers.on_progress(windows, router)
        if on_progress is not None:
            on_progress(router)
        state = states.get(router)
        rollout_board.update(state)
        if state.phase not in (Phase.CANARY, Phase.PAUSED):
            return
        look = looks.look(state)
        if look is None:
            return
        decision = on_look(state, look, evaluate=evaluate, wall=time.time(), policy=policy)
        if decision.stalled is not None:
            stall = decision.stalled
            log.warning(
                "event=rollout.stage_timeout router=%s canary=%s stage=%s covered_s=%.0f reasons=%r",
                router,
                state.canary_version,
                stall.stage_percent,
                stall.covered_seconds,
                stall.reasons,
            )
        await publish(decision)

    async def dead_letter_command(message: faust.types.Message, reason: RejectReason, error: str) -> None:
        letter = dead_letter(message, reason, error, time.time(), max_payload_bytes=settings.dlq_max_payload_bytes)
        await dlq_topic.send(key=message.topic.encode(), value=encode(letter))
        obs.REJECTED.labels(message.topic, reason.value).inc()

    async def on_command(message: faust.types.Message) -> None:
        decoded = decode_or_none(_command_decoder, message.value)  # (mypy infers T wrongly when unpacked at once)
        command, error = decoded
        if command is None:
            log.warning("event=rollout.command.invalid error=%r", error)
            obs.COMMANDS.labels("unknown", "invalid").inc()
            await dead_letter_command(message, RejectReason.SCHEMA, f"not a rollout command: {error}")
            return
        state = states.get(command.router_id)
        newest_end = windows.clock(command.router_id)
        if newest_end is not None and newest_end - settings.window_seconds > state.clock:
            state = msgspec.structs.replace(state, clock=float(newest_end - settings.window_seconds))
        frontier = windows.frontier(command.router_id)
        if frontier is not None and frontier > state.frontier:
            # A stage started now begins at the newest closed window's end (see on_look).
            state = msgspec.structs.replace(state, frontier=float(frontier))
        recent = (
            windows.merged(command.router_id, newest_end - RECENT_TRAFFIC_SECONDS, newest_end) if newest_end else None
        )
        traffic = {arm: stats.count for arm, stats in recent.arms.items()} if recent else {}
        decision = handle_command(
            state,
            command,
            keyring=keyring,
            arm_traffic=traffic,
            wall=time.time(),
            max_age=settings.command_max_age_seconds,
            policy=policy,
        )
        if decision.unauthorized is not None:
            refusal = decision.unauthorized
            obs.COMMANDS.labels(command.kind.value, "unauthorized").inc()
            log.warning(
                "event=rollout.command.unauthorized router=%s kind=%s command_id=%s key=%r check=%s error=%r",
                command.router_id,
                command.kind.value,
                command.command_id,
                command.key_id[:64],
                refusal.check.value,
                refusal.message,
            )
            await dead_letter_command(message, RejectReason.UNAUTHORIZED, f"{refusal}")
            return
        outcome = decision.state.last_command
        if outcome is not None:  # which record this answers: clients match it (a re-sent command is another record)
            outcome = msgspec.structs.replace(outcome, offset=message.offset)
            decision = dataclasses.replace(
                decision, state=msgspec.structs.replace(decision.state, last_command=outcome)
            )
        obs.COMMANDS.labels(command.kind.value, "accepted" if outcome and outcome.accepted else "refused").inc()
        log.info(
            "event=rollout.command router=%s kind=%s by=%s accepted=%s reason=%r",
            command.router_id,
            command.kind.value,
            outcome.issued_by if outcome else "",
            outcome.accepted if outcome else None,
            outcome.reason if outcome else "",
        )
        if decision.override is not None:
            record = decision.override
            log.warning(
                "event=rollout.override router=%s canary=%s by=%s from_stage=%s to_stage=%s failing=%s evaluated=%s "
                "reason=%r",
                command.router_id,
                record.canary_version,
                record.by,
                record.from_stage_percent,
                record.to_stage_percent,
                ",".join(f"{g.gate}:{g.status.value}" for g in record.failing_gates) or "-",
                record.gates_evaluated,
                record.reason,
            )
        await publish(decision)

    # One event at a time: Faust writes table changes to the changelog partition of the
    # current event, which here is the router's partition. Volume is small (one partial
    # per batch, input partition and router; commands are rare).
    @app.agent(loop_topic, name="router-loop")
    async def router_loop(stream: faust.StreamT[bytes]) -> None:
        await state_topic.maybe_declare()
        await rollbacks_topic.maybe_declare()
        async for event in stream.events():
            message = event.message
            try:
                if message.topic == partials_name:
                    await on_partial(message.value)
                else:
                    await on_command(message)
            except MemoryError:
                raise
            except Exception:
                # Garbage is already skipped by decoding; this is the last line for a
                # record that decodes but breaks later (e.g. a partial whose sketch cannot
                # merge with the stored ones). An exception escaping here would end the
                # agent's actor and stall every router this worker owns.
                log.exception(
                    "event=rollout.record.failed topic=%s partition=%s offset=%s",
                    message.topic,
                    message.partition,
                    message.offset,
                )
