"""SLO gates: point checks of the canary that block promotion (they never roll back).

Missing means missing: a canary whose latencies are 0 (or mostly 0) while the control's
are not, or that has no judgements while the control has them, is ``insufficient`` —
it blocks promotion like a breached SLO, never passes.
"""

from __future__ import annotations

from collections.abc import Callable

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates import metrics
from bifrost.streams.rollout.gates.config import TAIL_QUANTILE, GateConfig

POINT_CHECK = "point check of the canary against the SLO"


def slo_results(
    canary: WindowStats,
    control: WindowStats,
    config: GateConfig,
    *,
    latency_dispersion: float = 1.0,
    win_dispersion: float = 1.0,
    p95: tuple[float | None, float | None] | None = None,
) -> list[GateResult]:
    """``slo_p95`` blocks while canary P95 > ``slo_p95_ms``; ``slo_win_rate`` while the
    canary's win rate < ``slo_min_win_rate`` (only once either arm has judged samples).
    The dispersions widen the missing-data checks when requests come in clusters; ``p95``
    passes both arms' measured P95 when the caller has them already."""
    if p95 is None:
        p95 = (
            metrics.measured_quantile(canary.latency_ms, TAIL_QUANTILE),
            metrics.measured_quantile(control.latency_ms, TAIL_QUANTILE),
        )
    return [_p95(canary, control, config, latency_dispersion, p95), _win(canary, control, config, win_dispersion)]


def _p95(
    canary: WindowStats, control: WindowStats, config: GateConfig, phi: float, both: tuple[float | None, float | None]
) -> GateResult:
    c_sketch, k_sketch = canary.latency_ms, control.latency_ms
    c_measured, k_measured = metrics.measured_latency(c_sketch), metrics.measured_latency(k_sketch)
    p95, control_p95 = both
    missing = metrics.missing_latency(canary, control, config.min_samples, phi)
    return _point_check(
        "slo_p95",
        "P95",
        p95,
        control_p95,
        config.slo_p95_ms,
        above=True,
        shown=_ms,
        missing=missing,
        samples=(c_measured, k_measured),
    )


def _win(canary: WindowStats, control: WindowStats, config: GateConfig, phi: float) -> GateResult:
    win = metrics.win_rate(canary)
    control_win = metrics.win_rate(control)
    judged_canary, judged_control = metrics.judged(canary), metrics.judged(control)
    missing = None
    if canary.count >= config.min_samples:
        missing = metrics.missing_share(
            judged_canary, canary.count, judged_control, control.count, "judgement", dispersion=phi
        )
    return _point_check(
        "slo_win_rate",
        "win rate",
        win,
        control_win,
        config.slo_min_win_rate,
        above=False,
        shown="{:.3f}".format,
        missing=missing,
        samples=(judged_canary, judged_control),
    )


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def _point_check(
    gate: str,
    what: str,
    canary: float | None,
    control: float | None,
    limit: float,
    *,
    above: bool,
    shown: Callable[[float], str],
    missing: str | None,
    samples: tuple[int, int],
) -> GateResult:
    """An SLO point check: blocked while the canary's figure is beyond ``limit`` (above it, or below it)."""
    side = "above" if above else "below"

    def beyond(value: float | None) -> bool:
        return value is not None and (value > limit if above else value < limit)

    note = ""
    if missing:
        status, note = GateStatus.INSUFFICIENT, missing
    elif beyond(canary):
        assert canary is not None
        status = GateStatus.BLOCKED
        if beyond(control):
            assert control is not None
            note = (
                f"the {what} is {side} the SLO in both arms (canary {shown(canary)}, control {shown(control)}, "
                f"SLO {shown(limit)}): no artifact can pass it on this traffic"
            )
        else:
            note = f"canary {what} {shown(canary)} is {side} the SLO {shown(limit)}"
    else:
        status = GateStatus.PASS
    return GateResult(
        gate=gate,
        status=status,
        canary=canary,
        control=control,
        threshold=limit,
        statistic=canary,
        bound=limit,
        method=POINT_CHECK,
        alpha=None,
        canary_samples=samples[0],
        control_samples=samples[1],
        note=note,
    )
