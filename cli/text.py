"""Text helpers for human-readable CLI output."""

from __future__ import annotations

import time
import unicodedata


def utc(epoch: float) -> str:
    """An epoch time as ISO 8601 UTC to the second.

    Example:
        >>> utc(0)
        '1970-01-01T00:00:00Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def printable(text: str) -> str:
    """``text`` with control and format characters (bidi overrides, zero-width marks, escape
    sequences) shown as ``\\uXXXX`` escapes, newlines kept: names taken from events cannot
    reorder or hide what a terminal shows.

    Example:
        >>> printable("model-\\u202eevil\\x1b[2J\\nnext")
        'model-\\\\u202eevil\\\\u001b[2J\\nnext'
    """
    return "".join(
        ch if ch == "\n" or unicodedata.category(ch) not in {"Cc", "Cf"} else f"\\u{ord(ch):04x}" for ch in text
    )
