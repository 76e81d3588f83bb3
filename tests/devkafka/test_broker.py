"""The local Kafka broker, against a real JVM: no mocks of Kafka anywhere."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bifrost.devkafka import BrokerError, LocalBroker, ensure_kafka_jars, stop_broker
from bifrost.devkafka.__main__ import main

CLI = [sys.executable, "-m", "bifrost.devkafka"]


def _cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BIFROST_KAFKA_BOOTSTRAP"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 that something else already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    errors = [(t[0], t[1]) for t in response.topic_errors if t[1] != 0]
    assert not errors, f"create_topics failed: {errors}"


async def _read_all(bootstrap: str, topic: str, partitions: int, expected: int) -> list[tuple[int, int, bytes, bytes]]:
    """(partition, offset, key, value) of every record in ``topic``, waiting until ``expected`` arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        assert sum(end.values()) == expected, f"end offsets {end}"
        records: list[tuple[int, int, bytes, bytes]] = []
        async with asyncio.timeout(30):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                for tp_records in batch.values():
                    for r in tp_records:
                        assert r.key is not None and r.value is not None
                        records.append((r.partition, r.offset, r.key, r.value))
        # Nothing beyond what was produced.
        positions = {tp: await consumer.position(tp) for tp in tps}
        assert positions == end
        return records
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_produce_and_consume_100_messages(kafka_bootstrap: str) -> None:
    topic = f"devkafka-roundtrip-{uuid.uuid4().hex[:8]}"
    await _create_topic(kafka_bootstrap, topic, partitions=3)

    sent = {f"key-{i:03d}".encode(): f"value-{i:03d}".encode() for i in range(100)}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in sent.items()]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert {m.partition for m in metadata} <= {0, 1, 2}

    records = await _read_all(kafka_bootstrap, topic, partitions=3, expected=100)

    assert len(records) == 100
    assert {key: value for _, _, key, value in records} == sent
    assert {(p, o) for p, o, _, _ in records} == {(m.partition, m.offset) for m in metadata}


@pytest.mark.parametrize("which", ["broker", "controller"])
def test_occupied_port_fails_fast_with_clear_error(which: str, listening_socket: socket.socket) -> None:
    port = int(listening_socket.getsockname()[1])
    broker = LocalBroker(port) if which == "broker" else LocalBroker(controller_port=port)
    started = time.monotonic()
    with pytest.raises(BrokerError, match=rf"port {port} on 127\.0\.0\.1 is already in use \({which} listener\)"):
        broker.start(timeout=30)
    assert time.monotonic() - started < 5
    assert not broker.is_running()


@pytest.mark.kafka
def test_broker_that_dies_at_startup_raises_with_log_tail(tmp_path: Path) -> None:
    broker = LocalBroker(data_dir=tmp_path / "kafka", heap="1k")  # the JVM refuses to start
    started = time.monotonic()
    with pytest.raises(BrokerError) as info:
        broker.start(timeout=60)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "exited with code" in message
    assert "Too small maximum heap" in message
    assert not (tmp_path / "kafka" / "broker.pid").exists()


def test_missing_mvn_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("needs java on PATH")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerError, match="mvn not found"):
        ensure_kafka_jars(cache_dir=tmp_path / "cache")


@pytest.mark.kafka
def test_mvn_failure_is_reported_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(BrokerError) as info:
        ensure_kafka_jars("0.0.1", cache_dir=tmp_path / "cache")  # no such Kafka release
    message = str(info.value)
    assert message.startswith("mvn failed (exit 1) fetching Kafka 0.0.1")
    assert "kafka_2.13" in message  # the tail of mvn's output names the missing artifact
    assert not (tmp_path / "cache" / "kafka-0.0.1" / "libs").exists()


def test_cli_unknown_subcommand_is_a_usage_error() -> None:
    result = _cli("frobnicate")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "invalid choice: 'frobnicate'" in result.stderr
    assert "start" in result.stderr and "stop" in result.stderr and "status" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "required: {start,stop,status,env,fetch}"),
        (["start", "--port", "nine"], "'nine' is not a port number"),
        (["start", "--port", "70000"], "70000 is not a TCP port"),
    ],
)
def test_cli_misuse_returns_2(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_cli_port_in_use_is_a_clear_error(listening_socket: socket.socket, tmp_path: Path) -> None:
    port = str(listening_socket.getsockname()[1])
    result = _cli("start", "--data-dir", str(tmp_path / "kafka"), "--port", port)
    assert result.returncode == 1
    assert f"error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_cli_status_and_stop_without_broker(tmp_path: Path) -> None:
    status = _cli("status", "--data-dir", str(tmp_path))
    assert status.returncode == 3
    assert status.stdout.startswith("not running")
    stop = _cli("stop", "--data-dir", str(tmp_path))
    assert stop.returncode == 0
    assert "not running" in stop.stderr


@pytest.mark.kafka
async def test_cli_detached_broker_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    try:
        first = _cli("start", "--data-dir", str(data_dir))
        assert first.returncode == 0, first.stderr
        bootstrap = first.stdout.strip()
        assert bootstrap.startswith("127.0.0.1:")
        assert (data_dir / "broker.pid").is_file()
        assert (data_dir / "bootstrap").read_text().strip() == bootstrap
        assert "kafka.storage.formatted" in first.stderr

        status = _cli("status", "--data-dir", str(data_dir))
        assert status.returncode == 0 and status.stdout.startswith(f"running bootstrap={bootstrap}")

        again = _cli("start", "--data-dir", str(data_dir))  # idempotent
        assert again.returncode == 0 and again.stdout.strip() == bootstrap
        assert "already running" in again.stderr

        topic = "persisted"
        await _create_topic(bootstrap, topic, partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, key=b"k", value=b"survives a restart")
        finally:
            await producer.stop()

        stopped = _cli("stop", "--data-dir", str(data_dir))
        assert stopped.returncode == 0, stopped.stderr
        assert not (data_dir / "broker.pid").exists()
        assert _cli("status", "--data-dir", str(data_dir)).returncode == 3

        second = _cli("start", "--data-dir", str(data_dir))
        assert second.returncode == 0, second.stderr
        assert "kafka.storage.reuse" in second.stderr  # not reformatted
        assert second.stdout.strip() == bootstrap  # same port when still free
        records = await _read_all(bootstrap, topic, partitions=1, expected=1)
        assert records == [(0, 0, b"k", b"survives a restart")]
    finally:
        stop_broker(data_dir)
