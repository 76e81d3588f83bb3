"""The one place that maps failures to CLI messages and exit codes."""

from __future__ import annotations

from bifrost.client.publisher import PublishError
from bifrost.config.settings import SettingsError
from bifrost.devkafka import BrokerError
from bifrost.kafka.preflight import KafkaLoginRefused, KafkaUnreachable
from bifrost.schemas.jsonschema import UnknownSchema

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_UNAUTHORIZED = 4


class CliError(Exception):
    """A failure with a message meant for the operator."""

    exit_code = EXIT_FAILURE


class UsageError(CliError):
    """The command line asks for something that cannot be done as written."""

    exit_code = EXIT_USAGE


class Unavailable(CliError):
    """A service the command needs (Kafka, a worker) cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class NotAuthorized(CliError):
    """The service refused who we are (e.g. a rollout command failed authentication)."""

    exit_code = EXIT_UNAUTHORIZED


def explain(exc: BaseException) -> tuple[int, str]:
    """Exit code and message for an exception the CLI knows how to explain."""
    if isinstance(exc, CliError):
        return exc.exit_code, str(exc)
    if isinstance(exc, (SettingsError, UnknownSchema)):
        return EXIT_USAGE, str(exc).strip("'\"")
    if isinstance(exc, PublishError):
        return EXIT_UNAVAILABLE, f"{exc} (is the broker running? `bifrost-opt kafka start`, or set BIFROST_KAFKA_BOOTSTRAP)"
    if isinstance(exc, KafkaLoginRefused):
        return EXIT_UNAUTHORIZED, str(exc)
    if isinstance(exc, (BrokerError, KafkaUnreachable)):
        return EXIT_UNAVAILABLE, str(exc)
    raise exc
