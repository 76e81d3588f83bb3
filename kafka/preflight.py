"""Fail fast, with a clear message, when Kafka is not there or refuses our credentials.

aiokafka clients do not say why they could not connect: ``start()`` of a consumer,
producer or admin client raises ``KafkaConnectionError("Unable to bootstrap from
[...]")`` for a refused SCRAM login, a TLS failure and a closed port alike (the real
error is only logged). The preflight therefore opens one connection per bootstrap
address itself (``aiokafka.conn.create_conn``, which raises the real error) and names
the cause:

=====================================================  ================================
what aiokafka raises while connecting                  message
=====================================================  ================================
``SaslAuthenticationFailed`` (broker error 58: wrong   "Kafka at X refused the SASL_SSL /
password, unknown user), ``AuthenticationFailedError``  SCRAM-SHA-512 login of user 'u' …"
``UnsupportedSaslMechanismError``                      mechanism not enabled
``ssl.SSLCertVerificationError``                       certificate not trusted / wrong name
``KafkaConnectionError`` (closed) on a port that       the listener speaks TLS: set the
speaks TLS, for a PLAINTEXT/SASL_PLAINTEXT client      protocol to SASL_SSL or SSL
``KafkaConnectionError`` (closed) after TLS, SSL       the listener wants a SASL login
``ssl.SSLError`` / EOF in the handshake                the listener does not speak TLS
refused / timeout                                      unreachable
=====================================================  ================================

Then an admin client asks for the cluster, as every client will.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ssl
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from bifrost.common.errors import ExitCode
from bifrost.kafka.security import KafkaSecurity, KafkaSecurityError


class KafkaUnreachable(RuntimeError):
    """The configured bootstrap servers do not answer, or refuse this client."""

    exit_code = ExitCode.UNAVAILABLE


class KafkaLoginRefused(KafkaUnreachable):
    """The broker answered and refused the SASL login (wrong user or password, or mechanism)."""

    exit_code = ExitCode.UNAUTHORIZED


class KafkaTlsFailed(KafkaUnreachable):
    """TLS with the broker failed (untrusted certificate, wrong host name, not a TLS port)."""


class KafkaProtocolMismatch(KafkaUnreachable):
    """The broker's listener expects another security protocol than the one configured."""


_AUTH_HINTS = ("authentication", "sasl", "scram", "credentials", "ssl", "certificate", "handshake")

# How much a specific cause says, to pick one when several bootstrap addresses fail.
_RANK = {KafkaLoginRefused: 4, KafkaTlsFailed: 3, KafkaProtocolMismatch: 2, KafkaUnreachable: 1}

_UNREACHABLE_HINT = (
    "(set BIFROST_KAFKA_BOOTSTRAP and BIFROST_KAFKA_SECURITY_PROTOCOL, or start the local broker: "
    "bifrost-opt kafka start)"
)


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    cause = error.__cause__ or error.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def _login_refused(bootstrap: str, security: KafkaSecurity, detail: str) -> KafkaLoginRefused:
    password_from = "BIFROST_KAFKA_SASL_PASSWORD_FILE" if security.sasl_password_file else "BIFROST_KAFKA_SASL_PASSWORD"
    return KafkaLoginRefused(
        f"Kafka at {bootstrap} refused the {security.protocol} / {security.sasl_mechanism} login of user "
        f"{security.sasl_username!r}: {detail} (check BIFROST_KAFKA_SASL_USERNAME and {password_from}; "
        "the user must exist on the cluster for this mechanism)"
    )


