"""GET requests from the CLI to a worker's HTTP views, with its bearer token.

The token (``BIFROST_WEB_TOKEN`` or ``BIFROST_WEB_TOKEN_FILE``) is sent as
``Authorization: Bearer …``; redirects are not followed, so the header never travels to
another host. Messages name the variables, never the token.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from http.client import HTTPResponse

from bifrost.cli.errors import UsageError


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_opener = urllib.request.build_opener(_NoRedirect)


def open_worker(url: str, token: str, *, timeout: float) -> HTTPResponse:
    """Open ``url`` with the token (if any); raises what ``urlopen`` raises."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return _opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)


def unauthorized(worker_url: str, token: str) -> UsageError:
    """The CLI error for a 401 answer."""
    if token:
        return UsageError(f"the worker at {worker_url} refused the token from BIFROST_WEB_TOKEN / BIFROST_WEB_TOKEN_FILE "
                          "(401); use the token the worker was started with")
    return UsageError(f"the worker at {worker_url} requires a token (401); set BIFROST_WEB_TOKEN or "
                      "BIFROST_WEB_TOKEN_FILE to the worker's token")


def error_text(body: bytes) -> str:
    """The ``error`` field of a worker's JSON error answer (else the body as text)."""
    import orjson

    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")
    return str(parsed.get("error", parsed)) if isinstance(parsed, dict) else str(parsed)
