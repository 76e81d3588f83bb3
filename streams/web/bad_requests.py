"""Malformed HTTP requests logged as one line, not as a server error with a traceback.

aiohttp answers a request it cannot parse (a header or request line over its 8,190-byte
limit, a bad method, a broken chunk) with 400, then logs ``Error handling request`` at
ERROR with the parser's traceback: noise that reads like a worker fault. The filter here
turns that record into one WARNING line, ``event=web.bad_request remote=… status=400
error=LineTooLong``, without the traceback and without the parser's message (which quotes
the start of the offending line, possibly a header's value, such as a token). The 400
answer itself is aiohttp's.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"
"""The logger aiohttp's request handler reports to (Faust's web server uses the default)."""


class BadRequestFilter(logging.Filter):
    """Rewrites a record whose exception is a request parse error into one structured line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        remote = args[0] if args else "?"
        record.msg = "event=web.bad_request remote=%s status=%d error=%s"
        record.args = (remote, exc.code or 400, type(exc).__name__)
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


def quiet_bad_requests() -> None:
    """Install :class:`BadRequestFilter` on aiohttp's server logger (once per process)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, BadRequestFilter) for f in logger.filters):
        logger.addFilter(BadRequestFilter())
