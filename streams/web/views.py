"""JSON views: per-router metrics, health, Prometheus metrics."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bifrost.schemas.codec import encode
from bifrost.schemas.rollout import RolloutState
from bifrost.streams import observability as obs
from bifrost.streams.ingest.service import IngestStatus
from bifrost.streams.rollout.agent import RolloutStates
from bifrost.streams.rollout.controller import router_known
from bifrost.streams.rollup.store import RouterWindows
from bifrost.streams.web.paths import ROUTER_PATH

_DURATION = re.compile(r"^([0-9]+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION_SECONDS = 3650 * 86400  # ten years: far beyond any retention, far below overflow
MAX_EPOCH_SECONDS = 4_102_444_800.0  # 2100-01-01T00:00:00Z
_MAX_QUERY_CHARS = 64


class BadDuration(ValueError):
    """A duration that is not like ``90``, ``15m``, ``6h`` or ``7d``."""


class BadQuery(ValueError):
    """A query parameter the view cannot use; the message says which and why."""


def parse_duration(text: str) -> int:
    """Seconds in ``text`` such as ``"15m"``; plain numbers are seconds (1 s to 3650 d).

    Example:
        >>> parse_duration("15m")
        900
    """
    shown = text if len(text) <= _MAX_QUERY_CHARS else text[:_MAX_QUERY_CHARS] + "…"
    match = _DURATION.match(text.strip()) if len(text) <= _MAX_QUERY_CHARS else None
    if not match or int(match.group(1)) <= 0:
        raise BadDuration(f"{shown!r} is not a duration like 90s, 15m, 6h or 7d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise BadDuration(f"{shown!r} is longer than {MAX_DURATION_SECONDS // 86400}d")
    return seconds


def parse_epoch(text: str, name: str = "until") -> int:
    """Whole epoch seconds from ``text`` (``1700000000`` or ``1700000000.5``), or BadQuery.

    Non-finite, negative, after 2100 or not a number: refused with the reason.

    Example:
        >>> parse_epoch("1700000000.9")
        1700000000
    """
    shown = text if len(text) <= _MAX_QUERY_CHARS else text[:_MAX_QUERY_CHARS] + "…"
    try:
        if len(text) > _MAX_QUERY_CHARS:
            raise ValueError
        value = float(text)
    except ValueError:
        raise BadQuery(f"{name}={shown!r} is not a number of epoch seconds") from None
    if not math.isfinite(value):
        raise BadQuery(f"{name}={shown!r} is not finite")
    if value < 0:
        raise BadQuery(f"{name}={shown!r} is negative")
    if value > MAX_EPOCH_SECONDS:
        raise BadQuery(
            f"{name}={shown!r} is after 2100 ({MAX_EPOCH_SECONDS:.0f}); give epoch seconds, not milliseconds"
        )
    return int(value)


def metrics_query(query: Mapping[str, str]) -> tuple[int, int | None]:
    """(``since`` in seconds, ``until`` epoch seconds or None) of a metrics request, or BadQuery.

    Example:
        >>> metrics_query({"since": "1h", "until": "1700000000"})
        (3600, 1700000000)
    """
    try:
        since = parse_duration(query.get("since", "15m"))
    except BadDuration as exc:
        raise BadQuery(f"since: {exc}") from None
    until_raw = query.get("until")
    return since, (parse_epoch(until_raw, "until") if until_raw else None)


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

    @app.page(f"{ROUTER_PATH}/metrics")
    class RouterMetricsView(View):
        """Per-arm, per-model and per-bucket figures of one router.

        Query: ``since`` (duration, default 15m) and optional ``until`` (epoch seconds).
        Routed to the worker that owns the router's partition.
        """

        # faust's stubs omit the path parameters its table_route passes on
        @app.table_route(table=router_table, match_info="router")  # type: ignore[arg-type]
        async def get(self, request: Request, router: str) -> Response:
            try:
                since, until = metrics_query(request.query)
            except BadQuery as exc:
                return _json(self, {"error": str(exc)}, status=400)
            metrics = windows.metrics(router, since_seconds=since, until_ts=until)
            if metrics is None:
                return _json(self, {"error": f"no metrics for router {router!r} yet"}, status=404)
            return self.bytes(orjson.dumps(metrics, default=_builtins), content_type="application/json")

    @app.page("/v1/routers")
    class RoutersView(View):
        """Routers with metrics held by this worker."""

        async def get(self, request: Request) -> Response:
            return _json(self, {"routers": windows.routers()})

    @app.page(f"{ROUTER_PATH}/rollout")
    class RolloutView(View):
        """The router's rollout state (what routers obey), from its controller."""

        # faust's stubs omit the path parameters its table_route passes on
        @app.table_route(table=router_table, match_info="router")  # type: ignore[arg-type]
        async def get(self, request: Request, router: str) -> Response:
            state = states.lookup(router)
            if not router_known(state, has_windows=windows.clock(router) is not None):
                return _json(
                    self,
                    {
                        "error": f"unknown router {router!r}: no traffic and no rollout state for it "
                        "(router ids are case-sensitive)"
                    },
                    status=404,
                )
            return self.bytes(encode(state or RolloutState(router_id=router)), content_type="application/json")

    @app.page("/health")
    class HealthView(View):
        """Liveness and progress of this worker."""

        async def get(self, request: Request) -> Response:
            # TableManager has .recovery; faust's TableManagerT interface does not declare it
            recovered = app.tables.recovery.completed.is_set() and not ingest.recovering  # type: ignore[attr-defined]
            try:
                stage2 = {f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()}
            except Exception:  # noqa: BLE001 - Faust's consumer is not started yet: still starting, not an error
                stage2, recovered = set(), False
            assigned = sorted(stage2 | set(ingest.assigned))
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
