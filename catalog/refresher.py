"""One catalog refresh, end to end: fetch every provider, merge, diff, snapshot, publish, invalidate, trigger.

:meth:`Refresher.refresh` is what the schedules and ``bifrost-opt catalog refresh`` run:

1. every configured source is fetched concurrently (its own timeouts and retries); one
   failing — 500s, timeouts, a malformed answer — only makes its entries stale;
2. under the store's lock: the fetch is merged into the current snapshot, drift is
   detected against it (:mod:`bifrost.catalog.drift`), the new snapshot is written
   (``published`` False) and made current;
3. its outputs go out: every entry on ``catalog``, every change on ``catalog-changes``
   and, when a change is significant, the current artifact is marked invalidated in the
   artifact store, a ``catalog_drift`` trigger goes to ``training-triggers`` and an alert
   to ``alerts``; then the snapshot is marked published.

A refresh first re-publishes a current snapshot whose outputs never reached Kafka (the
refresher died, or the broker was down), so no drift is lost between snapshots.
:meth:`Refresher.rollback` makes an earlier snapshot's entries current again as a new
snapshot (``mode`` rollback), through the same diff and publication.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import msgspec

from bifrost.catalog import metrics
from bifrost.catalog.adapters import GeminiAdapter, OpenAIAdapter, OpenRouterAdapter, ProviderAdapter
from bifrost.catalog.drift import FULL, DriftRules, SourceResult, describe, detect, merge
from bifrost.catalog.http import FetchError, RetryPolicy, scrub
from bifrost.catalog.normalize import MalformedListing
from bifrost.catalog.outputs import drift_alert, drift_trigger, significant
from bifrost.catalog.prices import load_price_table
from bifrost.catalog.publish import CatalogPublisher
from bifrost.catalog.snapshots import ProviderOutcome, Snapshot, SnapshotError, SnapshotStore, unique_version
from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.schemas.catalog import CatalogEntry, Source, parse_aliases, parse_sources, resolve_models

log = logging.getLogger("bifrost.catalog")

ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class ConfiguredSource:
    """A source the settings ask for: its adapter, or why it is skipped (no API key)."""

    source: Source
    adapter: ProviderAdapter | None
    skip_reason: str = ""


def configured_sources(settings: Settings) -> list[ConfiguredSource]:
    """Adapters of ``BIFROST_CATALOG_PROVIDERS`` (raises SettingsError for unknown names or a bad price table)."""
    try:
        sources = parse_sources(settings.catalog_providers)
    except ValueError as exc:
        raise SettingsError(f"BIFROST_CATALOG_PROVIDERS: {exc}") from None
    from bifrost.catalog.prices import PriceTableError

    try:
        table = load_price_table(settings.catalog_price_table or None)
    except PriceTableError as exc:
        raise SettingsError(f"BIFROST_CATALOG_PRICE_TABLE: {exc}") from None
    found = []
    for source in sources:
        if source is Source.OPENROUTER:
            found.append(
                ConfiguredSource(
                    source, OpenRouterAdapter(settings.openrouter_base_url, settings.secret_value("openrouter_api_key"))
                )
            )
        elif source is Source.OPENAI:
            key = settings.secret_value("openai_api_key")
            found.append(
                ConfiguredSource(
                    source,
                    OpenAIAdapter(settings.openai_base_url, key, table) if key else None,
                    "" if key else "no API key (BIFROST_OPENAI_API_KEY or _FILE)",
                )
            )
        elif source is Source.GEMINI:
            key = settings.secret_value("gemini_api_key")
            found.append(
                ConfiguredSource(
                    source,
                    GeminiAdapter(settings.gemini_base_url, key, table) if key else None,
                    "" if key else "no API key (BIFROST_GEMINI_API_KEY or _FILE)",
                )
            )
    return found


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret the settings hold (API keys, webhook secret…), to scrub from provider error text."""
    from dataclasses import fields

    names = {f.name for f in fields(settings)}
    found: list[str] = []
    for f in fields(settings):
        if not f.metadata.get("secret"):
            continue
        try:
            value = settings.secret_value(f.name) if f"{f.name}_file" in names else str(getattr(settings, f.name) or "")
        except Exception:  # noqa: BLE001 - an unreadable key file: nothing to scrub
            value = str(getattr(settings, f.name) or "")
        if value:
            found.append(value)
    return found


