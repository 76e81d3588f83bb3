"""The comparison baseline: fixed thresholds on point estimates, no sequential correction.

Once both arms have ``min_samples``, a gate fails as soon as the canary's point estimate
is beyond the configured tolerance (e.g. canary error rate > 1.10 × control's). Under
evaluation after every window, noise alone crosses these lines again and again: the
simulation shows how often an identical canary is rolled back.
"""

from __future__ import annotations

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates import metrics
from bifrost.streams.rollout.gates.config import TAIL_QUANTILE, GateConfig
from bifrost.streams.rollout.gates.report import GateReport
from bifrost.streams.rollout.gates.slo import slo_results

NAIVE = "fixed threshold on point estimates (no correction for repeated looks)"
_DEFAULT = GateConfig()


def naive_gates(canary: WindowStats, control: WindowStats, config: GateConfig = _DEFAULT) -> GateReport:
    """Fixed-threshold gates on point estimates: the baseline the sequential gates beat.

    ``statistic`` is the point estimate of the relative degradation, ``bound`` the
    configured tolerance. Same result shape as
    :func:`~bifrost.streams.rollout.gates.evaluate_gates`.
    """
    judged_c, judged_k = metrics.judged(canary), metrics.judged(control)
    return GateReport(
        results=[
            _check(
                "error_rate",
                config,
                metrics.error_rate(canary),
                metrics.error_rate(control),
                canary.count,
                control.count,
                increase=True,
            ),
            _check(
                "latency_p95",
                config,
                canary.latency_ms.quantile(TAIL_QUANTILE),
                control.latency_ms.quantile(TAIL_QUANTILE),
                canary.latency_ms.count,
                control.latency_ms.count,
                increase=True,
            ),
            _check(
                "cost_per_task",
                config,
                canary.cost_usd / canary.count if canary.count else None,
                control.cost_usd / control.count if control.count else None,
                canary.count,
                control.count,
                increase=True,
            ),
            _check(
                "win_rate",
                config,
                metrics.win_rate(canary),
                metrics.win_rate(control),
                judged_c,
                judged_k,
                increase=False,
            ),
            *slo_results(canary, control, config),
        ]
    )


def _check(
    gate: str,
    config: GateConfig,
    canary: float | None,
    control: float | None,
    canary_samples: int,
    control_samples: int,
    *,
    increase: bool,
) -> GateResult:
    tolerance = config.tolerance(gate)
    status, statistic = GateStatus.INSUFFICIENT, None
    enough = canary_samples >= config.min_samples and control_samples >= config.min_samples
    if enough and canary is not None and control is not None:
        if increase:
            failed = canary > control * (1.0 + tolerance)
            statistic = canary / control - 1.0 if control > 0 else None
        else:
            failed = canary < control * (1.0 - tolerance)
            statistic = 1.0 - canary / control if control > 0 else None
        status = GateStatus.FAIL if failed else GateStatus.PASS
    return GateResult(
        gate=gate,
        status=status,
        canary=canary,
        control=control,
        threshold=tolerance,
        statistic=statistic,
        bound=tolerance,
        method=NAIVE,
        alpha=None,
        canary_samples=canary_samples,
        control_samples=control_samples,
    )
