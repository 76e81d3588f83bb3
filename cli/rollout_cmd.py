"""`bifrost-opt rollout …`: operator commands and status."""

from __future__ import annotations

import argparse
import asyncio
import urllib.error
import urllib.parse
import urllib.request

import msgspec
import orjson

from bifrost.cli.errors import CliError, Unavailable
from bifrost.cli.worker_http import open_worker, unauthorized
from bifrost.client.rollout import new_command, wait_for_outcome
from bifrost.config import Settings
from bifrost.schemas.rollout import CommandKind, RolloutState

ACTIONS: dict[str, CommandKind] = {
    "start": CommandKind.START,
    "promote": CommandKind.PROMOTE,
    "pause": CommandKind.PAUSE,
    "resume": CommandKind.RESUME,
    "approve": CommandKind.APPROVE,
    "rollback": CommandKind.FORCE_ROLLBACK,
    "stop": CommandKind.EMERGENCY_STOP,
}


class CommandRefused(CliError):
    """The controller refused the command; the message carries its reason."""


def add_rollout_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rollout = sub.add_parser("rollout", help="progressive canary rollouts: start, status, promote, pause, resume, approve, rollback, stop")
    actions = rollout.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    status = actions.add_parser("status", help="the router's rollout state")
    status.add_argument("--router", required=True)
    status.add_argument("--json", action="store_true")
    status.add_argument("--worker-url", help="worker HTTP base URL (default BIFROST_WORKER_URL)")
    helps = {
        "start": "start a canary of --artifact (control: the router's current artifact, or --control)",
        "promote": "advance the canary to the next stage now",
        "pause": "hold the current stage (gates keep protecting)",
        "resume": "continue a paused rollout",
        "approve": "let a rollout that waits for approval start",
        "rollback": "force a rollback (needs --reason)",
        "stop": "emergency stop: all traffic to the last good artifact, no automatic restart",
    }
    for name, text in helps.items():
        action = actions.add_parser(name, help=text)
        action.add_argument("--router", required=True)
        action.add_argument("--artifact", required=name == "start", help="artifact version (for start; a guard otherwise)")
        if name == "start":
            action.add_argument("--control", help="the control artifact, if the router has no recorded one")
        action.add_argument("--reason", required=name == "rollback")
        action.add_argument("--wait", type=float, default=20.0, help="seconds to wait for the controller's answer")


def run_rollout(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "status":
        state = _fetch_state(args.worker_url or settings.worker_url, args.router, settings.web_token_value())
        print(orjson.dumps(msgspec.to_builtins(state), option=orjson.OPT_INDENT_2).decode() if args.json else render_state(state))
        return 0
    command = new_command(
        args.router, ACTIONS[args.action], artifact=args.artifact, control=getattr(args, "control", None), reason=args.reason,
    )
    state = asyncio.run(wait_for_outcome(settings.kafka_bootstrap, settings.topics, command, timeout=args.wait))
    if state is None:
        raise Unavailable(
            f"command {command.command_id} sent, but no controller answered within {args.wait:.0f} s "
            "(is a worker running with the same BIFROST_TOPIC_PREFIX?)"
        )
    outcome = state.last_command
    assert outcome is not None
    if not outcome.accepted:
        raise CommandRefused(f"refused: {outcome.reason}")
    print(f"{args.action}: accepted — {outcome.reason}")
    print(render_state(state))
    return 0


def _fetch_state(worker_url: str, router: str, token: str = "") -> RolloutState:
    url = f"{worker_url.rstrip('/')}/v1/routers/{urllib.parse.quote(router, safe='')}/rollout"
    try:
        with open_worker(url, token, timeout=10) as response:
            return msgspec.json.decode(response.read(), type=RolloutState)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise unauthorized(worker_url, token) from None
        raise Unavailable(f"worker at {worker_url} answered {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise Unavailable(f"cannot reach a worker at {worker_url} ({getattr(exc, 'reason', exc)})") from None


def render_state(state: RolloutState) -> str:
    """A short human summary of a rollout state."""
    weights = ", ".join(f"{v} {w:.0%}" for v, w in state.weights.items()) or "-"
    stage = f"{state.stage_percent:.0f}%" if state.stage_percent is not None else "-"
    lines = [
        f"router {state.router_id}: {state.phase.value}  stage {stage}  weights {weights}",
        f"  control {state.control_version or '-'}  canary {state.canary_version or '-'}  last good {state.last_good_version or '-'}",
    ]
    if state.reason:
        lines.append(f"  {state.reason}")
    for gate in state.gates:
        figures = "" if gate.canary is None else f" canary {gate.canary:.4g} vs control {gate.control if gate.control is None else f'{gate.control:.4g}'}"
        lines.append(f"  gate {gate.gate:14} {gate.status.value:12}{figures}")
    return "\n".join(lines)
