"""Shared pytest fixtures. The Kafka broker fixture lives in tests/kafka_fixtures.py."""

from tests.kafka_fixtures import kafka_bootstrap  # noqa: F401
