"""Fail fast, with a clear message, when Kafka is not there or refuses our credentials."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bifrost.kafka.security import KafkaSecurity, KafkaSecurityError


class KafkaUnreachable(RuntimeError):
    """The configured bootstrap servers do not answer, or refuse this client."""


_AUTH_HINTS = ("authentication", "sasl", "scram", "credentials", "ssl", "certificate", "handshake")


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    cause = error.__cause__ or error.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


async def check_kafka(bootstrap: str, security: KafkaSecurity, *, timeout: float = 15.0) -> None:
    """Raise :class:`KafkaUnreachable` unless ``bootstrap`` answers a metadata request
    over the configured protocol with the configured credentials."""
    try:
        options = security.client_options()
    except KafkaSecurityError as exc:
        raise KafkaUnreachable(str(exc)) from None
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="bifrost-preflight",
        request_timeout_ms=max(1000, int(timeout * 1000)), **options,
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.describe_cluster(), timeout)
    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
        detail = _describe(exc)
        if security.uses_sasl and any(h in detail.lower() for h in _AUTH_HINTS):
            raise KafkaUnreachable(
                f"Kafka at {bootstrap} refused the {security.protocol} / {security.sasl_mechanism} login of user "
                f"{security.sasl_username!r}: {detail} (check BIFROST_KAFKA_SASL_USERNAME and the password)"
            ) from None
        if security.uses_tls and any(h in detail.lower() for h in _AUTH_HINTS):
            raise KafkaUnreachable(
                f"TLS with Kafka at {bootstrap} failed: {detail} "
                "(check BIFROST_KAFKA_SSL_CAFILE and BIFROST_KAFKA_SSL_CHECK_HOSTNAME)"
            ) from None
        raise KafkaUnreachable(
            f"cannot reach Kafka at {bootstrap} over {security.protocol} within {timeout:.0f} s: {detail} "
            "(set BIFROST_KAFKA_BOOTSTRAP and BIFROST_KAFKA_SECURITY_PROTOCOL, or start the local broker: "
            "bifrost-opt kafka start)"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def require_kafka(bootstrap: str, security: KafkaSecurity | None = None, *, timeout: float = 15.0) -> None:
    """Synchronous :func:`check_kafka`, safe to call while another event loop runs."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bifrost-preflight") as pool:
        pool.submit(asyncio.run, check_kafka(bootstrap, security or KafkaSecurity(), timeout=timeout)).result()
