"""Upper confidence bounds of the degradation (what promotion must show) and the blocker they make."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.rollout.gates import noninferiority
from bifrost.streams.rollout.gates.config import COST_SHAPE, LATENCY_SHAPE
from bifrost.streams.rollout.gates.metrics import MeanEstimate
from bifrost.streams.rollout.gates.report import GateReport, shown


def _estimate(values: list[float]) -> MeanEstimate:
    n = len(values)
    mean = sum(values) / n
    return MeanEstimate(n=n, mean=mean, variance=sum((v - mean) ** 2 for v in values) / (n - 1))


class _Running:
    """Running count, sum and sum of squares (looks at growing samples without re-reading them)."""

    def __init__(self) -> None:
        self.n, self.total, self.squares = 0, 0.0, 0.0

    def add(self, values: Iterable[float]) -> None:
        for v in values:
            self.n, self.total, self.squares = self.n + 1, self.total + v, self.squares + v * v

    def estimate(self) -> MeanEstimate:
        mean = self.total / self.n
        return MeanEstimate(n=self.n, mean=mean, variance=(self.squares - self.n * mean * mean) / (self.n - 1))


def test_the_cost_bound_is_time_uniform_at_the_tolerance() -> None:
    # A canary exactly +30% dearer, looked at every 50 canary samples up to 3,000: the upper
    # bound must stay at or above +30% on every look in all but ~alpha of the paths.
    rng, alpha, paths, crossed = random.Random(11), 0.05, 200, 0
    for _ in range(paths):
        canary, control = _Running(), _Running()
        for _ in range(60):
            canary.add(rng.expovariate(1.0 / 1.3) for _ in range(50))
            control.add(rng.expovariate(1.0) for _ in range(950))
            upper = noninferiority.mean_increase_upper(canary.estimate(), control.estimate(), alpha, COST_SHAPE)
            if upper is not None and upper < 0.3:
                crossed += 1
                break
    assert crossed <= paths * alpha


def test_an_identical_canary_is_shown_within_tolerance_with_enough_data() -> None:
    rng = random.Random(3)
    canary = _estimate([rng.expovariate(1.0) for _ in range(3000)])
    control = _estimate([rng.expovariate(1.0) for _ in range(57_000)])
    upper = noninferiority.mean_increase_upper(canary, control, 0.0125, COST_SHAPE)
    assert upper is not None and 0 < upper < 0.3
    few = noninferiority.mean_increase_upper(
        _estimate(canary_values := [rng.expovariate(1.0) for _ in range(20)]), control, 0.0125, COST_SHAPE
    )
    assert few is None or few > upper, canary_values[:3]


def test_the_win_and_latency_bounds_grow_with_a_real_degradation() -> None:
    same = MeanEstimate(n=2000, mean=0.9, variance=0.09)
    worse = MeanEstimate(n=2000, mean=0.72, variance=0.2)
    assert noninferiority.mean_decrease_upper(same, same, 0.0125, COST_SHAPE) < 0.1
    assert noninferiority.mean_decrease_upper(worse, same, 0.0125, COST_SHAPE) > 0.2
    slow = MeanEstimate(n=300, mean=math.log(1.5), variance=1.0)
    base = MeanEstimate(n=6000, mean=0.0, variance=1.0)
    assert noninferiority.log_shift_upper(slow, base, 0.0125, LATENCY_SHAPE) > 0.5


def test_the_error_ratio_bound_needs_errors_and_respects_dispersion() -> None:
    assert noninferiority.rate_ratio_upper(0, 1500, 0, 28_500, 0.0125, 100.0) is None
    independent = noninferiority.rate_ratio_upper(30, 1500, 570, 28_500, 0.0125, 100.0)
    clustered = noninferiority.rate_ratio_upper(30, 1500, 570, 28_500, 0.0125, 100.0, dispersion=39.0)
    assert independent is not None and 0 < independent < 1.0
    assert clustered is None or clustered > 2.0
    # The canary's own error rate: no errors in 3,000 requests is shown below 0.5%.
    assert noninferiority.error_rate_upper(0, 3000, 0.0125) < 0.005
    assert noninferiority.error_rate_upper(30, 1500, 0.0125) > 0.02


def test_a_passing_gate_not_shown_within_its_limit_blocks_promotion_with_its_figures() -> None:
    held = GateResult(
        gate="cost_per_task", status=GateStatus.PASS, threshold=0.3, upper=0.42, upper_limit=0.3, degradation=0.12
    )
    free = GateResult(gate="latency_p95", status=GateStatus.PASS, threshold=0.5, upper=0.1, upper_limit=0.5)
    unbounded = GateResult(gate="error_rate", status=GateStatus.PASS, threshold=0.1, upper=None, upper_limit=1.0)
    no_claim = GateResult(gate="win_rate", status=GateStatus.PASS, threshold=0.1)
    assert [shown(r) for r in (held, free, unbounded, no_claim)] == [False, True, False, True]
    lines = GateReport(results=[held, free, unbounded, no_claim]).blockers()
    assert lines == [
        "cost_per_task not shown within tolerance: upper bound +42.0% of the degradation, needs below +30% "
        "(time-uniform bound; canary +12.0% vs control so far)",
        "error_rate not shown within tolerance: no finite upper bound yet of the degradation, needs below +100% "
        "(time-uniform bound)",
    ]
    assert GateReport(results=[free, no_claim]).blockers() == []
