"""Subscribing to recommendations, and applying one, from Python.

Example — a subscriber that resumes where it stopped (consumer group ``capacity-bot``)::

    async for rec in follow_recommendations(bootstrap, Topics(), router="web", group_id="capacity-bot"):
        print(rec.priority, rec.title, rec.impact.cost_per_task_change)

Each record is a typed :class:`~bifrost.schemas.recommendations.Recommendation`; records that do
not decode (a newer schema's garbage, a stray write) are skipped with a log line.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncGenerator

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from bifrost.client.publisher import connect
from bifrost.client.rollout import follow
from bifrost.kafka.security import KafkaSecurity
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import DeadLetter
from bifrost.schemas.recommendations import Recommendation, RecommendationApplied, RecommendationCommand
from bifrost.schemas.topics import Topics

_recommendation = msgspec.json.Decoder(Recommendation)
_applied = msgspec.json.Decoder(RecommendationApplied)
_letter = msgspec.json.Decoder(DeadLetter)


async def follow_recommendations(
    bootstrap: str,
    topics: Topics,
    *,
    router: str | None = None,
    group_id: str | None = None,
    from_beginning: bool = True,
    security: KafkaSecurity | None = None,
) -> AsyncGenerator[Recommendation, None]:
    """Yield recommendations as they are published (of ``router`` only, when given).

    With ``group_id`` the subscriber joins that consumer group and resumes after the last
    record it finished (:func:`bifrost.client.rollout.follow`: at least once); without it,
    it reads from the beginning (or only new records) and remembers nothing.
    """
    async for rec in follow(bootstrap, topics.recommendations, Recommendation,
                            routers={router} if router else None, from_beginning=from_beginning,
                            security=security, group_id=group_id):
        yield rec


async def read_recommendations(
    bootstrap: str, topics: Topics, *, router: str | None = None, security: KafkaSecurity | None = None,
    timeout: float = 20.0,
) -> list[Recommendation]:
    """Every recommendation on the topic now (of ``router``, when given), oldest first; no consumer group."""
    consumer = AIOKafkaConsumer(topics.recommendations, bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                **(security or KafkaSecurity()).client_options())
    await connect(consumer, bootstrap, security)
    found: list[Recommendation] = []
    try:
        if topics.recommendations not in await consumer.topics():
            return []  # no worker created it yet: nothing was ever recommended
        deadline = time.monotonic() + timeout
        ends: dict[TopicPartition, int] | None = None
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        rec = _recommendation.decode(record.value or b"")
                    except (msgspec.DecodeError, RecursionError):
                        continue
                    if router is None or rec.router_id == router:
                        found.append(rec)
            assigned = list(consumer.assignment())
            if not assigned:
                continue
            if ends is None:
                ends = await consumer.end_offsets(assigned)  # "now": what was there when the read began
            if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                break
        return found
    finally:
        await consumer.stop()


def new_apply(recommendation_id: str, router_id: str, *, note: str = "") -> RecommendationCommand:
    """An unsigned "apply" command with a fresh id.

    Sign it with :func:`bifrost.schemas.recommendation_signing.sign_apply`.
    """
    return RecommendationCommand(command_id=uuid.uuid4().hex, recommendation_id=recommendation_id,
                                 router_id=router_id, note=note)


class ApplyUnauthorized(Exception):
    """The worker refused the command's authentication; ``letter`` is its DLQ record (``error`` says which check)."""

    def __init__(self, letter: DeadLetter) -> None:
        super().__init__(letter.error)
        self.letter = letter


async def apply_recommendation(
    bootstrap: str, topics: Topics, command: RecommendationCommand, *, timeout: float = 20.0,
    security: KafkaSecurity | None = None,
) -> RecommendationApplied | None:
    """Send a signed command and return the worker's answer (None when none came within ``timeout``).

    Raises:
        ApplyUnauthorized: the command failed authentication (its DLQ record).
    """
    watched = sorted({topics.recommendation_outcomes, topics.dlq})
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="latest", **(security or KafkaSecurity()).client_options())
    await connect(consumer, bootstrap, security)
    deadline = time.monotonic() + timeout
    digest = hashlib.sha256(encode(command)).hexdigest()
    try:
        consumer.subscribe(watched)
        while {tp.topic for tp in consumer.assignment()} != set(watched) and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)  # pin "latest" before the command goes out
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                    **(security or KafkaSecurity()).client_options())
        await connect(producer, bootstrap, security)
        try:
            sent = await producer.send_and_wait(topics.recommendation_commands, encode(command),
                                                key=command.recommendation_id.encode())
        finally:
            await producer.stop()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    if not record.value:
                        continue
                    if record.topic == topics.dlq:
                        try:
                            letter = _letter.decode(record.value)
                        except (msgspec.DecodeError, RecursionError):
                            continue
                        if (letter.source_topic == topics.recommendation_commands and letter.original_sha256 == digest
                                and (letter.partition, letter.offset) == (sent.partition, sent.offset)):
                            raise ApplyUnauthorized(letter)
                        continue
                    try:
                        answer = _applied.decode(record.value)
                    except (msgspec.DecodeError, RecursionError):
                        continue
                    if answer.command_id == command.command_id:
                        return answer
        return None
    finally:
        await consumer.stop()
