"""Exit codes, and failures that carry theirs: the one table every command line maps with.

An exception class says how a command ends when it escapes: ``exit_code`` as a class
attribute (``UsageError`` subclasses, or any exception type that sets it, e.g. the
trainer's ``DatasetError``). :func:`exit_code_of` is the only place that turns an
exception into an exit code, :func:`explain` the only one that words its message, and
:func:`run_guarded` the one catch-print-return guard every command line runs in; each
CLI only chooses its prefix.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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
    if isinstance(exc, FileNotFoundError):  # a built-in cannot carry a code: a missing input is misuse
        return int(ExitCode.USAGE)
    code = getattr(type(exc), "exit_code", None)
    return int(code) if isinstance(code, int) else None


def explain(exc: BaseException) -> tuple[int, str]:
    """Exit code and message for an exception that carries an exit code; re-raises any other.

    A ``KeyError`` subclass loses the quotes ``str()`` gives it; a ``hint`` attribute is
    added in parentheses.
    """
    code = exit_code_of(exc)
    if code is None:
        raise exc
    message = str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)
    hint = getattr(exc, "hint", "")
    return code, f"{message} ({hint})" if hint else message


def _say(text: str) -> None:
    print(text.rstrip("\n"), file=sys.stderr)


def run_guarded(
    run: Callable[[], int], *, prefix: str = "error: ", interrupted: str | None = "interrupted", report_note: str = ""
) -> int:
    """Run a command and return its exit code; a failure that carries one ends it with one line on stderr.

    The line is ``prefix`` + :func:`explain`'s message. Ctrl-C returns 130 (saying
    ``interrupted`` unless it is None). A failure with a ``report`` (an object with
    ``to_markdown()``, e.g. a data-quality report) prints the report first and adds
    ``report_note`` to the line. Any other exception propagates: a bug keeps its traceback.
    """
    try:
        return run()
    except KeyboardInterrupt:
        if interrupted is not None:
            _say(interrupted)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - explain() re-raises what carries no exit code
        code, message = explain(exc)
        report = getattr(exc, "report", None)
        if report is not None:
            _say(report.to_markdown())
            message += report_note
        _say(f"{prefix}{message}")
        return code
