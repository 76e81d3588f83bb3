"""Provider adapters against the APIs served locally (tests/catalog/providers.py): formats, pagination, faults.

No network and no Kafka: ``Refresher.fetch_all`` and the adapters only talk HTTP to
the local server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bifrost.catalog.adapters import GeminiAdapter, OpenAIAdapter, OpenRouterAdapter
from bifrost.catalog.drift import FULL, merge
from bifrost.catalog.http import FetchError, RetryPolicy, get_json
from bifrost.catalog.normalize import MalformedListing
from bifrost.catalog.prices import load_price_table
from bifrost.catalog.refresher import Refresher
from bifrost.config import Settings
from bifrost.schemas.catalog import Pricing
from tests.catalog.providers import GEMINI_KEY, OPENAI_KEY, Fault, ProviderServer

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the fixtures' loop

FAST = RetryPolicy(timeout_seconds=1.0, attempts=3, backoff_seconds=0.01, max_backoff_seconds=2.0)
TABLE = load_price_table()


@pytest.fixture
async def providers() -> AsyncIterator[ProviderServer]:
    server = await ProviderServer().start()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def settings_for(server: ProviderServer, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        openrouter_base_url=server.base("openrouter"),
        openai_base_url=server.base("openai"),
        gemini_base_url=server.base("gemini"),
        openai_api_key=OPENAI_KEY,
        gemini_api_key=GEMINI_KEY,
        catalog_dir=str(tmp_path / "catalog"),
        artifact_store=str(tmp_path / "artifacts"),
        catalog_http_timeout_seconds=1.0,
        catalog_http_attempts=3,
        catalog_http_backoff_seconds=0.01,
        catalog_http_max_backoff_seconds=2.0,
    )
    return Settings.from_env({}, **{**values, **overrides})


async def test_each_api_is_read_and_normalized(providers: ProviderServer, session: aiohttp.ClientSession) -> None:
    openrouter = await OpenRouterAdapter(providers.base("openrouter")).fetch(session, FAST)
    openai = await OpenAIAdapter(providers.base("openai"), OPENAI_KEY, TABLE).fetch(session, FAST)
    gemini = await GeminiAdapter(providers.base("gemini"), GEMINI_KEY, TABLE).fetch(session, FAST)
    assert len(openrouter.entries) == 17 and len(openai.entries) == 5 and len(gemini.entries) == 5
    assert providers.requests["gemini"] == 3  # 6 models, at most 2 per page whatever pageSize asked
    assert {e.slug for e in gemini.entries} >= {"google/gemini-2.5-pro", "google/gemma-3-27b-it"}


async def test_429_with_retry_after_is_obeyed(providers: ProviderServer, session: aiohttp.ClientSession) -> None:
    providers.fail("openrouter", Fault(429, {"Retry-After": "1"}), Fault(503))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    doc = await get_json(session, providers.base("openrouter") + "/models", policy=FAST, sleep=sleep, rand=lambda: 0.0)
    assert isinstance(doc, dict) and len(doc["data"]) == 18
    assert slept == [1.0, 0.0]  # the server's Retry-After, then the jittered backoff
    assert providers.requests["openrouter"] == 3


async def test_permanent_errors_are_not_retried(providers: ProviderServer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(FetchError, match="HTTP 401") as caught:
        await OpenAIAdapter(providers.base("openai"), "sk-wrong", TABLE).fetch(session, FAST)
    assert caught.value.attempts == 1 and "sk-wrong" not in str(caught.value)
    assert providers.requests["openai"] == 0  # refused before any listing


async def test_timeouts_5xx_and_cut_off_bodies_fail_after_the_retries(
    providers: ProviderServer, session: aiohttp.ClientSession
) -> None:
    providers.fail("openrouter", Fault(hang_seconds=1.5), Fault(500), Fault(truncated=True))
    with pytest.raises(FetchError, match="failed 3 times; last: the body is not JSON"):
        await OpenRouterAdapter(providers.base("openrouter")).fetch(session, FAST)
    providers.fail("openrouter", Fault(truncated=True))
    assert len((await OpenRouterAdapter(providers.base("openrouter")).fetch(session, FAST)).entries) == 17


async def test_a_failed_page_fails_the_whole_gemini_listing(
    providers: ProviderServer, session: aiohttp.ClientSession
) -> None:
    adapter = GeminiAdapter(providers.base("gemini"), GEMINI_KEY, TABLE)
    providers.fail("gemini", Fault(200, body='{"models": [], "nextPageToken": "2"}'), *[Fault(500)] * 3)
    with pytest.raises(FetchError):  # page 2 never answered: no partial listing (no false "removed")
        await adapter.fetch(session, FAST)
    providers.fail("gemini", Fault(200, body='{"nextPageToken": "x", "models": "nope"}'))
    with pytest.raises(MalformedListing):
        await adapter.fetch(session, FAST)
    providers.fail(
        "gemini",
        Fault(200, body='{"models": [], "nextPageToken": "2"}'),
        Fault(200, body='{"models": [], "nextPageToken": "2"}'),
    )
    with pytest.raises(MalformedListing, match="repeats"):
        await adapter.fetch(session, FAST)


async def test_one_provider_down_the_others_refresh(providers: ProviderServer, tmp_path: Path) -> None:
    refresher = Refresher(settings_for(providers, tmp_path))
    results, outcomes = await refresher.fetch_all()
    first = merge({}, results, mode=FULL, now=1.0)
    assert {o.source: o.outcome for o in outcomes} == {"openrouter": "ok", "openai": "ok", "gemini": "ok"}

    providers.always_fail.add("openai")  # 500 to everything
    providers.fail("gemini", *[Fault(hang_seconds=1.5)] * 3)  # times out
    providers.set_price("meta/llama-3.1-8b-instruct", 0.3)
    results, outcomes = await refresher.fetch_all()
    assert {o.source: o.outcome for o in outcomes} == {"openrouter": "ok", "openai": "failed", "gemini": "failed"}
    assert "HTTP 500" in next(o.error for o in outcomes if o.source == "openai")
    second = merge(first, results, mode=FULL, now=2.0)
    assert second["openrouter:meta/llama-3.1-8b-instruct"].pricing == Pricing(input=0.3, output=0.3)
    stale = [e for e in second.values() if e.stale]
    assert len(stale) == 10 and {e.source.value for e in stale} == {"openai", "gemini"}
    assert all(e.stale_since == 2.0 and e.available for e in stale)  # last known values, marked stale


async def test_sources_without_keys_are_skipped_not_failed(providers: ProviderServer, tmp_path: Path) -> None:
    refresher = Refresher(settings_for(providers, tmp_path, openai_api_key="", gemini_api_key=""))
    _, outcomes = await refresher.fetch_all()
    assert {o.source: o.outcome for o in outcomes} == {"openrouter": "ok", "openai": "skipped", "gemini": "skipped"}
    assert "BIFROST_OPENAI_API_KEY" in next(o.error for o in outcomes if o.source == "openai")


async def _chunked_server(body: bytes, chunk: int = 16 * 1024) -> TestServer:
    """A server answering ``body`` in small chunks with pauses (as a real provider's large list arrives)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for start in range(0, len(body), chunk):
            await response.write(body[start : start + chunk])
            await asyncio.sleep(0.001)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/models", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_a_large_body_arriving_in_chunks_is_read_whole(session: aiohttp.ClientSession) -> None:
    models = [{"id": f"vendor/model-{i}", "description": "x" * 4000} for i in range(400)]
    body = orjson.dumps({"data": models})
    assert len(body) > 1_500_000
    server = await _chunked_server(body)
    try:
        doc = await get_json(session, str(server.make_url("/models")), policy=FAST)
    finally:
        await server.close()
    assert isinstance(doc, dict) and len(doc["data"]) == 400


async def test_a_body_past_the_size_cap_fails_clearly_at_once(session: aiohttp.ClientSession) -> None:
    server = await _chunked_server(b"[" + b"0," * 300_000 + b"0]")
    try:
        with pytest.raises(FetchError, match="answered more than 100000 bytes") as caught:
            await get_json(
                session,
                str(server.make_url("/models")),
                policy=RetryPolicy(timeout_seconds=2.0, attempts=3, backoff_seconds=0.01, max_body_bytes=100_000),
            )
    finally:
        await server.close()
    assert caught.value.attempts == 1


async def _echo_server(status: int) -> TestServer:
    """A provider that echoes the request's credentials in its error body."""

    async def handler(request: web.Request) -> web.Response:
        echoed = {
            "error": {
                "message": f"Incorrect API key provided: {request.headers.get('Authorization', '')} "
                f"/ {request.headers.get('x-goog-api-key', '')}",
                "key": request.headers.get("Authorization", "").removeprefix("Bearer "),
            }
        }
        return web.json_response(echoed, status=status)

    app = web.Application()
    app.router.add_get("/v1/models", handler)
    app.router.add_get("/v1beta/models", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.mark.parametrize("status", [401, 500])
async def test_a_key_echoed_in_an_error_body_is_never_logged_stored_or_raised(
    status: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = await _echo_server(status)
    key, gemini_key = "opaque-key-7f3a9c2e1b", "gem-key-55aa77bb99"
    try:
        base = str(server.make_url("")).rstrip("/")
        settings = Settings.from_env(
            {},
            openrouter_base_url=base + "/v1",
            openai_base_url=base + "/v1",
            gemini_base_url=base + "/v1beta",
            openai_api_key=key,
            gemini_api_key=gemini_key,
            openrouter_api_key="sk-or-v1-abcdef123456",
            catalog_dir=str(tmp_path / "c"),
            artifact_store=str(tmp_path / "a"),
            catalog_http_timeout_seconds=1.0,
            catalog_http_attempts=2,
            catalog_http_backoff_seconds=0.01,
        )
        with caplog.at_level("DEBUG"):
            _, outcomes = await Refresher(settings).fetch_all()
    finally:
        await server.close()
    assert {o.outcome for o in outcomes} == {"failed"}
    assert all(f"HTTP {status}" in o.error and "[redacted]" in o.error for o in outcomes)
    text = caplog.text + "".join(o.error for o in outcomes)
    for secret in (key, gemini_key, "sk-or-v1-abcdef123456", key[:10], "Bearer opaque"):
        assert secret not in text
