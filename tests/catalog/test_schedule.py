"""Cron slots of the refresher (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bifrost.catalog.schedule import ScheduleError, Slot, check_cron, missed_slot, next_fire, next_slot, slot_version

FULL, QUICK = "0 2 * * *", "0 */6 * * *"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_next_fire_is_strictly_after_in_utc() -> None:
    assert next_fire(FULL, ts("2026-05-01T01:59:59")) == ts("2026-05-01T02:00:00")
    assert next_fire(FULL, ts("2026-05-01T02:00:00")) == ts("2026-05-02T02:00:00")
    assert next_fire(QUICK, ts("2026-05-01T02:00:00")) == ts("2026-05-01T06:00:00")


def test_the_full_refresh_wins_a_shared_slot_and_quick_fills_the_rest() -> None:
    both_midnight = "0 0 * * *"
    assert next_slot(both_midnight, QUICK, ts("2026-05-01T23:00:00")) == Slot(ts("2026-05-02T00:00:00"), "full")
    day = [next_slot(FULL, QUICK, ts("2026-05-01T00:00:00"))]
    while len(day) < 5:
        day.append(next_slot(FULL, QUICK, day[-1].at))
    assert [(datetime.fromtimestamp(s.at, UTC).hour, s.mode) for s in day] == [
        (2, "full"),
        (6, "quick"),
        (12, "quick"),
        (18, "quick"),
        (0, "quick"),
    ]
    assert day[0].version == "20260501T020000Z-full" == slot_version(day[0].at, "full")


def test_missed_slots_after_a_restart() -> None:
    now = ts("2026-05-01T13:00:00")
    assert missed_slot(FULL, QUICK, last_refresh=None, now=now) == Slot(now, "full")
    assert missed_slot(FULL, QUICK, last_refresh=ts("2026-04-30T02:05:00"), now=now) == Slot(
        ts("2026-05-01T02:00:00"), "full"
    )
    assert missed_slot(FULL, QUICK, last_refresh=ts("2026-05-01T06:01:00"), now=now) == Slot(
        ts("2026-05-01T12:00:00"), "quick"
    )
    assert missed_slot(FULL, QUICK, last_refresh=ts("2026-05-01T12:00:30"), now=now) is None


@pytest.mark.parametrize("expr", ["", "0 2 * *", "61 * * * *", "every day", "0 2 * * * *"])
def test_bad_cron_expressions_name_the_setting(expr: str) -> None:
    with pytest.raises(ScheduleError, match="BIFROST_CATALOG_FULL_CRON"):
        check_cron(expr, "BIFROST_CATALOG_FULL_CRON")
