"""The sequential rollback gates: always valid under evaluation after every window.

Each rollback gate tests the null "the canary is at most ``margin`` worse than the
control" (``margin = MARGIN_FRACTION × configured tolerance``) with a one-sided
time-uniform test at its share of ``alpha``; it fails (rollback) when the null is
rejected, i.e. when the lower confidence bound of the degradation (``statistic``)
exceeds ``margin`` (``bound``). Below ``min_samples`` in either arm it is
``insufficient``. See README.md for the choices and the simulation behind them.
"""

from __future__ import annotations

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates import inference, metrics
from bifrost.streams.rollout.gates.config import (
    COST_T_OPT,
    CONTROL_TAIL_V_OPT,
    ERROR_PRIOR_CONCENTRATION,
    EXCEEDANCE_PRIOR,
    LATENCY_CANARY_TAIL_SHARE,
    LATENCY_CONTROL_TAIL_SHARE,
    LATENCY_SHIFT_SHARE,
    LATENCY_T_OPT,
    TAIL_QUANTILE,
    WIN_RATE_T_OPT,
    GateConfig,
)
from bifrost.streams.rollout.gates.report import GateReport
from bifrost.streams.rollout.gates.slo import slo_results

_DEFAULT = GateConfig()


def evaluate_gates(canary: WindowStats, control: WindowStats, config: GateConfig = _DEFAULT) -> GateReport:
    """Evaluate every gate on the cumulative statistics of both arms since the stage began.

    Args:
        canary: cumulative stats of the canary arm (new artifact) in this stage.
        control: cumulative stats of the control arm serving at the same time.
        config: tolerances, error budget, ``min_samples`` and SLOs.

    Returns:
        A :class:`GateReport`: results for ``error_rate``, ``latency_p95``,
        ``cost_per_task``, ``win_rate`` (pass / fail / insufficient) and ``slo_p95``,
        ``slo_win_rate`` (pass / blocked). ``report.rollback`` is the first failure.

    The false-rollback probability of a stage is at most ``config.alpha`` however many
    times this is called as data accumulate (asymptotically for the normal-mixture
    gates, exactly for the error-rate test and the latency tail test).

    Example:
        >>> from bifrost.streams.aggregates.stats import WindowStats
        >>> evaluate_gates(WindowStats(), WindowStats()).results[0].status.value
        'insufficient'
    """
    return GateReport(
        results=[
            _error_rate(canary, control, config),
            _latency(canary, control, config),
            _cost(canary, control, config),
            _win_rate(canary, control, config),
            *slo_results(canary, control, config),
        ]
    )


def _result(
    gate: str,
    config: GateConfig,
    canary_value: float | None,
    control_value: float | None,
    canary_samples: int,
    control_samples: int,
    outcome: inference.Outcome | None,
    method: str,
) -> GateResult:
    if outcome is None:
        status, statistic, bound = GateStatus.INSUFFICIENT, None, config.margin(gate)
    else:
        status = GateStatus.FAIL if outcome.reject else GateStatus.PASS
        statistic, bound, method = outcome.statistic, outcome.bound, outcome.method
    return GateResult(
        gate=gate,
        status=status,
        canary=canary_value,
        control=control_value,
        threshold=config.tolerance(gate),
        statistic=statistic,
        bound=bound,
        method=method,
        alpha=config.gate_alpha,
        canary_samples=canary_samples,
        control_samples=control_samples,
    )


def _enough(config: GateConfig, canary_samples: int, control_samples: int) -> bool:
    return canary_samples >= config.min_samples and control_samples >= config.min_samples


def _error_rate(canary: WindowStats, control: WindowStats, config: GateConfig) -> GateResult:
    outcome = None
    if _enough(config, canary.count, control.count):
        outcome = inference.rate_ratio_test(
            canary.errors, canary.count, control.errors, control.count,
            config.margin("error_rate"), config.gate_alpha, ERROR_PRIOR_CONCENTRATION,
        )
    return _result(
        "error_rate", config, metrics.error_rate(canary), metrics.error_rate(control),
        canary.count, control.count, outcome, "conditional rate ratio: " + inference.BERNOULLI_MIXTURE,
    )


