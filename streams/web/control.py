"""The dashboard's control actions: the same signed commands the CLI sends, from the worker.

A rollout action (pause, resume, promote, approve, rollback, stop) becomes a
:class:`RolloutCommand` signed with the worker's dashboard key
(``BIFROST_DASHBOARD_COMMAND_KEY_FILE``, an allow-listed *operator* key) and sent on
``rollout-commands``; the controller authenticates it exactly like a CLI command, and the
answer is the rollout state that reports its outcome (``wait_for_outcome``). Retrain
publishes a manual training trigger, as ``bifrost-opt retrain`` does.

Who may act is decided by the view before anything is sent: the bearer token
(``BIFROST_WEB_TOKEN``) in the ``Authorization`` header — never a cookie, so another site
cannot make a browser send it (no CORS is configured) — a JSON body, and, when the browser
says where the request comes from (``Origin``), this worker's own origin. Without a token
configured, actions are off. The dashboard never overrides gates (``promote`` only
advances when every gate passes) and never starts a canary (that needs an artifact choice:
the CLI or the artifact pipeline).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from bifrost.client.rollout import CommandUnauthorized, new_command, wait_for_outcome
from bifrost.config import Settings
from bifrost.schemas.codec import encode
from bifrost.schemas.command_signing import CommandSigner
from bifrost.schemas.rollout import CommandKind
from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
from bifrost.streams.rollout.auth import Keyring, Role, public_line, raw_public_base64
from bifrost.streams.web.views import BadDuration, parse_duration

S = TypeVar("S", bound=msgspec.Struct)

log = logging.getLogger("bifrost.dashboard")

ACTIONS: dict[str, CommandKind] = {
    "pause": CommandKind.PAUSE,
    "resume": CommandKind.RESUME,
    "promote": CommandKind.PROMOTE,
    "approve": CommandKind.APPROVE,
    "rollback": CommandKind.FORCE_ROLLBACK,
    "stop": CommandKind.EMERGENCY_STOP,
}
NEEDS_REASON = frozenset({"rollback", "stop"})
MAX_BODY_BYTES = 4096
REQUESTED_BY = "dashboard"


class BadAction(ValueError):
    """A control request the dashboard cannot send; the message says why."""


class ActionRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/routers/{router}/commands``."""

    action: str
    reason: str | None = None
    artifact: str | None = None  # a guard: must be the current canary


class RetrainRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/retrain``."""

    router: str | None = None
    since: str = "7d"
    reason: str = ""


def parse_action(body: bytes) -> ActionRequest:
    """A validated action request, or BadAction with the reason.

    Example:
        >>> parse_action(b'{"action": "rollback", "reason": "p95 regression"}').action
        'rollback'
    """
    request = _decode(body, ActionRequest)
    if request.action not in ACTIONS:
        raise BadAction(f"action {request.action[:40]!r} is not one of {', '.join(ACTIONS)}")
    reason = (request.reason or "").strip()
    if request.action in NEEDS_REASON and not reason:
        raise BadAction(f"{request.action} needs a reason (it is recorded with the command)")
    if len(reason) > 1000:
        raise BadAction("reason is longer than 1000 characters")
    if request.artifact is not None and not 1 <= len(request.artifact) <= 128:
        raise BadAction("artifact must be 1-128 characters")
    return msgspec.structs.replace(request, reason=reason or None)


def parse_retrain(body: bytes, *, now: float) -> TrainingTrigger:
    """The manual training trigger a retrain request asks for, or BadAction."""
    request = _decode(body or b"{}", RetrainRequest)
    try:
        window = parse_duration(request.since)
    except BadDuration as exc:
        raise BadAction(f"since: {exc}") from None
    if request.router is not None and not 1 <= len(request.router) <= 128:
        raise BadAction("router must be 1-128 characters")
    note = request.reason.strip()[:500] or "requested from the dashboard"
    return TrainingTrigger(
        trigger_id=f"manual-{uuid.uuid4().hex[:12]}",
        reason=TriggerReason.MANUAL,
        window_from=now - window,
        window_to=now,
        router_id=request.router,
        details={"note": note},
        requested_by=REQUESTED_BY,
        created_at=now,
    )


def _decode(body: bytes, kind: type[S]) -> S:
    if len(body) > MAX_BODY_BYTES:
        raise BadAction(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return msgspec.json.decode(body, type=kind)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadAction(f"the request body is not a valid {kind.__name__}: {str(exc)[:200]}") from None


class ControlStatus(msgspec.Struct, kw_only=True):
    """Whether the dashboard may act, and if not, why (shown on the page)."""

    actions_enabled: bool
    actions_reason: str
    retrain_enabled: bool
    retrain_reason: str
    key_name: str | None
    actions: list[str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """An HTTP status and the JSON payload of a control request."""

    status: int
    payload: dict[str, object]


def control_status(
    settings: Settings, token: str, signer: CommandSigner | None, signer_error: str, keyring: Keyring
) -> ControlStatus:
    """What the dashboard may do with these settings (pure)."""
    if not token:
        off = "control actions need a bearer token on the worker (BIFROST_WEB_TOKEN or BIFROST_WEB_TOKEN_FILE)"
        return ControlStatus(
            actions_enabled=False,
            actions_reason=off,
            retrain_enabled=False,
            retrain_reason=off,
            key_name=None,
            actions=[],
        )
    if signer is None:
        reason = signer_error or (
            "this worker holds no operator key for the dashboard "
            "(BIFROST_DASHBOARD_COMMAND_KEY_FILE); "
            "use `bifrost-opt rollout …` with an operator key"
        )
        return ControlStatus(
            actions_enabled=False,
            actions_reason=reason,
            retrain_enabled=True,
            retrain_reason="",
            key_name=None,
            actions=[],
        )
    listed = keyring.get(signer.name)
    line = public_line(signer.name, Role.OPERATOR, signer.key)
    same_key = listed is not None and raw_public_base64(listed.public_key) == raw_public_base64(signer.key)
    if listed is None or listed.role is not Role.OPERATOR or not same_key:
        reason = (
            f"the dashboard key {signer.name!r} is not on this worker's allow-list with role operator; "
            f"add `{line}` to BIFROST_COMMAND_KEYS of every worker"
        )
        return ControlStatus(
            actions_enabled=False,
            actions_reason=reason,
            retrain_enabled=True,
            retrain_reason="",
            key_name=signer.name,
            actions=[],
        )
    return ControlStatus(
        actions_enabled=True,
        actions_reason="",
        retrain_enabled=True,
        retrain_reason="",
        key_name=signer.name,
        actions=list(ACTIONS),
    )


def dashboard_signer(settings: Settings) -> tuple[CommandSigner | None, str]:
    """The dashboard's operator key, or (None, why not) — logged, never fatal (the page says why)."""
    from bifrost.router.keys import SigningKeyError, key_id
    from bifrost.streams.rollout.auth import load_signer

    if not settings.dashboard_command_key_file:
        return None, ""
    try:
        signer = load_signer(
            settings.dashboard_command_key_file,
            settings.dashboard_command_key_name,
            what="BIFROST_DASHBOARD_COMMAND_KEY_NAME",
        )
    except SigningKeyError as exc:
        log.error("event=dashboard.key.unusable error=%r", str(exc))
        return None, f"the dashboard key cannot be used (BIFROST_DASHBOARD_COMMAND_KEY_FILE): {exc}"
    log.info("event=dashboard.key name=%s key=%s", signer.name, key_id(signer.key))
    return signer, ""


