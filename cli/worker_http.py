"""GET requests from the CLI to a worker's HTTP views, with its bearer token.

The token (``BIFROST_WEB_TOKEN`` or ``BIFROST_WEB_TOKEN_FILE``) is sent as
``Authorization: Bearer …``; redirects are not followed, so the header never travels to
another host. Messages name the variables, never the token.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from http.client import HTTPResponse
from typing import Any

import orjson

from bifrost.cli.errors import CliError, Unavailable, UsageError


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
        return UsageError(
            f"the worker at {worker_url} refused the token from BIFROST_WEB_TOKEN / "
            "BIFROST_WEB_TOKEN_FILE "
            "(401); use the token the worker was started with"
        )
    return UsageError(
        f"the worker at {worker_url} requires a token (401); set BIFROST_WEB_TOKEN or "
        "BIFROST_WEB_TOKEN_FILE to the worker's token"
    )


def error_text(body: bytes) -> str:
    """The ``error`` field of a worker's JSON error answer (else the body as text)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")
    return str(parsed.get("error", parsed)) if isinstance(parsed, dict) else str(parsed)


def get_json(base: str, path: str, token: str, *, timeout: float) -> Any:
    """GET ``base + path`` as JSON.

    Failures become CLI errors (400 usage, 401 token, 404 not found, else unavailable).
    """
    if not base.lower().startswith(("http://", "https://")):
        raise UsageError(f"worker URL {base!r} is not an http(s) URL; e.g. http://127.0.0.1:6066")
    try:
        with open_worker(base + path, token, timeout=timeout) as response:
            body = response.read()
    except ValueError as exc:  # urllib's own check of the URL (e.g. "http://[::1")
        raise UsageError(f"worker URL {base!r} is not a valid URL ({exc})") from None
    except urllib.error.HTTPError as exc:
        detail = error_text(exc.read())
        if exc.code == 401:
            raise unauthorized(base, token) from None
        if exc.code == 400:
            raise UsageError(detail) from None
        if exc.code == 404:
            raise CliError(detail) from None
        raise Unavailable(f"worker at {base} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
            raise Unavailable(
                f"the worker at {base} did not answer {path.split('?')[0]} within {timeout:g} s (it is reachable "
                "but busy, or the request is slow); try again, or raise the command's --timeout if it has one"
            ) from None
        raise Unavailable(
            f"cannot reach a worker at {base} ({reason}); start one with `bifrost-opt worker` or point "
            "BIFROST_WORKER_URL / --worker-url at one"
        ) from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Unavailable(
            f"{base}{path.split('?')[0]} did not answer JSON ({_preview(body)}); is --worker-url / "
            "BIFROST_WORKER_URL a bifrost worker (not a proxy or login page)?"
        ) from None


def _preview(body: bytes) -> str:
    text = " ".join(body[:80].decode(errors="replace").split())
    return repr(text + ("…" if len(body) > 80 else "")) if text else "an empty body"


def expect_object(answer: Any, what: str, base: str) -> dict[str, Any]:
    """``answer`` if it is a JSON object, else an :class:`Unavailable` naming ``what`` was malformed."""
    if not isinstance(answer, dict):
        raise Unavailable(f"the worker at {base} answered {what} with a JSON {type(answer).__name__}, not an object")
    return answer
