"""Merge and drift rules (pure): what a refresh changes, and which changes matter."""

from __future__ import annotations

import math

import msgspec
import pytest

from bifrost.catalog.drift import FULL, QUICK, DriftRules, SourceResult, describe, detect, merge, relative_change
from bifrost.catalog.normalize import Listing
from bifrost.schemas.catalog import CatalogEntry, ChangeKind, Params, Pricing, Source

T0, T1 = 1_000.0, 2_000.0


def entry(
    slug: str,
    price: float = 1.0,
    *,
    source: Source = Source.OPENROUTER,
    ctx: int = 8192,
    out: float | None = None,
    thinking: bool = False,
    json: bool = True,
    available: bool = True,
    fetched: float = T0,
) -> CatalogEntry:
    return CatalogEntry(
        id=f"{source.value}:{slug}",
        source=source,
        slug=slug,
        provider=slug.split("/")[0],
        family="f",
        ctx_in=ctx,
        params=Params(thinking=thinking, json=json),
        pricing=Pricing(input=price, output=price if out is None else out),
        available=available,
        fetched_at=fetched,
    )


def catalog(*entries: CatalogEntry) -> dict[str, CatalogEntry]:
    return {e.id: e for e in entries}


def listing(source: Source, *entries: CatalogEntry) -> SourceResult:
    return SourceResult(source, listing=Listing(source, list(entries)))


def changes(
    old: dict[str, CatalogEntry],
    new: dict[str, CatalogEntry],
    used: dict[str, list[str]] | None = None,
    threshold: float = 0.10,
):
    return detect(
        old,
        new,
        snapshot="s2",
        previous_snapshot="s1",
        in_use=used or {},
        artifact_version="v7",
        rules=DriftRules(price_threshold=threshold),
        now=T1,
    )


def test_a_12_percent_price_change_is_drift_and_a_5_percent_one_is_not() -> None:
    old = catalog(entry("a/m1", 0.2), entry("b/m2", 1.0))
    new = catalog(entry("a/m1", 0.224), entry("b/m2", 1.05))
    found = changes(old, new, {"openrouter:a/m1": ["m1"]})
    assert [(c.kind, c.entry_id) for c in found] == [(ChangeKind.PRICE, "openrouter:a/m1")]
    change = found[0]
    assert change.relative == pytest.approx(0.12)
    assert change.before == {"price_in": 0.2, "price_out": 0.2} and change.after == {
        "price_in": 0.224,
        "price_out": 0.224,
    }
    assert change.in_use and change.significant and change.used_as == ["m1"] and change.artifact_version == "v7"
    assert change.change_id == "s2:openrouter:a/m1:price"
    assert describe(change) == "openrouter:a/m1 price +12.0% (in 0.2 → 0.224, out 0.2 → 0.224 USD/1M)"


def test_price_rules_edges() -> None:
    old = catalog(
        entry("a/exact", 1.0), entry("a/down", 1.0), entry("a/out", 1.0), entry("a/free", 0.0), entry("a/both0", 0.0)
    )
    new = catalog(
        entry("a/exact", 1.1),
        entry("a/down", 0.85),
        entry("a/out", 1.0, out=1.2),
        entry("a/free", 0.1),
        entry("a/both0", 0.0),
    )
    found = {c.entry_id: c for c in changes(old, new)}
    assert set(found) == {"openrouter:a/exact", "openrouter:a/down", "openrouter:a/out", "openrouter:a/free"}
    assert found["openrouter:a/down"].relative == pytest.approx(-0.15)
    assert found["openrouter:a/out"].relative == pytest.approx(0.2)  # the output price alone counts
    assert math.isinf(found["openrouter:a/free"].relative or 0)
    assert not any(c.significant for c in found.values())  # nothing in use
    assert relative_change(2.0, 2.0) == 0.0


def test_removed_unavailable_restored_context_and_capability() -> None:
    old = catalog(
        entry("a/gone"),
        entry("a/expiring"),
        entry("a/back", available=False),
        entry("a/ctx", ctx=8192),
        entry("a/think", thinking=False, json=True),
    )
    removed = msgspec.structs.replace(entry("a/gone"), available=False, listed=False)
    new = catalog(
        removed,
        entry("a/expiring", available=False),
        entry("a/back"),
        entry("a/ctx", ctx=32768),
        entry("a/think", thinking=True, json=False),
        entry("a/new"),
    )
    used = {"openrouter:a/gone": ["gone-model"], "openrouter:a/new": ["x"]}
    found = {c.entry_id: c for c in changes(old, new, used)}
    assert found["openrouter:a/gone"].kind is ChangeKind.REMOVED and found["openrouter:a/gone"].significant
    assert found["openrouter:a/expiring"].kind is ChangeKind.UNAVAILABLE
    assert found["openrouter:a/back"].kind is ChangeKind.RESTORED
    assert found["openrouter:a/ctx"].kind is ChangeKind.CONTEXT
    assert found["openrouter:a/ctx"].after == {"ctx_in": 32768}
    assert found["openrouter:a/think"].kind is ChangeKind.CAPABILITY
    assert found["openrouter:a/think"].before == {"thinking": False, "json": True}
    assert found["openrouter:a/new"].kind is ChangeKind.ADDED and not found["openrouter:a/new"].significant
    # A model already gone is not reported again.
    assert changes(new, new) == []


