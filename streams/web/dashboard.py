"""The dashboard: one page served by the worker, its static files, and the views it reads.

``GET /dashboard`` is a plain HTML page (no build step, no CDN): ``static/dashboard.js``
polls the worker's JSON views every few seconds and draws charts with uPlot (vendored,
MIT, ``static/uPlot.LICENSE``). ``GET /`` redirects to it. Views added here:

- ``GET /v1/routers/{router}/series?since=1h[&until=EPOCH][&step=5m]`` — per-arm series
  for charts (``bifrost.streams.rollup.series``), routed to the worker owning the router;
- ``GET /v1/dashboard/config`` — what the page may do (actions on or off, and why);
- ``GET /v1/dashboard/routers`` — routers of every worker in the group (``/v1/routers`` lists
  only this worker's): this worker asks the others, found through Faust's assignor;
- ``GET /v1/dashboard/activity[?router=R]`` — recent rollbacks, trainer runs, artifacts;
- ``POST /v1/routers/{router}/commands`` and ``POST /v1/retrain`` — control actions
  (``bifrost.streams.web.control``): bearer token required, JSON only, same origin.

Everything the page shows is data from events (router ids, versions, reasons): the page
inserts it as text, never as HTML, and the Content-Security-Policy allows only this
origin's scripts, so a hostile router id cannot run code in an operator's browser.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import cast

import aiohttp
import faust
import msgspec
import orjson
from aiohttp import web as aioweb
from faust.web import Request, Response, View
from yarl import URL

from bifrost.config import Settings
from bifrost.streams.rollup.series import BadStep
from bifrost.streams.rollup.store import RouterWindows
from bifrost.streams.web.auth import bearer_matches
from bifrost.streams.web.control import (
    BadAction,
    DashboardControl,
    control_status,
    dashboard_signer,
    parse_action,
    parse_retrain,
)
from bifrost.streams.web.feed import Activity, ActivityFollower
from bifrost.streams.web.paths import ROUTER_PATH
from bifrost.streams.web.views import BadDuration, BadQuery, metrics_query, parse_duration

POLL_SECONDS = 5
STATIC_FILES: dict[str, str] = {
    "dashboard.js": "application/javascript",
    "dashboard.css": "text/css",
    "uPlot.iife.min.js": "application/javascript",
    "uPlot.min.css": "text/css",
    "uPlot.LICENSE": "text/plain",
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def static_bytes(name: str) -> bytes:
    """A file of ``static/`` shipped in the package (the wheel includes it as package data)."""
    return resources.files("bifrost.streams.web").joinpath("static", name).read_bytes()


@aioweb.middleware
async def root_redirect(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
    """``GET /`` → ``/dashboard`` (Faust's own index answers ``{"status": "OK"}`` there otherwise)."""
    if request.path == "/" and request.method in ("GET", "HEAD"):
        raise aioweb.HTTPFound("/dashboard")
    return await handler(request)


def _aiohttp(request: Request) -> aioweb.Request:
    """The request as aiohttp's own object: what faust's aiohttp driver hands to views."""
    return cast(aioweb.Request, request)


def same_origin(request: aioweb.Request) -> bool:
    """False when the browser says the request comes from another origin (no ``Origin``: a non-browser client)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == f"{request.scheme}://{request.host}"


def other_workers(app: faust.App, table: faust.Table) -> list[str]:
    """Base URLs of the other workers holding partitions of ``table`` (from the group's assignment)."""

    def ident(url: object) -> tuple[str, int | None]:
        parsed = URL(str(url))
        return parsed.host or "", parsed.port

    own = ident(app.conf.canonical_url)
    try:
        hosts = app.router.table_metadata(table.name)
    except (KeyError, AttributeError):  # not assigned yet
        return []
    return sorted(str(url).rstrip("/") for url in hosts if ident(url) != own)


async def routers_of(
    app: faust.App, base_url: str, headers: Mapping[str, str], timeout: float = 3.0
) -> tuple[list[str], str]:
    """Another worker's ``/v1/routers`` (with the caller's token), or ([], why not)."""
    try:
        async with app.http_client.get(
            f"{base_url}/v1/routers",
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            if response.status != 200:
                return [], f"HTTP {response.status}"
            body = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return [], type(exc).__name__
    routers = body.get("routers") if isinstance(body, dict) else None
    if not isinstance(routers, list):
        return [], "not a router list"
    return [r for r in routers if isinstance(r, str)][:10_000], ""


def _json(view: View, payload: object, status: int = 200) -> Response:
    return view.bytes(
        orjson.dumps(payload, default=msgspec.to_builtins), content_type="application/json", status=status
    )


def register_dashboard(
    app: faust.App,
    *,
    settings: Settings,
    windows: RouterWindows,
    router_table: faust.Table,
    activity: Activity,
    control: DashboardControl,
    token: str,
) -> None:
    """Mount the dashboard's page, static files and views on the worker's web server."""
    page = static_bytes("dashboard.html")
    assets = {name: static_bytes(name) for name in STATIC_FILES}

    @app.page("/dashboard")
    class DashboardPage(View):
        """The dashboard page (open without the token: it carries no data)."""

        async def get(self, request: Request) -> Response:
            return self.bytes(page, content_type="text/html", headers=dict(PAGE_HEADERS))

    @app.page("/dashboard/static/{name}")
    class DashboardStatic(View):
        """The page's scripts and styles (a fixed list; nothing else is served)."""

        async def get(self, request: Request, name: str) -> Response:
            if name not in assets:
                return _json(self, {"error": "no such file"}, status=404)
            return self.bytes(
                assets[name],
                content_type=STATIC_FILES[name],
                headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"},
            )

    @app.page("/v1/dashboard/config")
    class DashboardConfig(View):
        """What the page may do: control actions on or off and why, polling interval, window size."""

        async def get(self, request: Request) -> Response:
            return _json(
                self,
                {
                    "control": control.status,
                    "token_configured": bool(token),
                    "public_read": settings.web_public_read,
                    "poll_seconds": POLL_SECONDS,
                    "window_seconds": settings.window_seconds,
                    "topic_prefix": settings.topic_prefix,
                },
            )

    @app.page("/v1/dashboard/routers")
    class DashboardRouters(View):
        """Routers with metrics on any worker of the group, and which workers answered."""

        async def get(self, request: Request) -> Response:
            headers = {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}
            others = other_workers(app, router_table)
            answers = await asyncio.gather(*(routers_of(app, url, headers) for url in others))
            routers = set(windows.routers())
            workers = [{"url": str(app.conf.canonical_url), "routers": len(routers), "error": ""}]
            for url, (found, error) in zip(others, answers):
                routers.update(found)
                workers.append({"url": url, "routers": len(found), "error": error})
            return _json(self, {"routers": sorted(routers), "workers": workers})

    @app.page("/v1/dashboard/activity")
    class DashboardActivity(View):
        """Recent rollbacks (of ``?router=`` only, when given), trainer runs and announced artifacts."""

        async def get(self, request: Request) -> Response:
            router = request.query.get("router") or None
            return _json(self, activity.view(router[:128] if router else None))

    @app.page(f"{ROUTER_PATH}/series")
    class RouterSeriesView(View):
        """Per-arm series for charts. Query: ``since`` (default 1h), ``until``, ``step`` (a multiple of the window)."""

        # faust's stubs omit the path parameters its table_route passes on
        @app.table_route(table=router_table, match_info="router")  # type: ignore[arg-type]
        async def get(self, request: Request, router: str) -> Response:
            query = request.query
            try:
                since, until = metrics_query({"since": "1h", **query})
                step = parse_duration(query["step"]) if query.get("step") else None
                series = windows.series(router, since_seconds=since, until_ts=until, step=step)
            except (BadQuery, BadStep) as exc:
                return _json(self, {"error": str(exc)}, status=400)
            except BadDuration as exc:
                return _json(self, {"error": f"step: {exc}"}, status=400)
            if series is None:
                return _json(self, {"error": f"no metrics for router {router!r} yet"}, status=404)
            return _json(self, series)

    def refusal(request: Request) -> tuple[int, str] | None:
        """Why a control request may not go on (status, message), or None."""
        if not token:
            return 403, control.status.actions_reason
        if not bearer_matches(request.headers.get("Authorization"), token):
            return 401, "missing or wrong bearer token (Authorization: Bearer <BIFROST_WEB_TOKEN>)"
        if not same_origin(_aiohttp(request)):
            return 403, "cross-origin control requests are refused"
        if _aiohttp(request).content_type != "application/json":
            return 415, "send the action as application/json"
        return None

    async def body_of(request: Request) -> bytes:
        return await _aiohttp(request).content.read(64 * 1024)

    @app.page(f"{ROUTER_PATH}/commands")
    class RouterCommandsView(View):
        """A control action on the router's rollout, signed with the dashboard's key (see ``control``)."""

        async def post(self, request: Request, router: str) -> Response:
            refused = refusal(request)
            if refused is not None:
                return _json(self, {"error": refused[1]}, status=refused[0])
            if not 1 <= len(router) <= 128:
                return _json(self, {"error": "router must be 1-128 characters"}, status=400)
            try:
                action = parse_action(await body_of(request))
            except BadAction as exc:
                return _json(self, {"error": str(exc)}, status=400)
            outcome = await control.act(router, action)
            return _json(self, outcome.payload, status=outcome.status)

    @app.page("/v1/retrain")
    class RetrainView(View):
        """A manual training trigger, as ``bifrost-opt retrain`` publishes."""

        async def post(self, request: Request) -> Response:
            refused = refusal(request)
            if refused is not None:
                status, message = refused
                if status == 403 and not token:
                    message = control.status.retrain_reason
                return _json(self, {"error": message}, status=status)
            try:
                trigger = parse_retrain(await body_of(request), now=time.time())
            except BadAction as exc:
                return _json(self, {"error": str(exc)}, status=400)
            outcome = await control.retrain(trigger)
            return _json(self, outcome.payload, status=outcome.status)


def mount_dashboard(app: faust.App, settings: Settings, *, windows: RouterWindows, router_table: faust.Table) -> None:
    """Everything the dashboard needs in a worker: the activity follower task, the control, the views."""
    from bifrost.streams.rollout.auth import load_keyring

    token = settings.web_token_value()
    signer, why_not = dashboard_signer(settings)
    status = control_status(
        settings, token, signer, why_not, load_keyring(settings.command_keys, settings.command_keys_file)
    )
    control = DashboardControl(settings, status, signer)
    activity = Activity()
    follower = ActivityFollower(settings, activity)

    @app.task
    async def run_dashboard_activity() -> None:
        await follower.run()

    register_dashboard(
        app,
        settings=settings,
        windows=windows,
        router_table=router_table,
        activity=activity,
        control=control,
        token=token,
    )
