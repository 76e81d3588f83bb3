"""``python -m bifrost.devkafka``: a long-running local Kafka broker for development.

    python -m bifrost.devkafka start  --data-dir var/kafka [--port 9092] [--sasl-ssl]
    python -m bifrost.devkafka status --data-dir var/kafka
    python -m bifrost.devkafka env    --data-dir var/kafka  # BIFROST_KAFKA_* for clients
    python -m bifrost.devkafka stop   --data-dir var/kafka
    python -m bifrost.devkafka fetch                      # only fill the jar cache (CI)

``start`` prints only the bootstrap address on stdout (``BOOT=$(... start ...)``);
everything else goes to stderr. With ``--sasl-ssl`` clients must log in over TLS
(SCRAM-SHA-512/256; CA, certificate and a random password made for the data dir);
``eval "$(python -m bifrost.devkafka env --data-dir var/kafka)"`` then sets the
``BIFROST_KAFKA_*`` variables every bifrost client reads (the password as a file path).
Exit codes: 0 ok, 1 failure, 2 usage error, 3 not running (``status``, ``env``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bifrost.common.errors import ExitCode, run_guarded
from bifrost.devkafka.broker import (
    DEFAULT_KAFKA_VERSION,
    DEFAULT_SASL_USERNAME,
    LOG_FILE,
    LocalBroker,
    broker_status,
    client_security_of,
    ensure_kafka_jars,
    stop_broker,
)

EXIT_OK = int(ExitCode.OK)
EXIT_FAILURE = int(ExitCode.FAILURE)
EXIT_USAGE = int(ExitCode.USAGE)
EXIT_NOT_RUNNING = int(ExitCode.UNAVAILABLE)  # `status`: no broker answers

PROG = "python -m bifrost.devkafka"
MAX_SECONDS = 86400.0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 and ≤ {MAX_SECONDS:.0f}, not {text[:40]!r}")
    return value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser (exposed so another CLI can embed or document it)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Local single-node Apache Kafka broker (KRaft) on 127.0.0.1, "
        "fetched from Maven Central and run with your Java.",
        epilog="exit codes: 0 ok, 1 failure, 2 usage error, 3 not running (status)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (mvn output, client logs)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var/kafka"),
        help="config, logs and Kafka data (default: var/kafka); also accepted after the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="{start,stop,status,env,fetch}")
    sub.required = True

    def with_data_dir(p: argparse.ArgumentParser) -> None:
        # Before or after the command: the command's copy keeps the top level's value unless given.
        p.add_argument(
            "--data-dir", type=Path, default=argparse.SUPPRESS, help="config, logs and Kafka data (default: var/kafka)"
        )
        p.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="debug logging (mvn output, client logs)",
        )

    start = sub.add_parser("start", help="start a detached broker and print its bootstrap address")
    with_data_dir(start)
    start.add_argument("--port", type=_port, help="client port; default: previous port or a free one")
    start.add_argument("--controller-port", type=_port, help="KRaft controller port; default: a free one")
    start.add_argument(
        "--sasl-ssl",
        action="store_true",
        help="clients connect over SASL_SSL (SCRAM-SHA-512/256, TLS with a CA made for the data dir); "
        "see the `env` command",
    )
    start.add_argument(
        "--sasl-user",
        default=DEFAULT_SASL_USERNAME,
        help=f"with --sasl-ssl: the SCRAM user created for clients (default {DEFAULT_SASL_USERNAME})",
    )
    start.add_argument(
        "--internal-port",
        type=_port,
        help="with --sasl-ssl: internal PLAINTEXT listener (inter-broker, tools); default: a free one",
    )
    start.add_argument("--timeout", type=_seconds, default=90.0, help="seconds to wait for the broker (default 90)")
    start.add_argument("--heap", default="512m", help="JVM max heap (default 512m)")
    start.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION, help=f"default {DEFAULT_KAFKA_VERSION}")

    stop = sub.add_parser("stop", help="stop the broker of a data dir")
    with_data_dir(stop)
    stop.add_argument("--timeout", type=_seconds, default=20.0, help="seconds before SIGKILL (default 20)")

    status = sub.add_parser("status", help="is the broker of a data dir running and answering?")
    with_data_dir(status)
    status.add_argument("--json", action="store_true", help="print JSON (same exit codes)")

    env = sub.add_parser(
        "env",
        help="print the BIFROST_KAFKA_* variables a client of the broker needs "
        '(shell syntax: eval "$(... env)"; the password only as a file path)',
    )
    with_data_dir(env)

    fetch = sub.add_parser("fetch", help="download the Kafka jars into the cache (nothing else)")
    fetch.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging (mvn output, client logs)",
    )
    fetch.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION, help=f"default {DEFAULT_KAFKA_VERSION}")
    return parser


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if root.handlers:  # embedded in an application that configured logging already
        return
    logging.basicConfig(
        stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO, format="devkafka: %(message)s"
    )
    if not verbose:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _start(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.expanduser().resolve()
    status = broker_status(data_dir)
    if status.alive:
        if args.port is not None and status.bootstrap != f"127.0.0.1:{args.port}":
            _err(
                f"error: a broker already runs on {data_dir} at {status.bootstrap} (pid {status.pid}), "
                f"not on port {args.port}; stop it first: {PROG} stop --data-dir {args.data_dir}"
            )
            return EXIT_FAILURE
        if args.sasl_ssl and status.protocol != "SASL_SSL":
            _err(
                f"error: a broker already runs on {data_dir} at {status.bootstrap} (pid {status.pid}) without "
                f"SASL_SSL; stop it first: {PROG} stop --data-dir {args.data_dir}"
            )
            return EXIT_FAILURE
        _err(
            f"already running: {status.bootstrap} {status.protocol} (pid {status.pid}, data dir {data_dir})"
            + ("" if status.responsive else " - but it does not answer Kafka requests yet")
        )
        print(status.bootstrap)
        return EXIT_OK
    broker = LocalBroker(
        args.port,
        controller_port=args.controller_port,
        data_dir=data_dir,
        version=args.kafka_version,
        heap=args.heap,
        security="sasl_ssl" if args.sasl_ssl else "plaintext",
        internal_port=args.internal_port,
        sasl_username=args.sasl_user,
    )
    bootstrap = broker.start(timeout=args.timeout)
    pid = broker.detach()
    _err(
        f"Kafka {args.kafka_version} running at {bootstrap} (pid {pid}); log {data_dir / LOG_FILE}; "
        f"stop with: {PROG} stop --data-dir {args.data_dir}"
    )
    if broker.secure:
        _err(
            f"clients: SASL_SSL, user {broker.sasl_username!r} (SCRAM-SHA-512 or SCRAM-SHA-256), password in "
            f"{broker.sasl_password_file}, CA {broker.ca_file}; set the variables with: "
            f'eval "$({PROG} env --data-dir {args.data_dir})"'
        )
    print(bootstrap)
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.expanduser().resolve()
    if not data_dir.is_dir():
        _err(f"not running: {data_dir} does not exist")
        return EXIT_OK
    if stop_broker(data_dir, timeout=args.timeout):
        _err(f"stopped the broker of {data_dir}")
    else:
        _err(f"not running: no live broker recorded in {data_dir}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.expanduser().resolve()
    status = broker_status(data_dir)
    if getattr(args, "json", False):
        state = "running" if status.running else "unresponsive" if status.alive else "not_running"
        print(
            json.dumps(
                {
                    "state": state,
                    "bootstrap": status.bootstrap,
                    "protocol": status.protocol,
                    "pid": status.pid,
                    "data_dir": str(data_dir),
                    "log": str(data_dir / LOG_FILE),
                }
            )
        )
        return EXIT_OK if status.running else EXIT_FAILURE if status.alive else EXIT_NOT_RUNNING
    if status.running:
        print(f"running bootstrap={status.bootstrap} protocol={status.protocol} pid={status.pid} data_dir={data_dir}")
        return EXIT_OK
    if status.alive:
        print(
            f"unresponsive bootstrap={status.bootstrap} pid={status.pid} data_dir={data_dir} "
            f"(process alive, no Kafka answer; see {data_dir / LOG_FILE})"
        )
        return EXIT_FAILURE
    stale = " (stale pid file)" if status.pid is not None else ""
    print(f"not running data_dir={data_dir}{stale}")
    return EXIT_NOT_RUNNING


def _env(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.expanduser().resolve()
    status = broker_status(data_dir, probe=False)
    if not status.alive or not status.bootstrap:
        _err(f"not running: no live broker recorded in {data_dir}; start one: {PROG} start --data-dir {args.data_dir}")
        return EXIT_NOT_RUNNING
    security = client_security_of(data_dir)
    env = {
        "BIFROST_KAFKA_BOOTSTRAP": status.bootstrap,
        **(security.to_env() if security is not None else {"BIFROST_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}),
    }
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse already printed usage + message
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _setup_logging(args.verbose)
    # BrokerError carries 1; anything without an exit code is a bug and keeps its traceback.
    return run_guarded(lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "start":
        return _start(args)
    if args.command == "stop":
        return _stop(args)
    if args.command == "status":
        return _status(args)
    if args.command == "env":
        return _env(args)
    if args.command == "fetch":
        print(ensure_kafka_jars(args.kafka_version))
        return EXIT_OK
    _err(f"error: unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
