"""Stopping and starting the local broker again on the same port while clients reconnect.

The chaos suite relies on this: a LocalBroker with a persistent data dir, ``stop()``,
``start()`` again at the same bootstrap address, clients reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from bifrost.devkafka import BrokerError, LocalBroker
from bifrost.devkafka import broker as broker_module
from bifrost.devkafka.broker import (
    FALLBACK_EPHEMERAL_RANGE,
    _free_ports,
    ephemeral_port_range,
    listener_port_ranges,
)
from tests.devkafka.test_broker import _create_topic, _read_all


def test_listener_ports_avoid_the_ephemeral_range() -> None:
    assert listener_port_ranges((32768, 60999)) == [range(10000, 32768), range(61000, 65536)]
    assert listener_port_ranges((1024, 65535)) == []  # nothing left: the caller falls back
    assert listener_port_ranges((49152, 65535)) == [range(10000, 49152)]
    assert listener_port_ranges((5000, 20000)) == [range(20001, 65536)]


def test_ephemeral_range_is_read_from_proc_or_assumed(tmp_path: Path) -> None:
    file = tmp_path / "ip_local_port_range"
    file.write_text("40000\t50000\n")
    assert ephemeral_port_range(file) == (40000, 50000)
    file.write_text("garbage")
    assert ephemeral_port_range(file) == FALLBACK_EPHEMERAL_RANGE
    assert ephemeral_port_range(tmp_path / "missing") == FALLBACK_EPHEMERAL_RANGE


def test_chosen_ports_are_free_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_port_range()
    ports = [port for _ in range(20) for port in _free_ports(2)]
    assert all(not low <= port <= high for port in ports), ports
    assert len(set(ports)) > 10  # random, so parallel brokers rarely collide


class Reconnector:
    """A client that reconnects to a port in a tight loop, as drivers do while a broker is down.

    A connection that turns out to be the socket connected to itself (TCP simultaneous
    open, possible only when the port is inside the ephemeral range) is held open for a
    while, as a client waiting for an answer would, which keeps the port busy.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.attempts = 0
        self.self_connects = 0
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Reconnector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.attempts += 1
            try:
                sock.connect(("127.0.0.1", self.port))
            except OSError:
                sock.close()
                continue
            if sock.getsockname() == sock.getpeername():
                self.self_connects += 1
                self._held.append(sock)
                threading.Timer(5.0, sock.close).start()
            else:
                sock.close()
                return  # a real listener answers: the broker is back


@pytest.mark.kafka
async def test_stop_and_start_on_the_same_port_while_clients_keep_sending(tmp_path: Path) -> None:
    broker = LocalBroker(data_dir=tmp_path / "kafka")
    bootstrap = await asyncio.to_thread(broker.start, 120.0)
    try:
        port = broker.port
        assert port is not None and broker.controller_port is not None
        low, high = ephemeral_port_range()
        assert not low <= port <= high and not low <= broker.controller_port <= high

        topic = f"restart-{uuid.uuid4().hex[:8]}"
        await _create_topic(bootstrap, topic, partitions=1)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=120_000,
            retry_backoff_ms=100,
        )
        await producer.start()
        sent: list[tuple[str, asyncio.Future[object]]] = []
        phase = "before"
        stop_sending = asyncio.Event()

        async def keep_sending() -> None:
            i = 0
            while not stop_sending.is_set():
                sent.append((phase, await producer.send(topic, f"m-{i:05d}".encode(), key=b"k")))
                i += 1
                await asyncio.sleep(0.02)

        sender = asyncio.create_task(keep_sending())
        try:
            await asyncio.sleep(1.0)
            # 1. A clean stop, down for 2 s with clients reconnecting, start on the same port.
            await asyncio.to_thread(broker.stop)
            phase = "down"
            with Reconnector(port) as reconnector:
                await asyncio.sleep(2.0)
            assert reconnector.attempts > 100 and reconnector.self_connects == 0
            started = time.monotonic()
            assert await asyncio.to_thread(broker.start, 120.0) == bootstrap
            phase = "after"
            await asyncio.sleep(1.5)
            # 2. A crash (SIGKILL) and restart in one call: same address again.
            assert await asyncio.to_thread(broker.restart, 120.0, kill=True, downtime=1.0) == bootstrap
            phase = "after-kill"
            await asyncio.sleep(1.5)
        finally:
            stop_sending.set()
            await sender
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(future for _, future in sent), return_exceptions=True), 120
            )
        finally:
            await producer.stop()
        failed = [(p, r) for (p, _), r in zip(sent, results, strict=True) if isinstance(r, BaseException)]
        assert not failed, failed[:5]
        phases = [p for p, _ in sent]
        assert phases.count("after") >= 10 and phases.count("after-kill") >= 10, time.monotonic() - started
        # Everything acknowledged is there once: data dir and producer state survived both restarts.
        records = await _read_all(bootstrap, topic, partitions=1, expected=len(sent))
        assert [value for _, _, _, value in records] == [f"m-{i:05d}".encode() for i in range(len(sent))]

        # 3. Its own port taken by someone else: start says so instead of moving elsewhere.
        await asyncio.to_thread(broker.stop)
        with socket.socket() as squatter:
            # The broker's side of closed connections may sit in TIME_WAIT on this port; a
            # listening socket still takes the port, which is what this step needs.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with pytest.raises(BrokerError, match=rf"port {port} on 127\.0\.0\.1 \(this broker's own port"):
                await asyncio.to_thread(broker.start, 1.0)
    finally:
        await asyncio.to_thread(broker.stop)


@pytest.mark.kafka
def test_a_chosen_port_taken_first_is_chosen_again_and_restart_keeps_a_temp_data_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = broker_module._free_ports
    calls: list[list[int]] = []
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", real(1)[0]))
        squatter.listen()
        taken = int(squatter.getsockname()[1])

        def racing(count: int, exclude: set[int] | None = None) -> list[int]:
            ports = real(count, exclude)
            if not calls:
                ports[0] = taken  # another process got there between the check and the bind
            calls.append(ports)
            return ports

        monkeypatch.setattr(broker_module, "_free_ports", racing)
        broker = LocalBroker()
        with pytest.raises(BrokerError, match="call start"):
            broker.restart()
        try:
            bootstrap = broker.start(timeout=120.0)
            assert len(calls) == 2 and broker.port not in (taken, None)
            data_dir = broker.data_dir
            assert data_dir is not None
            # restart() keeps the temporary data dir (and the port); stop(keep_data=True) too.
            assert broker.restart(timeout=120.0) == bootstrap
            assert broker.data_dir == data_dir and (data_dir / "logs" / "meta.properties").is_file()
            broker.stop(keep_data=True)
            assert data_dir.is_dir()
        finally:
            broker.stop()
        assert not data_dir.exists()  # a plain stop() removes it
