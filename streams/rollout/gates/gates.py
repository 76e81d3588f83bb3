"""The sequential rollback gates: always valid however often they are evaluated.

Each rollback gate tests the null "the canary is at most ``margin`` worse than the
control" (``margin = MARGIN_FRACTION × configured tolerance``) with a one-sided
time-uniform test at its share of the stage's ``alpha``; it fails (rollback) when the
null is rejected, i.e. when the lower confidence bound of the degradation
(``statistic``) exceeds ``margin`` (``bound``). Below ``min_samples`` in either arm, or
when the canary lacks a figure the control has (latency 0, no cost, no judgements), it
is ``insufficient``: it never passes on missing data. With the stage's per-window
figures the tests count clustered events for what they are worth (:mod:`.dispersion`).
See README.md for the choices and the simulation behind them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates import dispersion, inference, metrics, noninferiority, validity
from bifrost.streams.rollout.gates.config import (
    CONTROL_TAIL_V_OPT,
    COST_DISPERSION,
    COST_GUARD_ALPHA,
    COST_MEAN_SHARE,
    COST_SCORE_SHARE,
    COST_SHAPE,
    COST_SHIFT_MIN_FRACTION,
    COST_SHIFT_SHAPE,
    COST_SHIFT_SHARE,
    ERROR_DISPERSION,
    ERROR_PRIOR_CONCENTRATION,
    EXCEEDANCE_PRIOR,
    FINAL_LOOK_SHARE,
    LATENCY_CANARY_TAIL_SHARE,
    LATENCY_CONFIDENT_DF,
    LATENCY_CONTROL_TAIL_SHARE,
    LATENCY_DISPERSION,
    LATENCY_DISPERSION_BOUND,
    LATENCY_MIN_DISPERSION_DF,
    LATENCY_SHAPE,
    LATENCY_SHIFT_SHARE,
    ROLLBACK_GATES,
    SLO_GATES,
    TAIL_QUANTILE,
    WIN_DISPERSION,
    WIN_RATE_SHAPE,
    DispersionPrior,
    GateConfig,
)
from bifrost.streams.rollout.gates.dispersion import ArmFigures, StageWindow, WindowSums
from bifrost.streams.rollout.gates.report import GateReport
from bifrost.streams.rollout.gates.score import shift_score
from bifrost.streams.rollout.gates.slo import slo_results

_DEFAULT = GateConfig()
PRIORS: dict[str, DispersionPrior] = {
    "error_rate": ERROR_DISPERSION,
    "latency_p95": LATENCY_DISPERSION,
    "cost_per_task": COST_DISPERSION,
    "win_rate": WIN_DISPERSION,
    "cost_shift": COST_DISPERSION,
}


def evaluate_gates(
    canary: WindowStats,
    control: WindowStats,
    config: GateConfig = _DEFAULT,
    *,
    windows: Sequence[StageWindow] | None = None,
    history: WindowSums | None = None,
    alpha_share: float = 1.0,
    totals: tuple[ArmFigures, ArmFigures] | None = None,
    fixed_looks: Collection[str] = (),
) -> GateReport:
    """Evaluate every gate on the cumulative statistics of both arms since the stage began.

    Args:
        canary: cumulative stats of the canary arm (new artifact) in this stage.
        control: cumulative stats of the control arm serving at the same time.
        config: tolerances, error budget, ``min_samples`` and SLOs.
        windows: the stage's per-window figures of both arms (the controller passes
            them), from which each gate estimates how clustered its events are. Without
            them (and without ``history``) requests are taken as independent (dispersion 1).
        history: the same figures' sums over the router's windows before the stage (the
            controller passes the hour before it), so that clustering is known from the
            stage's first look.
        alpha_share: the share of ``config.alpha`` (a whole rollout's budget) this stage
            spends (:func:`.config.stage_alpha_shares`); 1 spends it all here.
        totals: optionally, the arms' :class:`ArmFigures` summed over the stage (the same
            figures ``canary``/``control`` hold; saves reading the sketches' buckets again).
        fixed_looks: the gates that may make their one fixed-horizon look of the stage
            now (the controller passes them from the first look at which the stage is ripe
            by data until each has made it). The cost and win-rate gates then add a z-test
            at ``FINAL_LOOK_SHARE`` of their budget if they can test at all, and say so in
            ``GateResult.fixed_look``. Letting a gate make it at more than one look of a
            stage voids the guarantee below.

    Returns:
        A :class:`GateReport`: results for ``error_rate``, ``latency_p95``,
        ``cost_per_task``, ``win_rate`` (pass / fail / insufficient) and ``slo_p95``,
        ``slo_win_rate`` (pass / blocked / insufficient). ``report.rollback`` is the
        first failure.

    The false-rollback probability of the stage is at most ``alpha × alpha_share``
    however many times this is called as data accumulate (asymptotically: variances and
    dispersion are plug-in estimates; exactly for the error and tail tests when events are
    independent).

    Example:
        >>> from bifrost.streams.aggregates.stats import WindowStats
        >>> evaluate_gates(WindowStats(), WindowStats()).results[0].status.value
        'insufficient'
    """
    _check_argument_types(canary, control, windows, history, totals, alpha_share)
    if not 0 < alpha_share <= 1:
        raise ValueError(f"alpha_share must be within (0, 1], got {alpha_share}")

    invalid = validity.problem(canary, control, windows or (), history, totals)
    if invalid:
        return _invalid(invalid, config, alpha_share)
    try:
        return _evaluate(canary, control, config, windows, history, alpha_share, totals, frozenset(fixed_looks))
    except (ArithmeticError, MemoryError, TypeError, ValueError) as exc:
        # Data no validity rule foresaw: a gate that cannot compute is insufficient, and the
        # controller goes on (its stage timeout still applies) instead of failing the look.
        return _invalid(f"data the gates cannot compute with: {type(exc).__name__}: {exc}", config, alpha_share)


def _check_argument_types(
    canary: object, control: object, windows: object, history: object, totals: object, alpha_share: object
) -> None:
    """A programming error (not data) is a ``TypeError`` naming the argument, before any reading."""
    for name, value in (("canary", canary), ("control", control)):
        if not isinstance(value, WindowStats):
            raise TypeError(f"{name} must be a WindowStats, not {type(value).__name__}")
    if windows is not None and not (isinstance(windows, Sequence) and all(isinstance(w, StageWindow) for w in windows)):
        raise TypeError("windows must be a sequence of StageWindow (or None)")
    if history is not None and not isinstance(history, WindowSums):
        raise TypeError(f"history must be a WindowSums (or None), not {type(history).__name__}")
    if totals is not None and not (
        isinstance(totals, tuple) and len(totals) == 2 and all(isinstance(t, ArmFigures) for t in totals)
    ):
        raise TypeError("totals must be a pair of ArmFigures (canary, control) or None")
    if isinstance(alpha_share, bool) or not isinstance(alpha_share, (int, float)):
        raise TypeError(f"alpha_share must be a number, not {type(alpha_share).__name__}")


def _evaluate(
    canary: WindowStats,
    control: WindowStats,
    config: GateConfig,
    windows: Sequence[StageWindow] | None,
    history: WindowSums | None,
    alpha_share: float,
    totals: tuple[ArmFigures, ArmFigures] | None,
    fixed_looks: frozenset[str] = frozenset(),
) -> GateReport:

    sums: WindowSums | None = None
    if windows is not None or history is not None:
        sums = WindowSums.of(windows or ())
        if history is not None:
            sums = sums + history

    def phi(gate: str) -> float:
        return 1.0 if sums is None else dispersion.estimate(sums, gate, PRIORS[gate])

    phi_latency, phi_win = phi("latency_p95"), phi("win_rate")
    latency_df = None if sums is None else dispersion.degrees_of_freedom(sums, "latency_p95")
    if sums is not None and latency_df is not None and LATENCY_MIN_DISPERSION_DF <= latency_df < LATENCY_CONFIDENT_DF:
        # Few windows (no history): test with an upper confidence bound of the dispersion.
        phi_latency = max(phi_latency, dispersion.upper_bound(sums, "latency_p95", LATENCY_DISPERSION_BOUND))
    p95 = (
        metrics.measured_quantile(canary.latency_ms, TAIL_QUANTILE),
        metrics.measured_quantile(control.latency_ms, TAIL_QUANTILE),
    )
    return GateReport(
        results=[
            _error_rate(canary, control, config, alpha_share, phi("error_rate")),
            _latency(canary, control, config, alpha_share, phi_latency, p95, totals, latency_df),
            _cost(canary, control, config, alpha_share, phi("cost_per_task"), phi("cost_shift")),
            _win_rate(canary, control, config, alpha_share, phi_win, "win_rate" in fixed_looks),
            *slo_results(canary, control, config, latency_dispersion=phi_latency, win_dispersion=phi_win, p95=p95),
        ]
    )


def _invalid(reason: str, config: GateConfig, share: float) -> GateReport:
    """Every gate ``insufficient`` with ``reason``: invalid data never pass, fail or raise."""
    return GateReport(
        results=[
            GateResult(
                gate=gate,
                status=GateStatus.INSUFFICIENT,
                threshold=config.tolerance(gate) if gate in ROLLBACK_GATES else None,
                alpha=config.gate_alpha(gate, share) if gate in ROLLBACK_GATES else None,
                method="not evaluated: invalid data",
                note=reason,
            )
            for gate in (*ROLLBACK_GATES, *SLO_GATES)
        ]
    )


def _result(
    gate: str,
    config: GateConfig,
    alpha: float,
    canary_value: float | None,
    control_value: float | None,
    canary_samples: int,
    control_samples: int,
    outcome: inference.Outcome | None,
    method: str,
    phi: float,
    missing: str | None = None,
    upper: tuple[float | None, float | None] = (None, None),
    fixed_look: bool = False,
) -> GateResult:
    """A gate's result: fail on rejection; insufficient without a test or with missing data.

    ``upper``: the upper confidence bound of the degradation and the limit promotion
    needs it below (:mod:`.noninferiority`), reported when the gate was tested.
    """
    note = ""
    degradation = z = None
    if outcome is None:
        status, statistic, bound, evidence = GateStatus.INSUFFICIENT, None, config.margin(gate), None
        note = missing or (
            f"too few samples: canary {canary_samples:,}, control {control_samples:,} "
            f"(need {config.min_samples:,} each)"
        )
    else:
        statistic, bound, method, evidence = outcome.statistic, outcome.bound, outcome.method, outcome.evidence
        degradation, z = outcome.degradation, outcome.z
        if outcome.reject:
            status = GateStatus.FAIL
        elif missing:
            status, note = GateStatus.INSUFFICIENT, missing
        else:
            status = GateStatus.PASS
    return GateResult(
        gate=gate,
        status=status,
        canary=canary_value,
        control=control_value,
        threshold=config.tolerance(gate),
        statistic=statistic,
        bound=bound,
        method=method,
        alpha=alpha,
        canary_samples=canary_samples,
        control_samples=control_samples,
        evidence=evidence,
        dispersion=round(phi, 4),
        note=note,
        degradation=degradation,
        z=z,
        upper=_finite_or_none(upper[0]) if outcome is not None else None,
        upper_limit=upper[1] if outcome is not None else None,
        fixed_look=fixed_look,
    )


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _enough(config: GateConfig, canary_samples: int, control_samples: int) -> bool:
    return canary_samples >= config.min_samples and control_samples >= config.min_samples


def _error_rate(canary: WindowStats, control: WindowStats, config: GateConfig, share: float, phi: float) -> GateResult:
    gate = "error_rate"
    alpha = config.gate_alpha(gate, share)
    outcome = None
    if _enough(config, canary.count, control.count):
        outcome = inference.rate_ratio_test(
            canary.errors,
            canary.count,
            control.errors,
            control.count,
            config.margin(gate),
            alpha,
            ERROR_PRIOR_CONCENTRATION,
            dispersion=phi,
        )
    return _result(
        gate,
        config,
        alpha,
        metrics.error_rate(canary),
        metrics.error_rate(control),
        canary.count,
        control.count,
        outcome,
        "conditional rate ratio: " + inference.BERNOULLI_MIXTURE,
        phi,
        upper=_error_upper(canary, control, config, phi) if outcome is not None else (None, None),
    )


def _error_upper(
    canary: WindowStats, control: WindowStats, config: GateConfig, phi: float
) -> tuple[float | None, float | None]:
    """The error-rate ratio's upper bound and its limit; no limit once the canary's own
    error rate is shown below ``error_rate_floor`` (nothing to compare when errors are that rare)."""
    level = config.promotion_gate_alpha()
    if noninferiority.error_rate_upper(canary.errors, canary.count, level, phi) < config.error_rate_floor:
        return None, None
    ratio = noninferiority.rate_ratio_upper(
        canary.errors, canary.count, control.errors, control.count, level, ERROR_PRIOR_CONCENTRATION, phi
    )
    return ratio, config.promotion_limit("error_rate")


def _log_latency(stats: WindowStats, figures: ArmFigures | None) -> metrics.MeanEstimate | None:
    if figures is None:
        return metrics.log_latency_estimate(stats.latency_ms)
    return metrics.log_latency_from_moments(
        figures.latency_n, figures.latency_k, figures.latency_k2, stats.latency_ms.relative_accuracy
    )


def _latency(
    canary: WindowStats,
    control: WindowStats,
    config: GateConfig,
    share: float,
    phi: float,
    p95: tuple[float | None, float | None],
    totals: tuple[ArmFigures, ArmFigures] | None,
    dispersion_df: int | None = None,
) -> GateResult:
    """Fails if either the log-latency shift test or the P95 tail test rejects.

    The shift test uses every sample, so it catches the common regression — everything
    slower (a slower model or provider) — within a hundred or two canary samples; the
    tail test is literally "canary P95 > (1+margin) × control P95" and catches
    regressions confined to the tail (timeouts, retries) that barely move the mean.
    Latencies of 0 are missing measurements: left out of both tests, and a canary with
    more of them than the control is insufficient. With per-window figures
    (``dispersion_df`` not ``None``) it is insufficient until the windows give
    ``LATENCY_MIN_DISPERSION_DF`` degrees of freedom to measure how clustered latencies
    are: taken as independent, clustered latencies roll identical canaries back.
    """
    gate = "latency_p95"
    alpha = config.gate_alpha(gate, share)
    c_sketch, k_sketch = canary.latency_ms, control.latency_ms
    c_measured, k_measured = metrics.measured_latency(c_sketch), metrics.measured_latency(k_sketch)
    missing = metrics.missing_latency(canary, control, config.min_samples, phi)
    outcome = None
    upper: tuple[float | None, float | None] = (None, config.promotion_limit(gate))
    unmeasured = dispersion_df is not None and dispersion_df < LATENCY_MIN_DISPERSION_DF
    if unmeasured and _enough(config, c_measured, k_measured):
        missing = (
            f"insufficient: {dispersion_df} of {LATENCY_MIN_DISPERSION_DF} degrees of freedom (windows with "
            f"latencies, both arms, this stage and the hour before) to measure how clustered latencies are"
        )
    elif _enough(config, c_measured, k_measured):
        margin = config.margin(gate)
        c_log = _log_latency(canary, totals[0] if totals else None)
        k_log = _log_latency(control, totals[1] if totals else None)
        shift = None
        if c_log is not None and k_log is not None and c_log.n > 1 and k_log.n > 1:
            shift = inference.log_shift_test(c_log, k_log, margin, alpha * LATENCY_SHIFT_SHARE, LATENCY_SHAPE, phi)
            # Shown only for a uniform slow-down (the shift); the tail test has no upper side.
            upper = (
                noninferiority.log_shift_upper(c_log, k_log, config.promotion_gate_alpha(), LATENCY_SHAPE, phi),
                config.promotion_limit(gate),
            )
        tail = inference.tail_exceedance_test(
            c_sketch,
            k_sketch,
            margin,
            TAIL_QUANTILE,
            alpha * LATENCY_CONTROL_TAIL_SHARE,
            alpha * LATENCY_CANARY_TAIL_SHARE,
            CONTROL_TAIL_V_OPT,
            EXCEEDANCE_PRIOR,
            dispersion=phi,
        )
        if tail.reject and not (shift is not None and shift.reject):
            outcome = tail
        elif shift is not None:
            outcome = shift
        else:
            outcome = tail
        if shift is not None and not outcome.reject:
            outcome = shift  # its estimate and z say whether a uniform slow-down is building up
    elif missing is None and c_sketch.count >= config.min_samples and k_measured >= config.min_samples:
        missing = "missing: too few canary requests with a latency"
    return _result(
        gate,
        config,
        alpha,
        p95[0],
        p95[1],
        c_measured,
        k_measured,
        outcome,
        "log-latency shift: " + inference.LR_MIXTURE,
        phi,
        missing,
        upper,
    )


def _split(gate: str, alpha: float, final_look: bool) -> tuple[float, float | None]:
    """(always-valid α, fixed-look α or None) of a gate whose budget is ``alpha``."""
    final_share = FINAL_LOOK_SHARE.get(gate, 0.0)
    return alpha * (1.0 - final_share), (alpha * final_share if final_look and final_share > 0 else None)


def _cost(
    canary: WindowStats,
    control: WindowStats,
    config: GateConfig,
    share: float,
    phi: float,
    phi_shift: float = 1.0,
) -> GateResult:
    """Fails if the mean-cost test, the log-cost shift test or the shift's score test rejects.

    The mean test is literally "canary cost per task > (1+margin) × control's"; the shift
    test (the latency gate's, on log cost over requests with a positive cost) catches the
    common regression — every request dearer by a factor — with far fewer samples, because
    log cost varies less than cost and does not grow with the regression; the score test
    (:mod:`.score`, on the arms' cost sketches) catches it with fewer still. The two shift
    tests roll back only when the mean cost per task is up by ``COST_SHIFT_MIN_FRACTION``
    of the tolerance in the data and shown up by the always-valid mean test at
    ``COST_GUARD_ALPHA`` (config.py).
    """
    gate = "cost_per_task"
    alpha = config.gate_alpha(gate, share)
    c_est, k_est = metrics.cost_estimate(canary), metrics.cost_estimate(control)
    missing = None
    if canary.count >= config.min_samples and canary.cost_usd <= 0 and control.cost_usd > 0:
        missing = (
            f"missing: the canary reports no cost for its {canary.count:,} requests while the control "
            f"reports {control.cost_usd / max(control.count, 1):.4g} per task"
        )
    control_missing = control.cost_usd <= 0 and canary.cost_usd > 0
    if control_missing and control.count >= config.min_samples:
        # Like latency 0: a control without cost is a missing measurement, not a free model.
        missing = f"missing: the control reports no cost for its {control.count:,} requests"
    outcome = None
    upper: tuple[float | None, float | None] = (None, None)
    if not control_missing and c_est is not None and k_est is not None and _enough(config, c_est.n, k_est.n):
        margin = config.margin(gate)
        outcome = inference.mean_increase_test(c_est, k_est, margin, alpha * COST_MEAN_SHARE, COST_SHAPE, phi)
        shift = _cost_shift(canary, control, config, margin, alpha * COST_SHIFT_SHARE, phi_shift)
        score = _cost_score(canary, control, config, margin, alpha * COST_SCORE_SHARE, phi_shift)
        if (
            not outcome.reject
            and (outcome.degradation or 0.0) >= COST_SHIFT_MIN_FRACTION * config.tolerance(gate)
            and _typical_cost_shown_up(canary, control, phi_shift)
        ):
            outcome = next((o for o in (shift, score) if o is not None and o.reject), outcome)
        upper = (
            noninferiority.mean_increase_upper(c_est, k_est, config.promotion_gate_alpha(), COST_SHAPE, phi),
            config.promotion_limit(gate),
        )
    return _result(
        gate,
        config,
        alpha,
        c_est.mean if c_est else None,
        k_est.mean if k_est else None,
        canary.count,
        control.count,
        outcome,
        inference.LR_MIXTURE,
        phi,
        missing,
        upper,
    )


def _cost_shift(
    canary: WindowStats,
    control: WindowStats,
    config: GateConfig,
    margin: float,
    alpha: float,
    phi: float,
) -> inference.Outcome | None:
    c_log, k_log = metrics.log_cost_estimate(canary), metrics.log_cost_estimate(control)
    if c_log is None or k_log is None or not _enough(config, c_log.n, k_log.n):
        return None
    return inference.log_shift_test(c_log, k_log, margin, alpha, COST_SHIFT_SHAPE, phi, quantity="cost")


def _typical_cost_shown_up(canary: WindowStats, control: WindowStats, phi: float) -> bool:
    """The geometric mean of cost shown up at all (always-valid, ``COST_GUARD_ALPHA``, margin 0)."""
    c_log, k_log = metrics.log_cost_estimate(canary), metrics.log_cost_estimate(control)
    if c_log is None or k_log is None:
        return False
    return inference.log_shift_test(c_log, k_log, 0.0, COST_GUARD_ALPHA, COST_SHIFT_SHAPE, phi).reject


def _cost_score(
    canary: WindowStats,
    control: WindowStats,
    config: GateConfig,
    margin: float,
    alpha: float,
    phi: float,
) -> inference.Outcome | None:
    """The score test of the log-cost shift, when both arms' cost sketches hold every paid request."""
    c_sketch, k_sketch = canary.cost_sketch, control.cost_sketch
    if (
        c_sketch is None
        or k_sketch is None
        or (c_sketch.count, k_sketch.count) != (canary.cost_paid, control.cost_paid)
    ):
        return None  # windows from workers that did not keep the sketch: the other two tests decide
    if not _enough(config, c_sketch.count - c_sketch.zero_count, k_sketch.count - k_sketch.zero_count):
        return None
    score = shift_score(c_sketch, k_sketch, margin)
    if score is None:
        return None
    # Clustered requests share their cost, so the log-cost dispersion φ inflates this
    # statistic's variance as it does the log mean's.
    return inference.shift_score_test(score, alpha, COST_SHIFT_SHAPE, phi)


def _win_rate(
    canary: WindowStats, control: WindowStats, config: GateConfig, share: float, phi: float, final_look: bool = False
) -> GateResult:
    gate = "win_rate"
    alpha = config.gate_alpha(gate, share)
    judged_c, judged_k = metrics.judged(canary), metrics.judged(control)
    if judged_c == 0 and judged_k == 0:
        # A deployment without a judge (no win/loss feedback for either arm) cannot
        # measure this gate; it must not block promotion forever. It blocks as soon as
        # judged samples exist for one arm and are still too few (or missing) for the other.
        return GateResult(
            gate=gate,
            status=GateStatus.PASS,
            threshold=config.tolerance(gate),
            method="not measured: no judged samples in either arm (no win/loss feedback)",
            alpha=alpha,
        )
    missing = None
    if canary.count >= config.min_samples:
        missing = metrics.missing_share(judged_c, canary.count, judged_k, control.count, "judgement", dispersion=phi)
    c_est, k_est = metrics.win_estimate(canary), metrics.win_estimate(control)
    outcome = None
    looked = False
    upper: tuple[float | None, float | None] = (None, None)
    if c_est is not None and k_est is not None and _enough(config, c_est.n, k_est.n):
        sequential, final = _split(gate, alpha, final_look)
        looked = final is not None
        outcome = inference.mean_decrease_test(
            c_est, k_est, config.margin(gate), sequential, WIN_RATE_SHAPE, phi, final_alpha=final
        )
        upper = (
            noninferiority.mean_decrease_upper(c_est, k_est, config.promotion_gate_alpha(), WIN_RATE_SHAPE, phi),
            config.promotion_limit(gate),
        )
    return _result(
        gate,
        config,
        alpha,
        c_est.mean if c_est else None,
        k_est.mean if k_est else None,
        judged_c,
        judged_k,
        outcome,
        inference.LR_MIXTURE,
        phi,
        missing,
        upper,
        looked,
    )
