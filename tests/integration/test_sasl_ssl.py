"""The whole loop on a broker that only takes SASL_SSL logins (SCRAM-SHA-512 over verified TLS).

Its own :class:`LocalBroker` (``security="sasl_ssl"``), not the session's plaintext one: a
worker subprocess configured only through ``BIFROST_KAFKA_*`` ingests events published with
``Publisher(security=...)``, the metrics view counts them exactly, malformed events land in
the DLQ, and a signed rollout starts. Clients that do not log in — plaintext, or a wrong
password — fail fast with a message that says so, the CLI included.

The rollout commands are sent and their outcome read with this module's own SASL_SSL
clients: ``bifrost.client.rollout`` (``send_command``, ``wait_for_outcome``, ``follow``) and
the worker's artifact listener do not take the security settings yet, so the worker runs
without a pipeline key (the listener stays idle) and the test signs ``artifact_verified``
itself, as ``tests/integration/test_rollout.py`` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from bifrost.client import Publisher
from bifrost.client.rollout import new_command, router_key
from bifrost.client.simulator import TrafficConfig, generate
from bifrost.config import Settings
from bifrost.devkafka import LocalBroker
from bifrost.kafka import KafkaSecurity
from bifrost.kafka.preflight import KafkaProtocolMismatch, check_kafka
from bifrost.schemas import DeadLetter, RejectReason, encode
from bifrost.schemas.codec import decode_as
from bifrost.schemas.events import RoutingEvent
from bifrost.schemas.rollout import CommandKind, Phase, RolloutCommand, RolloutState
from tests.integration.command_keys import CommandKeys, command_keys
from tests.integration.harness import WorkerProcess, arm_counts, eventually, isolated_settings, settings_env

pytestmark = pytest.mark.kafka

ROUTER = "router-secure"
MALFORMED = {
    b"{truncated": RejectReason.BAD_JSON,
    b'{"request_id": "x"}': RejectReason.SCHEMA,
    b"[]": RejectReason.SCHEMA,
}


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[LocalBroker]:
    with LocalBroker(security="sasl_ssl") as broker:
        yield broker


@pytest.fixture
def keys(tmp_path: Path) -> CommandKeys:
    return command_keys(tmp_path / "keys")


@pytest.fixture
def settings(secure_broker: LocalBroker, keys: CommandKeys) -> Settings:
    base = isolated_settings(
        secure_broker.bootstrap, kafka_security=secure_broker.client_security(), partitions=2, batch_within_seconds=0.05
    )
    # The allow-list, but no pipeline key: the artifact listener (not SASL-aware yet) stays idle.
    return Settings.from_env(keys.worker(base).to_env(), pipeline_key_file="")


def traffic(n: int, seed: int = 5) -> list[RoutingEvent]:
    config = TrafficConfig(
        routers=(ROUTER,),
        arms={"v1": 0.8, "v2": 0.2},
        rate_per_second=50.0,
        duration_seconds=n / 50.0,
        start_ts=time.time() - 3600,
        seed=seed,
    )
    return [g.event for g in generate(config) if g.event is not None]


async def read_topic(settings: Settings, topic: str, expected: int, timeout: float = 60.0) -> list[bytes]:
    """Every value of ``topic`` (read_committed) over SASL_SSL.

    Read once at least ``expected`` arrived and the end is reached.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **settings.kafka_options(),
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                values.extend(r.value for r in records if r.value is not None)
            tps = consumer.assignment()
            if len(values) >= expected and tps:
                ends = await consumer.end_offsets(list(tps))
                if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                    break
        return values
    finally:
        await consumer.stop()


async def send_command(settings: Settings, command: RolloutCommand) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, **settings.kafka_options()
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.rollout_commands, encode(command), key=router_key(command.router_id)
        )
    finally:
        await producer.stop()


async def outcome(settings: Settings, command: RolloutCommand, timeout: float = 60.0) -> RolloutState:
    """The rollout state that answers ``command`` (read over SASL_SSL)."""
    decoder = msgspec.json.Decoder(RolloutState)

    async def probe() -> RolloutState | None:
        for value in await read_topic(settings, settings.topics.rollout_state, expected=0, timeout=5):
            state = decoder.decode(value)
            if state.router_id == ROUTER and state.last_command and state.last_command.command_id == command.command_id:
                return state
        return None

    return await eventually(probe, timeout=timeout, interval=0.5, what=f"the outcome of {command.kind.value}")


