"""The dashboard's catalog view (pure part): freshness per source and the last changes."""

from __future__ import annotations

import msgspec

from bifrost.schemas.catalog import CatalogChange, CatalogEntry, ChangeKind, Source
from bifrost.streams.web.catalog_view import CatalogFeed


def entry(
    slug: str, source: Source, *, fetched: float, stale_since: float | None = None, available: bool = True
) -> CatalogEntry:
    return CatalogEntry(
        id=f"{source.value}:{slug}",
        source=source,
        slug=slug,
        provider="p",
        family="f",
        fetched_at=fetched,
        stale=stale_since is not None,
        stale_since=stale_since,
        available=available,
    )


def change(n: int, significant: bool) -> bytes:
    return msgspec.json.encode(
        CatalogChange(
            change_id=f"s{n}:x:price",
            kind=ChangeKind.PRICE,
            entry_id="openrouter:a/m",
            slug="a/m",
            source=Source.OPENROUTER,
            snapshot=f"s{n}",
            significant=significant,
        )
    )


def test_freshness_per_source_stale_and_newest_changes_first() -> None:
    feed = CatalogFeed(max_changes=3)
    for e in (
        entry("a/m", Source.OPENROUTER, fetched=900.0),
        entry("a/n", Source.OPENROUTER, fetched=950.0, available=False),
        entry("g/m", Source.GEMINI, fetched=100.0, stale_since=500.0),
    ):
        feed.add_entry(e.id.encode(), msgspec.json.encode(e))
    feed.add_entry(
        b"openrouter:a/m", msgspec.json.encode(entry("a/m", Source.OPENROUTER, fetched=980.0))
    )  # newest wins
    feed.add_entry(b"gone", msgspec.json.encode(entry("x/y", Source.OPENAI, fetched=1.0)))
    feed.add_entry(b"gone", None)  # tombstone
    feed.add_entry(b"bad", b"{not json")
    for n in range(5):
        feed.add_change(change(n, significant=n == 4))
    view = feed.view(1000.0, limit=2)
    assert (view["entries"], view["available"], view["stale"], view["undecodable"]) == (3, 2, 1, 1)
    assert view["sources"] == {
        "gemini": {
            "entries": 1,
            "available": 1,
            "stale": 1,
            "fetched_at": 100.0,
            "age_seconds": 900.0,
            "stale_since": 500.0,
        },
        "openrouter": {
            "entries": 2,
            "available": 1,
            "stale": 0,
            "fetched_at": 980.0,
            "age_seconds": 20.0,
            "stale_since": None,
        },
    }
    changes = view["last_changes"]
    assert isinstance(changes, list) and [c.snapshot for c in changes] == ["s4", "s3"]
    assert view["significant"] == 1  # of the 3 kept
