"""Text that names taken from events cannot turn against a terminal or a log."""

from __future__ import annotations

import logging
import unicodedata


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control and format characters (newlines, bidi overrides, zero-width marks,
    escape sequences) shown as ``\\\\uXXXX`` escapes: names taken from events can neither forge
    output or log lines nor reorder or hide what a terminal shows. ``keep_newlines`` keeps
    ``\\\\n`` (for text whose line breaks are the writer's own).

    Example:
        >>> printable("model-\\u202eevil\\x1b[2J\\nnext")
        'model-\\\\u202eevil\\\\u001b[2J\\\\u000anext'
    """
    return "".join(
        ch if (keep_newlines and ch == "\n") or unicodedata.category(ch) not in {"Cc", "Cf"} else f"\\u{ord(ch):04x}"
        for ch in text
    )


class _OneLineRecord(logging.LogRecord):
    def getMessage(self) -> str:
        return printable(super().getMessage())


def one_line_log_records() -> None:
    """Make every log record's message one line of printable text, whatever handler or
    formatter (ours, Faust's) writes it: a router id with a newline cannot forge a log line.
    Tracebacks are formatted apart from the message and keep their lines.
    """
    logging.setLogRecordFactory(_OneLineRecord)
