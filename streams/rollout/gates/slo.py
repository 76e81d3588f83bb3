"""SLO gates: point checks of the canary that block promotion (they never roll back)."""

from __future__ import annotations

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates import metrics
from bifrost.streams.rollout.gates.config import TAIL_QUANTILE, GateConfig

POINT_CHECK = "point check of the canary against the SLO"


def slo_results(canary: WindowStats, control: WindowStats, config: GateConfig) -> list[GateResult]:
    """``slo_p95`` blocks while canary P95 > ``slo_p95_ms``; ``slo_win_rate`` while the
    canary's win rate < ``slo_min_win_rate`` (only once it has judged samples)."""
    p95 = canary.latency_ms.quantile(TAIL_QUANTILE)
    win = metrics.win_rate(canary)
    judged_canary, judged_control = metrics.judged(canary), metrics.judged(control)
    return [
        GateResult(
            gate="slo_p95",
            status=GateStatus.BLOCKED if p95 is not None and p95 > config.slo_p95_ms else GateStatus.PASS,
            canary=p95,
            control=control.latency_ms.quantile(TAIL_QUANTILE),
            threshold=config.slo_p95_ms,
            statistic=p95,
            bound=config.slo_p95_ms,
            method=POINT_CHECK,
            alpha=None,
            canary_samples=canary.count,
            control_samples=control.count,
        ),
        GateResult(
            gate="slo_win_rate",
            status=GateStatus.BLOCKED if win is not None and win < config.slo_min_win_rate else GateStatus.PASS,
            canary=win,
            control=metrics.win_rate(control),
            threshold=config.slo_min_win_rate,
            statistic=win,
            bound=config.slo_min_win_rate,
            method=POINT_CHECK,
            alpha=None,
            canary_samples=judged_canary,
            control_samples=judged_control,
        ),
    ]
