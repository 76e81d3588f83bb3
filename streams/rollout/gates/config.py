"""What the gates are asked to catch (:class:`GateConfig`) and the fixed design choices.

The design constants below are not configuration: they are what makes the gates valid
and fast, chosen with the simulation in :mod:`.simulation` and explained in README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The four regression gates, in the order they are reported (and a rollback is chosen).
ROLLBACK_GATES: tuple[str, ...] = ("error_rate", "latency_p95", "cost_per_task", "win_rate")
#: Promotion blockers: point checks of the canary against SLOs, never rollbacks.
SLO_GATES: tuple[str, ...] = ("slo_p95", "slo_win_rate")

#: Margin of practical significance as a fraction of each configured tolerance: the null
#: hypothesis of a gate is "the canary is at most ``MARGIN_FRACTION × tolerance`` worse"
#: (5% for the default 50% latency tolerance). A canary that is identical, better or
#: trivially worse rolls back with probability at most ``alpha``; a regression of the
#: configured size faces a gap of ``0.9 × tolerance``, so it is detected with only
#: ``1/0.9² ≈ 1.23×`` the samples a margin-free test would need.
MARGIN_FRACTION = 0.1

#: Quantile the latency gate is about.
TAIL_QUANTILE = 0.95

#: Sample counts (canary samples of the gate's metric) at which each normal-mixture
#: boundary is tuned to be tightest (Howard et al. 2021 §3.5). Data-independent, so they
#: do not affect validity; they place power where each regression is typically caught.
LATENCY_T_OPT = 150.0
COST_T_OPT = 1000.0
WIN_RATE_T_OPT = 500.0
#: Intrinsic time (0.05 × control samples) for the control's P95 upper bound.
CONTROL_TAIL_V_OPT = 100.0

#: Beta prior of the exact Bernoulli-mixture test on canary tail exceedances (mean 0.1).
EXCEEDANCE_PRIOR: tuple[float, float] = (5.0, 45.0)
#: Concentration ``k`` of the Beta(k·p0, k·(1-p0)) prior of the error-rate test, centred
#: on the null share of errors (Lindon & Malek 2022 use the same form, k = 100).
ERROR_PRIOR_CONCENTRATION = 100.0

#: How ``alpha`` is split. Bonferroni over the four rollback gates (valid whatever their
#: dependence); the latency gate spends half of its share on the log-latency shift test
#: and a quarter each on the control's P95 upper bound and the canary's tail test.
GATE_ALPHA_SHARE = 1.0 / len(ROLLBACK_GATES)
LATENCY_SHIFT_SHARE = 0.5
LATENCY_CONTROL_TAIL_SHARE = 0.25
LATENCY_CANARY_TAIL_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Regressions the rollback gates must catch, the error budget and the SLO blockers.

    Args:
        error_rate_increase: relative tolerance: canary error rate above
            ``control × (1 + error_rate_increase)`` is a regression.
        latency_p95_increase: relative tolerance on P95 latency.
        cost_per_task_increase: relative tolerance on mean cost per task.
        win_rate_decrease: relative tolerance: canary win rate below
            ``control × (1 - win_rate_decrease)`` is a regression.
        alpha: probability of any false rollback during one rollout stage, however often
            the gates are evaluated (split over the gates as documented above).
        min_samples: samples per arm (judged samples for the win rate) before a gate may
            pass or fail; below it the gate is ``insufficient``.
        slo_p95_ms: promotion is blocked while the canary's P95 exceeds this.
        slo_min_win_rate: promotion is blocked while the canary's win rate is below this.

    Example:
        >>> GateConfig(latency_p95_increase=0.3).margin("latency_p95")
        0.03
    """

    error_rate_increase: float = 0.10
    latency_p95_increase: float = 0.50
    cost_per_task_increase: float = 0.30
    win_rate_decrease: float = 0.10
    alpha: float = 0.01
    min_samples: int = 100
    slo_p95_ms: float = 2500.0
    slo_min_win_rate: float = 0.85

    def __post_init__(self) -> None:
        for name in ("error_rate_increase", "latency_p95_increase", "cost_per_task_increase"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not 0 < self.win_rate_decrease < 1:
            raise ValueError(f"win_rate_decrease must be within (0, 1), got {self.win_rate_decrease}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be within (0, 1), got {self.alpha}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {self.min_samples}")
        if not self.slo_p95_ms > 0:
            raise ValueError(f"slo_p95_ms must be positive, got {self.slo_p95_ms}")
        if not 0 <= self.slo_min_win_rate <= 1:
            raise ValueError(f"slo_min_win_rate must be within [0, 1], got {self.slo_min_win_rate}")

    def tolerance(self, gate: str) -> float:
        """The configured relative tolerance of a rollback gate."""
        return {
            "error_rate": self.error_rate_increase,
            "latency_p95": self.latency_p95_increase,
            "cost_per_task": self.cost_per_task_increase,
            "win_rate": self.win_rate_decrease,
        }[gate]

    def margin(self, gate: str) -> float:
        """The null hypothesis' margin of a rollback gate: ``MARGIN_FRACTION × tolerance``."""
        return round(MARGIN_FRACTION * self.tolerance(gate), 12)

    @property
    def gate_alpha(self) -> float:
        """Error budget of one rollback gate."""
        return self.alpha * GATE_ALPHA_SHARE
