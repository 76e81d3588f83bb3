"""The one producer builder: every site's effective settings (recorded, nothing connects)."""

from __future__ import annotations

from typing import Any

import pytest

from bifrost.client import Publisher
from bifrost.kafka import producer
from bifrost.kafka.security import KafkaSecurity

STANDARD = {"bootstrap_servers": "b:9092", "acks": "all", "enable_idempotence": True}


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every producer :func:`producer.new_producer` builds."""
    seen: list[dict[str, Any]] = []

    class Recorded:
        def __init__(self, **kwargs: Any) -> None:
            seen.append(kwargs)

    monkeypatch.setattr(producer, "AIOKafkaProducer", Recorded)
    return seen


def test_unset_options_keep_aiokafkas_defaults(built: list[dict[str, Any]]) -> None:
    producer.new_producer("b:9092")
    assert built == [STANDARD]  # no client_id, linger or batch size passed: aiokafka's own


def test_client_id_tuning_and_security_options_are_passed(built: list[dict[str, Any]]) -> None:
    options = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"}
    producer.new_producer("b:9092", client_id="x-dlq", client_options=options, linger_ms=5, max_batch_size=1024)
    assert built == [{**STANDARD, "client_id": "x-dlq", "linger_ms": 5, "max_batch_size": 1024, **options}]


def test_publisher_keeps_its_batching_settings(built: list[dict[str, Any]]) -> None:
    Publisher("b:9092")
    expected = {"client_id": "bifrost-publisher", "linger_ms": 10, "max_batch_size": 512 * 1024}
    assert built == [{**STANDARD, **expected, **KafkaSecurity().client_options()}]
