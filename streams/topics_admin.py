"""Moved to :mod:`bifrost.kafka.topics` (the trainer and the client use it too); kept until its last importer moves."""

from bifrost.kafka.topics import COMPACTED_CONFIGS, TopicLayoutError, TopicSpec, ensure_topics

__all__ = ["COMPACTED_CONFIGS", "TopicLayoutError", "TopicSpec", "ensure_topics"]
