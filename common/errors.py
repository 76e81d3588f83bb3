"""Exit codes, and failures that carry theirs: the one table every command line maps with.

An exception class says how a command ends when it escapes: ``exit_code`` as a class
attribute (``UsageError`` subclasses, or any exception type that sets it, e.g. the
trainer's ``DatasetError``). :func:`exit_code_of` is the only place that turns an
exception into an exit code; each CLI only chooses how to print the message.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every bifrost command."""

    OK = 0
    FAILURE = 1  # the work failed (validation, data quality, a broker that would not start)
    USAGE = 2  # misuse: bad arguments or settings, missing files or keys
    UNAVAILABLE = 3  # a service the command needs (Kafka, a worker) cannot be reached
    UNAUTHORIZED = 4  # the service refused who we are
    SOFTWARE = 70  # EX_SOFTWARE: a worker's state recovery failed or its ingest loop crashed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class BifrostError(Exception):
    """A failure with a message meant for the operator; ``exit_code`` says how the command ends."""

    exit_code: int = ExitCode.FAILURE


class UsageError(BifrostError):
    """The command line (or a setting) asks for something that cannot be done as written."""

    exit_code = ExitCode.USAGE


class Unavailable(BifrostError):
    """A service the command needs (Kafka, a worker) cannot be reached."""

    exit_code = ExitCode.UNAVAILABLE


class NotAuthorized(BifrostError):
    """The service refused who we are (e.g. a rollout command failed authentication)."""

    exit_code = ExitCode.UNAUTHORIZED


def exit_code_of(exc: BaseException) -> int | None:
    """The exit code ``exc`` carries, or None for an exception no command expects (a bug).

    Example:
        >>> exit_code_of(UsageError("no such router")), exit_code_of(KeyboardInterrupt())
        (2, 130)
        >>> exit_code_of(ZeroDivisionError()) is None
        True
    """
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    code = getattr(type(exc), "exit_code", None)
    return int(code) if isinstance(code, int) else None