def test_merge_full_quick_and_stale() -> None:
    previous = catalog(entry("a/keep", 1.0), entry("a/drop", 1.0), entry("g/m", 2.0, source=Source.GEMINI))
    results = [
        listing(Source.OPENROUTER, entry("a/keep", 1.3, ctx=16384, fetched=T1), entry("a/new", 1.0, fetched=T1)),
        SourceResult(Source.GEMINI, error="HTTP 500"),
    ]
    full = merge(previous, results, mode=FULL, now=T1)
    assert (
        full["openrouter:a/keep"].pricing == Pricing(input=1.3, output=1.3)
        and full["openrouter:a/keep"].ctx_in == 16384
    )
    assert not full["openrouter:a/drop"].available and not full["openrouter:a/drop"].listed
    assert "openrouter:a/new" in full
    stale = full["gemini:g/m"]
    assert stale.stale and stale.stale_since == T1 and stale.pricing == Pricing(input=2.0, output=2.0)
    # Still failing later: stale since the first failure.
    again = merge(full, [SourceResult(Source.GEMINI, error="timeout")], mode=FULL, now=T1 + 600)
    assert again["gemini:g/m"].stale_since == T1
    # Quick: prices and availability of known models only.
    quick = merge(previous, results[:1], mode=QUICK, now=T1)
    assert quick["openrouter:a/keep"].pricing == Pricing(input=1.3, output=1.3)
    assert quick["openrouter:a/keep"].ctx_in == 8192  # context waits for the full refresh
    assert "openrouter:a/new" not in quick
    # A stale entry yields no drift (its source did not answer), whatever its values.
    assert [c for c in changes(previous, full) if c.entry_id == "gemini:g/m"] == []


def test_a_source_answering_again_clears_stale() -> None:
    previous = catalog(msgspec.structs.replace(entry("g/m", 2.0, source=Source.GEMINI), stale=True, stale_since=T0))
    merged = merge(
        previous, [listing(Source.GEMINI, entry("g/m", 2.0, source=Source.GEMINI, fetched=T1))], mode=FULL, now=T1
    )
    assert not merged["gemini:g/m"].stale and merged["gemini:g/m"].stale_since is None


@pytest.mark.parametrize("bad", ["abc", "NaN", "-0.5", "1e308", "Infinity"])
def test_a_malformed_price_keeps_the_last_known_one_so_the_next_valid_price_drifts(bad: str) -> None:
    from bifrost.catalog.normalize import normalize_openrouter

    def listed(price: str) -> SourceResult:
        doc = {
            "data": [{"id": "a/m1", "context_length": 8192, "pricing": {"prompt": price, "completion": "0.0000002"}}]
        }
        return SourceResult(Source.OPENROUTER, listing=normalize_openrouter(doc, now=T1))

    first = merge({}, [listed("0.0000002")], mode=FULL, now=T0)
    assert first["openrouter:a/m1"].pricing == Pricing(input=0.2, output=0.2)
    bad_listing = listed(bad)
    assert bad_listing.listing is not None
    assert list(bad_listing.listing.invalid_prices) == ["openrouter:a/m1"]  # counted, with its reason
    second = merge(first, [bad_listing], mode=FULL, now=T1)
    kept = second["openrouter:a/m1"]
    assert kept.pricing == Pricing(input=0.2, output=0.2) and kept.stale and kept.stale_since == T1
    assert changes(first, second) == []
    third = merge(second, [listed("0.0000003")], mode=QUICK, now=T1 + 1)
    assert not third["openrouter:a/m1"].stale
    found = changes(second, third)
    assert [c.kind for c in found] == [ChangeKind.PRICE] and found[0].relative == pytest.approx(0.5)


def test_minus_one_and_a_missing_price_still_mean_no_price() -> None:
    from bifrost.catalog.normalize import normalize_openrouter

    doc = {"data": [{"id": "a/auto", "pricing": {"prompt": "-1", "completion": "-1"}}, {"id": "a/none"}]}
    result = normalize_openrouter(doc, now=T1)
    assert result.invalid_prices == {} and [e.pricing for e in result.entries] == [None, None]


def test_with_a_zero_threshold_only_real_price_moves_are_changes() -> None:
    """`catalog diff V V` (threshold 0) listed every priced entry as "price +0.0% ( USD/1M)"."""
    same = catalog(entry("a/m1", 0.2), entry("b/m2", 1.0, out=2.0), entry("c/free", 0.0))
    assert changes(same, dict(same), threshold=0.0) == []
    moved = changes(same, catalog(entry("a/m1", 0.2), entry("b/m2", 1.0, out=2.1), entry("c/free", 0.0)), threshold=0.0)
    assert [c.entry_id for c in moved] == ["openrouter:b/m2"]
    assert describe(moved[0]) == "openrouter:b/m2 price +5.0% (out 2.0 → 2.1 USD/1M)"
