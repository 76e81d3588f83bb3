"""`bifrost-opt rollout …`: operator commands and status."""

from __future__ import annotations

import argparse
import asyncio
import time
import urllib.error
import urllib.parse
import urllib.request

import msgspec
import orjson

from bifrost.cli.errors import CliError, NotAuthorized, Unavailable, UsageError
from bifrost.cli.options import bounded_float, router_id
from bifrost.cli.text import utc
from bifrost.cli.worker_http import error_text, open_worker, unauthorized
from bifrost.client.rollout import CommandUnauthorized, new_command, send_command, wait_for_outcome
from bifrost.config import Settings
from bifrost.schemas.command_signing import CommandSigner
from bifrost.schemas.rollout import CommandKind, GateResult, RolloutState

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


class UnknownRouter(CliError):
    """No traffic and no rollout state exist for the router (exit 1, never a made-up ``idle``)."""


def add_rollout_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rollout = sub.add_parser(
        "rollout", help="progressive canary rollouts: start, status, promote, pause, resume, approve, rollback, stop"
    )
    # --router is accepted before or after the action (`rollout --router r status` = `rollout status --router r`).
    rollout.add_argument(
        "--router", type=router_id, default=argparse.SUPPRESS, help="router id (also accepted after ACTION)"
    )
    actions = rollout.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    status = actions.add_parser("status", help="the router's rollout state")
    status.add_argument("--router", type=router_id, default=argparse.SUPPRESS, help="router id (required)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--worker-url", help="worker HTTP base URL (default BIFROST_WORKER_URL)")
    helps = {
        "start": "start a canary of --artifact (control: the router's current artifact, or --control)",
        "promote": "advance the canary to the next stage now (every gate passing; else --override --reason)",
        "pause": "hold the current stage (gates keep protecting)",
        "resume": "continue a paused rollout, or allow rollouts again after an emergency stop",
        "approve": "let a rollout that waits for approval start",
        "rollback": "force a rollback (needs --reason)",
        "stop": "emergency stop: all traffic to the last good artifact; no start until an operator resumes",
    }
    for name, text in helps.items():
        action = actions.add_parser(name, help=text)
        action.add_argument("--router", type=router_id, default=argparse.SUPPRESS, help="router id (required)")
        action.add_argument(
            "--artifact", required=name == "start", help="artifact version (for start; a guard otherwise)"
        )
        if name == "start":
            action.add_argument("--control", help="the control artifact, if the router has no recorded one")
        if name == "promote":
            action.add_argument(
                "--override",
                action="store_true",
                help="promote past failing or insufficient gates (operator keys only; needs --reason; recorded)",
            )
        action.add_argument("--reason", required=name == "rollback")
        action.add_argument("--json", action="store_true", help="print the answering state as JSON")
        action.add_argument(
            "--wait",
            type=bounded_float("--wait", 0.0, 3600.0),
            default=20.0,
            help="seconds to wait for the controller's answer (0: send and do not wait)",
        )


def run_rollout(args: argparse.Namespace, settings: Settings) -> int:
    if not getattr(args, "router", None):
        raise UsageError(f"rollout {args.action}: the following arguments are required: --router")
    if args.action == "status":
        shown = _fetch_state(args.worker_url or settings.worker_url, args.router, settings.web_token_value())
        print(
            orjson.dumps(msgspec.to_builtins(shown), option=orjson.OPT_INDENT_2).decode()
            if args.json
            else render_state(shown)
        )
        return 0
    override = bool(getattr(args, "override", False))
    if override and not (args.reason or "").strip():
        raise UsageError("--override needs --reason TEXT (it is recorded in rollout-state)")
    signer = operator_signer(settings)
    command = signer.sign(
        new_command(
            args.router,
            ACTIONS[args.action],
            artifact=args.artifact,
            control=getattr(args, "control", None),
            reason=args.reason,
            override=override,
        )
    )
    if args.wait == 0:
        partition, offset = asyncio.run(
            send_command(settings.kafka_bootstrap, settings.topics, command, security=settings.kafka_security)
        )
        if args.json:
            print(
                orjson.dumps(
                    {"command_id": command.command_id, "partition": partition, "offset": offset, "waited": False}
                ).decode()
            )
        else:
            print(
                f"{args.action}: command {command.command_id} sent (partition {partition}, offset {offset}); not "
                f"waiting for the controller's answer (`rollout status --router {args.router}` shows it)"
            )
        return 0
    try:
        state = asyncio.run(
            wait_for_outcome(
                settings.kafka_bootstrap, settings.topics, command, timeout=args.wait, security=settings.kafka_security
            )
        )
    except CommandUnauthorized as refusal:
        raise NotAuthorized(
            f"unauthorized: {refusal.letter.error}{_hint(refusal.letter.error, signer, settings)}"
        ) from None
    if state is None:
        raise Unavailable(
            f"command {command.command_id} sent, but no controller answered within {args.wait:.0f} s "
            "(is a worker running with the same BIFROST_TOPIC_PREFIX?)"
        )
    outcome = state.last_command
    assert outcome is not None
    if args.json:
        print(orjson.dumps(msgspec.to_builtins(state), option=orjson.OPT_INDENT_2).decode())
    if not outcome.accepted:
        raise CommandRefused(f"refused: {outcome.reason}")
    if not args.json:
        print(f"{args.action}: accepted — {outcome.reason}")
        print(render_state(state))
    return 0


