"""The local broker with a SASL_SSL listener, against a real JVM: logins, refusals, the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from bifrost.devkafka import LocalBroker, broker_status, client_security_of, stop_broker
from bifrost.kafka import KafkaSecurity
from bifrost.kafka.preflight import (
    KafkaLoginRefused,
    KafkaProtocolMismatch,
    KafkaTlsFailed,
    KafkaUnreachable,
    check_kafka,
)

pytestmark = pytest.mark.kafka

CLI = [sys.executable, "-m", "bifrost.devkafka"]


def _cli(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIFROST_KAFKA_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    """One SASL_SSL broker for this module (its own, not the session's plaintext one)."""
    with LocalBroker(security="sasl_ssl") as started:
        yield started


async def _roundtrip(bootstrap: str, security: KafkaSecurity, n: int = 20) -> list[bytes]:
    topic = f"sasl-{uuid.uuid4().hex[:8]}"
    options = security.client_options()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **options)
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}", auto_offset_reset="earliest", **options
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        async with asyncio.timeout(30):
            while len(values) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    values.extend(r.value for r in records if r.value is not None)
        await consumer.commit()  # the group coordinator works over SASL_SSL too
        return values
    finally:
        await consumer.stop()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
async def test_clients_log_in_with_scram_over_verified_tls(broker: LocalBroker, mechanism: str) -> None:
    security = broker.client_security(mechanism)
    assert security.protocol == "SASL_SSL" and security.ssl_check_hostname and security.sasl_username == "bifrost"
    assert security.ssl_cafile == str(broker.ca_file) and security.sasl_password_file == str(broker.sasl_password_file)
    await check_kafka(broker.bootstrap, security, timeout=10)
    assert await _roundtrip(broker.bootstrap, security) == [f"v{i}".encode() for i in range(20)]
    # The certificate names localhost too, with the host name checked.
    await check_kafka(broker.bootstrap.replace("127.0.0.1", "localhost"), security, timeout=10)


