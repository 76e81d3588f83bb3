"""Text helpers for human-readable CLI output."""

from __future__ import annotations

import time


def utc(epoch: float) -> str:
    """An epoch time as ISO 8601 UTC to the second.

    Example:
        >>> utc(0)
        '1970-01-01T00:00:00Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
