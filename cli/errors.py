"""How the ``bifrost-opt`` command line explains a failure: one line of text and its exit code.

Exit codes are not decided here: every failure type carries its own (``exit_code``, see
:mod:`bifrost.common.errors`, the one table); this module only words the message.
"""

from __future__ import annotations

from bifrost.common.errors import BifrostError, ExitCode, NotAuthorized, Unavailable, UsageError, exit_code_of

EXIT_OK = int(ExitCode.OK)
EXIT_FAILURE = int(ExitCode.FAILURE)
EXIT_USAGE = int(ExitCode.USAGE)
EXIT_UNAVAILABLE = int(ExitCode.UNAVAILABLE)
EXIT_UNAUTHORIZED = int(ExitCode.UNAUTHORIZED)

#: A failure with a message meant for the operator (the CLI's name for the shared base class).
CliError = BifrostError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_UNAUTHORIZED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "NotAuthorized",
    "Unavailable",
    "UsageError",
    "explain",
]


def explain(exc: BaseException) -> tuple[int, str]:
    """Exit code and message for an exception that carries an exit code; re-raises any other."""
    code = exit_code_of(exc)
    if code is None:
        raise exc
    message = str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)
    hint = getattr(exc, "hint", "")
    return code, f"{message} ({hint})" if hint else message