def models_in_use(artifact_store: str) -> tuple[str | None, list[str]]:
    """(current artifact version, the models it routes to); (None, []) without one.

    The list only decides which catalog changes matter; routers verify artifacts
    before they use them, so the bytes are decoded here without the signature check.
    """
    from bifrost.router.artifact import ArtifactError, decode
    from bifrost.storage.artifact_store import ArtifactStore, StoreError

    store = ArtifactStore(artifact_store)
    version = store.current()
    if version is None:
        return None, []
    try:
        data, _, _ = store.read(version)
        return version, list(decode(data).models)
    except (StoreError, ArtifactError, OSError, msgspec.DecodeError) as exc:
        log.warning(
            "event=catalog.artifact_unreadable store=%s version=%s error=%r", artifact_store, version, str(exc)[:300]
        )
        return version, []


def entries_in_use(models: Sequence[str], entries: Sequence[CatalogEntry], settings: Settings) -> dict[str, list[str]]:
    """{entry id: the artifact's model names resolving to it}."""
    resolved = resolve_models(
        models,
        entries,
        aliases=parse_aliases(settings.catalog_aliases),
        preference=parse_sources(settings.catalog_providers),
    )
    used: dict[str, list[str]] = {}
    for model, entry in resolved.items():
        used.setdefault(entry.id, []).append(model)
    return used


