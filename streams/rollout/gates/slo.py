"""SLO gates: point checks of the canary that block promotion (they never roll back).

Missing means missing: a canary whose latencies are 0 (or mostly 0) while the control's
are not, or that has no judgements while the control has them, is ``insufficient`` —
it blocks promotion like a breached SLO, never passes.
"""

from __future__ import annotations

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates import metrics
from bifrost.streams.rollout.gates.config import TAIL_QUANTILE, GateConfig

POINT_CHECK = "point check of the canary against the SLO"


def slo_results(canary: WindowStats, control: WindowStats, config: GateConfig, *,
                latency_dispersion: float = 1.0, win_dispersion: float = 1.0,
                p95: tuple[float | None, float | None] | None = None) -> list[GateResult]:
    """``slo_p95`` blocks while canary P95 > ``slo_p95_ms``; ``slo_win_rate`` while the
    canary's win rate < ``slo_min_win_rate`` (only once either arm has judged samples).
    The dispersions widen the missing-data checks when requests come in clusters; ``p95``
    passes both arms' measured P95 when the caller has them already."""
    if p95 is None:
        p95 = (metrics.measured_quantile(canary.latency_ms, TAIL_QUANTILE),
               metrics.measured_quantile(control.latency_ms, TAIL_QUANTILE))
    return [_p95(canary, control, config, latency_dispersion, p95), _win(canary, control, config, win_dispersion)]


def _p95(canary: WindowStats, control: WindowStats, config: GateConfig, phi: float,
         both: tuple[float | None, float | None]) -> GateResult:
    c_sketch, k_sketch = canary.latency_ms, control.latency_ms
    c_measured, k_measured = metrics.measured_latency(c_sketch), metrics.measured_latency(k_sketch)
    p95, control_p95 = both
    note = ""
    missing = None
    if c_sketch.count >= config.min_samples:
        missing = metrics.missing_share(c_measured, c_sketch.count, k_measured, k_sketch.count, "latency",
                                        dispersion=phi)
    if missing:
        status, note = GateStatus.INSUFFICIENT, missing
    elif p95 is not None and p95 > config.slo_p95_ms:
        status = GateStatus.BLOCKED
        if control_p95 is not None and control_p95 > config.slo_p95_ms:
            note = (f"the P95 is above the SLO in both arms (canary {p95:,.0f} ms, control {control_p95:,.0f} ms, "
                    f"SLO {config.slo_p95_ms:,.0f} ms): no artifact can pass it on this traffic")
        else:
            note = f"canary P95 {p95:,.0f} ms is above the SLO {config.slo_p95_ms:,.0f} ms"
    else:
        status = GateStatus.PASS
    return GateResult(
        gate="slo_p95",
        status=status,
        canary=p95,
        control=control_p95,
        threshold=config.slo_p95_ms,
        statistic=p95,
        bound=config.slo_p95_ms,
        method=POINT_CHECK,
        alpha=None,
        canary_samples=c_measured,
        control_samples=k_measured,
        note=note,
    )


def _win(canary: WindowStats, control: WindowStats, config: GateConfig, phi: float) -> GateResult:
    win = metrics.win_rate(canary)
    control_win = metrics.win_rate(control)
    judged_canary, judged_control = metrics.judged(canary), metrics.judged(control)
    note = ""
    missing = None
    if canary.count >= config.min_samples:
        missing = metrics.missing_share(judged_canary, canary.count, judged_control, control.count, "judgement",
                                        dispersion=phi)
    if missing:
        status, note = GateStatus.INSUFFICIENT, missing
    elif win is not None and win < config.slo_min_win_rate:
        status = GateStatus.BLOCKED
        if control_win is not None and control_win < config.slo_min_win_rate:
            note = (f"the win rate is below the SLO in both arms (canary {win:.3f}, control {control_win:.3f}, "
                    f"SLO {config.slo_min_win_rate:.3f}): no artifact can pass it on this traffic")
        else:
            note = f"canary win rate {win:.3f} is below the SLO {config.slo_min_win_rate:.3f}"
    else:
        status = GateStatus.PASS
    return GateResult(
        gate="slo_win_rate",
        status=status,
        canary=win,
        control=control_win,
        threshold=config.slo_min_win_rate,
        statistic=win,
        bound=config.slo_min_win_rate,
        method=POINT_CHECK,
        alpha=None,
        canary_samples=judged_canary,
        control_samples=judged_control,
        note=note,
    )
