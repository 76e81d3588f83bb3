"""``/v1/lag``: the worker's latest consumer-lag reports (see :mod:`bifrost.streams.lag`)."""

from __future__ import annotations

import faust
import orjson
from faust.web import Request, Response, View

from bifrost.streams.lag.monitor import LagMonitor


def register_lag_view(app: faust.App, monitor: LagMonitor | None) -> None:
    """Mount ``GET /v1/lag`` (404 with the reason when this worker runs no lag monitor)."""

    @app.page("/v1/lag")
    class LagView(View):
        """Lag per consumer group and partition, in records and seconds, with each status.

        Answers ``{"sampled_at", "interval_seconds", "window", "samples", "leader", "error",
        "groups": [{"group", "status", "lag", "lag_seconds", "state", "members", "partitions": [...]}]}``.
        """

        async def get(self, request: Request) -> Response:
            if monitor is None:
                body = {
                    "error": "this worker runs no lag monitor (BIFROST_LAG_INTERVAL_SECONDS=0); "
                    "`bifrost-opt lag` reads lag from Kafka directly"
                }
                return self.bytes(orjson.dumps(body), content_type="application/json", status=404)
            return self.bytes(orjson.dumps(monitor.view()), content_type="application/json")
