"""Fail fast, with a clear message, when Kafka is not there (see :mod:`bifrost.kafka.preflight`)."""

from bifrost.kafka.preflight import KafkaUnreachable, check_kafka, require_kafka

__all__ = ["KafkaUnreachable", "check_kafka", "require_kafka"]
