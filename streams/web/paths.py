"""URL path templates shared by the worker's HTTP views."""

from __future__ import annotations

#: ``/v1/routers/<id>``: any router id the schema accepts, percent-encoded by the client.
#: aiohttp's default ``{router}`` pattern (``[^{}/]+``) refused ids with braces (404); a
#: ``/`` arrives encoded as ``%2F`` and still stays inside the segment.
ROUTER_PATH = "/v1/routers/{router:[^/]+}"
