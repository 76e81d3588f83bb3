"""Sending rollout commands and following rollout-state and rollbacks from Python."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TypeVar

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from bifrost.client.answers import Sent, send_and_await, send_command_record
from bifrost.client.publisher import connect
from bifrost.kafka.security import KafkaSecurity
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import DeadLetter
from bifrost.schemas.recommendations import Recommendation
from bifrost.schemas.rollout import CommandKind, RollbackEvent, RolloutCommand, RolloutState
from bifrost.schemas.topics import Topics

S = TypeVar("S", RolloutState, RollbackEvent, Recommendation)
log = logging.getLogger("bifrost.client")
T = TypeVar("T")


def router_key(router_id: str) -> bytes:
    """Message key of router-keyed topics: the JSON string of the router id.

    Commands must use it so they land on the partition of the router's controller.
    """
    return orjson.dumps(router_id)


def new_command(
    router_id: str,
    kind: CommandKind,
    *,
    artifact: str | None = None,
    control: str | None = None,
    reason: str | None = None,
    sha256: str | None = None,
    override: bool = False,
) -> RolloutCommand:
    """An unsigned command with a fresh id; sign it (``CommandSigner.sign``) before sending.

    Example:
        >>> from bifrost.schemas.command_signing import CommandSigner  # doctest: +SKIP
        >>> signer = CommandSigner("alice", load_private_key("var/keys/alice.pem"))  # doctest: +SKIP
        >>> command = signer.sign(new_command("web", CommandKind.PAUSE))  # doctest: +SKIP
        >>> await wait_for_outcome(bootstrap, topics, command)  # doctest: +SKIP
    """
    return RolloutCommand(
        command_id=uuid.uuid4().hex,
        router_id=router_id,
        kind=kind,
        artifact=artifact,
        control=control,
        reason=reason,
        sha256=sha256,
        override=override,
    )


class CommandUnauthorized(Exception):
    """The controller refused the command's authentication.

    ``letter`` is its DLQ record (its ``error`` says which check failed).
    """

    def __init__(self, letter: DeadLetter) -> None:
        super().__init__(letter.error)
        self.letter = letter


async def send_command(
    bootstrap: str, topics: Topics, command: RolloutCommand, *, security: KafkaSecurity | None = None
) -> tuple[int, int]:
    """Publish one command (acks=all); return the (partition, offset) it was written at."""
    sent = await send_command_record(
        bootstrap, topics.rollout_commands, router_key(command.router_id), encode(command), security=security
    )
    return sent.partition, sent.offset


async def follow(
    bootstrap: str,
    topic: str,
    value_type: type[S],
    *,
    routers: set[str] | None = None,
    from_beginning: bool = True,
    security: KafkaSecurity | None = None,
    group_id: str | None = None,
    idle_timeout: float | None = None,
) -> AsyncIterator[S]:
    """Yield decoded records of a router-keyed topic.

    Without ``group_id`` it reads every partition with no consumer group, from the start
    (``from_beginning``; for the compacted rollout-state that is the latest state of every
    router) or only new records, and remembers nothing.

    With ``group_id`` the subscriber is a member of that consumer group and **resumes
    where it left off**: a record counts as consumed once the loop asks for the next one,
    and its offset is committed then, so a restarted subscriber starts right after the
    last record it finished (the one it was handling when it died comes again: at least
    once). ``from_beginning`` then only says where a group with no committed offset
    starts. Several processes with the same ``group_id`` share the partitions.

    Records that do not decode as ``value_type`` are skipped (logged), never raised.

    It follows forever by default. With ``idle_timeout`` (seconds, > 0) the iteration
    ends once no record was yielded for that long (counted from subscribing, then from
    each time the loop asks for the next record; as ``kafka-console-consumer
    --timeout-ms``): on an empty or missing topic it ends after ``idle_timeout``.

    Example:
        >>> pager = follow(bootstrap, Topics().rollbacks, RollbackEvent, group_id="pager")  # doctest: +SKIP
        >>> async for rollback in pager:  # doctest: +SKIP
        ...     page_oncall(rollback)
    """
    if idle_timeout is not None and not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be > 0 seconds (None: follow forever), not {idle_timeout!r}")
    if group_id is not None and not group_id.strip():
        raise ValueError("group_id must name a consumer group (None: no group); an empty name is not one")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        metadata_max_age_ms=5000,  # notice a topic created after we subscribed
        **(security or KafkaSecurity()).client_options(),
    )
    try:
        await connect(consumer, bootstrap, security)  # inside: cancelled while connecting, it is still closed
        consumer.subscribe([topic])
        decoder = msgspec.json.Decoder(value_type)
        consumed: dict[TopicPartition, OffsetAndMetadata] = {}
        idle_since = time.monotonic()
        while True:
            wait = 1.0
            if idle_timeout is not None:
                left = idle_timeout - (time.monotonic() - idle_since)
                if left <= 0:
                    break
                wait = min(wait, left)
            batches = await consumer.getmany(timeout_ms=max(1, int(wait * 1000)))
            for tp, records in batches.items():
                for record in records:
                    consumed[tp] = OffsetAndMetadata(record.offset + 1, "")
                    value = _decode_or_none(decoder, record.value) if record.value is not None else None
                    if value is None:
                        if record.value is not None:
                            log.warning(
                                "event=client.follow.undecodable topic=%s partition=%d offset=%d",
                                record.topic,
                                record.partition,
                                record.offset,
                            )
                        continue
                    if routers is None or value.router_id in routers:
                        yield value
                        idle_since = time.monotonic()  # the caller's time with the record is not idle time
                        if group_id is not None:  # the caller asked for the next one: this one is consumed
                            await _commit(consumer, consumed)
            if group_id is not None and consumed:
                await _commit(consumer, consumed)  # records skipped at the end of the batch
    finally:
        await consumer.stop()


async def _commit(consumer: AIOKafkaConsumer, consumed: dict[TopicPartition, OffsetAndMetadata]) -> None:
    """Commit ``consumed`` for the partitions still assigned; a rebalance in between only means redelivery."""
    assigned = consumer.assignment()
    offsets = {tp: offset for tp, offset in consumed.items() if tp in assigned}
    consumed.clear()
    if not offsets:
        return
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        log.warning(
            "event=client.follow.commit_failed error=%r note=%r",
            str(exc)[:300],
            "records after the last committed offset will be delivered again",
        )


async def wait_for_outcome(
    bootstrap: str,
    topics: Topics,
    command: RolloutCommand,
    *,
    timeout: float = 20.0,
    security: KafkaSecurity | None = None,
) -> RolloutState | None:
    """Send ``command`` and return the state that reports its outcome (None on timeout).

    The outcome is either the router's state with ``last_command`` answering this very
    record (same command id and rollout-commands offset: a re-sent command is not answered
    by the states that still carry its first delivery's outcome), or — when the command
    failed authentication — its DLQ record, raised as :class:`CommandUnauthorized`.
    """
    state_decoder = msgspec.json.Decoder(RolloutState)

    def answer_of(raw: bytes, sent: Sent) -> RolloutState | None:
        state = _decode_or_none(state_decoder, raw)
        answer = state.last_command if state else None
        return (
            state if answer and answer.command_id == command.command_id and answer.offset in (sent.offset, -1) else None
        )

    return await send_and_await(
        bootstrap,
        topic=topics.rollout_commands,
        key=router_key(command.router_id),
        value=encode(command),
        answers=topics.rollout_state,
        dlq=topics.dlq,
        answer_of=answer_of,
        refused=CommandUnauthorized,
        timeout=timeout,
        security=security,
    )


def _decode_or_none(decoder: msgspec.json.Decoder[T], raw: bytes) -> T | None:
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None


class WeightsFollower:
    """Keeps the newest traffic weights per router from rollout-state (for the simulator)."""

    def __init__(
        self, bootstrap: str, topics: Topics, routers: set[str], *, security: KafkaSecurity | None = None
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
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
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping: how the follower ended no longer matters
                pass

    def lookup(self, router_id: str) -> Mapping[str, float] | None:
        weights = self.weights.get(router_id)
        return weights if weights and sum(weights.values()) > 0 else None

    async def _run(self) -> None:
        async for state in follow(
            self._bootstrap, self._topics.rollout_state, RolloutState, routers=self._routers, security=self._security
        ):
            self.weights[state.router_id] = dict(state.weights)


WeightLookup = Callable[[str], Mapping[str, float] | None]