def _latency(canary: WindowStats, control: WindowStats, config: GateConfig) -> GateResult:
    """Fails if either the log-latency shift test or the P95 tail test rejects.

    The shift test uses every sample, so it catches the common regression — everything
    slower (a slower model or provider) — within a hundred or two canary samples; the
    tail test is literally "canary P95 > (1+margin) × control P95" and catches
    regressions confined to the tail (timeouts, retries) that barely move the mean.
    """
    gate = "latency_p95"
    c_sketch, k_sketch = canary.latency_ms, control.latency_ms
    outcome = None
    if _enough(config, c_sketch.count, k_sketch.count):
        margin = config.margin(gate)
        alpha = config.gate_alpha
        c_log, k_log = metrics.log_latency_estimate(c_sketch), metrics.log_latency_estimate(k_sketch)
        shift = None
        if c_log is not None and k_log is not None and c_log.n > 1 and k_log.n > 1:
            shift = inference.log_shift_test(c_log, k_log, margin, alpha * LATENCY_SHIFT_SHARE, LATENCY_T_OPT)
        tail = inference.tail_exceedance_test(
            c_sketch, k_sketch, margin, TAIL_QUANTILE,
            alpha * LATENCY_CONTROL_TAIL_SHARE, alpha * LATENCY_CANARY_TAIL_SHARE,
            CONTROL_TAIL_V_OPT, EXCEEDANCE_PRIOR,
        )
        if tail.reject and not (shift is not None and shift.reject):
            outcome = tail
        elif shift is not None:
            outcome = shift
        else:
            outcome = tail
    return _result(
        gate, config, c_sketch.quantile(TAIL_QUANTILE), k_sketch.quantile(TAIL_QUANTILE),
        c_sketch.count, k_sketch.count, outcome, "log-latency shift: " + inference.NORMAL_MIXTURE,
    )


def _cost(canary: WindowStats, control: WindowStats, config: GateConfig) -> GateResult:
    gate = "cost_per_task"
    c_est, k_est = metrics.cost_estimate(canary), metrics.cost_estimate(control)
    outcome = None
    if c_est is not None and k_est is not None and _enough(config, c_est.n, k_est.n):
        outcome = inference.mean_increase_test(c_est, k_est, config.margin(gate), config.gate_alpha, COST_T_OPT)
    return _result(
        gate, config, c_est.mean if c_est else None, k_est.mean if k_est else None,
        canary.count, control.count, outcome, inference.NORMAL_MIXTURE,
    )


def _win_rate(canary: WindowStats, control: WindowStats, config: GateConfig) -> GateResult:
    gate = "win_rate"
    if metrics.judged(canary) == 0 and metrics.judged(control) == 0:
        # A deployment without a judge (no win/loss feedback for either arm) cannot
        # measure this gate; it must not block promotion forever. It blocks as soon as
        # judged samples exist for one arm and are still too few for the other.
        return GateResult(
            gate=gate, status=GateStatus.PASS, threshold=config.tolerance(gate),
            method="not measured: no judged samples in either arm (no win/loss feedback)",
            alpha=config.gate_alpha,
        )
    c_est, k_est = metrics.win_estimate(canary), metrics.win_estimate(control)
    outcome = None
    if c_est is not None and k_est is not None and _enough(config, c_est.n, k_est.n):
        outcome = inference.mean_decrease_test(c_est, k_est, config.margin(gate), config.gate_alpha, WIN_RATE_T_OPT)
    return _result(
        gate, config, c_est.mean if c_est else None, k_est.mean if k_est else None,
        metrics.judged(canary), metrics.judged(control), outcome, inference.NORMAL_MIXTURE,
    )
