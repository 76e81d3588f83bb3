"""GET a provider's JSON with a timeout and retries (exponential backoff, full jitter, Retry-After).

The retry decision and the delay are pure functions (:func:`should_retry`,
:func:`retry_delay`, :func:`parse_retry_after`); :func:`get_json` is the thin async shell.
Errors name the URL without its query string and never an API key: keys travel in
headers only, and a provider's error text (which may echo the request's key) goes
through :func:`scrub` before it is logged, raised, stored or printed.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import aiohttp
import orjson

log = logging.getLogger("bifrost.catalog")

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BODY_BYTES = 32 * 1024 * 1024  # default cap (BIFROST_CATALOG_HTTP_MAX_BODY_BYTES); OpenRouter's list is ~1 MB today


class FetchError(Exception):
    """A provider request failed for good (after its retries, or at once for a permanent error)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one request."""

    timeout_seconds: float = 20.0
    attempts: int = 4
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    max_body_bytes: int = MAX_BODY_BYTES


async def read_body(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, read chunk by chunk to its end; None when it runs past ``limit`` bytes.

    (A single ``read(n)`` returns whatever has arrived so far, not ``n`` bytes: a body of
    a few hundred KB would be cut at a chunk boundary.)
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.read(1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def should_retry(status: int | None) -> bool:
    """Whether a failed attempt is worth repeating: no answer (timeout, connection), 408/425/429 or 5xx."""
    return status is None or status in RETRY_STATUSES


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date); None if absent or unreadable.

    Example:
        >>> parse_retry_after("7", now=0.0), parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", now=10.0)
        (7.0, 20.0)
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_delay(attempt: int, policy: RetryPolicy, *, retry_after: float | None = None, rand: float = 1.0) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` ≥ 1 attempts have failed).

    Exponential backoff with full jitter (``rand`` in [0, 1) scales the capped delay),
    but never sooner than the server's ``Retry-After``; everything capped at
    ``max_backoff_seconds``.

    Example:
        >>> p = RetryPolicy(backoff_seconds=1.0, max_backoff_seconds=30.0)
        >>> [retry_delay(a, p) for a in (1, 2, 3, 6)], retry_delay(1, p, retry_after=5.0, rand=0.1)
        ([1.0, 2.0, 4.0, 30.0], 5.0)
    """
    backoff = min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** max(0, attempt - 1)) * rand
    if retry_after is not None:
        backoff = max(backoff, retry_after)
    return min(policy.max_backoff_seconds, backoff)


REDACTED = "[redacted]"
_TOKENS = re.compile(
    r"(?i)\bbearer\s+[^\s\"',;})\]]+|\bsk-[A-Za-z0-9_\-]{6,}|\bAIza[0-9A-Za-z_\-]{10,}"
    r"|\bwhsec_[A-Za-z0-9+/=_\-]{6,}|\bgh[pousr]_[A-Za-z0-9]{10,}"
)
_MIN_SECRET = 4


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without any of ``secrets`` (nor their beginning cut off at the end of the text) and
    without anything that looks like a credential (``Bearer …``, ``sk-…``, ``AIza…``, ``whsec_…``).

    Example:
        >>> scrub('{"error": "bad key sk-or-SECRET123 (Bearer abc.def)", "k": "XYZW1234"}', ["XYZW1234"])
        '{"error": "bad key [redacted] ([redacted])", "k": "[redacted]"}'
        >>> scrub("echo: XYZW12", ["XYZW1234"])
        'echo: [redacted]'
    """
    keys = sorted({s.strip() for s in secrets if s and len(s.strip()) >= _MIN_SECRET}, key=len, reverse=True)
    for key in keys:
        text = text.replace(key, REDACTED)
    for key in keys:  # a key cut off by a length limit
        for n in range(len(key) - 1, _MIN_SECRET - 1, -1):
            if text.endswith(key[:n]):
                text = text[:-n] + REDACTED
                break
    return _TOKENS.sub(REDACTED, text)


def _secrets_of(headers: Mapping[str, str] | None, params: Mapping[str, str] | None) -> list[str]:
    values = [*(headers or {}).values(), *(params or {}).values()]
    return values + [
        v.split(None, 1)[1] for v in values if v.lower().startswith("bearer ") and len(v.split(None, 1)) > 1
    ]


def redact(url: str) -> str:
    """The URL without its query string (where a key could hide)."""
    return url.split("?", 1)[0]


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
    what: str = "provider",
    secrets: Iterable[str] = (),
) -> object:
    """The decoded JSON body of ``GET url``; retries what :func:`should_retry` allows.

    Raises:
        FetchError: a permanent HTTP error (401, 403, 404…), or the last failure once
            ``policy.attempts`` attempts failed (timeouts, 429, 5xx, a body that is not JSON).
    """
    timeout = aiohttp.ClientTimeout(total=policy.timeout_seconds)
    hidden = [*secrets, *_secrets_of(headers, None)]  # params are not secret (page tokens); keys travel in headers
    last = "no attempt"
    for attempt in range(1, max(1, policy.attempts) + 1):
        status: int | None = None
        retry_after: float | None = None
        try:
            async with session.get(
                url, headers=dict(headers or {}), params=dict(params or {}), timeout=timeout, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    body = await read_body(response.content, policy.max_body_bytes)
                    if body is None:
                        raise FetchError(
                            f"{what}: {redact(url)} answered more than {policy.max_body_bytes} bytes "
                            "(BIFROST_CATALOG_HTTP_MAX_BODY_BYTES)",
                            status=status,
                            attempts=attempt,
                        )
                    try:
                        return orjson.loads(body)
                    except orjson.JSONDecodeError as exc:
                        status, last = (
                            None,
                            scrub(f"the body is not JSON ({exc})", hidden),
                        )  # a cut-off body: worth another try
                else:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                    snippet = scrub((await response.content.read(2048)).decode("utf-8", "replace").strip(), hidden)
                    last = f"HTTP {status}" + (f": {scrub(snippet[:200], hidden)}" if snippet else "")
                    if not should_retry(status):
                        raise FetchError(f"{what}: {redact(url)} answered {last}", status=status, attempts=attempt)
        except TimeoutError:
            last = f"no answer within {policy.timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            last = scrub(f"{type(exc).__name__}: {exc}", hidden)
            status = None
        if attempt < policy.attempts:
            delay = retry_delay(attempt, policy, retry_after=retry_after, rand=rand())
            log.warning(
                "event=catalog.fetch.retry what=%s url=%s attempt=%d error=%r delay_s=%.2f",
                what,
                redact(url),
                attempt,
                last[:200],
                delay,
            )
            await sleep(delay)
    raise FetchError(
        f"{what}: {redact(url)} failed {policy.attempts} times; last: {last}", status=status, attempts=policy.attempts
    )