class DashboardControl:
    """Sends the dashboard's actions; one at a time (each opens its own Kafka clients)."""

    def __init__(
        self, settings: Settings, status: ControlStatus, signer: CommandSigner | None, *, timeout: float = 20.0
    ) -> None:
        self._settings = settings
        self.status = status
        self._signer = signer
        self._timeout = timeout
        self._lock = asyncio.Lock()

    async def act(self, router_id: str, request: ActionRequest) -> Outcome:
        """Sign and send one rollout command; answer with the controller's outcome."""
        if not self.status.actions_enabled or self._signer is None:
            return Outcome(403, {"error": self.status.actions_reason})
        s = self._settings
        command = self._signer.sign(
            new_command(router_id, ACTIONS[request.action], artifact=request.artifact, reason=request.reason)
        )
        async with self._lock:
            log.info(
                "event=dashboard.command router=%s kind=%s command_id=%s",
                router_id,
                command.kind.value,
                command.command_id,
            )
            try:
                state = await wait_for_outcome(
                    s.kafka_bootstrap, s.topics, command, timeout=self._timeout, security=s.kafka_security
                )
            except CommandUnauthorized as refusal:
                return Outcome(
                    503,
                    {
                        "error": f"the controller refused the dashboard key: {refusal.letter.error}",
                        "command_id": command.command_id,
                    },
                )
        if state is None:
            return Outcome(
                504,
                {
                    "error": f"command {command.command_id} sent, but no controller answered within "
                    f"{self._timeout:.0f} s",
                    "command_id": command.command_id,
                },
            )
        outcome = state.last_command
        assert outcome is not None
        return Outcome(
            200 if outcome.accepted else 409,
            {
                "accepted": outcome.accepted,
                "reason": outcome.reason,
                "command_id": command.command_id,
                "issued_by": outcome.issued_by,
                "state": msgspec.to_builtins(state),
            },
        )

    async def retrain(self, trigger: TrainingTrigger) -> Outcome:
        """Publish a manual training trigger (acks=all), as ``bifrost-opt retrain`` does."""
        from bifrost.client import Publisher

        if not self.status.retrain_enabled:
            return Outcome(403, {"error": self.status.retrain_reason})
        s = self._settings
        async with self._lock:
            async with Publisher(s.kafka_bootstrap, s.topics, security=s.kafka_security) as publisher:
                await publisher.send_raw(s.topics.training_triggers, trigger.trigger_id.encode(), encode(trigger))
        log.info("event=dashboard.retrain trigger=%s router=%s", trigger.trigger_id, trigger.router_id)
        return Outcome(
            202,
            {
                "trigger_id": trigger.trigger_id,
                "topic": s.topics.training_triggers,
                "window_from": trigger.window_from,
                "window_to": trigger.window_to,
            },
        )
