"""Sending rollout commands and following rollout-state and rollbacks from Python."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TypeVar

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bifrost.client.publisher import connect
from bifrost.schemas.codec import encode
from bifrost.schemas.rollout import CommandKind, RollbackEvent, RolloutCommand, RolloutState
from bifrost.schemas.topics import Topics

S = TypeVar("S", RolloutState, RollbackEvent)


def router_key(router_id: str) -> bytes:
    """Message key of router-keyed topics: the JSON string of the router id.

    Commands must use it so they land on the partition of the router's controller.
    """
    return orjson.dumps(router_id)


def new_command(router_id: str, kind: CommandKind, *, artifact: str | None = None, control: str | None = None,
                reason: str | None = None, issued_by: str = "cli") -> RolloutCommand:
    """A command with a fresh id and the current time."""
    return RolloutCommand(
        command_id=uuid.uuid4().hex, router_id=router_id, kind=kind, artifact=artifact, control=control,
        reason=reason, issued_by=issued_by, issued_at=time.time(),
    )


async def send_command(bootstrap: str, topics: Topics, command: RolloutCommand) -> None:
    """Publish one command (acks=all)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await connect(producer, bootstrap)
    try:
        await producer.send_and_wait(topics.rollout_commands, encode(command), key=router_key(command.router_id))
    finally:
        await producer.stop()


async def follow(
    bootstrap: str,
    topic: str,
    value_type: type[S],
    *,
    routers: set[str] | None = None,
    from_beginning: bool = True,
) -> AsyncIterator[S]:
    """Yield decoded records of a router-keyed topic (no consumer group; every partition).

    ``from_beginning`` replays the topic first (for the compacted rollout-state this is
    the latest state of every router), otherwise only new records are yielded.

    Example:
        >>> async for rollback in follow(bootstrap, Topics().rollbacks, RollbackEvent):  # doctest: +SKIP
        ...     page_oncall(rollback)
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        metadata_max_age_ms=5000,  # notice a topic created after we subscribed
    )
    await connect(consumer, bootstrap)
    try:
        consumer.subscribe([topic])
        decoder = msgspec.json.Decoder(value_type)
        async for record in consumer:
            if record.value is None:
                continue
            value = decoder.decode(record.value)
            if routers is None or value.router_id in routers:
                yield value
    finally:
        await consumer.stop()


async def wait_for_outcome(bootstrap: str, topics: Topics, command: RolloutCommand, *, timeout: float = 20.0) -> RolloutState | None:
    """Send ``command`` and return the state that reports its outcome (None on timeout)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="latest")
    await connect(consumer, bootstrap)
    decoder = msgspec.json.Decoder(RolloutState)
    deadline = time.monotonic() + timeout
    try:
        consumer.subscribe([topics.rollout_state])
        while not consumer.assignment() and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)  # pin "latest" before the command goes out
        await send_command(bootstrap, topics, command)
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    state = decoder.decode(record.value) if record.value else None
                    if state and state.last_command and state.last_command.command_id == command.command_id:
                        return state
        return None
    finally:
        await consumer.stop()


class WeightsFollower:
    """Keeps the newest traffic weights per router from rollout-state (for the simulator)."""

    def __init__(self, bootstrap: str, topics: Topics, routers: set[str]) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._routers = routers
        self.weights: dict[str, dict[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def lookup(self, router_id: str) -> Mapping[str, float] | None:
        weights = self.weights.get(router_id)
        return weights if weights and sum(weights.values()) > 0 else None

    async def _run(self) -> None:
        async for state in follow(self._bootstrap, self._topics.rollout_state, RolloutState, routers=self._routers):
            self.weights[state.router_id] = dict(state.weights)


WeightLookup = Callable[[str], Mapping[str, float] | None]