class Refresher:
    """Refreshes, rollbacks and publication of the catalog (one per process)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sources: Sequence[ConfiguredSource] | None = None,
        publisher: CatalogPublisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sources = list(configured_sources(settings) if sources is None else sources)
        self.store = SnapshotStore(settings.catalog_dir, keep=settings.catalog_keep)
        self.publisher = publisher or CatalogPublisher(settings)
        self.clock = clock
        self.secrets = configured_secrets(settings)
        self.policy = RetryPolicy(
            timeout_seconds=settings.catalog_http_timeout_seconds,
            attempts=settings.catalog_http_attempts,
            backoff_seconds=settings.catalog_http_backoff_seconds,
            max_backoff_seconds=settings.catalog_http_max_backoff_seconds,
            max_body_bytes=settings.catalog_http_max_body_bytes,
        )

    async def close(self) -> None:
        await self.publisher.close()

    # -- refresh -------------------------------------------------------------------------

    async def fetch_all(self) -> tuple[list[SourceResult], list[ProviderOutcome]]:
        """Every configured source, concurrently; failures become results, never exceptions."""
        async with aiohttp.ClientSession(headers={"User-Agent": "bifrost-optimizer-catalog/1"}) as session:
            done = await asyncio.gather(*(self._fetch(session, c) for c in self.sources))
        return [r for r, _ in done], [o for _, o in done]

    async def _fetch(
        self, session: aiohttp.ClientSession, configured: ConfiguredSource
    ) -> tuple[SourceResult, ProviderOutcome]:
        source = configured.source
        if configured.adapter is None:
            metrics.PROVIDER_FETCHES.labels(source.value, "skipped").inc()
            log.info("event=catalog.source.skipped source=%s reason=%r", source.value, configured.skip_reason)
            return (
                SourceResult(source, skipped=True, error=configured.skip_reason),
                ProviderOutcome(source=source.value, outcome="skipped", error=configured.skip_reason),
            )
        started = time.monotonic()
        try:
            listing = await configured.adapter.fetch(session, self.policy)
        except (FetchError, MalformedListing) as exc:
            error = scrub(scrub(str(exc), self.secrets)[:500], self.secrets)
        except Exception as exc:  # noqa: BLE001 - one provider must never stop the others
            error = scrub(scrub(f"{type(exc).__name__}: {exc}", self.secrets)[:500], self.secrets)
        else:
            seconds = time.monotonic() - started
            metrics.PROVIDER_FETCHES.labels(source.value, "ok").inc()
            metrics.SOURCE_FRESH.labels(source.value).set(self.clock())
            log.info(
                "event=catalog.source.ok source=%s entries=%d skipped_items=%d seconds=%.2f",
                source.value,
                len(listing.entries),
                listing.skipped,
                seconds,
            )
            if listing.invalid_prices:
                log.warning(
                    "event=catalog.source.invalid_prices source=%s entries=%d examples=%r note=%r",
                    source.value,
                    len(listing.invalid_prices),
                    [scrub(p, self.secrets) for p in list(listing.invalid_prices.values())[:5]],
                    "these entries keep their last known price, marked stale",
                )
            if listing.skipped:
                log.warning(
                    "event=catalog.source.malformed_items source=%s skipped=%d examples=%r",
                    source.value,
                    listing.skipped,
                    [scrub(p, self.secrets) for p in listing.problems],
                )
            return (
                SourceResult(source, listing=listing),
                ProviderOutcome(
                    source=source.value,
                    outcome="ok",
                    entries=len(listing.entries),
                    skipped_items=listing.skipped,
                    invalid_prices=len(listing.invalid_prices),
                    seconds=round(seconds, 3),
                ),
            )
        metrics.PROVIDER_FETCHES.labels(source.value, "failed").inc()
        log.error(
            "event=catalog.source.failed source=%s error=%r note=%r",
            source.value,
            error,
            "its entries keep their last known values, marked stale",
        )
        return (
            SourceResult(source, error=error),
            ProviderOutcome(
                source=source.value, outcome="failed", error=error, seconds=round(time.monotonic() - started, 3)
            ),
        )

    async def refresh(self, mode: str = FULL, *, version: str | None = None) -> Snapshot | None:
        """Fetch, snapshot and publish; returns the snapshot (None when ``version`` already exists).

        Raises:
            Exception from Kafka when publishing fails: the snapshot is then on disk but
            unpublished, and the next refresh (or start) publishes it first.
        """
        await self.publish_pending()
        if version is not None and version in self.store.versions():
            log.info("event=catalog.refresh.skipped version=%s reason=%r", version, "this slot is already refreshed")
            metrics.REFRESHES.labels(mode, "skipped").inc()
            return None
        results, outcomes = await self.fetch_all()
        now = self.clock()
        with self.store.locked():
            previous = self.store.current()
            old = previous.by_id() if previous else {}
            current = merge(old, results, mode=mode, now=now)
            snapshot = self._snapshot(
                mode, version or self._version(now, mode), previous, old, current, now, providers=outcomes
            )
            self.store.save(snapshot)
        return await self._publish(snapshot)

    async def rollback(self, version: str, *, reason: str = "") -> Snapshot:
        """Make ``version``'s entries current again, as a new snapshot published like a refresh."""
        await self.publish_pending()
        now = self.clock()
        with self.store.locked():
            target = self.store.load(version)
            previous = self.store.require_current()
            if previous.version == version:
                raise SnapshotError(f"{version} is already the current catalog snapshot")
            old = previous.by_id()
            entries = target.by_id()
            for entry_id, entry in old.items():  # absent from the target: gone, as a refresh would say
                entries.setdefault(
                    entry_id,
                    msgspec.structs.replace(entry, available=False, listed=False, stale=False, stale_since=None),
                )
            snapshot = self._snapshot(
                ROLLBACK,
                self._version(now, ROLLBACK),
                previous,
                old,
                dict(sorted(entries.items())),
                now,
                rolled_back_to=version,
                reason=reason,
            )
            self.store.save(snapshot)
        log.info(
            "event=catalog.rollback version=%s to=%s changes=%d reason=%r",
            snapshot.version,
            version,
            len(snapshot.changes),
            reason,
        )
        return await self._publish(snapshot)

    async def publish_pending(self) -> Snapshot | None:
        """Publish the current snapshot if its outputs never reached Kafka; returns it then."""
        current = self.store.current()
        if current is None or current.published:
            return None
        log.warning(
            "event=catalog.republish version=%s note=%r",
            current.version,
            "this snapshot was written but not published (refresher stopped, or Kafka was down)",
        )
        return await self._publish(current)

    # -- internals -----------------------------------------------------------------------

    def _version(self, now: float, mode: str) -> str:
        return unique_version(self.store, f"{datetime.fromtimestamp(now, UTC):%Y%m%dT%H%M%SZ}-{mode}")

    def _snapshot(
        self,
        mode: str,
        version: str,
        previous: Snapshot | None,
        old: dict[str, CatalogEntry],
        current: dict[str, CatalogEntry],
        now: float,
        *,
        providers: Sequence[ProviderOutcome] = (),
        rolled_back_to: str | None = None,
        reason: str = "",
    ) -> Snapshot:
        artifact, models = models_in_use(self.settings.artifact_store)
        used = entries_in_use(models, list(current.values()), self.settings) if models else {}
        changes = detect(
            old,
            current,
            snapshot=version,
            previous_snapshot=previous.version if previous else None,
            in_use=used,
            artifact_version=artifact,
            rules=DriftRules(price_threshold=self.settings.catalog_price_threshold),
            now=now,
        )
        if previous is None:  # the first snapshot: everything is "added", nothing is drift of an artifact
            changes = [msgspec.structs.replace(c, significant=False) for c in changes]
        hits = significant(changes)
        return Snapshot(
            version=version,
            created_at=now,
            mode=mode,
            previous=previous.version if previous else None,
            entries=list(current.values()),
            providers=list(providers),
            changes=changes,
            artifact_version=artifact if hits else None,
            trigger_id=drift_trigger(
                version,
                hits,
                artifact_version=artifact,
                now=now,
                window_seconds=self.settings.catalog_retrain_window_seconds,
            ).trigger_id
            if hits
            else None,
            alert_id=drift_alert(version, hits, artifact_version=artifact, now=now, trigger_id=None).alert_id
            if hits
            else None,
            rolled_back_to=rolled_back_to,
            reason=reason,
        )

    async def _publish(self, snapshot: Snapshot) -> Snapshot:
        hits = significant(snapshot.changes)
        for change in snapshot.changes:
            log.info(
                "event=catalog.change snapshot=%s kind=%s entry=%s in_use=%s significant=%s detail=%r",
                snapshot.version,
                change.kind.value,
                change.entry_id,
                change.in_use,
                change.significant,
                describe(change),
            )
        try:
            await self.publisher.entries(snapshot.entries)
            await self.publisher.changes(snapshot.changes)
            if hits and snapshot.artifact_version:
                self._invalidate(snapshot, hits)
                trigger = drift_trigger(
                    snapshot.version,
                    hits,
                    artifact_version=snapshot.artifact_version,
                    now=snapshot.created_at,
                    window_seconds=self.settings.catalog_retrain_window_seconds,
                )
                await self.publisher.trigger(trigger)
                await self.publisher.alert(
                    drift_alert(
                        snapshot.version,
                        hits,
                        artifact_version=snapshot.artifact_version,
                        now=snapshot.created_at,
                        trigger_id=trigger.trigger_id,
                    )
                )
                log.warning(
                    "event=catalog.drift snapshot=%s artifact=%s significant=%d trigger=%s alert=%s",
                    snapshot.version,
                    snapshot.artifact_version,
                    len(hits),
                    trigger.trigger_id,
                    snapshot.alert_id,
                )
        except Exception as exc:
            metrics.REFRESHES.labels(snapshot.mode, "unpublished").inc()
            log.error(
                "event=catalog.publish_failed snapshot=%s error=%r note=%r",
                snapshot.version,
                str(exc)[:300],
                "the snapshot is kept; the next refresh publishes it first",
            )
            await self.publisher.close()  # start afresh next time
            raise
        with self.store.locked():
            done = self.store.mark_published(snapshot)
        self._record(done)
        return done

    def _invalidate(self, snapshot: Snapshot, hits: Sequence[object]) -> None:
        from bifrost.storage.artifact_store import ArtifactStore, StoreError

        assert snapshot.artifact_version is not None
        reason = "catalog drift: " + "; ".join(describe(c) for c in snapshot.changes if c.significant)
        try:
            ArtifactStore(self.settings.artifact_store).invalidate(
                snapshot.artifact_version,
                reason=reason[:1000],
                by="catalog-refresher",
                details={
                    "snapshot": snapshot.version,
                    "changes": float(len(hits)),
                    "trigger_id": snapshot.trigger_id or "",
                },
            )
        except (StoreError, OSError) as exc:  # the trigger and alert must still go out
            log.error("event=catalog.invalidate_failed artifact=%s error=%r", snapshot.artifact_version, str(exc)[:300])
            return
        log.warning(
            "event=catalog.artifact_invalidated artifact=%s snapshot=%s", snapshot.artifact_version, snapshot.version
        )

    def _record(self, snapshot: Snapshot) -> None:
        metrics.REFRESHES.labels(snapshot.mode, "published").inc()
        metrics.LAST_REFRESH.labels(snapshot.mode).set(snapshot.created_at)
        for change in snapshot.changes:
            metrics.CHANGES.labels(change.kind.value, str(change.significant).lower()).inc()
        metrics.ENTRIES.clear()
        counts: dict[tuple[str, str], int] = {}
        for entry in snapshot.entries:
            state = "stale" if entry.stale else ("available" if entry.available else "unavailable")
            counts[(entry.source.value, state)] = counts.get((entry.source.value, state), 0) + 1
        for (source, state), n in counts.items():
            metrics.ENTRIES.labels(source, state).set(n)
        log.info(
            "event=catalog.published snapshot=%s mode=%s entries=%d changes=%d significant=%d providers=%s",
            snapshot.version,
            snapshot.mode,
            len(snapshot.entries),
            len(snapshot.changes),
            len(significant(snapshot.changes)),
            ",".join(f"{p.source}:{p.outcome}" for p in snapshot.providers) or "-",
        )