async def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """A TLS handshake (certificate not checked) succeeds on ``host:port``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
    except (TimeoutError, OSError, ssl.SSLError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    return True


async def _classify(
    bootstrap: str, host: str, port: int, security: KafkaSecurity, error: BaseException, stage: str, timeout: float
) -> KafkaUnreachable:
    """The specific :class:`KafkaUnreachable` for ``error`` raised while ``stage`` ("connect"/"metadata")."""
    detail = _describe(error)
    where = f"{host}:{port}"
    if isinstance(error, (SaslAuthenticationFailed, AuthenticationFailedError)):
        return _login_refused(bootstrap, security, str(error) or detail)
    if isinstance(error, UnsupportedSaslMechanismError):
        enabled = str(error) if "Enabled mechanisms" in str(error) else "the broker answered UNSUPPORTED_SASL_MECHANISM"
        return KafkaLoginRefused(
            f"Kafka at {bootstrap} does not offer SASL mechanism {security.sasl_mechanism} on this listener "
            f"({enabled}); check BIFROST_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return KafkaTlsFailed(
            f"TLS with Kafka at {where} failed: the broker's certificate was not accepted "
            f"({error.verify_message or error}); "
            "check BIFROST_KAFKA_SSL_CAFILE (the CA that signed it) and BIFROST_KAFKA_SSL_CHECK_HOSTNAME"
        )
    if security.uses_tls and isinstance(error, ssl.SSLError | ConnectionResetError) and stage == "connect":
        return KafkaTlsFailed(
            f"TLS handshake with Kafka at {where} failed ({detail}): does that listener use TLS? "
            f"BIFROST_KAFKA_SECURITY_PROTOCOL={security.protocol} (use PLAINTEXT or SASL_PLAINTEXT for a listener "
            "without TLS)"
        )
    if isinstance(error, KafkaConnectionError) and "closed" in str(error):
        if not security.uses_tls and await _speaks_tls(host, port, min(3.0, timeout)):
            return KafkaProtocolMismatch(
                f"Kafka at {where} speaks TLS on this port, but BIFROST_KAFKA_SECURITY_PROTOCOL={security.protocol}: "
                "set it to SASL_SSL (with BIFROST_KAFKA_SASL_USERNAME / _PASSWORD_FILE) or SSL, and "
                "BIFROST_KAFKA_SSL_CAFILE"
            )
        if not security.uses_sasl:
            return KafkaProtocolMismatch(
                f"Kafka at {where} closed the connection{' after the TLS handshake' if security.uses_tls else ''}: "
                f"the listener probably requires a SASL login, not {security.protocol} "
                "(set BIFROST_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT, BIFROST_KAFKA_SASL_MECHANISM, "
                "BIFROST_KAFKA_SASL_USERNAME and BIFROST_KAFKA_SASL_PASSWORD_FILE)"
            )
        return KafkaProtocolMismatch(
            f"Kafka at {where} closed the connection during the {security.protocol} handshake ({detail}): "
            "the listener may use another protocol (BIFROST_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, "
            "SASL_PLAINTEXT or SASL_SSL)"
        )
    if security.uses_sasl and any(h in detail.lower() for h in _AUTH_HINTS):
        return _login_refused(bootstrap, security, detail)
    waited = f" within {timeout:.0f} s" if isinstance(error, asyncio.TimeoutError) else ""
    return KafkaUnreachable(
        f"cannot reach Kafka at {bootstrap} over {security.protocol}{waited}: "
        f"{detail or 'timed out'} {_UNREACHABLE_HINT}"
    )


async def _probe_address(
    bootstrap: str, host: str, port: int, security: KafkaSecurity, options: dict[str, Any], deadline: float
) -> KafkaUnreachable | None:
    """None when ``host:port`` accepts us and answers a metadata request, else the reason."""
    remaining = max(0.5, deadline - time.monotonic())
    conn_options = {k: v for k, v in options.items() if k != "ssl_context" or v is not None}
    stage = "connect"
    conn = None
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host,
                port,
                client_id="bifrost-preflight",
                request_timeout_ms=max(1000, int(remaining * 1000)),
                **conn_options,
            ),
            remaining,
        )
        stage = "metadata"
        await asyncio.wait_for(conn.send(MetadataRequest([])), max(0.5, deadline - time.monotonic()))
        return None
    except (TimeoutError, KafkaError, OSError) as exc:
        return await _classify(bootstrap, host, port, security, exc, stage, remaining)
    finally:
        if conn is not None:
            conn.close()


async def check_kafka(bootstrap: str, security: KafkaSecurity, *, timeout: float = 15.0) -> None:
    """Raise :class:`KafkaUnreachable` unless ``bootstrap`` answers a metadata request
    over the configured protocol with the configured credentials.

    A refused login (:class:`KafkaLoginRefused`), a TLS failure (:class:`KafkaTlsFailed`) and
    a protocol mismatch (:class:`KafkaProtocolMismatch`) are reported as such, typically
    within a second; only an address that does not answer takes up to ``timeout``.
    """
    try:
        options = security.client_options()
    except KafkaSecurityError as exc:
        raise KafkaUnreachable(str(exc)) from None
    deadline = time.monotonic() + timeout
    try:
        hosts = [(host, port) for host, port, _ in collect_hosts(bootstrap)]
    except (ValueError, TypeError) as exc:
        raise KafkaUnreachable(f"BIFROST_KAFKA_BOOTSTRAP={bootstrap!r} is not host:port[,host:port…]: {exc}") from None
    if not hosts:
        raise KafkaUnreachable(f"BIFROST_KAFKA_BOOTSTRAP={bootstrap!r} names no host:port")
    failures: list[KafkaUnreachable] = []
    for host, port in hosts:
        failure = await _probe_address(bootstrap, host, port, security, options, deadline)
        if failure is None:
            break
        failures.append(failure)
    else:
        raise max(failures, key=lambda f: _RANK.get(type(f), 0)) from None

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="bifrost-preflight",
        request_timeout_ms=max(1000, int(max(1.0, deadline - time.monotonic()) * 1000)),
        **options,
    )
    try:
        remaining = max(1.0, deadline - time.monotonic())
        await asyncio.wait_for(admin.start(), remaining)
        await asyncio.wait_for(admin.describe_cluster(), max(1.0, deadline - time.monotonic()))
    except (TimeoutError, KafkaError, OSError) as exc:
        detail = _describe(exc)
        if security.uses_sasl and any(h in detail.lower() for h in _AUTH_HINTS):
            raise _login_refused(bootstrap, security, detail) from None
        raise KafkaUnreachable(
            f"Kafka at {bootstrap} accepted a connection, but the cluster did not answer over {security.protocol} "
            f"within {timeout:.0f} s: {detail} (are the brokers' advertised listeners reachable from here?)"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def require_kafka(bootstrap: str, security: KafkaSecurity | None = None, *, timeout: float = 15.0) -> None:
    """Synchronous :func:`check_kafka`, safe to call while another event loop runs."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bifrost-preflight") as pool:
        pool.submit(asyncio.run, check_kafka(bootstrap, security or KafkaSecurity(), timeout=timeout)).result()


