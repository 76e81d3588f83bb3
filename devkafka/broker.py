"""A real single-node Apache Kafka broker (KRaft mode) for development, tests and CI.

The broker jars come from Maven Central (see ``pom.xml`` next to this module) and
are cached, so only the first run needs the network::

    from bifrost.devkafka import LocalBroker

    with LocalBroker() as broker:          # free ports, fresh temp data dir
        use(broker.bootstrap)              # "127.0.0.1:19123"

One JVM runs a combined broker + controller (``process.roles=broker,controller``)
bound to 127.0.0.1 only. Storage is formatted with ``kafka.tools.StorageTool``
on first use of a data dir and reused afterwards.

**Ports.** Unless given, ports are chosen at random outside the kernel's ephemeral
port range (``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 by default;
32768-65535 is avoided where that file does not exist). Inside that range, a client
that keeps reconnecting to a stopped broker can be handed the broker's port as its
own source port and connect to itself (TCP simultaneous open); the port then stays
busy until the client gives up, and starting the broker on it again fails.

**Stopping and starting again (chaos tests).** A :class:`LocalBroker` keeps its
ports once started, so the bootstrap address never changes, and a given
``data_dir`` keeps topics, offsets and committed consumer offsets::

    broker = LocalBroker(data_dir=tmp / "kafka")
    bootstrap = broker.start()
    ...                                    # clients connected to `bootstrap`
    broker.stop()                          # or stop(kill=True): SIGKILL, like a crash
    ...                                    # clients keep retrying meanwhile
    broker.start()                         # same port, same data; clients reconnect
    broker.restart(downtime=2.0)           # the same in one call (kill=True for a crash)
    broker.stop()

Without a ``data_dir``, ``stop(keep_data=True)`` (which :meth:`LocalBroker.restart`
uses) keeps the temporary data dir for the next start; a plain ``stop()`` removes it.
A start on the broker's own ports waits up to 30 s for them to be released.
Both calls block: from async code, run them in a thread
(``await asyncio.to_thread(broker.restart)``) so clients on the event loop keep running.

**SASL_SSL (secure by default).** ``LocalBroker(security="sasl_ssl")`` (CLI:
``start --sasl-ssl``) serves clients on a ``SASL_SSL`` listener only: TLS with a
certificate for ``127.0.0.1``/``localhost`` signed by a throw-away CA made for the data
dir (``ssl.keystore.type=PEM``), and SCRAM-SHA-512 or SCRAM-SHA-256 logins. One user
(default ``bifrost``) with a random password is created by the broker's own storage tool
when the data dir is formatted (``--add-scram``), or with ``kafka-configs`` through the
internal listener when the data dir was formatted before without it. The object tells a
client everything it needs::

    with LocalBroker(security="sasl_ssl") as broker:
        security = broker.client_security()     # bifrost.kafka.KafkaSecurity (SASL_SSL, SCRAM-SHA-512)
        Publisher(broker.bootstrap, security=security)
        broker.ca_file, broker.sasl_username, broker.sasl_password_file

Controller and inter-broker traffic stay on PLAINTEXT listeners bound to 127.0.0.1
(``internal_bootstrap``: the broker's own tools and readiness checks use it; it is not for
clients). The password lives in ``<data_dir>/sasl-ssl/password`` (0600), is never
logged and never appears on a command line. See :mod:`bifrost.devkafka.secure`.

Needs ``java`` (17+, ``$JAVA_HOME/bin/java`` or on ``PATH``) and, for the first
fetch only, ``mvn``. POSIX only (process groups, ``flock``).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import importlib.resources
import json
import logging
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from bifrost.common.errors import ExitCode
from bifrost.common.files import write_atomic
from bifrost.devkafka.secure import (
    SCRAM_MECHANISMS,
    SecureFiles,
    ensure_certificates,
    ensure_password,
    java_argfile,
    scram_config_arguments,
    scram_format_arguments,
    secure_files,
)
from bifrost.kafka.preflight import probe_kafka

if TYPE_CHECKING:
    from bifrost.kafka.security import KafkaSecurity

logger = logging.getLogger(__name__)

DEFAULT_KAFKA_VERSION = "3.9.1"
"""Kafka version used when none is given (aiokafka 0.14 and faust-streaming 0.15 work with 3.9.x)."""

HOST = "127.0.0.1"
"""The broker binds and advertises this address only."""

NODE_ID = 1

SECURITY_MODES = ("plaintext", "sasl_ssl")
"""``LocalBroker(security=...)``: clients connect over PLAINTEXT, or over SASL_SSL (SCRAM)."""

DEFAULT_SASL_USERNAME = "bifrost"

# Files in the data dir.
PID_FILE = "broker.pid"
BOOTSTRAP_FILE = "bootstrap"
LOG_FILE = "broker.log"  # log4j output of the broker (rolled at 10 MB)
STDOUT_FILE = "broker.stdout.log"  # raw stdout/stderr of the JVM (JVM errors, crashes)
PROPERTIES_FILE = "server.properties"
LOG4J_FILE = "log4j.properties"
LOG4J_TOOLS_FILE = "log4j-tools.properties"  # StorageTool: warnings to stderr only
SECURITY_FILE = "client-security.json"  # what a client needs (no secrets): protocol, user, file paths
KAFKA_LOG_DIR = "logs"  # log.dirs: topic data and the KRaft metadata log
_LOCK_FILE = ".devkafka.lock"

_TAIL_LINES = 40
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_LISTENER_RE = re.compile(r"(PLAINTEXT|SASL_SSL|INTERNAL|CONTROLLER)://[^:,]*:(\d+)")
_BIND_FAILURE_RE = re.compile(r"Socket server failed to bind to [^\n]*")


class BrokerError(RuntimeError):
    """The local broker cannot be fetched, started, reached or stopped.

    The message is meant for a human: it says what failed and, where there is
    one, includes the tail of the relevant log (mvn output or broker log).
    """

    exit_code = ExitCode.FAILURE


@dataclass(frozen=True)
class BrokerStatus:
    """What a data dir says about a (possibly detached) broker.

    Attributes:
        data_dir: The broker's data dir.
        pid: Process id from ``broker.pid``, or None when there is no pid file.
        alive: The process in ``broker.pid`` exists and is our Kafka broker.
        bootstrap: ``host:port`` from the ``bootstrap`` file, if any.
        responsive: The broker answered a Kafka metadata request (with SASL_SSL: after
            logging in as the data dir's user).
        protocol: How clients connect: ``"PLAINTEXT"`` or ``"SASL_SSL"``.
    """

    data_dir: Path
    pid: int | None
    alive: bool
    bootstrap: str | None
    responsive: bool
    protocol: str = "PLAINTEXT"

    @property
    def running(self) -> bool:
        """Alive and answering Kafka requests."""
        return self.alive and self.responsive


# --------------------------------------------------------------------------- tools


def default_cache_dir() -> Path:
    """Jar cache root: ``$BIFROST_KAFKA_CACHE`` or ``~/.cache/bifrost/kafka``."""
    env = os.environ.get("BIFROST_KAFKA_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bifrost" / "kafka"


def find_java() -> str:
    """Path of the ``java`` executable (``$JAVA_HOME/bin/java`` first, then ``PATH``).

    Raises:
        BrokerError: No Java runtime found.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerError(
            "java not found: the local Kafka broker needs a Java 17+ runtime "
            "(e.g. `apt-get install openjdk-17-jre-headless`), on PATH or in $JAVA_HOME"
        )
    return found


def find_mvn() -> str:
    """Path of the ``mvn`` executable.

    Raises:
        BrokerError: Maven is not on ``PATH``.
    """
    found = shutil.which("mvn")
    if found is None:
        raise BrokerError(
            "mvn not found: Maven is needed once to fetch the Kafka jars from Maven Central "
            "(e.g. `apt-get install maven`), or pre-fill the cache "
            f"({default_cache_dir()}, env BIFROST_KAFKA_CACHE)"
        )
    return found


def _check_version(version: str) -> None:
    if not _VERSION_RE.match(version):
        raise BrokerError(
            f"invalid Kafka version {version!r}: expected MAJOR.MINOR.PATCH, e.g. {DEFAULT_KAFKA_VERSION}"
        )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``path`` (created if needed), across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _jars_ready(libs: Path, version: str) -> bool:
    return (libs.parent / ".complete").is_file() and (libs / f"kafka_2.13-{version}.jar").is_file()


def ensure_kafka_jars(version: str = DEFAULT_KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Return the folder holding the Kafka broker jars, fetching them once with Maven.

    The jars of ``org.apache.kafka:kafka_2.13:<version>``, all its runtime
    dependencies and a log4j backend (reload4j) are copied into
    ``<cache_dir>/kafka-<version>/libs``. A completed fetch is marked, so later
    calls return at once without running ``mvn``; concurrent callers (e.g. test
    workers) wait on a file lock instead of fetching twice.

    Args:
        version: Kafka version, e.g. ``"3.9.1"``.
        cache_dir: Cache root; default :func:`default_cache_dir`.

    Returns:
        The ``libs`` folder (use ``<libs>/*`` as the Java class path).

    Raises:
        BrokerError: ``java`` or ``mvn`` is missing, or Maven fails (the message
            ends with the tail of its output).
    """
    _check_version(version)
    root = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser().resolve()
    target = root / f"kafka-{version}"
    libs = target / "libs"
    if _jars_ready(libs, version):
        logger.debug("kafka.jars.cached version=%s path=%s", version, libs)
        return libs

    find_java()  # no point downloading 50 MB for a machine that cannot run them
    mvn = find_mvn()
    with _file_lock(root / f"kafka-{version}.lock"):
        if _jars_ready(libs, version):  # another process fetched while we waited
            return libs
        target.mkdir(parents=True, exist_ok=True)
        staging = target / f"libs.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        logger.info("fetching Kafka %s from Maven Central … cache=%s", version, libs)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bifrost-kafka-mvn-") as work:
            # Run from a scratch copy so Maven never writes into the source tree.
            pom = Path(work) / "pom.xml"
            pom.write_bytes(
                importlib.resources.files(__package__ or "bifrost.devkafka").joinpath("pom.xml").read_bytes()
            )
            cmd = [
                mvn,
                "-B",
                "--no-transfer-progress",
                "-f",
                str(pom),
                f"-Dkafka.version={version}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
            ]
            tail: deque[str] = deque(maxlen=_TAIL_LINES)
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd=work,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                )
            except OSError as exc:
                raise BrokerError(f"cannot run mvn ({mvn}): {exc}") from exc
            assert proc.stdout is not None
            with proc:
                for raw in proc.stdout:
                    line = _ANSI_RE.sub("", raw).rstrip()
                    if line:
                        tail.append(line)
                        logger.debug("mvn %s", line)
            if proc.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                output = "\n".join(tail)
                raise BrokerError(
                    f"mvn failed (exit {proc.returncode}) fetching Kafka {version} from Maven Central; "
                    f"last lines of its output:\n{output}"
                )
        jars = sorted(staging.glob("*.jar"))
        if not (staging / f"kafka_2.13-{version}.jar").is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise BrokerError(
                f"mvn succeeded but kafka_2.13-{version}.jar is missing from its output ({len(jars)} jars)"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        (target / ".complete").write_text(f"{len(jars)}\n")
        logger.info("done, %d jars path=%s elapsed=%.1fs", len(jars), libs, time.monotonic() - started)
    return libs


# --------------------------------------------------------------------------- small helpers


def _port_in_use(port: int) -> bool:
    """True when something listens on ``HOST:port`` (checked the way the JVM binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


EPHEMERAL_PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Where Linux keeps the range it takes client (ephemeral) source ports from."""

FALLBACK_EPHEMERAL_RANGE = (32768, 65535)
"""Avoided when the kernel's range cannot be read: Linux's default start to the IANA end."""

LISTENER_PORT_FLOOR = 10000
"""Chosen listener ports are at least this (clear of well-known and common service ports)."""


def ephemeral_port_range(path: Path = EPHEMERAL_PORT_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range ``(low, high)``, inclusive.

    Read from ``/proc/sys/net/ipv4/ip_local_port_range`` when present (Linux default
    32768-60999); :data:`FALLBACK_EPHEMERAL_RANGE` otherwise (other systems, or an
    unreadable file).
    """
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return FALLBACK_EPHEMERAL_RANGE
    return (low, high) if 0 < low <= high < 65536 else FALLBACK_EPHEMERAL_RANGE


def listener_port_ranges(
    ephemeral: tuple[int, int], floor: int = LISTENER_PORT_FLOOR, ceiling: int = 65535
) -> list[range]:
    """Ports a broker may listen on: ``floor..ceiling`` minus the ephemeral range.

    A listener inside the ephemeral range can be taken from under a stopped broker: a
    client that keeps reconnecting to ``127.0.0.1:P`` may be given ``P`` itself as its
    source port, and TCP simultaneous open then connects the socket to itself, so the
    port stays busy until that client gives up (up to a minute) and ``start`` fails.
    Outside the range no client is ever given that port.

    Example:
        >>> listener_port_ranges((32768, 60999))
        [range(10000, 32768), range(61000, 65536)]
    """
    low, high = ephemeral
    ranges = [range(floor, min(low, ceiling + 1)), range(max(high + 1, floor), ceiling + 1)]
    return [r for r in ranges if len(r) > 0]


def _nth_port(ranges: list[range], index: int) -> int:
    for r in ranges:
        if index < len(r):
            return r[index]
        index -= len(r)
    raise IndexError(index)


def _free_ports(count: int, exclude: set[int] | None = None) -> list[int]:
    """``count`` distinct ports, outside the ephemeral range, that were free a moment ago.

    Random over :func:`listener_port_ranges`, so processes starting brokers at the same
    time rarely pick the same ones. Falls back to kernel-assigned ports (with a warning)
    only when the ephemeral range leaves nothing else.
    """
    ranges = listener_port_ranges(ephemeral_port_range())
    total = sum(len(r) for r in ranges)
    chosen: list[int] = []
    skip = set(exclude or ())
    rng = random.SystemRandom()
    for _ in range(200 * count if total else 0):
        if len(chosen) == count:
            return chosen
        port = _nth_port(ranges, rng.randrange(total))
        if port not in skip and not _port_in_use(port):
            chosen.append(port)
            skip.add(port)
    if len(chosen) < count:
        logger.warning(
            "kafka.ports.fallback reason=no-free-port-outside-ephemeral-range ephemeral=%s", ephemeral_port_range()
        )
    sockets: list[socket.socket] = []
    try:
        while len(chosen) + len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return chosen + [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_listener_port() -> int:
    """One port, outside the ephemeral range, that nobody listened on a moment ago.

    For any local server a test or ``up`` starts (worker web ports, trainers): a
    kernel-assigned port comes from the ephemeral range, where a client's outgoing
    connection can take it between the check and the server's bind.
    """
    return _free_ports(1)[0]


def _tcp_accepts(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: Path, lines: int = _TAIL_LINES, since: int = 0) -> str:
    """Last ``lines`` lines of a text file written after byte offset ``since`` ('' if none).

    Reads at most the last 256 kB. If the file shrank (log rolled), reads from its start.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            start = since if since <= size else 0
            handle.seek(max(start, size - 256 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _read_properties(path: Path) -> dict[str, str]:
    """Minimal Java ``.properties`` reader (``key=value`` lines, ``#`` comments)."""
    props: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return props
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, _, value = line.partition("=")
        props[key.strip()] = value.strip()
    return props


def _escape_property(value: str) -> str:
    """A value as Java's ``Properties.load`` reads it back (backslashes and line breaks escaped)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _write_properties(path: Path, props: Mapping[str, str], header: str, *, private: bool = False) -> None:
    body = "".join(f"{key}={_escape_property(value)}\n" for key, value in props.items())
    write_atomic(path, f"# {header}\n{body}".encode(), mode=0o600 if private else 0o644)


def _random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (like ``Uuid.randomUuid``)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka avoids ids that look like command-line options
            return text


def _process_state(pid: int) -> str | None:
    """Process state letter from /proc (``'Z'`` for a zombie), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0] if ")" in stat else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _process_state(pid) != "Z"


def _process_cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        pass
    try:  # no /proc (macOS)
        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """The process ``pid`` is a Kafka broker started on ``data_dir``'s server.properties."""
    if not _pid_alive(pid):
        return False
    cmdline = _process_cmdline(pid)
    if cmdline is None:
        return True  # cannot tell; trust the pid file
    return "kafka.Kafka" in cmdline and str(data_dir / PROPERTIES_FILE) in cmdline


def _wait_pid_exit(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` (not our child) exits; True if it did within ``timeout``."""
    deadline = time.monotonic() + timeout
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            fd = pidfd_open(pid)
        except ProcessLookupError:
            return True
        except OSError:
            fd = None
        if fd is not None:
            try:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                while time.monotonic() < deadline:
                    # readable once the process has exited (zombie or reaped)
                    if poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                        return True
                return not _pid_alive(pid)
            finally:
                os.close(fd)
    while time.monotonic() < deadline:  # fallback: poll the pid
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def _kill_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group led by ``pid`` (the broker runs in its own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise BrokerError(f"not allowed to signal broker process group {pid}: {exc}") from exc


# --------------------------------------------------------------------------- the broker

# Strong references: an owned broker stays reachable (and gets stopped at exit)
# even if the caller drops its LocalBroker without calling stop(). A broker stopped
# with keep_data=True stays here too, so its temporary data dir is removed at exit.
_RUNNING: set[LocalBroker] = set()

_USERNAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SCRAM_USER_FILE = "user"  # in sasl-ssl/: the SCRAM user the broker's storage knows, once created

_START_ATTEMPTS = 3  # automatically chosen ports: tries when another process took one first
_PINNED_PORT_WAIT_S = 30.0  # restart: longest wait for the broker's own ports to be free again


@atexit.register
def _stop_leftovers() -> None:
    """Do not leave owned (non-detached) brokers or kept temp dirs behind at exit."""
    for broker in list(_RUNNING):
        with contextlib.suppress(Exception):
            broker.stop()


class LocalBroker:
    """One Kafka JVM in KRaft mode (combined broker + controller) on 127.0.0.1.

    Ports are picked free unless given, outside the kernel's ephemeral port range
    (see :func:`listener_port_ranges`). With no ``data_dir`` a fresh temporary
    one is used and deleted by :meth:`stop`; a given ``data_dir`` is kept, and its
    formatted storage is reused on the next start (topics and offsets survive).

    Once started, the object keeps its ports: :meth:`start` after :meth:`stop`
    (or :meth:`restart`) comes back at the same bootstrap address, on the same data
    (pass ``keep_data=True`` to :meth:`stop` for a temporary data dir), while
    clients keep reconnecting.

    With ``security="sasl_ssl"`` clients connect over SASL_SSL (SCRAM-SHA-512/256, a
    certificate from a CA made for the data dir); :meth:`client_security` returns the
    matching :class:`bifrost.kafka.KafkaSecurity`.

    Files in the data dir: ``server.properties`` (0600), ``log4j.properties`` (and
    ``log4j-tools.properties`` for the storage format step),
    ``broker.log`` (broker log), ``broker.stdout.log`` (JVM stdout/stderr),
    ``broker.pid``, ``bootstrap``, ``client-security.json`` (what a client needs,
    no secrets), ``logs/`` (Kafka data) and, for SASL_SSL, ``sasl-ssl/`` (CA
    certificate, broker key store, password; see :mod:`bifrost.devkafka.secure`).

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        controller_port: int | None = None,
        data_dir: Path | str | None = None,
        version: str = DEFAULT_KAFKA_VERSION,
        cache_dir: Path | None = None,
        heap: str = "512m",
        extra_properties: Mapping[str, str] | None = None,
        security: str = "plaintext",
        internal_port: int | None = None,
        sasl_username: str = DEFAULT_SASL_USERNAME,
    ) -> None:
        """Describe a broker; nothing runs until :meth:`start`.

        Args:
            port: Client listener port (PLAINTEXT, or SASL_SSL with ``security="sasl_ssl"``);
                free port if None (a persistent data dir reuses its previous port when that is free).
            controller_port: KRaft CONTROLLER listener port; free port if None.
            data_dir: Where config, logs and Kafka data live; temp dir if None.
            version: Kafka version to fetch and run.
            cache_dir: Jar cache root (see :func:`ensure_kafka_jars`).
            heap: JVM max heap (``-Xmx``), e.g. ``"512m"``.
            extra_properties: ``server.properties`` entries that override the defaults.
            security: ``"plaintext"`` or ``"sasl_ssl"`` (clients must log in over TLS).
            internal_port: With SASL_SSL, the PLAINTEXT listener for inter-broker traffic
                and the broker's own tools (127.0.0.1 only); free port if None.
            sasl_username: With SASL_SSL, the SCRAM user created for clients.
        """
        _check_version(version)
        mode = security.strip().lower().replace("-", "_")
        if mode not in SECURITY_MODES:
            raise BrokerError(f"security={security!r}: use one of {', '.join(SECURITY_MODES)}")
        if not _USERNAME_RE.fullmatch(sasl_username):
            raise BrokerError(f"sasl_username={sasl_username!r}: use 1-64 of A-Z a-z 0-9 . _ -")
        self.security = mode
        self.sasl_username = sasl_username
        self._requested_internal_port = internal_port
        self._internal_port: int | None = None
        self.version = version
        self.cache_dir = cache_dir
        self.heap = heap
        self.extra_properties: dict[str, str] = dict(extra_properties or {})
        self._requested_port = port
        self._requested_controller_port = controller_port
        self._owns_data_dir = data_dir is None
        self._data_dir: Path | None = Path(data_dir).expanduser().resolve() if data_dir is not None else None
        self._port: int | None = None
        self._controller_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._detached = False
        self._pinned = False  # ports fixed by a successful start: later starts reuse them
        self._log_marks = (0, 0)  # sizes of broker.log / broker.stdout.log at launch

    # ---------------------------------------------------------------- properties

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:<port>"`` of the running broker.

        Raises:
            BrokerError: The broker has not been started.
        """
        if self._port is None:
            raise BrokerError("the broker is not started; call start() first")
        return f"{HOST}:{self._port}"

    @property
    def port(self) -> int | None:
        """The client port (PLAINTEXT or SASL_SSL) once started, else the requested one."""
        return self._port if self._port is not None else self._requested_port

    @property
    def secure(self) -> bool:
        """Clients connect over SASL_SSL."""
        return self.security == "sasl_ssl"

    @property
    def internal_port(self) -> int | None:
        """SASL_SSL only: the internal PLAINTEXT listener's port (inter-broker, tools)."""
        return self._internal_port if self._internal_port is not None else self._requested_internal_port

    @property
    def internal_bootstrap(self) -> str:
        """Where the broker's own tools connect without credentials: the internal PLAINTEXT
        listener with SASL_SSL, else :attr:`bootstrap`. Not for clients."""
        if not self.secure:
            return self.bootstrap
        if self._internal_port is None:
            raise BrokerError("the broker is not started; call start() first")
        return f"{HOST}:{self._internal_port}"

    def _secure_files(self) -> SecureFiles:
        if not self.secure:
            raise BrokerError("this broker has no SASL_SSL listener (LocalBroker(security='sasl_ssl'))")
        if self._data_dir is None:
            raise BrokerError("the broker is not started; call start() first")
        return secure_files(self._data_dir)

    @property
    def ca_file(self) -> Path:
        """SASL_SSL: PEM file of the CA that signed the broker certificate (for ``BIFROST_KAFKA_SSL_CAFILE``)."""
        return self._secure_files().ca_file

    @property
    def sasl_password_file(self) -> Path:
        """SASL_SSL: the file holding the SCRAM user's password (0600)."""
        return self._secure_files().password_file

    @property
    def sasl_password(self) -> str:
        """SASL_SSL: the SCRAM user's password (read from :attr:`sasl_password_file`; never logged)."""
        return self._secure_files().password()

    def client_security(self, mechanism: str = SCRAM_MECHANISMS[0]) -> KafkaSecurity:
        """The :class:`bifrost.kafka.KafkaSecurity` a client of this broker uses.

        SASL_SSL with ``mechanism`` (SCRAM-SHA-512 or SCRAM-SHA-256), the user, the
        password *file* and the CA file, hostname checked; PLAINTEXT for a plaintext broker.
        """
        from bifrost.kafka.security import KafkaSecurity

        if not self.secure:
            return KafkaSecurity()
        if mechanism not in SCRAM_MECHANISMS:
            raise BrokerError(f"mechanism={mechanism!r}: the broker enables {', '.join(SCRAM_MECHANISMS)}")
        files = self._secure_files()
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism=mechanism,
            sasl_username=self.sasl_username,
            sasl_password_file=str(files.password_file),
            ssl_cafile=str(files.ca_file),
        )

    def client_env(self) -> dict[str, str]:
        """``BIFROST_KAFKA_*`` variables for a client process (bootstrap included; the
        password as a file path, never its value)."""
        return {"BIFROST_KAFKA_BOOTSTRAP": self.bootstrap, **self.client_security().to_env()}

    @property
    def controller_port(self) -> int | None:
        """The CONTROLLER port once started, else the requested one."""
        return self._controller_port if self._controller_port is not None else self._requested_controller_port

    @property
    def data_dir(self) -> Path | None:
        """The data dir (None before start when a temp dir will be created)."""
        return self._data_dir

    @property
    def log_path(self) -> Path | None:
        """The broker log file (``<data_dir>/broker.log``)."""
        return self._data_dir / LOG_FILE if self._data_dir is not None else None

    @property
    def pid(self) -> int | None:
        """Process id of the broker JVM while started."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """The broker JVM started by this object is still alive."""
        return self._proc is not None and self._proc.poll() is None

    # ---------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 60.0) -> str:
        """Start the broker and wait until it answers Kafka requests.

        Fetches the jars if needed (not counted in ``timeout``), writes the
        config, formats storage unless the data dir is already formatted, starts
        ``kafka.Kafka`` in its own process group and polls until a metadata
        request lists the broker.

        After an earlier successful start of this object, the same ports are used
        again (waiting up to 30 s for them to be released); otherwise requested
        ports, a persistent data dir's previous ports when free, or fresh ports
        outside the ephemeral range (re-chosen if another process takes one first).

        Args:
            timeout: Seconds to wait for the broker to answer after launching it.

        Returns:
            The bootstrap address, e.g. ``"127.0.0.1:19123"``.

        Raises:
            BrokerError: Port in use, java/mvn missing, storage format failed, the
                broker exited or did not answer in time (the message then ends
                with the last 40 lines of the broker log).
        """
        if self._proc is not None:
            if self._proc.poll() is None:
                return self.bootstrap
            self._forget()

        if self._data_dir is not None:
            _refuse_if_running(self._data_dir)  # a clearer message than "port in use"
        if self._pinned:
            self._wait_for_pinned_ports(min(timeout, _PINNED_PORT_WAIT_S))
        else:
            self._check_requested_ports()
        java = find_java()
        libs = ensure_kafka_jars(self.version, self.cache_dir)

        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="bifrost-kafka-"))
            self._owns_data_dir = True
        data_dir = self._data_dir
        data_dir.mkdir(parents=True, exist_ok=True)

        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                with _file_lock(data_dir / _LOCK_FILE):
                    _refuse_if_running(data_dir)
                    self._port, self._controller_port, self._internal_port = self._choose_ports(data_dir)
                    if self.secure:
                        self._prepare_secure(data_dir)
                    self._write_config(data_dir)
                    self._format_storage(java, libs, data_dir)
                    launched = time.monotonic()
                    self._launch(java, libs, data_dir)
                _RUNNING.add(self)
                self._wait_ready(launched + timeout)
                if self.secure:
                    self._ensure_scram_user(java, libs, data_dir)
                    self._wait_secure_ready(launched + timeout)
                self._write_client_security(data_dir)
                break
            except BrokerError:
                if attempt < _START_ATTEMPTS and self._may_rechoose_ports() and self._bind_failure() is not None:
                    logger.warning(
                        "kafka.broker.port_taken attempt=%d ports=%s,%s: choosing others",
                        attempt,
                        self._port,
                        self._controller_port,
                    )
                    self._halt(timeout=20.0, kill=True)
                    continue
                self.stop()  # kills a launched JVM, removes a temp data dir
                raise
            except BaseException:
                self.stop()
                raise
        self._pinned = True
        logger.info(
            "kafka.broker.ready bootstrap=%s security=%s%s pid=%s version=%s data_dir=%s startup=%.1fs",
            self.bootstrap,
            "SASL_SSL" if self.secure else "PLAINTEXT",
            f" user={self.sasl_username} internal={self.internal_bootstrap}" if self.secure else "",
            self.pid,
            self.version,
            data_dir,
            time.monotonic() - launched,
        )
        return self.bootstrap

    def stop(self, timeout: float = 20.0, *, kill: bool = False, keep_data: bool = False) -> None:
        """Stop the broker: SIGTERM to its process group, SIGKILL after ``timeout`` s.

        Removes ``broker.pid``/``bootstrap`` and, when this object created the
        temp data dir, the whole data dir (unless ``keep_data``). Safe to call more
        than once. The ports stay this object's: a later :meth:`start` reuses them.

        Args:
            timeout: Seconds between SIGTERM and SIGKILL.
            kill: SIGKILL at once, like a crash (the next start recovers Kafka's logs).
            keep_data: Keep a temporary data dir, so :meth:`start` brings the same
                topics and offsets back (a given ``data_dir`` is always kept). It is
                still removed by a later ``stop()`` or at interpreter exit.
        """
        self._halt(timeout, kill=kill)
        if self._data_dir is not None and self._owns_data_dir and not self._detached:
            if keep_data:
                _RUNNING.add(self)  # removed at exit if nobody calls stop() again
                return
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def restart(self, timeout: float = 60.0, *, kill: bool = False, downtime: float = 0.0) -> str:
        """Stop the broker and start it again: same ports, same data dir, same data.

        Clients configured with :attr:`bootstrap` reconnect by themselves once it is
        back; what they sent while it was down is delivered if their own timeouts allow.

        Args:
            timeout: Seconds for the new JVM to answer (as in :meth:`start`).
            kill: SIGKILL instead of a clean shutdown (a crash).
            downtime: Seconds to stay down between stop and start.

        Returns:
            The bootstrap address (unchanged).
        """
        if not self._pinned:
            raise BrokerError("restart() needs a broker that was started; call start() first")
        self.stop(kill=kill, keep_data=True)
        if downtime > 0:
            time.sleep(downtime)
        return self.start(timeout)

    def detach(self) -> int:
        """Leave the broker running after this Python process exits.

        Its ``broker.pid`` and ``bootstrap`` files stay in the data dir; stop it
        later with :func:`stop_broker` (``python -m bifrost.devkafka stop``).

        Returns:
            The broker's process id.

        Raises:
            BrokerError: The broker is not running.
        """
        if not self.is_running() or self._proc is None:
            raise BrokerError("the broker is not running; nothing to detach")
        self._detached = True
        _RUNNING.discard(self)
        return self._proc.pid

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"LocalBroker(version={self.version!r}, port={self.port}, data_dir={str(self._data_dir)!r}, {state})"

    # ---------------------------------------------------------------- internals

    def _halt(self, timeout: float, *, kill: bool = False) -> None:
        """End the JVM (if any) and forget it; data dir and ports are left alone."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            started = time.monotonic()
            _kill_group(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("kafka.broker.kill pid=%d reason=no-exit-after-sigterm timeout=%.0fs", proc.pid, timeout)
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
            logger.info(
                "kafka.broker.stopped pid=%d rc=%s took=%.1fs%s",
                proc.pid,
                proc.returncode,
                time.monotonic() - started,
                " (killed)" if kill else "",
            )
        else:
            _kill_group(proc.pid, signal.SIGKILL)  # stray children, if any
        self._forget()

    def _may_rechoose_ports(self) -> bool:
        """Ports were chosen here (not requested, not pinned), so others may be tried."""
        return (
            not self._pinned
            and self._requested_port is None
            and self._requested_controller_port is None
            and self._requested_internal_port is None
        )

    def _wait_for_pinned_ports(self, timeout: float) -> None:
        """Wait until this broker's own ports can be bound again, or fail with the reason."""
        assert self._port is not None and self._controller_port is not None
        deadline = time.monotonic() + timeout
        while True:
            busy = [p for p in (self._port, self._controller_port, self._internal_port) if p and _port_in_use(p)]
            if not busy:
                return
            if time.monotonic() >= deadline:
                low, high = ephemeral_port_range()
                hint = (
                    f"; port {busy[0]} is inside the ephemeral range {low}-{high}, so a reconnecting "
                    "client may hold it connected to itself until it gives up"
                    if low <= busy[0] <= high
                    else ""
                )
                raise BrokerError(
                    f"port {busy[0]} on {HOST} (this broker's own port before it stopped) "
                    f"is still in use after {timeout:.0f} s{hint}"
                )
            time.sleep(0.2)

    def _forget(self) -> None:
        self._proc = None
        _RUNNING.discard(self)
        if self._data_dir is not None:
            for name in (PID_FILE, BOOTSTRAP_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (self._data_dir / name).unlink()

    def _check_requested_ports(self) -> None:
        port, cport = self._requested_port, self._requested_controller_port
        iport = self._requested_internal_port if self.secure else None
        for value, what in ((port, "--port (broker listener)"), (cport, "controller port"), (iport, "internal port")):
            if value is not None and not 0 < value < 65536:
                raise BrokerError(f"{what} {value} is not a TCP port (1-65535)")
        if port is not None and port == cport:
            raise BrokerError(f"broker port and controller port must differ (both {port})")
        if iport is not None and iport in (port, cport):
            raise BrokerError(f"the internal port must differ from the broker and controller ports ({iport})")
        for value, what in ((port, "broker"), (cport, "controller"), (iport, "internal")):
            if value is not None and _port_in_use(value):
                raise BrokerError(
                    f"port {value} on {HOST} is already in use ({what} listener): "
                    "stop whatever listens there or choose another port"
                )

    def _choose_ports(self, data_dir: Path) -> tuple[int, int, int | None]:
        """(client, controller, internal) ports; internal is None without SASL_SSL."""
        if self._pinned:
            assert self._port is not None and self._controller_port is not None
            return self._port, self._controller_port, self._internal_port
        port, cport = self._requested_port, self._requested_controller_port
        iport = self._requested_internal_port if self.secure else None
        # A persistent data dir keeps its previous ports when they are still free,
        # so `start` after `stop` gives the same bootstrap address.
        previous = dict(
            (name, int(num))
            for name, num in _LISTENER_RE.findall(_read_properties(data_dir / PROPERTIES_FILE).get("listeners", ""))
        )
        taken: set[int] = {p for p in (port, cport, iport) if p is not None}

        def reuse(name: str) -> int | None:
            old = previous.get(name)
            if old is not None and old not in taken and not _port_in_use(old):
                taken.add(old)
                return old
            return None

        if port is None:
            port = reuse("SASL_SSL" if self.secure else "PLAINTEXT") or reuse(
                "PLAINTEXT" if self.secure else "SASL_SSL"
            )
        if cport is None:
            cport = reuse("CONTROLLER")
        if self.secure and iport is None:
            iport = reuse("INTERNAL")
        wanted = [p is None for p in (port, cport, iport if self.secure else 0)]
        fresh = iter(
            _free_ports(
                sum(wanted), exclude=taken | {p for p in (self._port, self._controller_port, self._internal_port) if p}
            )
        )
        return (
            port if port is not None else next(fresh),
            cport if cport is not None else next(fresh),
            (iport if iport is not None else next(fresh)) if self.secure else None,
        )

    def _server_properties(self, data_dir: Path) -> dict[str, str]:
        cport = self._controller_port
        props = self._listener_properties(data_dir) | {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@{HOST}:{cport}",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(data_dir / KAFKA_LOG_DIR),
            "num.partitions": "4",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.hours": "168",
        }
        props.update(self.extra_properties)
        return props

    def _listener_properties(self, data_dir: Path) -> dict[str, str]:
        port, cport, iport = self._port, self._controller_port, self._internal_port
        if not self.secure:
            return {
                "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
                "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            }
        key_pem, chain_pem = secure_files(data_dir).keystore_pem()
        mechanisms = ",".join(SCRAM_MECHANISMS)
        props = {
            # Clients: SASL_SSL only. Inter-broker and controller traffic, and the broker's own
            # tools: PLAINTEXT on 127.0.0.1 (INTERNAL, CONTROLLER).
            "listeners": f"SASL_SSL://{HOST}:{port},INTERNAL://{HOST}:{iport},CONTROLLER://{HOST}:{cport}",
            "advertised.listeners": f"SASL_SSL://{HOST}:{port},INTERNAL://{HOST}:{iport}",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": mechanisms,
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": mechanisms,
            # Inline PEM key store (the file holding this is 0600; see bifrost.devkafka.secure).
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.key": key_pem,
            "listener.name.sasl_ssl.ssl.keystore.certificate.chain": chain_pem,
            "listener.name.sasl_ssl.ssl.client.auth": "none",
            "listener.name.sasl_ssl.ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
        }
        for mechanism in SCRAM_MECHANISMS:
            props[f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        return props

    def _prepare_secure(self, data_dir: Path) -> None:
        """CA, broker key store and the user's password, made once per data dir."""
        files = secure_files(data_dir)
        if ensure_certificates(files):
            logger.info(
                "kafka.tls.created ca=%s keystore=%s hosts=127.0.0.1,localhost", files.ca_file, files.keystore_file
            )
        _, created = ensure_password(files)
        if created:
            (files.folder / _SCRAM_USER_FILE).unlink(missing_ok=True)  # a new password: the user must be (re)set
            logger.info("kafka.sasl.password.created file=%s", files.password_file)

    def _scram_user_ready(self, data_dir: Path) -> bool:
        marker = secure_files(data_dir).folder / _SCRAM_USER_FILE
        try:
            return marker.read_text().strip() == self.sasl_username
        except OSError:
            return False

    def _mark_scram_user(self, data_dir: Path) -> None:
        (secure_files(data_dir).folder / _SCRAM_USER_FILE).write_text(self.sasl_username + "\n")

    def _run_tool(
        self, java: str, libs: Path, data_dir: Path, main: str, args: list[str], what: str, secret: str | None = None
    ) -> None:
        """Run one of Kafka's command-line tools (a short JVM); arguments go in a 0600
        ``@argfile`` (removed afterwards) so no secret shows up in the process list."""
        base = self._jvm_base(java, libs, data_dir, LOG4J_TOOLS_FILE)
        argfile = data_dir / f".tool-{os.getpid()}-{uuid.uuid4().hex[:8]}.args"
        # A short-lived JVM: C1 only starts faster. The main class and its arguments are in
        # the argfile (the launcher does not expand @files after the main class).
        cmd = [base[0], "-Xmx256m", "-XX:TieredStopAtLevel=1", *base[1:], java_argfile(argfile, [main, *args])]
        started = time.monotonic()
        try:
            out = subprocess.run(
                cmd,
                cwd=data_dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"{what} in {data_dir} did not finish in 120 s") from exc
        finally:
            argfile.unlink(missing_ok=True)
        if out.returncode != 0:
            output = "\n".join((out.stdout + out.stderr).splitlines()[-_TAIL_LINES:])
            if secret:
                output = output.replace(secret, "********")
            raise BrokerError(f"{what} failed (exit {out.returncode}, data dir {data_dir}):\n{output}")
        logger.debug("kafka.tool main=%s took=%.1fs", main, time.monotonic() - started)

    def _ensure_scram_user(self, java: str, libs: Path, data_dir: Path) -> None:
        """Storage formatted earlier without this user (or with another password): set the
        user's SCRAM credentials with ``kafka-configs`` through the internal listener."""
        if self._scram_user_ready(data_dir):
            return
        password = secure_files(data_dir).password()
        started = time.monotonic()
        for args in scram_config_arguments(self.internal_bootstrap, self.sasl_username, password):
            self._run_tool(
                java,
                libs,
                data_dir,
                "kafka.admin.ConfigCommand",
                args,
                f"creating SCRAM user {self.sasl_username!r}",
                secret=password,
            )
        self._mark_scram_user(data_dir)
        logger.info(
            "kafka.sasl.user.created user=%s mechanisms=%s via=kafka-configs took=%.1fs",
            self.sasl_username,
            ",".join(SCRAM_MECHANISMS),
            time.monotonic() - started,
        )

    def _wait_secure_ready(self, deadline: float) -> None:
        """Wait until the SASL_SSL listener accepts this broker's own user."""
        security = self.client_security()
        while True:
            remaining = deadline - time.monotonic()
            if probe_kafka(self.bootstrap, min(5.0, max(1.0, remaining)), node_id=NODE_ID, security=security):
                return
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(
                    f"the Kafka broker exited with code {self._proc.returncode} during startup.\n"
                    f"{self._failure_details()}"
                )
            if time.monotonic() >= deadline:
                from bifrost.kafka.preflight import KafkaUnreachable, require_kafka

                try:
                    require_kafka(self.bootstrap, security, timeout=5.0)
                    reason = "it answered only now"
                except KafkaUnreachable as exc:
                    reason = str(exc)
                raise BrokerError(
                    f"the SASL_SSL listener at {self.bootstrap} did not accept user "
                    f"{self.sasl_username!r} within the startup timeout: {reason}\n"
                    f"{self._failure_details()}"
                )
            time.sleep(0.2)

    def _write_client_security(self, data_dir: Path) -> None:
        """``client-security.json``: how a client (``status``, ``env``) talks to this broker; no secrets."""
        path = data_dir / SECURITY_FILE
        if not self.secure:
            path.unlink(missing_ok=True)
            return
        info = {k: v for k, v in self.client_security().to_env().items()}
        write_atomic(path, (json.dumps(info, indent=2) + "\n").encode())

    def _write_config(self, data_dir: Path) -> None:
        _write_properties(
            data_dir / PROPERTIES_FILE,
            self._server_properties(data_dir),
            f"Written by bifrost.devkafka for Kafka {self.version}; rewritten on every start.",
            private=True,  # holds the broker's TLS private key with SASL_SSL
        )
        log4j = {
            "log4j.rootLogger": "INFO, file",
            "log4j.appender.file": "org.apache.log4j.RollingFileAppender",
            "log4j.appender.file.File": str(data_dir / LOG_FILE),
            "log4j.appender.file.MaxFileSize": "10MB",
            "log4j.appender.file.MaxBackupIndex": "3",
            "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
            "log4j.logger.kafka": "INFO",
            "log4j.logger.org.apache.kafka": "INFO",
            "log4j.logger.kafka.request.logger": "WARN",
            "log4j.logger.state.change.logger": "WARN",
            "log4j.logger.org.apache.zookeeper": "WARN",
        }
        _write_properties(data_dir / LOG4J_FILE, log4j, "log4j 1.x (reload4j) config of the local broker")
        tools = {
            "log4j.rootLogger": "WARN, stderr",
            "log4j.appender.stderr": "org.apache.log4j.ConsoleAppender",
            "log4j.appender.stderr.Target": "System.err",
            "log4j.appender.stderr.layout": "org.apache.log4j.PatternLayout",
            "log4j.appender.stderr.layout.ConversionPattern": "[%d] %p %m (%c)%n",
        }
        _write_properties(data_dir / LOG4J_TOOLS_FILE, tools, "log4j config of kafka.tools.StorageTool runs")

    def _jvm_base(self, java: str, libs: Path, data_dir: Path, log4j: str = LOG4J_FILE) -> list[str]:
        return [
            java,
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration={(data_dir / log4j).as_uri()}",
            f"-Dkafka.logs.dir={data_dir}",
            "-cp",
            f"{libs}{os.sep}*",
        ]

    def _format_storage(self, java: str, libs: Path, data_dir: Path) -> None:
        meta = data_dir / KAFKA_LOG_DIR / "meta.properties"
        if meta.is_file():
            cluster_id = _read_properties(meta).get("cluster.id", "?")
            logger.info("kafka.storage.reuse data_dir=%s cluster_id=%s", data_dir, cluster_id)
            return
        cluster_id = _random_cluster_id()
        args = ["format", "-t", cluster_id, "-c", str(data_dir / PROPERTIES_FILE)]
        password = None
        if self.secure:
            # The SCRAM user goes into the first metadata records (KIP-900), so the broker
            # accepts it from its first second on.
            password = secure_files(data_dir).password()
            args += scram_format_arguments(self.sasl_username, password)
        started = time.monotonic()
        self._run_tool(
            java, libs, data_dir, "kafka.tools.StorageTool", args, "formatting Kafka storage", secret=password
        )
        if self.secure:
            self._mark_scram_user(data_dir)
        logger.info(
            "kafka.storage.formatted data_dir=%s cluster_id=%s%s took=%.1fs",
            data_dir,
            cluster_id,
            f" scram_user={self.sasl_username}" if self.secure else "",
            time.monotonic() - started,
        )

    def _launch(self, java: str, libs: Path, data_dir: Path) -> None:
        base = self._jvm_base(java, libs, data_dir)
        cmd = [
            base[0],
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            *base[1:],
            "kafka.Kafka",
            str(data_dir / PROPERTIES_FILE),
        ]
        self._log_marks = (_file_size(data_dir / LOG_FILE), _file_size(data_dir / STDOUT_FILE))
        with open(data_dir / STDOUT_FILE, "ab") as out:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"\n===== {started} starting Kafka {self.version}: {' '.join(cmd)}\n".encode())
            out.flush()
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() signals the whole group
                )
            except OSError as exc:
                raise BrokerError(f"cannot start java ({java}): {exc}") from exc
        self._detached = False
        (data_dir / PID_FILE).write_text(f"{self._proc.pid}\n")
        (data_dir / BOOTSTRAP_FILE).write_text(f"{self.bootstrap}\n")
        logger.info(
            "kafka.broker.launch pid=%d bootstrap=%s controller_port=%d log=%s",
            self._proc.pid,
            self.bootstrap,
            self._controller_port,
            data_dir / LOG_FILE,
        )

    def _failure_details(self) -> str:
        """Tails of this run's broker log and JVM output, for error messages."""
        assert self._data_dir is not None
        log_mark, stdout_mark = self._log_marks
        log = self._data_dir / LOG_FILE
        parts = [f"--- last {_TAIL_LINES} lines of {log} ---", _tail(log, since=log_mark) or "(nothing logged)"]
        bind = self._bind_failure()
        if bind is not None:  # logged long before the shutdown noise at the end
            parts.insert(0, f"the broker could not listen: {bind}")
        # Only JVM-level output lands there (log4j writes broker.log); skip our own header line.
        jvm = [
            line
            for line in _tail(self._data_dir / STDOUT_FILE, 20, since=stdout_mark).splitlines()
            if line and not line.startswith("===== ")
        ]
        if jvm:
            parts += [f"--- JVM output ({self._data_dir / STDOUT_FILE}) ---", *jvm]
        return "\n".join(parts)

    def _bind_failure(self) -> str | None:
        """The broker log's "failed to bind" line of this run, if a listener port was taken."""
        if self._data_dir is None:
            return None
        try:
            with open(self._data_dir / LOG_FILE, "rb") as handle:
                handle.seek(self._log_marks[0])
                text = handle.read(8 * 1024 * 1024).decode("utf-8", "replace")
        except OSError:
            return None
        match = _BIND_FAILURE_RE.search(text)
        return match.group(0).strip() if match else None

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None and self._port is not None
        # With SASL_SSL, readiness is checked on the internal PLAINTEXT listener (no login needed).
        port = self._internal_port if self.secure and self._internal_port is not None else self._port
        bootstrap = f"{HOST}:{port}"
        while True:
            rc = proc.poll()
            if rc is not None:
                raise BrokerError(f"the Kafka broker exited with code {rc} during startup.\n{self._failure_details()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"the Kafka broker did not answer at {self.bootstrap} within the startup timeout "
                    f"(pid {proc.pid}).\n{self._failure_details()}"
                )
            if _tcp_accepts(port, timeout=min(1.0, remaining)) and probe_kafka(
                bootstrap, min(5.0, max(1.0, remaining)), node_id=NODE_ID
            ):
                return
            # Poll interval that also returns at once if the JVM dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=min(0.1, max(0.0, deadline - time.monotonic())))


# --------------------------------------------------------------------------- detached brokers


def _refuse_if_running(data_dir: Path) -> None:
    status = broker_status(data_dir, probe=False)
    if status.alive:
        raise BrokerError(
            f"a Kafka broker is already running on data dir {data_dir} "
            f"(pid {status.pid}, bootstrap {status.bootstrap}); stop it first: "
            f"python -m bifrost.devkafka stop --data-dir {data_dir}"
        )


def broker_status(data_dir: Path | str, probe: bool = True, probe_timeout: float = 5.0) -> BrokerStatus:
    """Inspect the broker recorded in ``data_dir`` (``broker.pid`` / ``bootstrap``).

    Args:
        data_dir: The broker's data dir.
        probe: Also send a Kafka metadata request to the recorded bootstrap.
        probe_timeout: Seconds for that request.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    pid: int | None
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        pid = None
    try:
        bootstrap: str | None = (data_dir / BOOTSTRAP_FILE).read_text().strip() or None
    except OSError:
        bootstrap = None
    alive = pid is not None and _is_our_broker(pid, data_dir)
    security = client_security_of(data_dir) if alive else None
    responsive = bool(
        alive and probe and bootstrap and probe_kafka(bootstrap, probe_timeout, node_id=NODE_ID, security=security)
    )
    return BrokerStatus(
        data_dir=data_dir,
        pid=pid,
        alive=alive,
        bootstrap=bootstrap,
        responsive=responsive,
        protocol=security.protocol if security is not None else "PLAINTEXT",
    )


def client_security_of(data_dir: Path | str) -> KafkaSecurity | None:
    """How a client connects to the broker of ``data_dir`` (from ``client-security.json``):
    SASL_SSL settings with the password file and CA file, or None for a plaintext broker.

    Raises:
        BrokerError: The file exists but cannot be used.
    """
    from bifrost.kafka.security import KafkaSecurity, KafkaSecurityError

    path = Path(data_dir).expanduser().resolve() / SECURITY_FILE
    try:
        env = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BrokerError(f"cannot read {path}: {exc}") from None
    try:
        return KafkaSecurity.from_env({str(k): str(v) for k, v in dict(env).items()})
    except (KafkaSecurityError, TypeError, ValueError) as exc:
        raise BrokerError(f"{path} does not describe a usable client: {exc}") from None


def stop_broker(data_dir: Path | str, timeout: float = 20.0) -> bool:
    """Stop the (detached) broker recorded in ``data_dir``.

    Sends SIGTERM to its process group, waits up to ``timeout`` seconds, then
    SIGKILLs it. Removes stale ``broker.pid``/``bootstrap`` files either way.

    Returns:
        True if a running broker was stopped, False if none was running.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    status = broker_status(data_dir, probe=False)
    if status.alive and status.pid is not None:
        pid = status.pid
        started = time.monotonic()
        _kill_group(pid, signal.SIGTERM)
        if not _wait_pid_exit(pid, timeout):
            logger.warning("kafka.broker.kill pid=%d reason=no-exit-after-sigterm timeout=%.0fs", pid, timeout)
            _kill_group(pid, signal.SIGKILL)
            if not _wait_pid_exit(pid, 10.0):
                raise BrokerError(f"broker process {pid} did not exit even after SIGKILL")
        logger.info("kafka.broker.stopped pid=%d took=%.1fs data_dir=%s", pid, time.monotonic() - started, data_dir)
    for name in (PID_FILE, BOOTSTRAP_FILE):
        with contextlib.suppress(FileNotFoundError):
            (data_dir / name).unlink()
    return status.alive
