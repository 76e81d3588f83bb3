"""The worker's lag monitor: samples the watched groups, exports gauges, raises alerts.

Every worker samples (a handful of small admin requests per interval, plus one small
fetch per lagging partition: see :mod:`.probe`), so that any worker answers ``/v1/lag``
and ``/metrics`` with the whole picture and a worker that becomes Faust's leader already
holds a full window. Only the leader publishes alerts; every worker tracks the episodes
the same way, so a new leader can resolve an alert its predecessor opened, and re-sends
the open ones (same ids) in case the old leader died before it could.

No alert is decided during the first window after the monitor starts: a restarted
worker's own groups have no member yet and show the lag built up while it was down.

The monitor shares the event loop with ingest: it only awaits network I/O, bounds each
sample with a timeout, and catches and logs every error — it never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.schemas.alerts import Alert
from bifrost.streams import observability as obs
from bifrost.streams.lag.alerting import Episode, next_episode
from bifrost.streams.lag.groups import watched_groups
from bifrost.streams.lag.probe import LagProbe
from bifrost.streams.lag.rules import GroupReport, GroupSnapshot, LagStatus, LagWindows

log = logging.getLogger("bifrost.lag")

__all__ = ["AlertPublisher", "LagMonitor", "check_lag_settings"]

AlertPublisher = Callable[[Alert], Awaitable[None]]

_OUTBOX_MAX = 100


def check_lag_settings(settings: Settings) -> None:
    """Raise :class:`SettingsError` for a lag interval or window that cannot work."""
    if not math.isfinite(settings.lag_interval_seconds) or settings.lag_interval_seconds < 0:
        raise SettingsError(
            f"BIFROST_LAG_INTERVAL_SECONDS={settings.lag_interval_seconds!r}: "
            "a number of seconds ≥ 0 (0 turns the worker's lag monitor off)"
        )
    if settings.lag_window < 2:
        raise SettingsError(f"BIFROST_LAG_WINDOW={settings.lag_window!r}: a window holds at least 2 samples")


class LagMonitor:
    """Samples lag every ``BIFROST_LAG_INTERVAL_SECONDS`` over a ``BIFROST_LAG_WINDOW``-sample window.

    Args:
        settings: the worker's settings (groups, interval, window, Kafka security).
        publish: sends an alert to the ``alerts`` topic (None: no alerts).
        is_leader: whether this worker publishes alerts (Faust's ``app.is_leader``).
        probe: the Kafka reader (default: a :class:`LagProbe` from ``settings``).
        clock: epoch seconds.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        publish: AlertPublisher | None = None,
        is_leader: Callable[[], bool] = lambda: True,
        probe: LagProbe | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_lag_settings(settings)
        self.settings = settings
        self.groups = watched_groups(settings)
        self.interval = settings.lag_interval_seconds
        self.windows = LagWindows(settings.lag_window)
        self.reports: tuple[GroupReport, ...] = ()
        self.last_error: str | None = None
        self.samples = 0
        self._publish = publish
        self._is_leader = is_leader
        self._probe = probe
        self._own_probe = probe is None
        self._probe_started = False
        self._clock = clock
        self._episodes: dict[str, Episode] = {}
        self._busy_since: dict[str, float] = {}
        self._trainer_group = f"{settings.app_id}-trainer"
        self._outbox: list[Alert] = []
        self._was_leader = False
        self._series: set[tuple[str, str, str]] = set()
        self._status_groups: set[str] = set()

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        """Sample until cancelled; errors are logged and the next sample tries again."""
        span = self.interval * self.windows.size
        if self.settings.warehouse_enabled and span <= self.settings.warehouse_flush_seconds:
            log.warning(
                "event=lag.window_short window_seconds=%.0f warehouse_flush_seconds=%.0f hint=%s",
                span,
                self.settings.warehouse_flush_seconds,
                "the warehouse group commits once per flush: raise BIFROST_LAG_WINDOW or the interval",
            )
        log.info(
            "event=lag.monitor.started groups=%s interval=%.1f window=%d",
            ",".join(self.groups),
            self.interval,
            self.windows.size,
        )
        try:
            while True:
                started = time.monotonic()
                await self.sample_once()
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            await self._close_probe()

    async def sample_once(self) -> tuple[GroupReport, ...]:
        """Take one sample, update gauges, windows and alerts; never raises (but on cancellation)."""
        try:
            probe = await self._started_probe()
            snapshots = await asyncio.wait_for(probe.snapshot(self.groups), timeout=max(30.0, self.interval))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the monitor must never take the worker down
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("event=lag.sample_failed error=%r", self.last_error)
            await self._close_probe()  # reconnect next time
            return self.reports
        return await self.record(snapshots)

    async def record(self, snapshots: Sequence[GroupSnapshot]) -> tuple[GroupReport, ...]:
        """Add one sample's snapshots to the windows; log status changes, export gauges, send alerts."""
        try:
            previous = {r.group: r.status for r in self.reports}
            self.reports = tuple(self.windows.add(s) for s in snapshots)
            self.samples += 1
            self.last_error = None
            for report in self.reports:
                if report.exists and previous.get(report.group, LagStatus.OK) is not report.status:
                    level = logging.WARNING if report.status.alerting else logging.INFO
                    log.log(
                        level,
                        "event=lag.status group=%s status=%s previous=%s lag=%d lag_seconds=%s members=%d",
                        report.group,
                        report.status.value,
                        previous.get(report.group, LagStatus.OK).value,
                        report.lag,
                        _seconds(report.lag_seconds),
                        report.members,
                    )
            self._export(self.reports)
            await self._alert(self.reports)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed sample is reported on /v1/lag; the monitor keeps sampling
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("event=lag.monitor_error error=%r", self.last_error)
        return self.reports

    def view(self) -> dict[str, Any]:
        """What ``/v1/lag`` answers: the latest reports and how they were taken."""
        return {
            "sampled_at": self.reports[0].at if self.reports else None,
            "interval_seconds": self.interval,
            "window": self.windows.size,
            "samples": self.samples,
            "leader": self._leader(),
            "error": self.last_error,
            "groups": [msgspec.to_builtins(r) for r in self.reports],
        }

    # ------------------------------------------------------------------ parts

    async def _started_probe(self) -> LagProbe:
        if self._probe is None:
            self._probe = LagProbe(self.settings.kafka_bootstrap, self.settings.kafka_options())
        if not self._probe_started:
            await self._probe.start()
            self._probe_started = True
        return self._probe

    async def _close_probe(self) -> None:
        probe, started = self._probe, self._probe_started
        self._probe_started = False
        if self._own_probe:
            self._probe = None
        if probe is not None and started:
            try:
                await probe.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort; the next sample opens a new probe
                log.debug("event=lag.probe_close_failed error=%r", exc)

    def _export(self, reports: tuple[GroupReport, ...]) -> None:
        series: set[tuple[str, str, str]] = set()
        groups: set[str] = set()
        for report in reports:
            if not report.exists:
                continue
            groups.add(report.group)
            for status in LagStatus:
                obs.CONSUMER_GROUP_STATUS.labels(report.group, status.value).set(1 if status is report.status else 0)
            for p in report.partitions:
                labels = (report.group, p.topic, str(p.partition))
                series.add(labels)
                obs.CONSUMER_LAG_MESSAGES.labels(*labels).set(p.lag)
                obs.CONSUMER_LAG_SECONDS.labels(*labels).set(math.nan if p.lag_seconds is None else p.lag_seconds)
        for labels in self._series - series:
            obs.CONSUMER_LAG_MESSAGES.remove(*labels)
            obs.CONSUMER_LAG_SECONDS.remove(*labels)
        for group in self._status_groups - groups:
            for status in LagStatus:
                obs.CONSUMER_GROUP_STATUS.remove(group, status.value)
        self._series, self._status_groups = series, groups

    def _in_grace(self, report: GroupReport) -> bool:
        """True while a busy (not dead) group's ERR/STALL is younger than its grace period.

        The trainer commits a trigger's offset only after the run it started (so a run
        killed midway is redone): during a long run its offsets stand still with lag 1,
        which reads as STALL/ERR. A live member (not STOP) is given
        ``BIFROST_LAG_TRAINER_GRACE_SECONDS`` before that counts as an episode.
        """
        grace = self.settings.lag_trainer_grace_seconds if report.group == self._trainer_group else 0.0
        busy = report.status in (LagStatus.ERR, LagStatus.STALL)
        if not busy or grace <= 0:
            self._busy_since.pop(report.group, None)
            return False
        since = self._busy_since.setdefault(report.group, report.at)
        return report.at - since < grace

    async def _alert(self, reports: tuple[GroupReport, ...]) -> None:
        if self.samples < self.windows.size:
            # Warming up: right after a (re)start the worker's own groups have no member
            # yet and show the lag built up while it was down; judge after one window.
            return
        leader = self._leader()
        if leader and not self._was_leader:
            # Newly leader: the open episodes may never have been published by the old one.
            self._outbox.extend(e.alert for e in self._episodes.values())
        self._was_leader = leader
        for report in reports:
            if self._in_grace(report):
                continue
            episode, alert = next_episode(report, self._episodes.get(report.group))
            if episode is None:
                self._episodes.pop(report.group, None)
            else:
                self._episodes[report.group] = episode
            if alert is not None and leader:
                self._outbox.append(alert)
        if not leader or self._publish is None:
            self._outbox.clear()
            return
        del self._outbox[:-_OUTBOX_MAX]
        while self._outbox:
            alert = self._outbox[0]
            try:
                await asyncio.wait_for(self._publish(alert), timeout=10.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - kept in the outbox, retried next sample
                log.warning("event=lag.alert_failed id=%s error=%r", alert.alert_id, f"{type(exc).__name__}: {exc}")
                return
            self._outbox.pop(0)
            log.log(
                logging.INFO if alert.resolved else logging.WARNING,
                "event=lag.alert id=%s group=%s severity=%s resolved=%s",
                alert.alert_id,
                alert.subject,
                alert.severity.value,
                alert.resolved,
            )

    def _leader(self) -> bool:
        try:
            return bool(self._is_leader())
        except Exception:  # noqa: BLE001 - Faust not started yet: not the leader
            return False


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f}"
