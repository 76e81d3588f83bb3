"""JSON views: per-router metrics, health, Prometheus metrics."""

from __future__ import annotations

import re
import time

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bifrost.schemas.codec import encode
from bifrost.streams import observability as obs
from bifrost.streams.ingest.service import IngestStatus
from bifrost.streams.rollout.agent import RolloutStates
from bifrost.streams.rollup.store import RouterWindows

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class BadDuration(ValueError):
    """A duration that is not like ``90``, ``15m``, ``6h`` or ``7d``."""


def parse_duration(text: str) -> int:
    """Seconds in ``text`` such as ``"15m"``; plain numbers are seconds.

    Example:
        >>> parse_duration("15m")
        900
    """
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise BadDuration(f"{text!r} is not a duration like 90s, 15m, 6h or 7d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _json(web: View, payload: object, status: int = 200) -> Response:
    return web.bytes(orjson.dumps(payload), content_type="application/json", status=status)


def register_views(
    app: faust.App,
    *,
    windows: RouterWindows,
    states: RolloutStates,
    ingest: IngestStatus,
    router_table: faust.Table,
) -> None:
    """Mount the HTTP views on the worker's web server."""

    @app.page("/v1/routers/{router}/metrics")
    class RouterMetricsView(View):
        """Per-arm, per-model and per-bucket figures of one router.

        Query: ``since`` (duration, default 15m) and optional ``until`` (epoch seconds).
        Routed to the worker that owns the router's partition.
        """

        @app.table_route(table=router_table, match_info="router")
        async def get(self, request: Request, router: str) -> Response:
            try:
                since = parse_duration(request.query.get("since", "15m"))
                until_raw = request.query.get("until")
                until = int(float(until_raw)) if until_raw else None
            except (BadDuration, ValueError) as exc:
                return _json(self, {"error": str(exc)}, status=400)
            metrics = windows.metrics(router, since_seconds=since, until_ts=until)
            if metrics is None:
                return _json(self, {"error": f"no metrics for router {router!r} yet"}, status=404)
            return self.bytes(
                orjson.dumps(metrics, default=_builtins), content_type="application/json"
            )

    @app.page("/v1/routers")
    class RoutersView(View):
        """Routers with metrics held by this worker."""

        async def get(self, request: Request) -> Response:
            return _json(self, {"routers": windows.routers()})

    @app.page("/v1/routers/{router}/rollout")
    class RolloutView(View):
        """The router's rollout state (what routers obey), from its controller."""

        @app.table_route(table=router_table, match_info="router")
        async def get(self, request: Request, router: str) -> Response:
            return self.bytes(encode(states.get(router)), content_type="application/json")

    @app.page("/health")
    class HealthView(View):
        """Liveness and progress of this worker."""

        async def get(self, request: Request) -> Response:
            recovered = app.tables.recovery.completed.is_set() and not ingest.recovering
            assigned = sorted(
                {f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()} | set(ingest.assigned)
            )
            return _json(
                self,
                {
                    "status": "ok" if recovered else "recovering",
                    "recovered": recovered,
                    "assigned": assigned,
                    "batches": ingest.batches,
                    "records": ingest.records,
                    "seconds_since_last_batch": round(time.time() - ingest.last_batch_at, 3),
                },
                status=200 if recovered else 503,
            )

    @app.page("/metrics")
    class PrometheusView(View):
        """Prometheus exposition of this worker's metrics."""

        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(obs.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def _builtins(value: object) -> object:
    import msgspec

    return msgspec.to_builtins(value)
