"""The one topic-admin helper on the real broker: creates what is missing, checks partition counts on request."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bifrost.config import Settings
from bifrost.kafka.topics import COMPACTED_CONFIGS, TopicLayoutError, TopicSpec, ensure_topics

pytestmark = pytest.mark.kafka


async def _layout(bootstrap: str, topic: str) -> tuple[int, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        (configs,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {name: value for name, value, *_ in configs.resources[0][4]}
        return len(described["partitions"]), entries
    finally:
        await admin.close()


async def test_missing_topics_are_created_and_a_different_partition_count_is_refused_unless_unchecked(
    settings: Settings,
) -> None:
    bootstrap = settings.kafka_bootstrap
    plain, compacted = f"{settings.topic_prefix}admin-plain", f"{settings.topic_prefix}admin-compacted"
    await ensure_topics(bootstrap, [TopicSpec(plain, 3), TopicSpec(compacted, 1, compacted=True)])

    partitions, _ = await _layout(bootstrap, plain)
    assert partitions == 3
    _, configs = await _layout(bootstrap, compacted)
    assert {k: configs[k] for k in COMPACTED_CONFIGS} == COMPACTED_CONFIGS

    with pytest.raises(TopicLayoutError, match=f"{plain} has 3 partitions"):
        await ensure_topics(bootstrap, [TopicSpec(plain, 5)])
    await ensure_topics(bootstrap, [TopicSpec(plain, 5)], check_partitions=False)  # a reader of any count
    partitions, _ = await _layout(bootstrap, plain)
    assert partitions == 3  # never altered
