"""Bearer-token check of the worker's HTTP server, and where the token comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.streams.web.auth import auth_headers, bearer_matches, token_middleware

TOKEN = "0123456789abcdef-token"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"  Bearer   {TOKEN}  ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer ", False),
        ("", False),
        (None, False),
        ("Bearer töken", False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, TOKEN) is ok


def test_no_token_configured_matches_nothing() -> None:
    assert not bearer_matches("Bearer ", "")
    assert auth_headers("") == {} and auth_headers(TOKEN) == {"Authorization": f"Bearer {TOKEN}"}


async def test_every_path_but_health_needs_the_token() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application(middlewares=[token_middleware(TOKEN)])
    for path in ("/health", "/v1/routers", "/v1/routers/{router}/metrics", "/metrics", "/table/{name}/", "/health/"):
        app.router.add_get(path, ok)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/health")).status == 200
        for path in (
            "/v1/routers",
            "/v1/routers/r/metrics?since=1h",
            "/metrics",
            "/table/x/",
            "/health/",
            "/nowhere",
            "/health/../metrics",
        ):
            refused = await client.get(path)
            assert refused.status == 401, path
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert TOKEN not in await refused.text()
            wrong = await client.get(path, headers={"Authorization": "Bearer wrong-token-0123456789"})
            assert wrong.status == 401
        for path in ("/v1/routers", "/v1/routers/r/metrics?since=1h", "/metrics"):
            assert (await client.get(path, headers=auth_headers(TOKEN))).status == 200
        assert (await client.post("/v1/routers")).status == 401  # any method


def test_token_from_the_variable_or_the_file(tmp_path: Path) -> None:
    assert Settings.from_env({}).web_token_value() == ""
    assert Settings.from_env({"BIFROST_WEB_TOKEN": TOKEN}).web_token_value() == TOKEN
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    assert Settings.from_env({"BIFROST_WEB_TOKEN_FILE": str(file)}).web_token_value() == TOKEN
    both = {"BIFROST_WEB_TOKEN": "from-the-variable-0123", "BIFROST_WEB_TOKEN_FILE": str(file)}
    assert Settings.from_env(both).web_token_value() == "from-the-variable-0123"


@pytest.mark.parametrize(
    "content", ["short", "", "has space in the token", "bad\x00char-0123456789", "ünïcödé-0123456789ab"]
)
def test_bad_tokens_are_refused_without_echoing_them(tmp_path: Path, content: str) -> None:
    file = tmp_path / "token"
    file.write_bytes(content.encode())
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"BIFROST_WEB_TOKEN_FILE": str(file)}).web_token_value()
    assert str(file) in str(info.value)
    if content:
        assert content not in str(info.value)


def test_a_missing_token_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="BIFROST_WEB_TOKEN_FILE=.*cannot be read"):
        Settings.from_env({"BIFROST_WEB_TOKEN_FILE": str(tmp_path / "nope")}).web_token_value()


def test_the_token_is_not_in_repr() -> None:
    settings = Settings.from_env({"BIFROST_WEB_TOKEN": TOKEN})
    assert TOKEN not in repr(settings)
    assert settings.to_env()["BIFROST_WEB_TOKEN"] == TOKEN  # child processes still get it
