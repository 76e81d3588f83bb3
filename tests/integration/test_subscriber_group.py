"""A subscriber in a consumer group resumes after the last record it consumed (real broker)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from bifrost.client.rollout import follow, router_key
from bifrost.schemas.codec import encode
from bifrost.schemas.rollout import RollbackEvent

pytestmark = pytest.mark.kafka


def rollback(n: int, router: str = "web") -> RollbackEvent:
    return RollbackEvent(
        router_id=router,
        canary_version=f"v{n}",
        control_version="v1",
        gate="latency_p95",
        stage_index=0,
        stage_percent=5.0,
        evidence=[],
        reason=f"rollback {n}",
        window_end=float(n),
        at=float(n),
        revision=n,
    )


async def publish(bootstrap: str, topic: str, numbers: range, router: str = "web") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for n in numbers:
            await producer.send_and_wait(topic, encode(rollback(n, router)), key=router_key(router))
        await producer.send_and_wait(topic, b"{not a rollback", key=router_key(router))  # skipped, not raised
    finally:
        await producer.stop()


async def take(bootstrap: str, topic: str, group: str, count: int, **kw: Any) -> list[int]:
    """Revisions of the first ``count`` records the group's subscriber yields; it stops after receiving
    the last one, without asking for more (so that one is handed out but not consumed)."""
    seen: list[int] = []

    async def run() -> None:
        async for event in follow(bootstrap, topic, RollbackEvent, group_id=group, **kw):
            seen.append(event.revision)
            if len(seen) == count:
                return

    await asyncio.wait_for(run(), 60)
    return seen


async def test_a_group_subscriber_resumes_after_the_last_consumed_record(kafka_bootstrap: str) -> None:
    topic = f"t{uuid.uuid4().hex[:8]}.rollbacks"
    group = f"pager-{uuid.uuid4().hex[:8]}"
    await publish(kafka_bootstrap, topic, range(1, 6))
    # Consumes 1 and 2 (it asked for the next one after each), receives 3 and stops.
    assert await take(kafka_bootstrap, topic, group, 3) == [1, 2, 3]
    # Restarted: 3 was handed out but never finished, so it comes again (at least once), then 4, 5.
    assert await take(kafka_bootstrap, topic, group, 3) == [3, 4, 5]
    # Records published while nobody listens; the skipped garbage records cost nothing.
    await publish(kafka_bootstrap, topic, range(6, 8))
    assert await take(kafka_bootstrap, topic, group, 3) == [5, 6, 7]
    # Without a group nothing is remembered: from the beginning, every time.
    no_group: list[int] = []

    async def run() -> None:
        async for event in follow(kafka_bootstrap, topic, RollbackEvent):
            no_group.append(event.revision)
            if len(no_group) == 2:
                return

    await asyncio.wait_for(run(), 60)
    assert no_group == [1, 2]
    # Another group starts on its own (from the beginning by default, or only new records).
    assert await take(kafka_bootstrap, topic, f"{group}-b", 1) == [1]
    late: asyncio.Task[list[int]] = asyncio.ensure_future(
        take(kafka_bootstrap, topic, f"{group}-c", 1, from_beginning=False)
    )
    n = 8
    while not late.done():  # new records until the late group (positioned at the end when it joined) sees one
        await publish(kafka_bootstrap, topic, range(n, n + 1))
        n += 1
        await asyncio.sleep(1)
    assert (await late)[0] >= 8  # nothing from before it joined


async def test_idle_timeout_ends_the_loop_on_an_empty_topic_and_after_the_last_record(kafka_bootstrap: str) -> None:
    async def every(topic: str, **kw: Any) -> list[int]:
        """Revisions yielded until the subscriber ends by itself (wait_for only guards against a hang)."""

        async def run() -> list[int]:
            return [event.revision async for event in follow(kafka_bootstrap, topic, RollbackEvent, **kw)]

        return await asyncio.wait_for(run(), 60)

    topic = f"t{uuid.uuid4().hex[:8]}.rollbacks"
    assert await every(topic, idle_timeout=2) == []  # the topic does not even exist
    await publish(kafka_bootstrap, topic, range(1, 4))
    assert await every(topic, idle_timeout=2) == [1, 2, 3]
    group = f"pager-{uuid.uuid4().hex[:8]}"
    assert await every(topic, group_id=group, idle_timeout=2) == [1, 2, 3]
    # Asked for the next record after 3, then idle: 3 was consumed and committed, nothing comes again.
    assert await every(topic, group_id=group, idle_timeout=2) == []
    with pytest.raises(ValueError, match="idle_timeout must be > 0"):
        await every(topic, idle_timeout=0)
