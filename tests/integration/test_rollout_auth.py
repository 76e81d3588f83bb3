"""Who controls rollouts, on the real broker: only signed commands from allow-listed keys,
only verified artifacts, overrides on the record, and an emergency stop that sticks.

The outside tester's findings, each turned into a check: a start of an artifact that
exists nowhere, a raw ``emergency_stop`` claiming ``issued_by: "artifacts"``, forged,
unknown-key, stale and replayed commands, and a retrain restarting a stopped router.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.client.rollout import CommandUnauthorized, new_command, router_key, wait_for_outcome
from bifrost.config import Settings
from bifrost.router.artifact import encode as encode_artifact
from bifrost.router.artifact import sha256_hex, sign
from bifrost.router.keys import generate_private_key, public_key_pem
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.codec import encode
from bifrost.schemas.command_signing import CommandSigner, sign_command
from bifrost.schemas.dlq import DeadLetter, RejectReason
from bifrost.schemas.rollout import CommandKind, Phase, RolloutCommand, RolloutState
from tests.integration.command_keys import CommandKeys, command_keys
from tests.integration.harness import WorkerProcess, arm_counts, eventually, read_dead_letters, settings_env
from tests.integration.test_rollout import ROUTER, SPEED, latest, ready, recording, started_canary, traffic
from tests.router.artifacts import make_artifact

pytestmark = pytest.mark.kafka


@pytest.fixture
def keys(tmp_path: Path) -> CommandKeys:
    return command_keys(tmp_path / "keys")


@pytest.fixture
def settings(kafka_bootstrap: str, settings: Settings, keys: CommandKeys) -> Settings:
    return keys.worker(Settings.from_env(settings.to_env(), partitions=2, batch_within_seconds=0.05))


async def send_raw(settings: Settings, value: bytes, router: str = ROUTER) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.rollout_commands, value, key=router_key(router))
    finally:
        await producer.stop()


async def command_letters(settings: Settings, want: int) -> dict[str, DeadLetter]:
    """DLQ records whose source is rollout-commands, by the sha256 of the refused bytes."""

    async def probe() -> dict[str, DeadLetter] | None:
        letters = await read_dead_letters(settings.kafka_bootstrap, settings.topics.dlq, expected=0, timeout=5)
        found = {d.original_sha256: d for d in letters if d.source_topic == settings.topics.rollout_commands}
        return found if len(found) >= want else None

    return await eventually(probe, timeout=60, what=f"{want} refused commands in the DLQ")


def rollout_of(worker: WorkerProcess) -> dict:
    status, body = worker.get(f"/v1/routers/{ROUTER}/rollout")
    assert status == 200, body
    return body


async def test_unsigned_forged_unknown_stale_replayed_and_wrong_role_commands_go_to_the_dlq(
    settings: Settings,
    keys: CommandKeys,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = start_worker(settings)
    await ready(worker)
    ask = lambda command: wait_for_outcome(settings.kafka_bootstrap, settings.topics, command)  # noqa: E731
    async with traffic(settings):
        await started_canary(settings, worker, keys)
        pause = keys.operator.sign(new_command(ROUTER, CommandKind.PAUSE, reason="look at it"))
        paused = await ask(pause)
        assert paused is not None and paused.last_command is not None
        assert paused.phase is Phase.PAUSED and paused.last_command.issued_by == "operator"
        before = rollout_of(worker)

        # The tester's raw emergency stop, claiming to come from the artifact pipeline.
        raw_stop = orjson.dumps(
            {
                "command_id": "tester-1",
                "router_id": ROUTER,
                "kind": "emergency_stop",
                "issued_by": "artifacts",
                "issued_at": time.time(),
            }
        )
        await send_raw(settings, raw_stop)
        garbage = b'{"command_id": "tester-2", "kind": "explode"}'
        await send_raw(settings, garbage)
        stranger = CommandSigner("mallory", Ed25519PrivateKey.generate())
        stop = lambda: new_command(ROUTER, CommandKind.EMERGENCY_STOP, reason="drill")  # noqa: E731
        refused: dict[str, RolloutCommand] = {
            "bad_signature": sign_command(stop(), stranger.key, "operator"),  # claims to be the operator
            "unknown_key": stranger.sign(stop()),
            "stale": keys.operator.sign(stop(), now=time.time() - 3600),
            "insufficient_role": keys.pipeline.sign(stop()),
            "replayed": pause,  # the same signed bytes a second time
        }
        for check, command in refused.items():
            with pytest.raises(CommandUnauthorized) as info:
                await ask(command)
            assert info.value.letter.reason is RejectReason.UNAUTHORIZED
            assert info.value.letter.error.startswith(f"{check}: "), info.value.letter.error

        letters = await command_letters(settings, want=len(refused) + 2)
        unsigned = letters[hashlib.sha256(raw_stop).hexdigest()]
        assert unsigned.reason is RejectReason.UNAUTHORIZED and unsigned.error.startswith("unsigned: ")
        assert letters[hashlib.sha256(garbage).hexdigest()].reason is RejectReason.SCHEMA
        for check, command in refused.items():
            letter = letters[hashlib.sha256(encode(command)).hexdigest()]
            assert letter.error.startswith(f"{check}: ") and letter.original == encode(command)

        # None of them touched the router: still the paused canary, the pause its last command.
        after = rollout_of(worker)
        assert (after["phase"], after["canary_version"], after["stopped"]) == ("paused", "v2", None)
        assert after["last_command"] == before["last_command"] and after["seen_nonces"] == before["seen_nonces"]
        assert "event=rollout.command.unauthorized" in worker.log_tail(400)

        # The CLI prints an authentication refusal clearly, with its own exit code.
        foreign = tmp_path / "foreign.pem"
        generate_private_key(foreign)
        env = settings_env(
            Settings.from_env(settings.to_env(), operator_key_file=str(foreign), operator_key_name="operator")
        )
        cli = subprocess.run(
            [sys.executable, "-m", "bifrost.cli.main", "rollout", "stop", "--router", ROUTER],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert cli.returncode == 4, cli.stderr
        assert "unauthorized: bad_signature" in cli.stderr and "keys export-public" in cli.stderr
        assert "Traceback" not in cli.stderr + cli.stdout
        assert rollout_of(worker)["phase"] == "paused"


def announce(store: Path, trainer: Ed25519PrivateKey, version: str, *, tamper: bool = False) -> ArtifactPublished:
    """Write an artifact into the store and describe it as the trainer would.

    ``tamper``: bytes changed after signing.
    """
    signed = encode_artifact(make_artifact(version=version))
    folder = store / version
    folder.mkdir(parents=True)
    stored = encode_artifact(make_artifact(version=version, alpha=0.01)) if tamper else signed
    (folder / "artifact.json").write_bytes(stored)
    return ArtifactPublished(
        version=version,
        sha256=sha256_hex(signed),
        signature=sign(signed, trainer),
        location=str(folder),
        router_ids=[ROUTER],
        published_at=time.time(),
    )


async def publish(settings: Settings, announcement: ArtifactPublished) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.artifacts, msgspec.json.encode(announcement), key=announcement.version.encode()
        )
    finally:
        await producer.stop()


def listener_command_id(version: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{version}/{ROUTER}").hex


async def test_only_verified_artifacts_start_overrides_are_recorded_and_a_stop_sticks(
    settings: Settings,
    keys: CommandKeys,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    trainer = generate_private_key(tmp_path / "trainer.pem")
    public = tmp_path / "trainer.pub.pem"
    public.write_bytes(public_key_pem(trainer))
    store = tmp_path / "artifacts"
    store.mkdir()
    extra = {"artifact_store": str(store)} if "artifact_store" in Settings.__dataclass_fields__ else {}
    settings = Settings.from_env(settings.to_env(), verify_key_file=str(public), **extra)
    worker = start_worker(settings)
    await ready(worker)
    env = settings_env(keys.cli(Settings.from_env(settings.to_env(), worker_url=worker.url)))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "bifrost.cli.main", "rollout", *args, "--router", ROUTER],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert "Traceback" not in result.stderr + result.stdout
        return result

    def seen(states: list[RolloutState], command_id: str) -> RolloutState | None:
        return next((s for s in states if s.last_command and s.last_command.command_id == command_id), None)

    async with (
        recording(settings.kafka_bootstrap, settings.topics.rollout_state, RolloutState) as states,
        traffic(settings),
    ):
        await eventually(
            lambda: arm_counts(worker, ROUTER, since="10m").get("v1", 0) >= 200, timeout=90, what="control traffic"
        )
        # An artifact that exists nowhere cannot start, even from an operator.
        ghost = cli("start", "--artifact", "never-signed-v666")
        assert ghost.returncode == 1 and "refused: artifact never-signed-v666 is not verified" in ghost.stderr

        # A tampered artifact is refused by the listener (DLQ), and then cannot be started by hand.
        await publish(settings, announce(store, trainer, "v-tampered", tamper=True))
        letters = await eventually(
            lambda: _artifact_letters(settings), timeout=60, what="the tampered announcement in the DLQ"
        )
        assert letters[0].reason is RejectReason.UNVERIFIED and "v-tampered" in letters[0].error
        tampered = cli("start", "--artifact", "v-tampered")
        assert tampered.returncode == 1 and "v-tampered is not verified" in tampered.stderr

        # A verified announcement: the pipeline records it as verified, then starts the canary.
        good = announce(store, trainer, "v2")
        await publish(settings, good)
        await eventually(
            lambda: (s := latest(states)) is not None and s.phase is Phase.CANARY and s.canary_version == "v2",
            timeout=60,
            what="canary of the verified v2",
        )
        verified = seen(states.items, uuid.uuid5(uuid.NAMESPACE_URL, f"v2/{ROUTER}/verified").hex)
        assert verified is not None and verified.last_command is not None
        assert verified.last_command.accepted and verified.last_command.issued_by == "pipeline"
        assert [(v.version, v.sha256) for v in verified.verified] == [("v2", good.sha256)]
        start = seen(states.items, listener_command_id("v2"))
        assert start is not None and start.last_command is not None
        assert start.last_command.issued_by == "pipeline" and start.weights["v2"] == 0.05

        # Promotion past gates that have not passed is an operator override, on the record.
        override = cli("promote", "--override", "--reason", "hotfix for incident 7")
        assert override.returncode == 0, override.stderr
        assert "last override: operator" in override.stdout and "hotfix for incident 7" in override.stdout
        state = await eventually(
            lambda: next((s for s in reversed(states.items) if s.overrides), None),
            timeout=30,
            what="the override in rollout-state",
        )
        assert state.stage_percent == 25.0
        record = state.overrides[-1]
        assert (
            record.by,
            record.canary_version,
            record.from_stage_percent,
            record.to_stage_percent,
            record.reason,
        ) == ("operator", "v2", 5.0, 25.0, "hotfix for incident 7")
        assert abs(record.at - time.time()) < 60
        assert "event=rollout.override" in worker.log_tail(400)

        # Emergency stop; then a retrain announces a new verified artifact: no canary starts.
        stopped = cli("stop", "--reason", "incident 8")
        assert stopped.returncode == 0 and "emergency_stopped" in stopped.stdout, stopped.stderr
        await publish(settings, announce(store, trainer, "v3"))
        refused = await eventually(
            lambda: seen(states.items, listener_command_id("v3")),
            timeout=60,
            what="the listener's start of v3 answered",
        )
        assert refused.last_command is not None and not refused.last_command.accepted
        assert refused.last_command.reason.startswith("router stopped by operator at ")
        assert refused.last_command.reason.endswith("; an operator must resume")
        assert refused.phase is Phase.EMERGENCY_STOPPED and "v3" not in refused.weights
        assert any(v.version == "v3" for v in refused.verified)  # recorded, just not started
        await asyncio.sleep(4 * 60 / SPEED)  # a few windows close: nothing restarts it
        body = rollout_of(worker)
        assert (
            body["phase"] == "emergency_stopped" and body["canary_version"] is None and body["weights"] == {"v1": 1.0}
        )
        # An operator resumes; only then may the verified v3 start.
        assert cli("resume").returncode == 0
        restarted = cli("start", "--artifact", "v3")
        assert restarted.returncode == 0 and "canary v3 started" in restarted.stdout, restarted.stderr


async def _artifact_letters(settings: Settings) -> list[DeadLetter]:
    letters = await read_dead_letters(settings.kafka_bootstrap, settings.topics.dlq, expected=0, timeout=5)
    return [d for d in letters if d.source_topic == settings.topics.artifacts]
