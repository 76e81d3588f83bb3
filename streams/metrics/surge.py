"""DLQ surge detection over a sliding window (pure: counts and times in, transitions out).

A surge is a share of input records sent to the DLQ above ``threshold`` over the last
``window_seconds``, with at least ``min_dead_letters`` of them (so 1 bad record out of
10 is not a surge). It ends when the share falls to half the threshold or the count to
half the minimum (hysteresis: a share hovering at the threshold does not flap).
Each surge is one *episode*: one start and one end, identified by its start time.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from bifrost.schemas.alerts import Alert, AlertKind, Severity


@dataclass(frozen=True, slots=True)
class SurgePolicy:
    """When a DLQ share is a surge (``BIFROST_DLQ_SURGE_*`` settings)."""

    threshold: float = 0.01
    min_dead_letters: int = 20
    window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"DLQ surge threshold is a share in (0, 1], got {self.threshold}")
        if self.min_dead_letters < 1:
            raise ValueError(f"DLQ surge minimum must be at least 1 dead letter, got {self.min_dead_letters}")
        if self.window_seconds <= 0:
            raise ValueError(f"DLQ surge window must be positive, got {self.window_seconds}")


@dataclass(frozen=True, slots=True)
class SurgeChange:
    """A surge began (``started``) or ended; figures are over the window at that moment."""

    started: bool
    episode_start: float
    at: float
    inputs: int
    dead_letters: int
    reasons: dict[str, int]

    @property
    def share(self) -> float:
        return self.dead_letters / self.inputs if self.inputs else 0.0

    @property
    def top_reason(self) -> tuple[str, int]:
        """The most frequent reason and its count (ties: alphabetical), or ``("", 0)``."""
        if not self.reasons:
            return "", 0
        reason = min(self.reasons, key=lambda r: (-self.reasons[r], r))
        return reason, self.reasons[reason]


@dataclass(slots=True)
class _Second:
    at: int
    inputs: int = 0
    dead_letters: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class DlqSurgeDetector:
    """Sliding-window DLQ share, in one-second buckets (memory: one bucket per second of window).

    Example:
        >>> detector = DlqSurgeDetector(SurgePolicy(threshold=0.01, min_dead_letters=5))
        >>> detector.record(100.0, inputs=1000, reasons={"too_late": 30})
        >>> change = detector.check(100.5)
        >>> change.started, change.top_reason, change.dead_letters
        (True, ('too_late', 30), 30)
        >>> detector.check(101.0) is None     # still the same surge: nothing new to say
        True
        >>> detector.check(161.0).started     # the window slid past it
        False
    """

    def __init__(self, policy: SurgePolicy = SurgePolicy()) -> None:
        self.policy = policy
        self._seconds: deque[_Second] = deque()
        self._inputs = 0
        self._dead = 0
        self._reasons: Counter[str] = Counter()
        self._episode: float | None = None

    @property
    def in_surge(self) -> bool:
        return self._episode is not None

    def record(self, now: float, *, inputs: int, reasons: Mapping[str, int]) -> None:
        """Count ``inputs`` records read at ``now``, of which ``reasons`` went to the DLQ (by reason)."""
        second = int(now)
        if self._seconds and self._seconds[-1].at >= second:
            bucket = self._seconds[-1]  # a clock step back joins the newest bucket
        else:
            bucket = _Second(second)
            self._seconds.append(bucket)
        dead = sum(reasons.values())
        bucket.inputs += inputs
        bucket.dead_letters += dead
        bucket.reasons.update(reasons)
        self._inputs += inputs
        self._dead += dead
        self._reasons.update(reasons)
        self._expire(now)

    def check(self, now: float) -> SurgeChange | None:
        """The surge that began or ended by ``now``, or ``None`` when nothing changed."""
        self._expire(now)
        p = self.policy
        if self._episode is None:
            if self._dead >= p.min_dead_letters and self._dead > p.threshold * self._inputs:
                self._episode = now
                return self._change(started=True, now=now)
            return None
        ongoing = self._dead >= max(1.0, p.min_dead_letters / 2) and self._dead > p.threshold / 2 * self._inputs
        if ongoing:
            return None
        change = self._change(started=False, now=now)
        self._episode = None
        return change

    def _change(self, *, started: bool, now: float) -> SurgeChange:
        assert self._episode is not None
        return SurgeChange(
            started=started,
            episode_start=self._episode,
            at=now,
            inputs=self._inputs,
            dead_letters=self._dead,
            reasons={r: c for r, c in self._reasons.items() if c > 0},
        )

    def _expire(self, now: float) -> None:
        horizon = now - self.policy.window_seconds
        seconds = self._seconds
        while seconds and seconds[0].at + 1 <= horizon:
            old = seconds.popleft()
            self._inputs -= old.inputs
            self._dead -= old.dead_letters
            self._reasons.subtract(old.reasons)


_HINTS = {
    "too_late": "event times fall behind their router's newest event time by more than the grace period "
    "(BIFROST_GRACE_SECONDS): a producer with real-time timestamps mixed with compressed-time or "
    "replayed traffic for the same router, or a producer's clock far behind",
    "bad_json": "a producer sends payloads that are not JSON",
    "schema": "a producer sends events with missing fields or wrong types (see the DLQ records' error)",
    "invalid_value": "a producer sends out-of-range values (e.g. timestamps in the future: check its clock)",
    "oversized": "a producer sends payloads above BIFROST_MAX_EVENT_BYTES",
}


def surge_alert(change: SurgeChange, *, subject: str, window_seconds: float) -> Alert:
    """The :class:`~bifrost.schemas.alerts.Alert` of a surge's start or end.

    ``alert_id`` is ``dlq_surge:<subject>:<episode start>``: the same for the start and the
    end of one episode (the end has ``resolved`` set), different for the next one.

    Example:
        >>> change = SurgeChange(started=True, episode_start=1700000000.2, at=1700000000.2, inputs=1000,
        ...                      dead_letters=50, reasons={"too_late": 40, "schema": 10})
        >>> alert = surge_alert(change, subject="app-ingest/host-6066", window_seconds=60)
        >>> alert.alert_id, alert.severity.value, alert.evidence["top_reason"]
        ('dlq_surge:app-ingest/host-6066:1700000000', 'warning', 'too_late')
    """
    reason, count = change.top_reason
    subject = subject[:200]
    figures = (
        f"{change.dead_letters} of {change.inputs} input records ({change.share:.1%}) in the last "
        f"{window_seconds:.0f} s went to the DLQ; top reason {reason or '-'} ({count})"
    )
    if change.started:
        hint = _HINTS.get(reason)
        message = f"DLQ surge on {subject}: {figures}" + (f". Likely cause: {hint}" if hint else "")
    else:
        message = f"DLQ surge on {subject} ended: {figures}"
    evidence: dict[str, float | int | str] = {
        "inputs": change.inputs,
        "dead_letters": change.dead_letters,
        "share": round(change.share, 6),
        "window_seconds": window_seconds,
        "top_reason": reason,
        "top_reason_count": count,
        "episode_start": change.episode_start,
    }
    evidence.update({f"reason.{r}": c for r, c in sorted(change.reasons.items())})
    return Alert(
        alert_id=f"dlq_surge:{subject}:{int(change.episode_start)}",
        kind=AlertKind.DLQ_SURGE,
        severity=Severity.WARNING if change.started else Severity.INFO,
        subject=subject,
        message=message[:2000],
        evidence=evidence,
        resolved=not change.started,
        created_at=change.at,
    )
