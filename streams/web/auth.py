"""Bearer-token check for the worker's HTTP server (``BIFROST_WEB_TOKEN``).

When a token is configured, every request except ``GET /health`` (liveness probes carry
no credentials) must send ``Authorization: Bearer <token>``; anything else gets 401.
The check is an aiohttp middleware, so it covers our views and Faust's built-in ones
(``/router``, ``/table``) alike, and requests Faust forwards to the worker owning a
router keep their header. The comparison is constant-time; the token is never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

OPEN_PATHS = frozenset({"/health"})
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


def token_middleware(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware that requires ``token`` on every path but :data:`OPEN_PATHS`."""

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or bearer_matches(request.headers.get("Authorization"), token):
            return await handler(request)
        return web.Response(body=_UNAUTHORIZED, status=401, content_type="application/json",
                            headers={"WWW-Authenticate": 'Bearer realm="bifrost-worker"'})

    return require_token


def auth_headers(token: str) -> dict[str, str]:
    """Request headers a client sends to a worker (none when no token is configured)."""
    return {"Authorization": f"Bearer {token}"} if token else {}