def test_secrets_stay_in_owner_only_files_and_out_of_logs(broker: LocalBroker) -> None:
    assert broker.data_dir is not None
    password = broker.sasl_password
    assert len(password) >= 32 and password not in repr(broker)
    for path in (
        broker.sasl_password_file,
        broker.data_dir / "server.properties",
        broker.data_dir / "sasl-ssl" / "broker.pem",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((broker.data_dir / "sasl-ssl").stat().st_mode) == 0o700
    key_line = (broker.data_dir / "sasl-ssl" / "broker.pem").read_text().splitlines()[1]  # a line of the private key
    for log in ("broker.log", "broker.stdout.log"):
        text = (broker.data_dir / log).read_text()
        assert password not in text and key_line not in text, log
    assert password not in (broker.data_dir / "server.properties").read_text()  # SCRAM lives in the metadata log
    assert not list(broker.data_dir.glob(".tool-*.args"))  # argfiles of the format step are gone
    # What a client needs, without secrets, for `status` and `env`.
    described = client_security_of(broker.data_dir)
    assert (
        described == broker.client_security() and password not in (broker.data_dir / "client-security.json").read_text()
    )
    status = broker_status(broker.data_dir)
    assert status.running and status.protocol == "SASL_SSL" and status.bootstrap == broker.bootstrap
    env = broker.client_env()
    assert env["BIFROST_KAFKA_BOOTSTRAP"] == broker.bootstrap and password not in env.values()
    assert KafkaSecurity.from_env(env) == broker.client_security()


def test_only_the_sasl_ssl_listener_is_advertised_to_clients_and_internal_ones_are_loopback(
    broker: LocalBroker,
) -> None:
    assert broker.data_dir is not None
    props = dict(
        line.split("=", 1)
        for line in (broker.data_dir / "server.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert props["listeners"] == (
        f"SASL_SSL://{broker.bootstrap},INTERNAL://{broker.internal_bootstrap},"
        f"CONTROLLER://127.0.0.1:{broker.controller_port}"
    )
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512,SCRAM-SHA-256"


def _variant(broker: LocalBroker, name: str) -> KafkaSecurity:
    good = broker.client_security()
    return {
        "wrong password": dataclasses.replace(good, sasl_password_file="", sasl_password="not-the-password"),
        "unknown user": dataclasses.replace(good, sasl_username="mallory"),
        "plaintext client": KafkaSecurity(),
        "sasl_plaintext client": dataclasses.replace(good, protocol="SASL_PLAINTEXT"),
        "tls without sasl": dataclasses.replace(good, protocol="SSL"),
        "untrusted certificate": dataclasses.replace(good, ssl_cafile=""),
        "mechanism not enabled": dataclasses.replace(good, sasl_mechanism="PLAIN"),
    }[name]


REFUSALS = {
    "wrong password": (KafkaLoginRefused, "refused the SASL_SSL / SCRAM-SHA-512 login of user 'bifrost'"),
    "unknown user": (KafkaLoginRefused, "refused the SASL_SSL / SCRAM-SHA-512 login of user 'mallory'"),
    "plaintext client": (
        KafkaProtocolMismatch,
        "speaks TLS on this port, but BIFROST_KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
    ),
    "sasl_plaintext client": (
        KafkaProtocolMismatch,
        "speaks TLS on this port, but BIFROST_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
    ),
    "tls without sasl": (
        KafkaProtocolMismatch,
        "closed the connection after the TLS handshake: the listener probably requires a SASL login",
    ),
    "untrusted certificate": (
        KafkaTlsFailed,
        "certificate was not accepted (self-signed certificate in certificate chain)",
    ),
    "mechanism not enabled": (KafkaLoginRefused, "does not offer SASL mechanism PLAIN"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_preflight_names_the_refusal_within_seconds(broker: LocalBroker, case: str) -> None:
    kind, message = REFUSALS[case]
    started = time.monotonic()
    with pytest.raises(KafkaUnreachable) as info:
        await check_kafka(broker.bootstrap, _variant(broker, case), timeout=15)
    assert time.monotonic() - started < 5
    assert type(info.value) is kind and message in str(info.value), str(info.value)
    assert broker.sasl_password not in str(info.value)
    assert f"Kafka at {broker.bootstrap}" in str(info.value) or f"Kafka at 127.0.0.1:{broker.port}" in str(info.value)


async def test_aiokafka_itself_only_says_it_cannot_bootstrap(broker: LocalBroker) -> None:
    """Why the preflight exists: aiokafka's start() hides a refused login behind the same
    error as an unreachable broker, quickly (no hang)."""
    for case in ("wrong password", "plaintext client"):
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **_variant(broker, case).client_options())
        started = time.monotonic()
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap from"):
            await producer.start()
        await producer.stop()
        assert time.monotonic() - started < 5


async def test_tls_clients_against_a_plaintext_listener_are_told_so(kafka_bootstrap: str, broker: LocalBroker) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaTlsFailed, match="TLS handshake with Kafka at .* failed .*does that listener use TLS"):
        await check_kafka(kafka_bootstrap, broker.client_security(), timeout=15)
    assert time.monotonic() - started < 5


async def test_cli_sasl_ssl_upgrade_restart_status_and_env(tmp_path: Path) -> None:
    """A data dir that ran plaintext gets the SCRAM user through kafka-configs; a restart keeps
    password, CA and port; `env` prints what a client needs (the password as a file)."""
    data_dir = tmp_path / "kafka"
    try:
        plain = _cli("start", "--data-dir", str(data_dir))
        assert plain.returncode == 0, plain.stderr
        assert _cli("stop", "--data-dir", str(data_dir)).returncode == 0

        first = _cli("start", "--sasl-ssl", "--data-dir", str(data_dir))
        assert first.returncode == 0, first.stderr
        bootstrap = first.stdout.strip()
        assert (
            "kafka.sasl.user.created user=bifrost mechanisms=SCRAM-SHA-512,SCRAM-SHA-256 "
            "via=kafka-configs" in first.stderr
        )
        password = (data_dir / "sasl-ssl" / "password").read_text().strip()
        assert password not in first.stderr + first.stdout
        status = _cli("status", "--data-dir", str(data_dir))
        assert status.returncode == 0 and f"bootstrap={bootstrap} protocol=SASL_SSL" in status.stdout

        env_out = _cli("env", "--data-dir", str(data_dir))
        assert env_out.returncode == 0 and password not in env_out.stdout
        env = dict(line.removeprefix("export ").split("=", 1) for line in env_out.stdout.splitlines())
        assert env["BIFROST_KAFKA_BOOTSTRAP"] == bootstrap and env["BIFROST_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        security = KafkaSecurity.from_env(env)
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            await check_kafka(bootstrap, dataclasses.replace(security, sasl_mechanism=mechanism), timeout=10)
        assert await _roundtrip(bootstrap, security, n=3) == [b"v0", b"v1", b"v2"]

        plain_again = _cli("start", "--data-dir", str(data_dir))  # already running, but SASL_SSL: says so
        assert plain_again.returncode == 0 and "SASL_SSL" in plain_again.stderr
        ca = (data_dir / "sasl-ssl" / "ca.pem").read_bytes()
        assert _cli("stop", "--data-dir", str(data_dir)).returncode == 0
        again = _cli("start", "--sasl-ssl", "--data-dir", str(data_dir))
        assert again.returncode == 0 and again.stdout.strip() == bootstrap, again.stderr
        assert "kafka.storage.reuse" in again.stderr and "kafka.sasl.user.created" not in again.stderr
        assert (data_dir / "sasl-ssl" / "password").read_text().strip() == password
        assert (data_dir / "sasl-ssl" / "ca.pem").read_bytes() == ca
        await check_kafka(bootstrap, security, timeout=10)
    finally:
        stop_broker(data_dir)
