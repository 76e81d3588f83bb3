"""Merging a refresh into the catalog, and the drift rules (pure: values in, values out).

**Merge** (:func:`merge`). A source that answered replaces its entries: a model it no
longer lists stays in the catalog as ``available=False, listed=False`` (so its removal is
seen once, and a router can still look it up). A source that failed (or was skipped)
keeps its entries from the previous snapshot, marked ``stale`` since the first failure:
nothing is concluded about them. A *quick* check (every 6 hours) only updates prices and
availability of models already in the catalog; new models, context windows and
capabilities wait for the nightly full refresh. An entry listed with a malformed price
(``"abc"``, ``"NaN"``, negative, absurd: :attr:`Listing.invalid_prices`) keeps its last known
price and is marked ``stale`` like a failed source's, so the next valid price is compared
with the last valid one (0.2 → "abc" → 0.3 is a +50% drift, not nothing).

**Drift** (:func:`detect`), against the previous snapshot, entry by entry (stale entries
are skipped: their source did not answer):

* ``price`` — the input or the output price moved by at least the threshold (10%), either
  way (a price from 0 counts as infinite);
* ``context`` — the input context window changed;
* ``capability`` — thinking or JSON support changed;
* ``added`` / ``removed`` (no longer listed) / ``unavailable`` (listed as unavailable) /
  ``restored``.

A change is ``in_use`` when a model of the current artifact resolves to the entry
(:func:`bifrost.schemas.catalog.resolve_models`), and ``significant`` when it is in use
and not an addition: significant changes invalidate the artifact and trigger a retrain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from bifrost.catalog.normalize import Listing
from bifrost.schemas.catalog import CatalogChange, CatalogEntry, ChangeKind, Source

FULL = "full"
QUICK = "quick"


@dataclass(frozen=True, slots=True)
class SourceResult:
    """What one source gave in a refresh: a listing, or why there is none."""

    source: Source
    listing: Listing | None = None
    error: str = ""
    skipped: bool = False  # not configured (e.g. no API key): not a failure, but its old entries go stale too


def merge(
    previous: Mapping[str, CatalogEntry],
    results: Sequence[SourceResult],
    *,
    mode: str,
    now: float,
) -> dict[str, CatalogEntry]:
    """The catalog after a refresh (see the module docstring), keyed by entry id, sorted."""
    answered = {r.source: r.listing for r in results if r.listing is not None}
    merged: dict[str, CatalogEntry] = {}
    for entry_id, old in previous.items():
        listing = answered.get(old.source)
        if listing is None:
            merged[entry_id] = old if old.stale else msgspec.structs.replace(old, stale=True, stale_since=now)
    for source, listing in answered.items():
        fresh = {e.id: e for e in listing.entries}
        for entry_id, old in previous.items():
            if old.source is not source:
                continue
            new = fresh.get(entry_id)
            if new is None:
                merged[entry_id] = msgspec.structs.replace(
                    old, available=False, listed=False, stale=False, stale_since=None
                )
            elif mode == QUICK:
                merged[entry_id] = msgspec.structs.replace(
                    old,
                    pricing=new.pricing,
                    available=new.available,
                    listed=True,
                    stale=False,
                    stale_since=None,
                    fetched_at=new.fetched_at,
                )
            else:
                merged[entry_id] = new
            if new is not None and entry_id in listing.invalid_prices:
                merged[entry_id] = msgspec.structs.replace(
                    merged[entry_id], pricing=old.pricing, stale=True, stale_since=old.stale_since if old.stale else now
                )
        if mode != QUICK:
            for entry_id, new in fresh.items():
                merged.setdefault(entry_id, new)
    return dict(sorted(merged.items()))


def relative_change(before: float, after: float) -> float:
    """(after − before) / before; ``inf`` from 0 to a price, 0 when both are 0.

    Example:
        >>> round(relative_change(0.2, 0.224), 6), relative_change(0.0, 0.1), relative_change(0.0, 0.0)
        (0.12, inf, 0.0)
    """
    if before == after:
        return 0.0
    if before == 0:
        return math.inf
    return (after - before) / before


@dataclass(frozen=True, slots=True)
class DriftRules:
    """Thresholds of the drift rules."""

    price_threshold: float = 0.10


def detect(
    previous: Mapping[str, CatalogEntry],
    current: Mapping[str, CatalogEntry],
    *,
    snapshot: str,
    previous_snapshot: str | None,
    in_use: Mapping[str, Sequence[str]],
    artifact_version: str | None = None,
    rules: DriftRules = DriftRules(),
    now: float = 0.0,
) -> list[CatalogChange]:
    """Every drift from ``previous`` to ``current`` (see the module docstring), in entry order.

    ``in_use`` maps entry ids to the artifact's model names that resolve to them.
    """
    changes: list[CatalogChange] = []

    def add(
        kind: ChangeKind,
        entry: CatalogEntry,
        before: dict[str, float | bool | None],
        after: dict[str, float | bool | None],
        relative: float | None = None,
    ) -> None:
        used = list(in_use.get(entry.id, ()))
        changes.append(
            CatalogChange(
                change_id=f"{snapshot}:{entry.id}:{kind.value}",
                kind=kind,
                entry_id=entry.id,
                slug=entry.slug,
                source=entry.source,
                snapshot=snapshot,
                previous_snapshot=previous_snapshot,
                before=before,
                after=after,
                relative=relative,
                in_use=bool(used),
                used_as=used,
                significant=bool(used) and kind is not ChangeKind.ADDED,
                artifact_version=artifact_version if used else None,
                detected_at=now,
            )
        )

    for entry_id, new in current.items():
        if new.stale:
            continue
        old = previous.get(entry_id)
        if old is None:
            if new.available:
                add(ChangeKind.ADDED, new, {}, {"available": True})
            continue
        if old.available and not new.available:
            add(
                ChangeKind.REMOVED if not new.listed else ChangeKind.UNAVAILABLE,
                new,
                {"available": True},
                {"available": False},
            )
            continue
        if not old.available and new.available:
            add(ChangeKind.RESTORED, new, {"available": False}, {"available": True})
        if not new.available:
            continue
        if old.pricing is not None and new.pricing is not None:
            moves = {
                "price_in": relative_change(old.pricing.input, new.pricing.input),
                "price_out": relative_change(old.pricing.output, new.pricing.output),
            }
            largest = max(moves.values(), key=abs)
            if largest != 0 and abs(largest) >= rules.price_threshold - 1e-12:  # threshold 0 (diff): real moves only
                add(
                    ChangeKind.PRICE,
                    new,
                    {"price_in": old.pricing.input, "price_out": old.pricing.output},
                    {"price_in": new.pricing.input, "price_out": new.pricing.output},
                    relative=largest,
                )
        if old.ctx_in and new.ctx_in and old.ctx_in != new.ctx_in:
            add(
                ChangeKind.CONTEXT,
                new,
                {"ctx_in": old.ctx_in},
                {"ctx_in": new.ctx_in},
                relative=relative_change(old.ctx_in, new.ctx_in),
            )
        capability_before = {
            k: v
            for k, v in (("thinking", old.params.thinking), ("json", old.params.json))
            if v != getattr(new.params, k)
        }
        if capability_before:
            add(
                ChangeKind.CAPABILITY,
                new,
                dict(capability_before),
                {k: getattr(new.params, k) for k in capability_before},
            )
    return changes


def describe(change: CatalogChange) -> str:
    """One line for logs, alerts and the CLI, e.g. ``openrouter:meta/llama-3.1-8b price +12.0% (in 0.2 → 0.224)``."""
    name = change.entry_id
    if change.kind is ChangeKind.PRICE:
        moved = ", ".join(
            f"{k.removeprefix('price_')} {change.before.get(k)} → {change.after.get(k)}"
            for k in ("price_in", "price_out")
            if change.before.get(k) != change.after.get(k)
        )
        moved = moved or f"in {change.after.get('price_in')}, out {change.after.get('price_out')}"
        pct = (
            "from free"
            if change.relative is not None and math.isinf(change.relative)
            else f"{(change.relative or 0):+.1%}"
        )
        return f"{name} price {pct} ({moved} USD/1M)"
    if change.kind is ChangeKind.CONTEXT:
        return f"{name} context {change.before.get('ctx_in')} → {change.after.get('ctx_in')} tokens"
    if change.kind is ChangeKind.CAPABILITY:
        moved = ", ".join(f"{k} {change.before[k]} → {change.after[k]}" for k in change.before)
        return f"{name} capability {moved}"
    return f"{name} {change.kind.value}"
