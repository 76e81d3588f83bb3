"""HTTP views of the optimizer on the worker.

- ``GET /v1/routers/{router}/analysis[?until=EPOCH]`` — an on-demand analysis (goals, trends,
  ranked recommendations, alerts it would raise, the trigger), computed by the worker that
  owns the router (Faust ``table_route``); it publishes nothing.
- ``GET /v1/recommendations[?router=R][&limit=N]`` — the newest recommendations on the topic
  (every worker reads it), newest first: the dashboard's list. Public with
  ``BIFROST_WEB_PUBLIC_READ``.
- ``GET /v1/optimizer/status`` — this worker's scheduled analyses: counts, routers, errors.
"""

from __future__ import annotations

import faust
import msgspec
import orjson
from faust.web import Request, Response, View

from bifrost.streams.optimizer.ledger import LedgerUnavailable
from bifrost.streams.optimizer.service import Optimizer
from bifrost.streams.web.paths import ROUTER_PATH
from bifrost.streams.web.views import BadQuery, parse_epoch

MAX_LIMIT = 500


def _json(view: View, payload: object, status: int = 200) -> Response:
    return view.bytes(
        orjson.dumps(payload, default=msgspec.to_builtins, option=orjson.OPT_SERIALIZE_NUMPY),
        content_type="application/json",
        status=status,
    )


def register_optimizer_views(app: faust.App, optimizer: Optimizer, *, router_table: faust.Table) -> None:
    """Mount the optimizer's views on the worker's web server."""

    @app.page(f"{ROUTER_PATH}/analysis")
    class AnalysisView(View):
        """The router's analysis now (or up to ``until``), from the worker that owns it."""

        # faust's stubs omit the path parameters its table_route passes on
        @app.table_route(table=router_table, match_info="router")  # type: ignore[arg-type]
        async def get(self, request: Request, router: str) -> Response:
            until = request.query.get("until")
            try:
                clock = parse_epoch(until, "until") if until else None
            except BadQuery as exc:
                return _json(self, {"error": str(exc)}, status=400)
            if optimizer.windows.clock(router) is None:
                return _json(
                    self,
                    {"error": f"unknown router {router!r}: no windows for it (router ids are case-sensitive)"},
                    status=404,
                )
            analysis = await optimizer.analyze(router, clock)
            return self.bytes(msgspec.json.encode(analysis), content_type="application/json")

    @app.page("/v1/recommendations")
    class RecommendationsView(View):
        """Newest recommendations on the topic, newest first (``?router=``, ``?limit=``, default 50)."""

        async def get(self, request: Request) -> Response:
            router = request.query.get("router") or None
            try:
                limit = min(max(int(request.query.get("limit", "50")), 1), MAX_LIMIT)
            except ValueError:
                return _json(self, {"error": "limit must be a whole number"}, status=400)
            ledger = optimizer.recommendations
            try:
                await ledger.sync(timeout=5.0)
                complete = True
            except LedgerUnavailable:
                complete = False  # show what was read so far, and say so
            found = [rec for rec in reversed(ledger.values.values()) if router is None or rec.router_id == router]
            return _json(
                self,
                {
                    "recommendations": [msgspec.to_builtins(r) for r in found[:limit]],
                    "complete": complete,
                    "topic": ledger.topic,
                },
            )

    @app.page("/v1/optimizer/status")
    class StatusView(View):
        """This worker's scheduled analyses."""

        async def get(self, request: Request) -> Response:
            return _json(self, optimizer.status())
