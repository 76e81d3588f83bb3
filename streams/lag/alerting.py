"""When a group's lag status raises or resolves an alert (pure: reports in, alerts out).

An *episode* starts when a group's status turns ERR, STALL or STOP and ends when it is
OK again (WARN keeps it open: not yet healthy). Each episode publishes one alert when it
opens and one ``resolved`` alert when it ends. The alert id is derived from Kafka state,
not from a local clock: the group and the committed offsets of its failing partitions
when the episode opened. Those offsets do not move while a group is stuck, so two workers
(or a worker that restarted, or a new leader) that see the same episode derive the same
id, and a re-sent alert is recognisably the same one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bifrost.schemas.alerts import Alert, AlertKind, Severity
from bifrost.streams.lag.rules import GroupReport, LagStatus

__all__ = ["Episode", "episode_id", "next_episode"]

_SEVERITY = {LagStatus.STOP: Severity.CRITICAL, LagStatus.ERR: Severity.CRITICAL, LagStatus.STALL: Severity.WARNING}


@dataclass(frozen=True, slots=True)
class Episode:
    """An open lag episode of one group and the alert that opened it."""

    alert_id: str
    status: LagStatus
    opened_at: float
    alert: Alert


def episode_id(report: GroupReport) -> str:
    """``consumer_lag:<group>:<digest of the failing partitions' committed offsets>``.

    Example:
        >>> from bifrost.streams.lag.rules import PartitionReport
        >>> p = PartitionReport(topic="t", partition=0, committed=7, log_end=9, lag=2, lag_seconds=1.0,
        ...                     status=LagStatus.STOP, reason="")
        >>> r = GroupReport(group="g", at=0.0, state="Empty", members=0, exists=True, status=LagStatus.STOP,
        ...                 lag=2, lag_seconds=1.0, samples=1, window=3, partitions=(p,))
        >>> episode_id(r)
        'consumer_lag:g:f77bbbe7719fc932'
    """
    failing = sorted(
        (p.topic, p.partition, -1 if p.committed is None else p.committed)
        for p in report.partitions
        if p.status.alerting
    )
    digest = hashlib.sha256(repr((report.group, failing)).encode()).hexdigest()[:16]
    return f"consumer_lag:{report.group[:250]}:{digest}"


def next_episode(report: GroupReport, episode: Episode | None) -> tuple[Episode | None, Alert | None]:
    """The group's episode after ``report``, and the alert to publish now (if any).

    Example:
        >>> from bifrost.streams.lag.rules import PartitionReport
        >>> p = PartitionReport(topic="t", partition=0, committed=7, log_end=9, lag=2, lag_seconds=1.0,
        ...                     status=LagStatus.STOP, reason="no live member")
        >>> bad = GroupReport(group="g", at=10.0, state="Empty", members=0, exists=True, status=LagStatus.STOP,
        ...                   lag=2, lag_seconds=1.0, samples=1, window=3, partitions=(p,))
        >>> episode, alert = next_episode(bad, None)
        >>> alert.severity.value, alert.resolved
        ('critical', False)
        >>> next_episode(bad, episode) == (episode, None)
        True
    """
    if report.status.alerting:
        if episode is not None:
            return episode, None
        alert = _opened(report)
        return Episode(alert_id=alert.alert_id, status=report.status, opened_at=report.at, alert=alert), alert
    if episode is not None and report.status is LagStatus.OK:
        return None, _resolved(report, episode)
    return episode, None


def _opened(report: GroupReport) -> Alert:
    failing = [p for p in report.partitions if p.status.alerting]
    worst = max(failing, key=lambda p: (p.status.severity, p.lag), default=None)
    where = f"{worst.topic}[{worst.partition}]: {worst.reason}" if worst else ""
    age = f", oldest unconsumed record {report.lag_seconds:.1f} s old" if report.lag_seconds else ""
    message = (
        f"consumer group {report.group} is {report.status.value}: {len(failing)} partition(s) behind by "
        f"{sum(p.lag for p in failing)} records{age} (group {report.state}, {report.members} "
        f"member(s)); {where}"
    )
    evidence: dict[str, float | int | str] = {
        "status": report.status.value,
        "lag": report.lag,
        "partitions": len(failing),
        "members": report.members,
        "state": report.state,
    }
    if report.lag_seconds is not None:
        evidence["lag_seconds"] = round(report.lag_seconds, 3)
    if worst is not None:
        evidence["worst_partition"] = f"{worst.topic}:{worst.partition}"
    return Alert(
        alert_id=episode_id(report),
        kind=AlertKind.CONSUMER_LAG,
        severity=_SEVERITY[report.status],
        subject=report.group[:300],
        message=message[:2000],
        evidence=evidence,
        created_at=report.at,
    )


def _resolved(report: GroupReport, episode: Episode) -> Alert:
    lasted = max(0.0, report.at - episode.opened_at)
    return Alert(
        alert_id=f"{episode.alert_id}:resolved",
        kind=AlertKind.CONSUMER_LAG,
        severity=Severity.INFO,
        subject=report.group[:300],
        resolved=True,
        created_at=report.at,
        message=f"consumer group {report.group} is OK again (was {episode.status.value} for {lasted:.0f} s)",
        evidence={
            "status": report.status.value,
            "previous": episode.status.value,
            "lag": report.lag,
            "seconds": round(lasted, 3),
            "opened": episode.alert_id,
        },
    )
