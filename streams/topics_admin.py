"""Creating the topics the worker needs, with the partition counts it relies on."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger("bifrost.topics")


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count the worker cannot use."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], *, replication_factor: int = 1) -> None:
    """Create missing topics; refuse existing ones whose partition count differs."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            try:
                await admin.create_topics([
                    NewTopic(
                        name=s.name, num_partitions=s.partitions, replication_factor=replication_factor,
                        topic_configs={"cleanup.policy": "compact"} if s.compacted else {},
                    )
                    for s in missing
                ])
            except TopicAlreadyExistsError:
                pass  # another worker created them first
            log.info("event=topics.created topics=%s", ",".join(s.name for s in missing))
        described = await admin.describe_topics([s.name for s in specs])
        counts = {d["topic"]: len(d["partitions"]) for d in described if d.get("partitions")}
        for spec in specs:
            found = counts.get(spec.name)
            if found is not None and found != spec.partitions:
                raise TopicLayoutError(
                    f"topic {spec.name} has {found} partitions but BIFROST_PARTITIONS={spec.partitions}; "
                    "input topics and state must be co-partitioned (set BIFROST_PARTITIONS to match)"
                )
    finally:
        await admin.close()
