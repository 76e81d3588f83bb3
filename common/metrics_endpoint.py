"""A process's own Prometheus ``/metrics`` endpoint (trainer, catalog refresher), started once.

A port already taken is logged and the process runs on without metrics: metrics never
stop the work they count. Port 0 turns the endpoint off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server


@dataclass(slots=True)
class MetricsEndpoint:
    """Serves ``registry`` on ``http://HOST:PORT/metrics``; logs ``event=<event>`` and ``<event>.unavailable``."""

    registry: CollectorRegistry
    log: logging.Logger
    event: str
    note: str = ""  # what to do when the port is taken, appended to the warning
    serving: tuple[str, int] | None = None

    def serve(self, host: str, port: int) -> bool:
        """Start the endpoint once per process; False when off or the port is taken."""
        if port == 0:
            return False
        if self.serving is not None:
            return True
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            note = f" note={self.note!r}" if self.note else ""
            self.log.warning("event=%s.unavailable host=%s port=%d error=%r%s", self.event, host, port, exc, note)
            return False
        self.serving = (host, port)
        self.log.info("event=%s url=http://%s:%d/metrics", self.event, host, port)
        return True
