"""Creating the topics a bifrost process needs, with the partition counts it relies on.

Used by the worker, the trainer, the catalog refresher and the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger("bifrost.topics")


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count the worker cannot use."""


# The active segment is never compacted, and the broker default rolls it at 1 GiB or
# 7 days: a changelog written at every batch then only grows, and state recovery (which
# reads it from the start) grew with the worker's uptime. Rolling every minute and
# cleaning at 10% dirty keeps it near the size of the live state.
COMPACTED_CONFIGS = {"cleanup.policy": "compact", "segment.ms": "60000", "min.cleanable.dirty.ratio": "0.1"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    configs: Mapping[str, str] = field(default_factory=dict)  # more topic configs, e.g. retention.ms


async def ensure_topics(
    bootstrap: str,
    specs: list[TopicSpec],
    *,
    replication_factor: int = 1,
    client_options: Mapping[str, Any] | None = None,
    check_partitions: bool = True,
) -> None:
    """Create missing topics; refuse existing ones whose partition count differs.

    ``client_options`` are the TLS/SASL keyword arguments (``Settings.kafka_options()``).
    ``check_partitions=False`` only creates: for a process that reads any partition count.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            name=s.name,
                            num_partitions=s.partitions,
                            replication_factor=replication_factor,
                            topic_configs={**(COMPACTED_CONFIGS if s.compacted else {}), **s.configs},
                        )
                        for s in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # another worker created them first
            log.info("event=topics.created topics=%s", ",".join(s.name for s in missing))
        described = await _wait_for_leaders(admin, [s.name for s in specs])
        counts = {d["topic"]: len(d["partitions"]) for d in described if d.get("partitions")}
        for spec in specs if check_partitions else ():
            found = counts.get(spec.name)
            if found is not None and found != spec.partitions:
                raise TopicLayoutError(
                    f"topic {spec.name} has {found} partitions but BIFROST_PARTITIONS={spec.partitions}; "
                    "input topics and state must be co-partitioned (set BIFROST_PARTITIONS to match)"
                )
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> list[Any]:
    """Topic descriptions once every partition has a leader.

    A consumer that subscribes while a new topic's partitions have no leader yet sees
    the topic as unknown, is assigned nothing, and stays idle until its next metadata
    refresh (minutes): waiting here closes that gap.
    """
    deadline = time.monotonic() + timeout
    while True:
        described = await admin.describe_topics(names)
        settled = all(
            d.get("error_code", 0) == 0
            and d.get("partitions")
            and all(p.get("leader", -1) >= 0 and p.get("error_code", 0) == 0 for p in d["partitions"])
            for d in described
        )
        if settled or time.monotonic() > deadline:
            return described
        await asyncio.sleep(0.1)
