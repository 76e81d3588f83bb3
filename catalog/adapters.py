"""One adapter per provider API: fetch its model list, normalize it (:mod:`bifrost.catalog.normalize`).

Every adapter implements :class:`ProviderAdapter` — a ``source`` and ``fetch(session,
policy)`` returning a :class:`~bifrost.catalog.normalize.Listing` or raising
:class:`~bifrost.catalog.http.FetchError` / :class:`~bifrost.catalog.normalize.MalformedListing`.
API keys go in request headers (never in URLs, so they cannot reach a log line).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from bifrost.catalog.http import FetchError, RetryPolicy, get_json
from bifrost.catalog.normalize import (
    Listing,
    MalformedListing,
    normalize_gemini,
    normalize_openai,
    normalize_openrouter,
)
from bifrost.catalog.prices import PriceTable
from bifrost.schemas.catalog import Source

MAX_PAGES = 100  # Gemini lists tens of models; a token that never ends is a broken server


class ProviderAdapter(Protocol):
    """A provider's model list, normalized."""

    @property
    def source(self) -> Source: ...  # read-only, so the frozen adapters fit

    async def fetch(self, session: aiohttp.ClientSession, policy: RetryPolicy) -> Listing:
        """The provider's current listing (raises FetchError or MalformedListing)."""
        ...


@dataclass(frozen=True)
class OpenRouterAdapter:
    """``GET {base}/models`` (``https://openrouter.ai/api/v1``); the key is optional for this endpoint."""

    base_url: str
    api_key: str = field(default="", repr=False)
    clock: Callable[[], float] = time.time
    source: Source = Source.OPENROUTER

    async def fetch(self, session: aiohttp.ClientSession, policy: RetryPolicy) -> Listing:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        doc = await get_json(
            session, f"{self.base_url.rstrip('/')}/models", headers=headers, policy=policy, what="openrouter"
        )
        return normalize_openrouter(doc, now=self.clock())


@dataclass(frozen=True)
class OpenAIAdapter:
    """``GET {base}/models`` (``https://api.openai.com/v1``) with a bearer key; prices from the table."""

    base_url: str
    api_key: str = field(repr=False)
    table: PriceTable = field(repr=False)
    clock: Callable[[], float] = time.time
    source: Source = Source.OPENAI

    async def fetch(self, session: aiohttp.ClientSession, policy: RetryPolicy) -> Listing:
        doc = await get_json(
            session,
            f"{self.base_url.rstrip('/')}/models",
            headers={"Authorization": f"Bearer {self.api_key}"},
            policy=policy,
            what="openai",
        )
        return normalize_openai(doc, self.table, now=self.clock())


@dataclass(frozen=True)
class GeminiAdapter:
    """``GET {base}/models?pageSize=…&pageToken=…`` (``…/v1beta``), every page; key in ``x-goog-api-key``.

    A listing is all pages or nothing: a page that fails after its retries fails the whole
    fetch, so a model on a missing page is never taken for a removed one.
    """

    base_url: str
    api_key: str = field(repr=False)
    table: PriceTable = field(repr=False)
    page_size: int = 1000
    clock: Callable[[], float] = time.time
    source: Source = Source.GEMINI

    async def fetch(self, session: aiohttp.ClientSession, policy: RetryPolicy) -> Listing:
        url = f"{self.base_url.rstrip('/')}/models"
        pages: list[object] = []
        token = ""
        seen_tokens: set[str] = set()
        for _ in range(MAX_PAGES):
            params = {"pageSize": str(self.page_size)}
            if token:
                params["pageToken"] = token
            page = await get_json(
                session, url, headers={"x-goog-api-key": self.api_key}, params=params, policy=policy, what="gemini"
            )
            if not isinstance(page, dict) or not isinstance(page.get("models", []), list):
                raise MalformedListing(f"gemini: page {len(pages) + 1} has no 'models' list")
            pages.append(page)
            next_token = page.get("nextPageToken")
            if not next_token:
                return normalize_gemini(pages, self.table, now=self.clock())
            if not isinstance(next_token, str) or next_token in seen_tokens:
                raise MalformedListing(f"gemini: page {len(pages)} repeats or garbles its nextPageToken")
            seen_tokens.add(next_token)
            token = next_token
        raise FetchError(f"gemini: more than {MAX_PAGES} pages; refusing to page on")
