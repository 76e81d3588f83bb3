"""Goal tracking (pure): a router's figures against its targets, with a test for a breach.

A goal is *missed* when the point estimate is on the wrong side of the target, and
*breached* only when it is missed beyond noise: a one-sided test at ``alpha`` (the alert
level). Rates use the binomial standard error at the target; mean quality (on 0..1) the
bound ``μ(1−μ)`` on a [0, 1] variable's variance (conservative); cost per task the
sample variance from the sum of squared costs; P95 the share of requests slower than the
target (from the latency sketch's buckets), tested against 5%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
from scipy.stats import norm

from bifrost.streams.aggregates.sketch import QuantileSketch
from bifrost.streams.aggregates.stats import WindowStats

GOAL_NAMES = ("win_rate", "cost_per_task", "p95_ms", "quality", "availability")


@dataclass(frozen=True, slots=True)
class GoalTargets:
    """The targets (defaults: the spec's, ``BIFROST_GOAL_*``)."""

    win_rate: float = 0.90
    cost_per_task: float = 0.04
    p95_ms: float = 2000.0
    quality: float = 0.85
    availability: float = 0.995
    min_samples: int = 100


class GoalStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One goal of one router over the goal window.

    ``status``: ``met``, ``missed`` (wrong side of the target, within noise), ``breached``
    (missed beyond noise: an SLO-breach alert), or ``no_data`` (fewer than the minimum
    samples). ``z`` is the test statistic (positive = worse than the target).
    """

    goal: str
    target: float
    value: float | None
    samples: int
    status: str
    z: float | None = None
    direction: str = ""  # "at least" or "at most"


def share_above(sketch: QuantileSketch, threshold: float) -> float:
    """Share of the sketch's values above ``threshold`` (bucket resolution: ±1 relative accuracy).

    Example:
        >>> s = QuantileSketch()
        >>> s.add_many([100.0, 200.0, 3000.0, 4000.0])
        >>> share_above(s, 2000.0)
        0.5
    """
    if sketch.count == 0:
        return 0.0
    if threshold <= 0:
        return (sketch.count - sketch.zero_count) / sketch.count
    edge = sketch.key(threshold)
    above = sum(c for k, c in sketch.bins.items() if k > edge)
    return above / sketch.count


def _judge(
    goal: str,
    target: float,
    value: float | None,
    samples: int,
    se: float | None,
    *,
    at_least: bool,
    min_samples: int,
    z_alert: float,
) -> GoalStatus:
    direction = "at least" if at_least else "at most"
    if value is None or samples < min_samples:
        return GoalStatus(goal=goal, target=target, value=value, samples=samples, status="no_data", direction=direction)
    gap = (target - value) if at_least else (value - target)
    z = gap / se if se and se > 0 else (math.inf if gap > 0 else -math.inf if gap < 0 else 0.0)
    status = "met" if gap <= 0 else "breached" if z > z_alert else "missed"
    return GoalStatus(
        goal=goal,
        target=target,
        value=value,
        samples=samples,
        status=status,
        z=None if math.isinf(z) else round(z, 3),
        direction=direction,
    )


def track_goals(stats: WindowStats, targets: GoalTargets, *, alpha: float = 0.001) -> list[GoalStatus]:
    """Every goal of ``stats`` (one router over the goal window).

    Example:
        >>> s = WindowStats(count=1000, errors=20, cost_usd=10.0, cost_sq=0.2)
        >>> {g.goal: g.status for g in track_goals(s, GoalTargets())}["availability"]
        'breached'
    """
    z_alert = float(norm.isf(alpha))
    out: list[GoalStatus] = []
    judged = stats.wins + stats.losses + stats.ties
    win = (stats.wins + 0.5 * stats.ties) / judged if judged else None
    t = targets.win_rate
    out.append(
        _judge(
            "win_rate",
            t,
            win,
            judged,
            math.sqrt(t * (1 - t) / judged) if judged else None,
            at_least=True,
            min_samples=targets.min_samples,
            z_alert=z_alert,
        )
    )
    n = stats.count
    cost = stats.cost_usd / n if n else None
    if n > 1 and cost is not None:
        var = max(stats.cost_sq / n - cost * cost, 0.0) * n / (n - 1)
        cost_se = math.sqrt(var / n)
    else:
        cost_se = None
    out.append(
        _judge(
            "cost_per_task",
            targets.cost_per_task,
            cost,
            n,
            cost_se,
            at_least=False,
            min_samples=targets.min_samples,
            z_alert=z_alert,
        )
    )
    p95 = stats.latency_ms.quantile(0.95)
    slow = share_above(stats.latency_ms, targets.p95_ms)
    # No latency recorded (an empty sketch) is no data, not "no slow requests".
    timed = n if p95 is not None else 0
    status = _judge(
        "p95_ms",
        0.05,
        slow if timed else None,
        timed,
        math.sqrt(0.05 * 0.95 / n) if timed else None,
        at_least=False,
        min_samples=targets.min_samples,
        z_alert=z_alert,
    )
    # Reported as the P95 against its target; judged as the share of slow requests against 5%.
    if status.status != "no_data" and p95 is not None and p95 < targets.p95_ms:
        status = msgspec.structs.replace(status, status="met")
    out.append(msgspec.structs.replace(status, target=targets.p95_ms, value=p95))
    q_n = stats.quality_count
    quality = stats.quality_sum / q_n if q_n else None
    q_se = math.sqrt(max(quality * (1 - quality), 1e-6) / q_n) if quality is not None else None
    out.append(
        _judge(
            "quality",
            targets.quality,
            quality,
            q_n,
            q_se,
            at_least=True,
            min_samples=targets.min_samples,
            z_alert=z_alert,
        )
    )
    availability = 1.0 - stats.errors / n if n else None
    a = targets.availability
    out.append(
        _judge(
            "availability",
            a,
            availability,
            n,
            math.sqrt(a * (1 - a) / n) if n else None,
            at_least=True,
            min_samples=targets.min_samples,
            z_alert=z_alert,
        )
    )
    return out
