"""A real single-node Apache Kafka broker (KRaft) for development, tests and CI.

Jars come from Maven Central (fetched once with ``mvn``, then cached); the broker
runs as a plain ``java`` subprocess. See :mod:`bifrost.devkafka.broker` (including
stop/start/restart on the same port and data for chaos tests), and
``python -m bifrost.devkafka --help`` for the long-running mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bifrost.devkafka.broker import (
    DEFAULT_KAFKA_VERSION,
    BrokerError,
    BrokerStatus,
    LocalBroker,
    broker_status,
    client_security_of,
    ensure_kafka_jars,
    ephemeral_port_range,
    free_listener_port,
    listener_port_ranges,
    stop_broker,
)

if TYPE_CHECKING:
    from bifrost.devkafka.__main__ import main

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "BrokerError",
    "BrokerStatus",
    "LocalBroker",
    "broker_status",
    "client_security_of",
    "ensure_kafka_jars",
    "ephemeral_port_range",
    "free_listener_port",
    "listener_port_ranges",
    "main",
    "stop_broker",
]


def __getattr__(name: str) -> Any:
    # `main` lives in __main__.py; import it lazily so `python -m bifrost.devkafka`
    # does not find that module already imported (runpy warns about that).
    if name == "main":
        from bifrost.devkafka.__main__ import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
