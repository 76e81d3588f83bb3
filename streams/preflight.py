"""Fail fast, with a clear message, when Kafka is not there."""

from __future__ import annotations


class KafkaUnreachable(RuntimeError):
    """The configured bootstrap servers do not answer Kafka requests."""


def require_kafka(bootstrap: str, timeout: float = 15.0) -> None:
    """Raise :class:`KafkaUnreachable` unless ``bootstrap`` answers a metadata request."""
    from bifrost.devkafka import probe_kafka  # a generic metadata probe, shared with dev tooling

    if not probe_kafka(bootstrap, timeout=timeout):
        raise KafkaUnreachable(
            f"cannot reach Kafka at {bootstrap} within {timeout:.0f} s "
            "(set BIFROST_KAFKA_BOOTSTRAP, or start the local broker: bifrost-opt kafka start)"
        )