def operator_signer(settings: Settings, what: str = "rollout commands") -> CommandSigner:
    """The CLI's signing key (``BIFROST_OPERATOR_KEY_FILE`` + ``BIFROST_OPERATOR_KEY_NAME``), or how to get one.

    ``what`` names the commands that need it in the message (rollout commands, applying a recommendation).
    """
    from bifrost.router.keys import SigningKeyError
    from bifrost.streams.rollout.auth import load_signer

    if not settings.operator_key_file:
        raise UsageError(
            f"{what} are signed, and no operator key is configured. Create one:\n"
            "  bifrost-opt keys create --name NAME --role operator --out var/keys\n"
            "add the line it prints to the workers' BIFROST_COMMAND_KEYS (or BIFROST_COMMAND_KEYS_FILE), then\n"
            "  export BIFROST_OPERATOR_KEY_FILE=var/keys/NAME.pem BIFROST_OPERATOR_KEY_NAME=NAME"
        )
    try:
        return load_signer(settings.operator_key_file, settings.operator_key_name, what="BIFROST_OPERATOR_KEY_NAME")
    except SigningKeyError as exc:
        raise UsageError(f"operator key (BIFROST_OPERATOR_KEY_FILE): {exc}") from None


def _hint(error: str, signer: CommandSigner, settings: Settings) -> str:
    if error.startswith(("unknown_key", "bad_signature")):
        return (
            f"\n(the workers must list key {signer.name!r} with this key file's public key: "
            f"`bifrost-opt keys export-public --key {settings.operator_key_file} --name "
            f"{signer.name}` prints the line "
            "for BIFROST_COMMAND_KEYS)"
        )
    if error.startswith("insufficient_role"):
        return f"\n(key {signer.name!r} must have role operator on the workers' allow-list)"
    if error.startswith("stale"):
        return (
            f"\n(this machine's clock says {time.time():.0f}; the workers' clocks must agree "
            "within BIFROST_COMMAND_MAX_AGE_SECONDS)"
        )
    return ""


