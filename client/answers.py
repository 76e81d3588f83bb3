"""Send one signed command and wait for the worker's answer to it, or its refusal.

Rollout commands and recommendation commands are answered the same way: the answer
appears on a topic of the worker's (the rollout state, the recommendation outcomes), or,
when the command failed authentication, its dead letter appears on the DLQ. Both are read
by a group-less consumer pinned at "latest" before the command goes out, so nothing
older than the command is taken for its answer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer

from bifrost.client.publisher import connect
from bifrost.kafka.producer import new_producer
from bifrost.kafka.security import KafkaSecurity
from bifrost.schemas.dlq import DeadLetter

A = TypeVar("A")

_letter = msgspec.json.Decoder(DeadLetter)


@dataclass(frozen=True, slots=True)
class Sent:
    """Where the command was written."""

    partition: int
    offset: int


async def send_command_record(
    bootstrap: str, topic: str, key: bytes, value: bytes, *, security: KafkaSecurity | None = None
) -> Sent:
    """Publish one command record (idempotent, ``acks=all``); where it was written."""
    producer = new_producer(bootstrap, client_options=(security or KafkaSecurity()).client_options())
    await connect(producer, bootstrap, security)
    try:
        sent = await producer.send_and_wait(topic, value, key=key)
        return Sent(sent.partition, sent.offset)
    finally:
        await producer.stop()


async def send_and_await(
    bootstrap: str,
    *,
    topic: str,
    key: bytes,
    value: bytes,
    answers: str,
    dlq: str,
    answer_of: Callable[[bytes, Sent], A | None],
    refused: Callable[[DeadLetter], BaseException],
    timeout: float,
    security: KafkaSecurity | None = None,
) -> A | None:
    """Send ``value`` on ``topic`` and return the first record of ``answers`` that ``answer_of`` accepts.

    ``answer_of(raw, sent)`` decodes a record of ``answers`` and returns it when it answers
    the command written at ``sent`` (else None). None when nothing answered within ``timeout``.

    Raises:
        what ``refused(letter)`` returns: the command's own dead letter came back (same
            topic, digest and position), i.e. the worker refused it.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        **(security or KafkaSecurity()).client_options(),
    )
    await connect(consumer, bootstrap, security)
    watched = {answers, dlq}
    deadline = time.monotonic() + timeout
    digest = hashlib.sha256(value).hexdigest()
    try:
        consumer.subscribe(sorted(watched))
        while {tp.topic for tp in consumer.assignment()} != watched and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)  # pin "latest" before the command goes out
        sent = await send_command_record(bootstrap, topic, key, value, security=security)
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    if not record.value:
                        continue
                    if record.topic == dlq:
                        letter = _decode_letter(record.value)
                        if (
                            letter is not None
                            and letter.source_topic == topic
                            and letter.original_sha256 == digest
                            and (letter.partition, letter.offset) == (sent.partition, sent.offset)
                        ):
                            raise refused(letter)
                        continue
                    answer = answer_of(record.value, sent)
                    if answer is not None:
                        return answer
        return None
    finally:
        await consumer.stop()


def _decode_letter(raw: bytes) -> DeadLetter | None:
    try:
        return _letter.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