async def test_whole_loop_runs_on_a_sasl_ssl_broker(
    secure_broker: LocalBroker,
    settings: Settings,
    keys: CommandKeys,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    assert settings.kafka_security.protocol == "SASL_SSL"
    worker = start_worker(settings)
    assert "BIFROST_KAFKA_SASL_PASSWORD" not in settings_env(worker.settings)  # only the file path travels
    await eventually(lambda: len(worker.owns_inputs()) == 2, timeout=120, what="worker to own both input partitions")

    events = traffic(1500)
    raw = list(MALFORMED) * 3
    async with Publisher(settings.kafka_bootstrap, settings.topics, security=settings.kafka_security) as publisher:
        for event in events:
            await publisher.publish(event)
        for value in raw:
            await publisher.send_raw(settings.topics.routing_events, b"bad", value)

    want = dict(Counter(e.arm for e in events))
    await eventually(lambda: arm_counts(worker, ROUTER) == want, timeout=120, what=f"arm counts {want}")
    letters = [decode_as(v, DeadLetter) for v in await read_topic(settings, settings.topics.dlq, len(raw))]
    assert sorted(letter.original for letter in letters) == sorted(raw)
    assert all(letter.reason is MALFORMED[letter.original] for letter in letters)
    assert sum(want.values()) + len(letters) == len(events) + len(raw)
    # The CLI reads the same figures.
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "bifrost.cli.main",
            "metrics",
            "--router",
            ROUTER,
            "--since",
            "30d",
            "--worker-url",
            worker.url,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=settings_env(worker.settings),
        timeout=60,
    )
    assert {a: s["count"] for a, s in json.loads(cli.stdout)["arms"].items()} == want

    # A rollout starts: the pipeline key vouches for v3, the operator starts its canary.
    sha = hashlib.sha256(b"v3").hexdigest()
    verified = keys.pipeline.sign(new_command(ROUTER, CommandKind.ARTIFACT_VERIFIED, artifact="v3", sha256=sha))
    await send_command(settings, verified)
    state = await outcome(settings, verified)
    assert state.last_command is not None and state.last_command.accepted, state.last_command
    start = keys.operator.sign(new_command(ROUTER, CommandKind.START, artifact="v3", control="v1"))
    await send_command(settings, start)
    state = await outcome(settings, start)
    assert state.last_command is not None and state.last_command.accepted, state.last_command
    assert state.phase is Phase.CANARY and state.weights == {"v1": 0.95, "v3": 0.05}
    status, body = worker.get(f"/v1/routers/{ROUTER}/rollout")
    assert status == 200 and body["phase"] == "canary", body


def _cli_env(settings: Settings, **security: str) -> dict[str, str]:
    env = settings_env(settings)
    env.update(security)
    env["BIFROST_WEB_PORT"] = "1"  # never reached: the preflight stops the worker first
    return env


def test_worker_with_a_wrong_password_exits_quickly_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_cli_env(settings, BIFROST_KAFKA_SASL_PASSWORD_FILE=str(wrong)),
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stderr  # refused who we are (cli/errors.py EXIT_UNAUTHORIZED)
    assert (
        f"bifrost-opt: error: Kafka at {settings.kafka_bootstrap} refused the SASL_SSL / SCRAM-SHA-512 login "
        "of user 'bifrost'"
    ) in result.stderr
    assert "BIFROST_KAFKA_SASL_PASSWORD_FILE" in result.stderr and "not-the-password" not in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert elapsed < 15, elapsed  # interpreter start included; the refusal itself takes < 1 s


def test_plaintext_worker_against_the_sasl_ssl_port_is_told_to_use_tls(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bifrost.cli.main", "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_cli_env(settings, BIFROST_KAFKA_SECURITY_PROTOCOL="PLAINTEXT"),
    )
    assert result.returncode == 3, result.stderr
    assert "speaks TLS on this port, but BIFROST_KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


async def test_plaintext_clients_get_nothing_from_the_sasl_ssl_port(secure_broker: LocalBroker) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaProtocolMismatch, match="speaks TLS on this port"):
        await check_kafka(secure_broker.bootstrap, KafkaSecurity(), timeout=15)
    producer = AIOKafkaProducer(bootstrap_servers=secure_broker.bootstrap)
    with pytest.raises(KafkaConnectionError):
        await producer.start()
    await producer.stop()
    assert time.monotonic() - started < 10


def test_the_password_reaches_workers_only_as_a_file(secure_broker: LocalBroker, settings: Settings) -> None:
    env = settings.to_env()
    assert env["BIFROST_KAFKA_SASL_PASSWORD_FILE"] == str(secure_broker.sasl_password_file)
    assert secure_broker.sasl_password not in json.dumps(env) + repr(settings)
    assert os.stat(secure_broker.sasl_password_file).st_mode & 0o077 == 0
