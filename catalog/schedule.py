"""When refreshes run (pure): cron expressions in UTC, the next slot, and a missed one to catch up.

Two schedules: the full refresh (``BIFROST_CATALOG_FULL_CRON``, nightly 02:00) and the
quick availability and price check (``BIFROST_CATALOG_QUICK_CRON``, every 6 hours). A
slot both fire at runs once, as full. Each slot has a stable snapshot version
(:func:`slot_version`), so a slot is refreshed at most once even across restarts or a
second refresher.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from bifrost.catalog.drift import FULL, QUICK


class ScheduleError(ValueError):
    """A cron expression that cannot be parsed."""


def check_cron(expr: str, setting: str) -> None:
    """Raise :class:`ScheduleError` naming ``setting`` unless ``expr`` is a valid 5-field cron expression."""
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ScheduleError(
            f"{setting}={expr!r} is not a cron expression (5 fields: minute hour day month weekday, UTC)"
        )


def next_fire(expr: str, after: float) -> float:
    """The first time strictly after ``after`` (epoch seconds) that ``expr`` fires, in UTC.

    Example:
        >>> next_fire("0 2 * * *", 0.0)  # 1970-01-01 02:00 UTC
        7200.0
    """
    return float(croniter(expr, datetime.fromtimestamp(after, UTC)).get_next(float))


def last_fire(expr: str, at: float) -> float:
    """The latest time at or before ``at`` that ``expr`` fires."""
    return float(croniter(expr, datetime.fromtimestamp(at + 1e-3, UTC)).get_prev(float))


@dataclass(frozen=True, slots=True)
class Slot:
    """One scheduled refresh: when, and full or quick."""

    at: float
    mode: str

    @property
    def version(self) -> str:
        return slot_version(self.at, self.mode)


def slot_version(at: float, mode: str) -> str:
    """The snapshot version of a refresh at ``at`` (``20260501T020000Z-full``)."""
    return f"{datetime.fromtimestamp(at, UTC):%Y%m%dT%H%M%SZ}-{mode}"


def next_slot(full_cron: str, quick_cron: str, after: float) -> Slot:
    """The next slot after ``after``; full wins when both fire at the same time.

    Example:
        >>> next_slot("0 2 * * *", "0 */6 * * *", 0.0), next_slot("0 0 * * *", "0 */6 * * *", 3600.0)
        (Slot(at=7200.0, mode='full'), Slot(at=21600.0, mode='quick'))
    """
    full, quick = next_fire(full_cron, after), next_fire(quick_cron, after)
    return Slot(full, FULL) if full <= quick else Slot(quick, QUICK)


def missed_slot(full_cron: str, quick_cron: str, *, last_refresh: float | None, now: float) -> Slot | None:
    """The most recent slot at or before ``now`` that no refresh covered since ``last_refresh``, or None.

    With no refresh ever (``last_refresh`` None) a full refresh is due now. A missed full
    slot wins over a later quick one (the full one covers more).

    Example:
        >>> missed_slot("0 2 * * *", "0 */6 * * *", last_refresh=None, now=100.0)
        Slot(at=100.0, mode='full')
        >>> missed_slot("0 2 * * *", "0 */6 * * *", last_refresh=7300.0, now=30000.0)
        Slot(at=21600.0, mode='quick')
        >>> missed_slot("0 2 * * *", "0 */6 * * *", last_refresh=0.0, now=30000.0)
        Slot(at=7200.0, mode='full')
    """
    if last_refresh is None:
        return Slot(now, FULL)
    full, quick = last_fire(full_cron, now), last_fire(quick_cron, now)
    if full > last_refresh:
        return Slot(full, FULL)
    if quick > last_refresh:
        return Slot(quick, QUICK)
    return None