async def _probe_async(
    bootstrap: str, timeout: float, node_id: int | None, security: KafkaSecurity | None = None
) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="bifrost-probe",
        request_timeout_ms=max(1000, int(timeout * 1000)),
        **(security.client_options() if security is not None else {}),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        brokers = cluster.get("brokers", [])
        return any(node_id is None or b.get("node_id") == node_id for b in brokers)
    except (TimeoutError, KafkaError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def probe_kafka(
    bootstrap: str, timeout: float = 5.0, node_id: int | None = None, *, security: KafkaSecurity | None = None
) -> bool:
    """True when ``bootstrap`` answers a Kafka metadata request that lists a broker.

    A yes/no liveness check (the local broker's start and status, test fixtures); use
    :func:`require_kafka` to fail with the reason instead.

    Args:
        bootstrap: ``host:port[,host:port...]``.
        timeout: Seconds for connecting and for the request.
        node_id: Require this broker id in the answer (any broker if None).
        security: TLS/SASL of the probing client (PLAINTEXT if None); a refused login
            or failed TLS handshake counts as not answering.

    Uses aiokafka on a private event loop in a helper thread, so it is safe to
    call from synchronous code even while another event loop runs in this thread
    (it blocks that loop for up to ``timeout`` seconds, though).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bifrost-probe") as pool:
        return pool.submit(asyncio.run, _probe_async(bootstrap, timeout, node_id, security)).result()
