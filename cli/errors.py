"""How the ``bifrost-opt`` command line explains a failure: one line of text and its exit code.

Exit codes are not decided here: every failure type carries its own (``exit_code``, see
:mod:`bifrost.common.errors`, the one table), and the message is worded there too
(:func:`~bifrost.common.errors.explain`, re-exported); this module keeps the CLI's names.
"""

from __future__ import annotations

from bifrost.common.errors import BifrostError, ExitCode, NotAuthorized, Unavailable, UsageError, explain

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
