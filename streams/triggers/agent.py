"""Emitting training triggers from the worker: the weekly timer and degradation checks."""

from __future__ import annotations

import logging
import time
from datetime import UTC

import faust

from bifrost.config import Settings
from bifrost.schemas.codec import encode
from bifrost.schemas.triggers import TrainingTrigger
from bifrost.streams.aggregates.mergeable import merged_all
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollup.store import RouterWindows
from bifrost.streams.triggers.rules import DAY, WEEK, degradation_trigger, degradations, schedule_trigger

log = logging.getLogger("bifrost.triggers")

# The last day is compared with the (up to six) days before it; judge only with at
# least five days of baseline, so a new router is not "degraded" against one noisy day.
MIN_HISTORY = 6 * DAY


class TriggerEmitter:
    """Publishes triggers; remembers the ids it sent so an hourly check does not repeat one."""

    def __init__(self, topic: faust.TopicT, settings: Settings) -> None:
        self._topic = topic
        self._settings = settings
        self._sent: set[str] = set()
        self._checked_hour: dict[str, int] = {}
        # (router, hour start) → all arms merged; settled hours do not change, so a
        # weekly comparison merges one new hour instead of 10,080 windows.
        self._hours: dict[tuple[str, int], WindowStats] = {}

    async def emit(self, trigger: TrainingTrigger) -> None:
        if trigger.trigger_id in self._sent:
            return
        await self._topic.send(key=trigger.trigger_id.encode(), value=encode(trigger))
        self._sent.add(trigger.trigger_id)
        log.info(
            "event=trigger.emitted id=%s reason=%s router=%s",
            trigger.trigger_id,
            trigger.reason.value,
            trigger.router_id,
        )

    async def on_progress(self, windows: RouterWindows, router_id: str) -> None:
        """Check degradation once per hour of settled event time (all partitions caught up)."""
        settled = windows.settled_until(router_id, self._settings.topics.routing_events)
        if settled is None:
            return
        hour = settled // 3600 * 3600
        last = self._checked_hour.get(router_id)
        self._checked_hour[router_id] = hour
        # The first hour seen is checked too: a backlog can settle in one batch, and a
        # restart re-checking its hour is harmless (the trigger id is per router and day).
        if last is not None and hour <= last:
            return
        oldest = windows.history_start(router_id)
        if oldest is None or oldest > hour - MIN_HISTORY:
            log.debug("event=trigger.degradation.skip router=%s hour=%d reason=short-history", router_id, hour)
            return  # too little history for a weekly trend

        await self.check_degradation(windows, router_id, hour)

    async def check_degradation(self, windows: RouterWindows, router_id: str, clock: int) -> None:
        """Compare the router's last day with the six days before it (all arms together)."""
        recent = self._span(windows, router_id, clock - int(DAY), clock)
        baseline = self._span(windows, router_id, clock - int(WEEK), clock - int(DAY))
        found = degradations(recent, baseline, tolerance=self._settings.degradation_tolerance)
        log.info(
            "event=trigger.degradation.check router=%s hour=%d recent=%d baseline=%d found=%s",
            router_id,
            clock,
            recent.count,
            baseline.count,
            [d.metric for d in found],
        )
        if found:
            await self.emit(degradation_trigger(router_id, found, now=float(clock)))

    def _span(self, windows: RouterWindows, router_id: str, from_ts: int, to_ts: int) -> WindowStats:
        total = merged_all(WindowStats, (self._hour(windows, router_id, hour) for hour in range(from_ts, to_ts, 3600)))
        horizon = to_ts - int(WEEK) - 3600
        for key in [k for k in self._hours if k[0] == router_id and k[1] < horizon]:
            del self._hours[key]
        return total

    def _hour(self, windows: RouterWindows, router_id: str, hour: int) -> WindowStats:
        """All arms of ``router_id`` merged over the hour starting at ``hour`` (cached)."""
        key = (router_id, hour)
        stats = self._hours.get(key)
        if stats is None:
            stats = self._hours[key] = merged_all(
                WindowStats, windows.merged(router_id, hour, hour + 3600).arms.values()
            )
        return stats


def register_triggers(app: faust.App, settings: Settings) -> TriggerEmitter:
    """The weekly leader-only timer; returns the emitter the router loop uses for degradation."""
    topic = app.topic(
        settings.topics.training_triggers,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=True,
    )
    emitter = TriggerEmitter(topic, settings)

    @app.task
    async def declare_triggers_topic() -> None:
        # Send-only topics are not declared by Faust; subscribers need it to exist.
        await topic.maybe_declare()

    @app.crontab(settings.retrain_cron, timezone=UTC, on_leader=True)
    async def weekly_retrain() -> None:
        await emitter.emit(schedule_trigger(time.time()))

    return emitter
