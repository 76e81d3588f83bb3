"""``bifrost-opt refresher``: the catalog schedules and the webhook delivery of alerts, in one process.

* **Schedules** (leader only): one refresher holds the catalog folder's leader lock
  (:meth:`~bifrost.catalog.snapshots.SnapshotStore.try_leadership`); a second one started
  on the same folder waits as a standby and takes over when the first exits. The leader
  first publishes a snapshot left unpublished, catches up the newest missed slot (a full
  refresh at once when there is no catalog yet), then sleeps until each next slot of
  ``BIFROST_CATALOG_FULL_CRON`` / ``BIFROST_CATALOG_QUICK_CRON`` (UTC). A slot's snapshot
  version is derived from its time, so it is refreshed at most once.
* **Webhooks**: one consumer group per ``BIFROST_WEBHOOK_URLS`` entry
  (:mod:`bifrost.webhooks.deliverer`); Kafka's group protocol makes one refresher deliver
  per endpoint, whichever holds the leader lock.

A failure of one part is logged and retried; it never stops the other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bifrost.catalog import metrics
from bifrost.catalog.refresher import Refresher
from bifrost.catalog.schedule import Slot, check_cron, missed_slot, next_slot
from bifrost.config import Settings
from bifrost.config.settings import SettingsError

log = logging.getLogger("bifrost.catalog")

STANDBY_POLL_SECONDS = 30.0
RETRY_SECONDS = 60.0


def check_settings(settings: Settings) -> None:
    """Fail fast on settings the refresher cannot run with (SettingsError names the variable)."""
    from bifrost.catalog.refresher import configured_sources
    from bifrost.catalog.schedule import ScheduleError
    from bifrost.webhooks.deliverer import endpoints, secret_of

    try:
        check_cron(settings.catalog_full_cron, "BIFROST_CATALOG_FULL_CRON")
        check_cron(settings.catalog_quick_cron, "BIFROST_CATALOG_QUICK_CRON")
    except ScheduleError as exc:
        raise SettingsError(str(exc)) from None
    configured_sources(settings)
    if endpoints(settings):
        secret_of(settings)


async def schedule_loop(settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
    """Hold leadership (or wait for it) and run every slot until cancelled."""
    refresher = Refresher(settings, clock=clock)
    try:
        while True:
            lock = refresher.store.try_leadership()
            if lock is None:
                log.info(
                    "event=refresher.standby dir=%s note=%r",
                    refresher.store.root,
                    "another refresher holds the leader lock; retrying",
                )
                await asyncio.sleep(STANDBY_POLL_SECONDS)
                continue
            try:
                log.info("event=refresher.leader dir=%s pid_file=%s", refresher.store.root, lock.name)
                await _lead(refresher, settings, clock)
            finally:
                lock.close()
    finally:
        await refresher.close()


async def _lead(refresher: Refresher, settings: Settings, clock: Callable[[], float]) -> None:
    full, quick = settings.catalog_full_cron, settings.catalog_quick_cron
    last = _last_refresh(refresher)
    slot = missed_slot(full, quick, last_refresh=last, now=clock())
    if slot is not None:
        log.info("event=refresher.catch_up mode=%s slot=%s", slot.mode, slot.version)
        await _run(refresher, slot, versioned=last is not None)
    while True:
        slot = next_slot(full, quick, clock())
        log.info("event=refresher.next mode=%s at=%s in_s=%.0f", slot.mode, slot.version, slot.at - clock())
        while clock() < slot.at:
            await asyncio.sleep(min(60.0, max(0.05, slot.at - clock())))
        await _run(refresher, slot, versioned=True)


async def _run(refresher: Refresher, slot: Slot, *, versioned: bool) -> None:
    """One slot; on failure retry the publication every minute until it goes out (the snapshot is kept)."""
    while True:
        try:
            if (pending := refresher.store.current()) is not None and not pending.published:
                await refresher.publish_pending()
            await refresher.refresh(slot.mode, version=slot.version if versioned else None)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the schedule must outlive a broker outage
            log.error(
                "event=refresher.slot_failed mode=%s slot=%s error=%r retry_s=%.0f",
                slot.mode,
                slot.version,
                str(exc)[:300],
                RETRY_SECONDS,
            )
            await asyncio.sleep(RETRY_SECONDS)
            if refresher.store.current() is not None and slot.version in refresher.store.versions():
                versioned = True  # the snapshot is written: only its publication is left


def _last_refresh(refresher: Refresher) -> float | None:
    times = [h.ts for h in refresher.store.history() if h.mode in ("full", "quick")]
    return max(times) if times else None


async def run_refresher(settings: Settings, *, webhooks: bool = True, schedules: bool = True) -> None:
    """The refresher process's main coroutine (until cancelled or a part fails for good)."""
    from bifrost.webhooks.deliverer import endpoints, run_deliverers

    check_settings(settings)
    metrics.serve(settings.refresher_metrics_host, settings.refresher_metrics_port)
    parts: list[asyncio.Task[None]] = []
    if schedules:
        parts.append(asyncio.create_task(schedule_loop(settings), name="catalog-schedules"))
    if webhooks and endpoints(settings):
        parts.append(asyncio.create_task(_forever(run_deliverers, settings), name="webhooks"))
    elif webhooks:
        log.info("event=refresher.webhooks.off note=%r", "BIFROST_WEBHOOK_URLS is empty: alerts are not relayed")
    try:
        await asyncio.gather(*parts)
    finally:
        for part in parts:
            part.cancel()


async def _forever(run: Callable[[Settings], Awaitable[object]], settings: Settings) -> None:
    while True:
        try:
            await run(settings)
            return
        except asyncio.CancelledError:
            raise
        except SettingsError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broker outage must not end delivery for good
            log.error("event=webhooks.restart error=%r retry_s=%.0f", str(exc)[:300], 10.0)
            await asyncio.sleep(10.0)
