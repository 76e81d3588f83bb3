"""``GET /v1/catalog``: the model catalog's freshness and its last changes, for the dashboard.

:class:`CatalogFeed` (pure) keeps the newest entry per id of the compacted ``catalog``
topic and the last changes of ``catalog-changes``; :class:`CatalogFollower` feeds it from
Kafka in every worker (no consumer group, every partition: the whole catalog, the last
100 changes), like the dashboard's activity follower. The view answers::

    {"entries", "available", "stale", "sources": {source: {"entries", "available", "stale",
     "fetched_at", "age_seconds", "stale_since"}}, "last_changes": [CatalogChange…] (newest first),
     "significant": n, "following": [topics], "undecodable": n}

``age_seconds`` is how old the newest values of a source are (now − its newest
``fetched_at``): a source that keeps failing shows a growing age and stale entries.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import faust
import msgspec
import orjson
from faust.web import Request, Response, View

from bifrost.config import Settings
from bifrost.schemas.catalog import CatalogChange, CatalogEntry
from bifrost.streams.web.tail import Handler, TopicTail

log = logging.getLogger("bifrost.dashboard")

MAX_CHANGES = 100


class CatalogFeed:
    """The catalog as the topics tell it (pure: records in, a view out)."""

    def __init__(self, *, max_changes: int = MAX_CHANGES) -> None:
        self.entries: dict[bytes, CatalogEntry] = {}
        self.changes: deque[CatalogChange] = deque(maxlen=max_changes)
        self.undecodable = 0
        self.following: list[str] = []

    def add_entry(self, key: bytes | None, raw: bytes | None) -> None:
        if raw is None:  # a tombstone
            self.entries.pop(key or b"", None)
            return
        try:
            entry = msgspec.json.decode(raw, type=CatalogEntry)
        except (msgspec.DecodeError, RecursionError):
            self.undecodable += 1
            return
        self.entries[key or entry.id.encode()] = entry

    def add_change(self, raw: bytes | None) -> None:
        try:
            self.changes.append(msgspec.json.decode(raw or b"", type=CatalogChange))
        except (msgspec.DecodeError, RecursionError):
            self.undecodable += 1

    def view(self, now: float, *, limit: int = 20) -> dict[str, object]:
        sources: dict[str, dict[str, float | int | None]] = {}
        for entry in self.entries.values():
            s = sources.setdefault(
                entry.source.value,
                {"entries": 0, "available": 0, "stale": 0, "fetched_at": 0.0, "age_seconds": None, "stale_since": None},
            )
            s["entries"] = int(s["entries"] or 0) + 1
            s["available"] = int(s["available"] or 0) + int(entry.available)
            s["stale"] = int(s["stale"] or 0) + int(entry.stale)
            s["fetched_at"] = max(float(s["fetched_at"] or 0.0), entry.fetched_at)
            if entry.stale_since is not None:
                s["stale_since"] = min(float(s["stale_since"] or entry.stale_since), entry.stale_since)
        for s in sources.values():
            s["age_seconds"] = round(now - float(s["fetched_at"] or 0.0), 1) if s["fetched_at"] else None
        return {
            "entries": len(self.entries),
            "available": sum(e.available for e in self.entries.values()),
            "stale": sum(e.stale for e in self.entries.values()),
            "sources": dict(sorted(sources.items())),
            "last_changes": list(reversed(self.changes))[:limit],
            "significant": sum(c.significant for c in self.changes),
            "following": self.following,
            "undecodable": self.undecodable,
        }


class CatalogFollower(TopicTail):
    """Reads ``catalog`` (whole) and ``catalog-changes`` (last ``backlog``) into a :class:`CatalogFeed`."""

    def __init__(
        self, settings: Settings, feed: CatalogFeed, *, backlog: int = MAX_CHANGES, refresh_seconds: float = 10.0
    ) -> None:
        topics = settings.topics
        handlers: dict[str, Handler] = {
            topics.catalog: feed.add_entry,
            topics.catalog_changes: lambda key, value: feed.add_change(value),
        }
        super().__init__(
            settings,
            handlers,
            name="catalog",
            backlog=backlog,
            whole=(topics.catalog,),
            refresh_seconds=refresh_seconds,
            on_following=lambda following: setattr(feed, "following", following),
        )


def register_catalog_view(app: faust.App, settings: Settings) -> CatalogFeed:
    """Start the follower task and mount ``GET /v1/catalog`` (behind the web token, like every view)."""
    feed = CatalogFeed()
    follower = CatalogFollower(settings, feed)

    @app.task
    async def run_catalog_follower() -> None:
        await follower.run()

    @app.page("/v1/catalog")
    class CatalogView(View):
        """Catalog freshness per source and the last drift events (``?limit=``, default 20, at most 100)."""

        async def get(self, request: Request) -> Response:
            try:
                limit = max(1, min(MAX_CHANGES, int(request.query.get("limit", "20"))))
            except ValueError:
                return self.bytes(
                    orjson.dumps({"error": "limit must be a whole number"}), content_type="application/json", status=400
                )
            body = orjson.dumps(feed.view(time.time(), limit=limit), default=msgspec.to_builtins)
            return self.bytes(body, content_type="application/json")

    return feed