def _fetch_state(worker_url: str, router: str, token: str = "") -> RolloutState:
    url = f"{worker_url.rstrip('/')}/v1/routers/{urllib.parse.quote(router, safe='')}/rollout"
    try:
        with open_worker(url, token, timeout=10) as response:
            return msgspec.json.decode(response.read(), type=RolloutState)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise unauthorized(worker_url, token) from None
        if exc.code == 404:
            raise UnknownRouter(error_text(exc.read()) or f"unknown router {router!r}") from None
        raise Unavailable(f"worker at {worker_url} answered {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise Unavailable(f"cannot reach a worker at {worker_url} ({getattr(exc, 'reason', exc)})") from None


def render_state(state: RolloutState) -> str:
    """A short human summary of a rollout state."""
    weights = ", ".join(f"{v} {w:.0%}" for v, w in state.weights.items()) or "-"
    stage = f"{state.stage_percent:.0f}%" if state.stage_percent is not None else "-"
    lines = [
        f"router {state.router_id}: {state.phase.value}  stage {stage}  weights {weights}",
        f"  control {state.control_version or '-'}  canary {state.canary_version or '-'}  "
        f"last good {state.last_good_version or '-'}",
    ]
    if state.reason:
        lines.append(f"  {state.reason}")
    active = state.phase.value in ("canary", "paused") and state.stage_percent is not None
    if state.since > 0 and state.clock >= state.since:
        what = f"stage {stage}" if active else state.phase.value
        lines.append(
            f"  {what} for {_minutes(state.clock - state.since)} of event time (since {utc(state.since)}, "
            f"newest data {utc(state.clock)})"
        )
    if active:
        share = f", spends {state.alpha_share:.0%} of the rollout's false-rollback budget" if state.alpha_share else ""
        lines.append(f"  stage covered by data in both arms: {state.covered_seconds / 60:.0f} min{share}")
        lines.append(f"  requests in the stage: canary {state.canary_samples:,}, control {state.control_samples:,}")
        if state.blockers:
            lines.append("  promotion blocked by:")
            lines.extend(f"    - {reason}" for reason in state.blockers)
        elif state.gates:
            lines.append("  nothing blocks promotion: the stage advances at the next look")
        else:
            lines.append("  promotion blocked by: no look at this stage's data yet")
    if state.stall is not None:
        stall = state.stall
        lines.append(
            f"  ALERT stage {stall.stage_percent or 0:.0f}% timed out after "
            f"{stall.timeout_seconds / 60:.0f} min of "
            f"traffic ({stall.covered_seconds / 60:.0f} min covered by data in both arms); paused because:"
        )
        lines.extend(f"    - {reason}" for reason in stall.reasons)
        lines.append("    (resume to keep waiting, promote --override --reason to advance, rollback to end it)")
    if state.stopped is not None:
        lines.append(f"  stopped by {state.stopped.by} at {utc(state.stopped.at)}; an operator must resume")
    if state.overrides:
        last = state.overrides[-1]
        failing = ", ".join(f"{g.gate} {g.status.value}" for g in last.failing_gates) or (
            "none" if last.gates_evaluated else "no gate evaluated yet"
        )
        lines.append(
            f"  last override: {last.by} at {utc(last.at)}, {last.canary_version} "
            f"{last.from_stage_percent or 0:.0f}% → {last.to_stage_percent or 0:.0f}%, not "
            f"passing: {failing}; "
            f"reason: {last.reason}"
        )
    for gate in state.gates:
        figures = (
            ""
            if gate.canary is None
            else f" canary {gate.canary:.4g} vs control "
            f"{gate.control if gate.control is None else f'{gate.control:.4g}'}"
        )
        extra = _test_figures(gate)
        if gate.evidence is not None:
            extra += f"  evidence {gate.evidence:.0%}"
        if gate.dispersion is not None and gate.dispersion > 1.0:
            extra += f"  dispersion {gate.dispersion:.3g}"
        if gate.gate in state.promotion_blocked_by and gate.status.value == "pass":
            extra += "  (holding promotion)"
        lines.append(f"  gate {gate.gate:14} {gate.status.value:12}{figures}{extra}")
        if gate.note:
            lines.append(f"       {gate.note}")
    return "\n".join(lines)


def _test_figures(gate: GateResult) -> str:
    """A gate's test in words: its statistic against its bound, α and the samples it used."""
    parts = []
    if gate.statistic is not None and gate.bound is not None:
        if gate.gate == "slo_p95":
            parts.append(f"canary P95 {gate.statistic:.4g} ms vs SLO ≤ {gate.bound:.4g}")
        elif gate.gate == "slo_win_rate":
            parts.append(f"canary win rate {gate.statistic:.4g} vs SLO ≥ {gate.bound:.4g}")
        else:  # rollback gates: the always-valid lower bound of the relative degradation vs the margin
            parts.append(f"statistic {gate.statistic:+.4g} vs bound {gate.bound:.4g} (fails above)")
    elif gate.bound is not None and gate.status.value == "insufficient":
        parts.append(f"no statistic yet (bound {gate.bound:.4g})")
    if gate.upper_limit is not None:  # what promotion needs shown: the degradation's upper bound below the limit
        upper = "none yet" if gate.upper is None else f"{gate.upper:+.3g}"
        parts.append(f"upper {upper} vs limit {gate.upper_limit:.3g} (promotes below)")
    if gate.alpha is not None:
        parts.append(f"α {gate.alpha:.2g}")
    if gate.canary_samples or gate.control_samples:
        parts.append(f"n {gate.canary_samples:,}/{gate.control_samples:,}")
    return "".join(f"  {part}" for part in parts)


def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 3 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
