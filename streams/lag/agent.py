"""Wiring the lag monitor into the worker's Faust app: the background task, alerts, ``/v1/lag``."""

from __future__ import annotations

import faust

from bifrost.config import Settings
from bifrost.streams.alerts.publisher import AlertProducer
from bifrost.streams.lag.monitor import LagMonitor
from bifrost.streams.web.lag_view import register_lag_view

__all__ = ["register_lag_monitor"]


def register_lag_monitor(app: faust.App, settings: Settings) -> LagMonitor | None:
    """Run a :class:`LagMonitor` beside the worker's agents and mount ``/v1/lag``.

    Every worker samples; only Faust's leader publishes alerts (see :mod:`.monitor`).
    Returns None (and the view answers 404) when ``BIFROST_LAG_INTERVAL_SECONDS`` is 0.
    """
    if settings.lag_interval_seconds == 0:
        register_lag_view(app, None)
        return None
    alerts = AlertProducer(settings)
    monitor = LagMonitor(settings, publish=alerts.publish, is_leader=app.is_leader)

    @app.task
    async def run_lag_monitor() -> None:
        try:
            await monitor.run()
        finally:
            await alerts.close()

    register_lag_view(app, monitor)
    return monitor
