"""Every Kafka client the product creates takes the TLS/SASL settings (a static check)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("streams", "client", "cli", "trainer", "kafka", "router", "schemas", "config", "catalog", "webhooks")
CLIENTS = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient"}


def _unsecured_calls() -> list[str]:
    found = []
    for folder in PRODUCT:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name not in CLIENTS:
                    continue
                # Security options are passed as **options / **client_options() / **security....
                if not any(k.arg is None for k in node.keywords):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_every_kafka_client_passes_security_options() -> None:
    assert _unsecured_calls() == []


def test_the_check_sees_clients_at_all() -> None:
    # Guards the guard: the product does create clients, so an empty scan means a broken walk.
    seen = 0
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            seen += sum(path.read_text().count(f"{c}(") for c in CLIENTS)
    assert seen >= 8
