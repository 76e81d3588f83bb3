"""A request aiohttp cannot parse (an over-long header) is one WARNING line and a 400, never a traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from bifrost.config import Settings
from bifrost.streams.app import create_app
from bifrost.streams.web.bad_requests import SERVER_LOGGER, BadRequestFilter, quiet_bad_requests

SECRET = "Bearer-0123456789abcdef"


async def raw_request(server: BaseTestServer, header_value: str) -> bytes:
    """The status line the server answers a GET /health carrying ``X-Big: header_value`` with."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {header_value}\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    writer.close()
    return status


async def serve_once(header_value: str, caplog: pytest.LogCaptureFixture) -> tuple[bytes, list[logging.LogRecord]]:
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=SERVER_LOGGER):
        async with TestServer(app) as server:
            status = await raw_request(server, header_value)
    return status, [r for r in caplog.records if r.name == SERVER_LOGGER]


@pytest.fixture
def quiet() -> Iterator[None]:
    logger = logging.getLogger(SERVER_LOGGER)
    saved = list(logger.filters)
    quiet_bad_requests()
    quiet_bad_requests()  # idempotent
    assert sum(isinstance(f, BadRequestFilter) for f in logger.filters) == 1
    yield None
    logger.filters[:] = saved


async def test_an_over_long_header_is_one_line_without_traceback(
    quiet: object, caplog: pytest.LogCaptureFixture
) -> None:
    status, records = await serve_once(SECRET + "a" * 20_000, caplog)
    assert status.split()[1] == b"400"
    assert len(records) == 1, [r.getMessage() for r in records]
    record = records[0]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == "event=web.bad_request remote=127.0.0.1 status=400 error=LineTooLong"
    assert "Traceback" not in caplog.text and SECRET not in caplog.text


async def test_a_normal_request_is_not_touched(quiet: object, caplog: pytest.LogCaptureFixture) -> None:
    status, records = await serve_once("small", caplog)
    assert status.split()[1] == b"200" and records == []


def test_the_worker_installs_the_filter(tmp_path: Path) -> None:
    logger = logging.getLogger(SERVER_LOGGER)
    saved = list(logger.filters)
    logger.filters[:] = [f for f in saved if not isinstance(f, BadRequestFilter)]
    try:
        create_app(Settings.from_env({"BIFROST_DATA_DIR": str(tmp_path)}))
        assert any(isinstance(f, BadRequestFilter) for f in logger.filters)
    finally:
        logger.filters[:] = saved
