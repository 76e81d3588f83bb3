"""Bearer-token check for the worker's HTTP server (``BIFROST_WEB_TOKEN``).

When a token is configured, every request except ``GET /health`` (liveness probes carry
no credentials) must send ``Authorization: Bearer <token>``; anything else gets 401.
The check is an aiohttp middleware, so it covers our views and Faust's built-in ones
(``/router``, ``/table``) alike, and requests Faust forwards to the worker owning a
router keep their header. The comparison is constant-time; the token is never logged.

Two exceptions, both without data behind them or chosen by the operator:

- the dashboard's page and its static files (``/dashboard``, ``/dashboard/static/<file>``)
  are always open, so a browser without the token can load the page and be asked for it;
- with ``BIFROST_WEB_PUBLIC_READ=true``, ``GET`` of the dashboard's read-only JSON views
  (:data:`PUBLIC_READ`) is open too. Control actions (``POST``), ``/metrics`` and Faust's
  own views keep needing the token.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

OPEN_PATHS = frozenset({"/health"})
DASHBOARD_SHELL = re.compile(r"/dashboard(?:/static/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127})?")
PUBLIC_READ = re.compile(
    r"/v1/(?:routers(?:/[^/]+/(?:metrics|series|rollout))?|dashboard/(?:config|activity|routers)|lag|recommendations)"
)
_READ_METHODS = frozenset({"GET", "HEAD"})
_UNAUTHORIZED = orjson.dumps({"error": "missing or wrong bearer token (Authorization: Bearer <BIFROST_WEB_TOKEN>)"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_matches(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>`` (scheme case-insensitive), compared in constant time.

    Example:
        >>> bearer_matches("Bearer s3cret-token-0123456789", "s3cret-token-0123456789")
        True
        >>> bearer_matches("Basic s3cret-token-0123456789", "s3cret-token-0123456789")
        False
    """
    if not header or not token:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        presented = given.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(presented, token.encode("ascii"))


def open_without_token(method: str, path: str, *, public_read: bool = False) -> bool:
    """Whether a request may pass without the token (see the module docstring).

    Example:
        >>> open_without_token("GET", "/v1/routers/web/metrics", public_read=True)
        True
        >>> open_without_token("POST", "/v1/routers/web/commands", public_read=True)
        False
    """
    if path in OPEN_PATHS:
        return True
    if method not in _READ_METHODS:
        return False
    return bool(DASHBOARD_SHELL.fullmatch(path) or (public_read and PUBLIC_READ.fullmatch(path)))


def token_middleware(token: str, *, public_read: bool = False) -> Middleware:
    """An aiohttp middleware that requires ``token`` on every request :func:`open_without_token` does not let by."""

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if open_without_token(request.method, request.path, public_read=public_read) or bearer_matches(
            request.headers.get("Authorization"), token
        ):
            return await handler(request)
        return web.Response(
            body=_UNAUTHORIZED,
            status=401,
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="bifrost-worker"'},
        )

    return require_token


def auth_headers(token: str) -> dict[str, str]:
    """Request headers a client sends to a worker (none when no token is configured)."""
    return {"Authorization": f"Bearer {token}"} if token else {}
