"""Retry decisions of webhook delivery (pure): what an answer means, and how long to wait.

* 2xx — delivered.
* 408, 425, 429, 5xx, or no answer (timeout, refused connection) — retried, with
  exponential backoff and jitter (``base · 2^(n-1)``, capped, each delay drawn in
  ``[½, 1]`` of it so retries of many alerts do not arrive in step), and never sooner
  than the receiver's ``Retry-After``.
* any other 4xx (400, 401, 403, 404, 410…) — the receiver refuses this delivery and will
  refuse its repeats (a wrong secret, a gone endpoint): dead-lettered at once.

After ``max_attempts`` attempts an alert is dead-lettered (reason ``undelivered``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

RETRY_STATUSES = frozenset({408, 425, 429})


class Verdict(str, enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"  # permanent: dead-letter now


def classify(status: int | None) -> Verdict:
    """What one attempt's answer means (``None``: no answer at all).

    Example:
        >>> [classify(s).value for s in (204, 503, 429, None, 401, 410)]
        ['delivered', 'retry', 'retry', 'retry', 'refused', 'refused']
    """
    if status is None or status in RETRY_STATUSES or status >= 500:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    return Verdict.REFUSED


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard to try one alert at one endpoint."""

    max_attempts: int = 8
    backoff_seconds: float = 5.0
    max_backoff_seconds: float = 900.0
    timeout_seconds: float = 10.0

    def budget_seconds(self) -> float:
        """Longest one alert can take at one endpoint (every attempt timing out, longest delays)."""
        delays = sum(
            min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (n - 1)) for n in range(1, self.max_attempts)
        )
        return delays + self.max_attempts * self.timeout_seconds


def retry_delay(
    failed_attempts: int, policy: DeliveryPolicy, *, rand: float, retry_after: float | None = None
) -> float:
    """Seconds to wait after ``failed_attempts`` (≥ 1) failed attempts; ``rand`` in [0, 1).

    Example:
        >>> p = DeliveryPolicy(backoff_seconds=2.0, max_backoff_seconds=60.0)
        >>> [retry_delay(n, p, rand=1.0) for n in (1, 2, 3, 10)], retry_delay(1, p, rand=0.0)
        ([2.0, 4.0, 8.0, 60.0], 1.0)
        >>> retry_delay(1, p, rand=0.5, retry_after=30.0), retry_delay(1, p, rand=0.5, retry_after=3600.0)
        (30.0, 60.0)
    """
    ceiling = min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** max(0, failed_attempts - 1))
    delay = ceiling * (0.5 + 0.5 * min(max(rand, 0.0), 1.0))
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(delay, retry_after)
    return min(policy.max_backoff_seconds, delay)
