"""Signed rollout commands: canonical bytes, the allow-list, every refusal, and what the controller records."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.schemas.codec import encode
from bifrost.schemas.command_signing import CommandSigner, canonical_bytes, sign_command, signature_valid
from bifrost.schemas.rollout import CommandKind, GateResult, GateStatus, Phase, RolloutCommand, RolloutState
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.auth import (
    Check,
    Keyring,
    KeyringError,
    Role,
    load_keyring,
    may_send,
    public_line,
    remember_nonce,
)
from bifrost.streams.rollout.controller import Decision, Look, RolloutPolicy, handle_command, on_look

if TYPE_CHECKING:  # the gate stand-ins are imported where used: importing a test module collects its tests
    from tests.streams.rollout.test_controller import Verdict

NOW = 1_700_000_000.0
MAX_AGE = 300.0
TRAFFIC = {"v1": 5000}
POLICY = RolloutPolicy(min_stage_seconds=900, min_samples=100)
SHA = "ab" * 32

OPERATOR = CommandSigner("alice", Ed25519PrivateKey.generate())
PIPELINE = CommandSigner("pipeline", Ed25519PrivateKey.generate())
STRANGER = CommandSigner("mallory", Ed25519PrivateKey.generate())
KEYRING = Keyring.parse(
    (f"{public_line('alice', 'operator', OPERATOR.key)},{public_line('pipeline', 'pipeline', PIPELINE.key)}", "test")
)


def cmd(kind: CommandKind, router: str = "r", **fields: Any) -> RolloutCommand:
    return RolloutCommand(
        command_id=f"c-{kind.value}-{fields.get('artifact', '')}", router_id=router, kind=kind, **fields
    )


def send(
    state: RolloutState,
    command: RolloutCommand,
    *,
    wall: float = NOW,
    traffic: dict[str, int] | None = None,
    policy: RolloutPolicy = POLICY,
) -> Decision:
    return handle_command(
        state,
        command,
        keyring=KEYRING,
        arm_traffic=TRAFFIC if traffic is None else traffic,
        wall=wall,
        max_age=MAX_AGE,
        policy=policy,
    )


def applied(state: RolloutState, command: RolloutCommand, **kw: Any) -> RolloutState:
    decision = send(state, command, **kw)
    assert decision.unauthorized is None, decision.unauthorized
    outcome = decision.state.last_command
    assert outcome is not None and outcome.accepted, outcome
    return decision.state


def verified(state: RolloutState, version: str, sha: str = SHA, *, wall: float = NOW) -> RolloutState:
    return applied(
        state, PIPELINE.sign(cmd(CommandKind.ARTIFACT_VERIFIED, artifact=version, sha256=sha), now=wall), wall=wall
    )


def canary(version: str = "v2") -> RolloutState:
    state = verified(RolloutState(router_id="r", clock=1000.0), version)
    return applied(state, PIPELINE.sign(cmd(CommandKind.START, artifact=version), now=NOW))


def healthy(look: Look, share: float) -> Verdict:
    from tests.streams.rollout.test_controller import Verdict

    return Verdict([GateResult(gate="latency_p95", status=GateStatus.PASS)])


def failing(look: Look, share: float) -> Verdict:
    from tests.streams.rollout.test_controller import Verdict

    return Verdict(
        [
            GateResult(gate="latency_p95", status=GateStatus.PASS),
            GateResult(gate="cost_per_task", status=GateStatus.INSUFFICIENT, canary_samples=40),
        ]
    )


def look(clock: float, canary: WindowStats, control: WindowStats) -> Look:
    """One look: the stage's single (open) window holds both arms' data."""
    from bifrost.streams.rollout.gates.dispersion import ArmFigures, StageWindow

    window = StageWindow(int(clock), ArmFigures.of(canary), ArmFigures.of(control))
    return Look(clock=clock, window_seconds=60, windows=[window], canary=canary, control=control)


# --- canonical bytes and signatures -------------------------------------------------------------------------------

SIGNED = OPERATOR.sign(cmd(CommandKind.START, artifact="v2", control="v1", reason="why"), now=NOW)
CHANGES: dict[str, object] = {
    "command_id": "other",
    "router_id": "r2",
    "kind": CommandKind.PROMOTE,
    "artifact": "v3",
    "control": "v0",
    "sha256": SHA,
    "reason": "because",
    "override": True,
    "key_id": "pipeline",
    "nonce": "0" * 32,
    "issued_at": NOW + 1,
}


def test_canonical_bytes_are_sorted_json_of_every_field_but_the_signature() -> None:
    data = canonical_bytes(SIGNED)
    assert data.startswith(b"bifrost-rollout-command/v1\n")
    body = msgspec.json.decode(data.split(b"\n", 1)[1])
    assert list(body) == sorted(body) and body["signature"] == ""
    assert set(body) == set(RolloutCommand.__struct_fields__)
    assert canonical_bytes(msgspec.structs.replace(SIGNED, signature="x")) == data


def test_every_field_is_covered_by_the_signature() -> None:
    assert set(CHANGES) | {"signature"} == set(RolloutCommand.__struct_fields__)  # a new field must be listed here
    assert signature_valid(SIGNED, OPERATOR.key.public_key())
    for name, value in CHANGES.items():
        assert not signature_valid(msgspec.structs.replace(SIGNED, **{name: value}), OPERATOR.key.public_key()), name


def test_a_command_survives_the_wire_and_unknown_fields_are_not_signed() -> None:
    raw = msgspec.json.decode(encode(SIGNED))
    raw["issued_by"] = "artifacts"  # the old, sender-chosen field: ignored
    decoded = msgspec.json.decode(msgspec.json.encode(raw), type=RolloutCommand)
    assert decoded == SIGNED and signature_valid(decoded, OPERATOR.key.public_key())
    assert not signature_valid(SIGNED, STRANGER.key.public_key())
    assert not signature_valid(
        msgspec.structs.replace(SIGNED, signature="bm90IGEgc2lnbmF0dXJl"), OPERATOR.key.public_key()
    )
    assert not signature_valid(msgspec.structs.replace(SIGNED, signature="%%%"), OPERATOR.key.public_key())


def test_nonces_are_fresh_128_bit_hex() -> None:
    a, b = (OPERATOR.sign(cmd(CommandKind.PAUSE)) for _ in range(2))
    assert a.nonce != b.nonce and len(a.nonce) == 32 and bytes.fromhex(a.nonce)
    assert a.key_id == "alice" and abs(a.issued_at - b.issued_at) < 5


# --- the allow-list -----------------------------------------------------------------------------------------------


def test_keyring_entries_by_comma_newline_and_file(tmp_path: Path) -> None:
    bob = Ed25519PrivateKey.generate()
    file = tmp_path / "keys.txt"
    file.write_text(f"# operators\n{public_line('bob', 'operator', bob)}\n\n")
    inline = f"{public_line('alice', 'operator', OPERATOR.key)}\n {public_line('ci', 'pipeline', PIPELINE.key)} ,"
    keyring = load_keyring(inline, str(file))
    assert {(k.name, k.role) for k in keyring} == {
        ("alice", Role.OPERATOR),
        ("ci", Role.PIPELINE),
        ("bob", Role.OPERATOR),
    }
    assert len(load_keyring("", "")) == 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("alice:operator", "not name:role:base64"),
        ("al ice:operator:" + "A" * 43 + "=", "key name"),
        ("alice:admin:" + "A" * 43 + "=", "roles are operator, pipeline"),
        ("alice:operator:bm90IGEga2V5", "32-byte Ed25519 public key"),
        ("alice:operator:" + "A" * 43 + "=,alice:pipeline:" + "A" * 43 + "=", "listed twice"),
    ],
)
def test_bad_allow_list_entries_are_settings_errors(text: str, fragment: str) -> None:
    with pytest.raises(KeyringError, match=fragment):
        load_keyring(text, "")


def test_an_unreadable_keys_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot be read"):
        load_keyring("", str(tmp_path / "missing.txt"))


def test_roles() -> None:
    assert all(may_send(Role.OPERATOR, kind) for kind in CommandKind)
    assert {kind for kind in CommandKind if may_send(Role.PIPELINE, kind)} == {
        CommandKind.START,
        CommandKind.ARTIFACT_VERIFIED,
    }


# --- authentication refusals: reason named, state untouched ---------------------------------------------------------


def _forged() -> RolloutCommand:
    # Signed by another key, but claiming to be alice.
    return sign_command(cmd(CommandKind.EMERGENCY_STOP), STRANGER.key, "alice", now=NOW)


def _tampered() -> RolloutCommand:
    return msgspec.structs.replace(OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW), kind=CommandKind.EMERGENCY_STOP)


REFUSALS: list[tuple[str, object, Check, str]] = [
    ("unsigned", lambda: cmd(CommandKind.EMERGENCY_STOP), Check.UNSIGNED, "no key_id/signature"),
    (
        "no key id",
        lambda: msgspec.structs.replace(OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW), key_id=""),
        Check.UNSIGNED,
        "no key_id",
    ),
    ("unknown key", lambda: STRANGER.sign(cmd(CommandKind.PAUSE), now=NOW), Check.UNKNOWN_KEY, "'mallory' is not"),
    ("forged", _forged, Check.BAD_SIGNATURE, "not key 'alice'"),
    ("tampered", _tampered, Check.BAD_SIGNATURE, "not key 'alice'"),
    (
        "garbage signature",
        lambda: msgspec.structs.replace(OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW), signature="!!"),
        Check.BAD_SIGNATURE,
        "signature",
    ),
    (
        "pipeline stops",
        lambda: PIPELINE.sign(cmd(CommandKind.EMERGENCY_STOP), now=NOW),
        Check.INSUFFICIENT_ROLE,
        "role pipeline",
    ),
    (
        "pipeline promotes",
        lambda: PIPELINE.sign(cmd(CommandKind.PROMOTE), now=NOW),
        Check.INSUFFICIENT_ROLE,
        "not promote",
    ),
    (
        "pipeline overrides",
        lambda: PIPELINE.sign(cmd(CommandKind.START, artifact="v2", override=True), now=NOW),
        Check.INSUFFICIENT_ROLE,
        "only operators override",
    ),
    ("pipeline resumes", lambda: PIPELINE.sign(cmd(CommandKind.RESUME), now=NOW), Check.INSUFFICIENT_ROLE, "resume"),
    (
        "short nonce",
        lambda: sign_command(cmd(CommandKind.PAUSE), OPERATOR.key, "alice", now=NOW, nonce="abcd"),
        Check.BAD_NONCE,
        "128",
    ),
    (
        "non-hex nonce",
        lambda: sign_command(cmd(CommandKind.PAUSE), OPERATOR.key, "alice", now=NOW, nonce="z" * 40),
        Check.BAD_NONCE,
        "hex",
    ),
    ("stale", lambda: OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW - MAX_AGE - 1), Check.STALE, "301 s old"),
    (
        "from the future",
        lambda: OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW + MAX_AGE + 5),
        Check.STALE,
        "in the future",
    ),
    ("no time", lambda: sign_command(cmd(CommandKind.PAUSE), OPERATOR.key, "alice", now=0.0), Check.STALE, "old"),
]


@pytest.mark.parametrize(("make", "check", "fragment"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_authentication_refusals_name_the_check_and_change_nothing(
    make: Callable[[], RolloutCommand], check: Check, fragment: str
) -> None:
    before = canary()
    decision = send(before, make())
    assert decision.unauthorized is not None and decision.unauthorized.check is check, decision.unauthorized
    assert fragment in decision.unauthorized.message and str(decision.unauthorized).startswith(check.value + ": ")
    assert decision.state is before and not decision.changed and decision.rollback is None


def test_an_unknown_router_gets_no_state_from_an_unauthenticated_command() -> None:
    empty = RolloutState(router_id="ghost")
    decision = send(empty, cmd(CommandKind.EMERGENCY_STOP, router="ghost"), traffic={})
    assert decision.unauthorized is not None and decision.state is empty and not decision.changed


def test_issued_by_is_the_verified_key_name() -> None:
    state = applied(canary(), OPERATOR.sign(cmd(CommandKind.PAUSE, reason="look"), now=NOW))
    assert state.last_command is not None
    assert state.last_command.issued_by == "alice"
    started = canary()
    assert started.last_command is not None
    assert started.last_command.issued_by == "pipeline" and started.verified[0].verified_by == "pipeline"


# --- replay protection ------------------------------------------------------------------------------------------------


def test_a_replayed_command_is_refused_even_when_its_first_delivery_was_refused() -> None:
    state = canary()
    pause = OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW)
    paused = applied(state, pause, wall=NOW + 1)
    again = send(paused, pause, wall=NOW + 2)
    assert again.unauthorized is not None and again.unauthorized.check is Check.REPLAYED
    assert again.state is paused and not again.changed
    # A command the state machine refused still used up its nonce, and the nonce
    # survives the changelog (a restarted worker decodes the state from it).
    resume = OPERATOR.sign(cmd(CommandKind.RESUME), now=NOW)
    refused = send(state, resume)
    assert refused.state.last_command is not None
    assert refused.unauthorized is None and not refused.state.last_command.accepted
    restored = msgspec.json.decode(encode(refused.state), type=RolloutState)
    assert resume.nonce in restored.seen_nonces
    replay = send(restored, resume, wall=NOW + 5)
    assert replay.unauthorized is not None and replay.unauthorized.check is Check.REPLAYED


def test_nonces_are_pruned_by_age_and_the_floor_keeps_old_replays_out() -> None:
    state = canary()
    assert len(state.seen_nonces) == 2 and state.nonce_floor == 0.0
    old = OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW + 10)
    state = applied(state, old, wall=NOW + 10)
    later = NOW + 10 + MAX_AGE + 1
    state = applied(state, OPERATOR.sign(cmd(CommandKind.RESUME), now=later), wall=later)
    assert len(state.seen_nonces) == 1  # only the resume is young enough to be replayed
    assert state.nonce_floor == NOW + 10  # the newest forgotten command's issued_at
    # The forgotten pause, replayed to a worker whose clock is far behind: refused by the floor.
    replay = send(state, old, wall=NOW + 20)
    assert replay.unauthorized is not None and replay.unauthorized.check is Check.REPLAYED
    assert "oldest time this router still remembers" in replay.unauthorized.message


def test_nonces_are_bounded_and_eviction_raises_the_floor() -> None:
    state = RolloutState(router_id="r")
    commands = [OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW + i) for i in range(6)]
    for command in commands:
        state = remember_nonce(state, command, wall=NOW + 6, max_age=MAX_AGE, max_nonces=4)
    assert list(state.seen_nonces) == [c.nonce for c in commands[2:]] and state.nonce_floor == NOW + 1


# --- only verified artifacts start ------------------------------------------------------------------------------------


def test_a_start_of_a_never_verified_artifact_is_refused_whoever_signs_it() -> None:
    state = RolloutState(router_id="r", clock=1000.0)
    for signer in (OPERATOR, PIPELINE):
        decision = send(state, signer.sign(cmd(CommandKind.START, artifact="never-signed-v666"), now=NOW))
        outcome = decision.state.last_command
        assert decision.unauthorized is None and outcome is not None and not outcome.accepted
        assert "never-signed-v666 is not verified for router r" in outcome.reason
        assert decision.state.phase is Phase.IDLE and decision.state.weights == {}


def test_the_verified_set_is_bounded_newest_kept_and_one_version_has_one_digest() -> None:
    state = RolloutState(router_id="r", clock=1000.0)
    for i in range(55):
        state = verified(state, f"v{i}", f"{i:064x}")
    assert len(state.verified) == 50 and state.verified[0].version == "v5" and state.verified[-1].version == "v54"
    state = verified(state, "v5", f"{5:064x}")  # verified again: becomes the newest
    assert [v.version for v in state.verified][-2:] == ["v54", "v5"] and len(state.verified) == 50
    conflict = send(state, PIPELINE.sign(cmd(CommandKind.ARTIFACT_VERIFIED, artifact="v54", sha256=SHA), now=NOW))
    assert conflict.state.last_command is not None
    assert not conflict.state.last_command.accepted and "two contents" in conflict.state.last_command.reason
    evicted = send(state, PIPELINE.sign(cmd(CommandKind.START, artifact="v4"), now=NOW))
    assert evicted.state.last_command is not None
    assert "not verified" in evicted.state.last_command.reason
    assert send(state, PIPELINE.sign(cmd(CommandKind.START, artifact="v54"), now=NOW)).state.phase is Phase.CANARY


def test_artifact_verified_needs_a_digest_and_keeps_the_rollout_as_it_is() -> None:
    state = canary()
    missing = send(state, PIPELINE.sign(cmd(CommandKind.ARTIFACT_VERIFIED, artifact="v3"), now=NOW))
    assert missing.state.last_command is not None
    assert "needs the artifact version and its sha256" in missing.state.last_command.reason
    recorded = verified(state, "v3")
    assert recorded.phase is Phase.CANARY and recorded.weights == state.weights and recorded.reason == state.reason
    assert recorded.last_command is not None
    assert "v3 verified" in recorded.last_command.reason


# --- overrides ------------------------------------------------------------------------------------


def test_promotion_past_gates_is_an_operator_override_with_a_record() -> None:
    state = on_look(
        canary(), look(1060.0, WindowStats(count=40), WindowStats(count=900)), evaluate=failing, wall=NOW, policy=POLICY
    ).state
    plain = send(state, OPERATOR.sign(cmd(CommandKind.PROMOTE), now=NOW))
    assert plain.state.last_command is not None
    assert "gates not passing at 5%: cost_per_task insufficient" in plain.state.last_command.reason
    assert "--override --reason" in plain.state.last_command.reason
    decision = send(
        state,
        OPERATOR.sign(cmd(CommandKind.PROMOTE, override=True, reason="incident 7: need it now"), now=NOW + 3),
        wall=NOW + 3,
    )
    promoted = decision.state
    assert promoted.last_command is not None
    assert promoted.last_command.accepted and promoted.stage_index == 1
    record = promoted.overrides[-1]
    assert decision.override == record
    assert (record.by, record.at, record.canary_version, record.reason) == (
        "alice",
        NOW + 3,
        "v2",
        "incident 7: need it now",
    )
    assert (record.from_stage_percent, record.to_stage_percent, record.gates_evaluated) == (5.0, 25.0, True)
    assert [(g.gate, g.status) for g in record.failing_gates] == [("cost_per_task", GateStatus.INSUFFICIENT)]
    # Straight after a stage starts no gate has run: an override records that too.
    again = send(
        promoted, OPERATOR.sign(cmd(CommandKind.PROMOTE, override=True, reason="still"), now=NOW + 4), wall=NOW + 4
    ).state
    assert again.overrides[-1].gates_evaluated is False and again.overrides[-1].failing_gates == []
    assert len(again.overrides) == 2 and again.stage_index == 2


def test_override_records_are_bounded() -> None:
    state = canary()
    policy = RolloutPolicy(min_stage_seconds=900, min_samples=100, stages=(0.01, 0.02, 0.03, 1.0), max_overrides=2)
    state = msgspec.structs.replace(state, stages=[0.01, 0.02, 0.03, 1.0])
    for i in range(3):
        state = send(
            state,
            OPERATOR.sign(cmd(CommandKind.PROMOTE, override=True, reason=f"r{i}"), now=NOW + i),
            wall=NOW + i,
            policy=policy,
        ).state
    assert [o.reason for o in state.overrides] == ["r1", "r2"] and state.phase is Phase.PROMOTED


def test_plain_promotion_with_every_gate_passing_is_no_override() -> None:
    state = on_look(
        canary(),
        look(1060.0, WindowStats(count=500), WindowStats(count=500)),
        evaluate=healthy,
        wall=NOW,
        policy=POLICY,
    ).state
    decision = send(state, OPERATOR.sign(cmd(CommandKind.PROMOTE), now=NOW))
    assert decision.state.stage_index == 1 and decision.override is None and decision.state.overrides == []


# --- emergency stop sticks ------------------------------------------------------------------------


def test_emergency_stop_sticks_until_an_operator_resumes() -> None:
    stopped = applied(canary(), OPERATOR.sign(cmd(CommandKind.EMERGENCY_STOP, reason="incident 42"), now=NOW), wall=NOW)
    assert stopped.phase is Phase.EMERGENCY_STOPPED and stopped.weights == {"v1": 1.0}
    assert stopped.stopped is not None and (stopped.stopped.by, stopped.stopped.at) == ("alice", NOW)
    # A retrain's new artifact is still recorded as verified, but its automatic start is refused.
    stopped = verified(stopped, "v3", wall=NOW + 60)
    auto = send(stopped, PIPELINE.sign(cmd(CommandKind.START, artifact="v3"), now=NOW + 61), wall=NOW + 61)
    expected = "router stopped by alice at 2023-11-14T22:13:20Z; an operator must resume"
    assert auto.state.last_command is not None
    assert auto.state.last_command.reason == expected and auto.state.phase is Phase.EMERGENCY_STOPPED
    by_hand = send(stopped, OPERATOR.sign(cmd(CommandKind.START, artifact="v3"), now=NOW + 62), wall=NOW + 62)
    assert by_hand.state.last_command is not None
    assert by_hand.state.last_command.reason == expected
    pause = send(stopped, OPERATOR.sign(cmd(CommandKind.PAUSE), now=NOW + 63), wall=NOW + 63)
    assert pause.state.last_command is not None
    assert pause.state.last_command.reason == f"cannot pause: {expected}"
    # Windows do not restart it either.
    assert not on_look(
        stopped, look(5000.0, WindowStats(count=900), WindowStats(count=900)), evaluate=healthy, wall=NOW, policy=POLICY
    ).changed
    resumed = applied(stopped, OPERATOR.sign(cmd(CommandKind.RESUME), now=NOW + 70), wall=NOW + 70)
    assert resumed.phase is Phase.IDLE and resumed.stopped is None and resumed.weights == {"v1": 1.0}
    assert "resumed by alice" in (resumed.reason or "")
    restarted = applied(resumed, PIPELINE.sign(cmd(CommandKind.START, artifact="v3"), now=NOW + 71), wall=NOW + 71)
    assert restarted.phase is Phase.CANARY and restarted.control_version == "v1"


def test_the_state_with_every_record_round_trips_through_the_changelog_encoding() -> None:
    state = applied(canary(), OPERATOR.sign(cmd(CommandKind.EMERGENCY_STOP), now=NOW))
    assert msgspec.json.decode(encode(state), type=RolloutState) == state
    assert base64.b64decode(OPERATOR.sign(cmd(CommandKind.PAUSE)).signature).__len__() == 64
