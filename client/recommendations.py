"""Subscribing to recommendations, and applying one, from Python.

Example — a subscriber that resumes where it stopped (consumer group ``capacity-bot``)::

    async for rec in follow_recommendations(bootstrap, Topics(), router="web", group_id="capacity-bot"):
        print(rec.priority, rec.title, rec.impact.cost_per_task_change)

Each record is a typed :class:`~bifrost.schemas.recommendations.Recommendation`; records that do
not decode (a newer schema's garbage, a stray write) are skipped with a log line.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bifrost.client.answers import Sent, send_and_await
from bifrost.client.publisher import connect
from bifrost.client.rollout import follow
from bifrost.kafka.security import KafkaSecurity
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import DeadLetter
from bifrost.schemas.recommendations import Recommendation, RecommendationApplied, RecommendationCommand
from bifrost.schemas.topics import Topics

_recommendation = msgspec.json.Decoder(Recommendation)
_applied = msgspec.json.Decoder(RecommendationApplied)


async def follow_recommendations(
    bootstrap: str,
    topics: Topics,
    *,
    router: str | None = None,
    group_id: str | None = None,
    from_beginning: bool = True,
    security: KafkaSecurity | None = None,
    idle_timeout: float | None = None,
) -> AsyncGenerator[Recommendation, None]:
    """Yield recommendations as they are published (of ``router`` only, when given).

    With ``group_id`` the subscriber joins that consumer group and resumes after the last
    record it finished (:func:`bifrost.client.rollout.follow`: at least once); without it,
    it reads from the beginning (or only new records) and remembers nothing. With
    ``idle_timeout`` it ends after that many seconds without a recommendation (as ``follow``).
    """
    async for rec in follow(
        bootstrap,
        topics.recommendations,
        Recommendation,
        routers={router} if router else None,
        from_beginning=from_beginning,
        security=security,
        group_id=group_id,
        idle_timeout=idle_timeout,
    ):
        yield rec


async def read_recommendations(
    bootstrap: str,
    topics: Topics,
    *,
    router: str | None = None,
    security: KafkaSecurity | None = None,
    timeout: float = 20.0,
) -> list[Recommendation]:
    """Every recommendation on the topic now (of ``router``, when given), oldest first; no consumer group."""
    consumer = AIOKafkaConsumer(
        topics.recommendations,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(security or KafkaSecurity()).client_options(),
    )
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
    return RecommendationCommand(
        command_id=uuid.uuid4().hex, recommendation_id=recommendation_id, router_id=router_id, note=note
    )


class ApplyUnauthorized(Exception):
    """The worker refused the command's authentication; ``letter`` is its DLQ record (``error`` says which check)."""

    def __init__(self, letter: DeadLetter) -> None:
        super().__init__(letter.error)
        self.letter = letter


async def apply_recommendation(
    bootstrap: str,
    topics: Topics,
    command: RecommendationCommand,
    *,
    timeout: float = 20.0,
    security: KafkaSecurity | None = None,
) -> RecommendationApplied | None:
    """Send a signed command and return the worker's answer (None when none came within ``timeout``).

    Raises:
        ApplyUnauthorized: the command failed authentication (its DLQ record).
    """

    def answer_of(raw: bytes, sent: Sent) -> RecommendationApplied | None:
        try:
            answer = _applied.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return None
        return answer if answer.command_id == command.command_id else None

    return await send_and_await(
        bootstrap,
        topic=topics.recommendation_commands,
        key=command.recommendation_id.encode(),
        value=encode(command),
        answers=topics.recommendation_outcomes,
        dlq=topics.dlq,
        answer_of=answer_of,
        refused=ApplyUnauthorized,
        timeout=timeout,
        security=security,
    )
