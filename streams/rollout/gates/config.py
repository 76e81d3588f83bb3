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
#: (1% for the default 50% latency tolerance). A canary that is identical, better or
#: trivially worse rolls back with probability at most ``alpha``; a regression of the
#: configured size faces a gap of ``0.98 × tolerance``. A larger margin spares small
#: regressions but costs detection speed: at lognormal σ 1.0 the +50% latency regression
#: is caught within 200 canary samples in ~97% of stages with 2%, ~95.5% with 5%, ~90%
#: with 10% (see README.md).
MARGIN_FRACTION = 0.02

#: Quantile the latency gate is about.
TAIL_QUANTILE = 0.95

#: Shape of each gate's e-process (:func:`.boundary.lr_mixture_log_e`): ``(t_point, w,
#: t_mix)`` puts weight ``w`` on the point alternative that would just reach the threshold
#: at ``t_point`` effective canary samples (where the gate's target regression is typically
#: caught) and ``1 − w`` on a normal mixture tuned at ``t_mix`` (power for smaller
#: regressions that take longer). Data-independent, so validity is unaffected.
LATENCY_SHAPE: tuple[float, float, float] = (150.0, 0.8, 1500.0)
COST_SHAPE: tuple[float, float, float] = (1500.0, 0.8, 10000.0)
COST_SHIFT_SHAPE: tuple[float, float, float] = (1500.0, 0.8, 10000.0)
WIN_RATE_SHAPE: tuple[float, float, float] = (450.0, 0.8, 4500.0)
#: Intrinsic time (0.05 × control samples) for the control's P95 upper bound.
CONTROL_TAIL_V_OPT = 100.0

#: Beta prior of the exact Bernoulli-mixture test on canary tail exceedances (mean 0.1).
EXCEEDANCE_PRIOR: tuple[float, float] = (5.0, 45.0)
#: Concentration ``k`` of the Beta(k·p0, k·(1-p0)) prior of the error-rate test, centred
#: on the null share of errors (Lindon & Malek 2022 use the same form, k = 100).
ERROR_PRIOR_CONCENTRATION = 100.0

#: How one stage's ``alpha`` is split over the rollback gates (Bonferroni: valid whatever
#: their dependence). Latency gets the largest share because it must decide within a
#: couple of hundred canary samples; inside it, the log-latency shift test gets most, the
#: control's P95 upper bound and the canary's tail test the rest. Cost and win rate must
#: decide within the first 15 minutes on ~1,500 canary requests (~450 judged), so they get a
#: quarter each; errors ×3 is caught with room to spare (median ~500 canary requests) at a
#: tenth. (Was 60% / 13.3% each: cost +30% and win −10% were caught within 15 minutes in
#: 90.8% / 90.4% of rollouts, 95.8% / 94.8% with this split, 98.8% / 99.6% with a fixed look
#: for both; cost now has the score test of :mod:`.score` instead; README.md.)
GATE_ALPHA_SHARES: dict[str, float] = {
    "error_rate": 0.1,
    "latency_p95": 0.4,
    "cost_per_task": 0.25,
    "win_rate": 0.25,
}
LATENCY_SHIFT_SHARE = 0.9
#: The win rate must decide within the stage's first 15 minutes on ~450 judged canary
#: requests, near the information limit, where looking after every batch costs an
#: always-valid test ~0.7 standard errors against one look at a fixed time. So this gate
#: spends this share of its budget on a single fixed-horizon z-test per stage, at
#: the first look ripe by data (``RolloutPolicy.ripe``) at which the gate can test: a moment
#: set by traffic and counts, never by the values tested; and the
#: rest on the always-valid test at every look, which still rolls a gross regression back
#: within seconds (Bonferroni: level ≤ the gate's α at any number of looks). The cost gate
#: had one too (on the log-cost shift test) until its score test made it unnecessary: that
#: catches +30% a few minutes into the stage, and the fixed look had cost the gate the
#: budget that decides later when costs come in clusters.
FINAL_LOOK_SHARE: dict[str, float] = {"win_rate": 0.75}
#: Inside the cost gate, its budget is split over three always-valid tests. Per-request
#: cost is a mixture of model prices (coefficient of variation ~2) and a regression
#: multiplies the canary's variance too, so the mean test alone caught +30% within a
#: 15-minute first stage in ~65% of rollouts; the shift of log cost (log-sd ~1.8, unchanged
#: by the regression) in ~95% (README.md). The efficient score of the shift (:mod:`.score`)
#: measures it against the width of one price tier's mode rather than the spread between
#: tiers: ~2× the log test's z at the same sample size on the simulator's costs, so it rolls
#: +30% back minutes into the stage. The mean test stays for regressions that move the mean
#: and not the typical request (a few more calls to a premium model), the log-mean test for
#: a dearer mix of tiers, which the score does not see.
COST_MEAN_SHARE = 0.25
COST_SHIFT_SHARE = 0.35
COST_SCORE_SHARE = 0.40
#: The shift tests are about the typical request, not the mean cost per task the gate is
#: about: a canary that makes every call dearer while moving calls to a cheaper tier can
#: cut the mean. So they roll back only when the mean cost per task is up in the data by
#: at least this fraction of the tolerance *and* shown up at all by the always-valid mean
#: test at level ``COST_GUARD_ALPHA`` (margin 0): a canary whose mean cost is not higher is
#: rolled back through them with probability at most that level, however often the gates
#: look. (The point estimate alone was not enough on heavy-tailed costs: a canary 7% cheaper
#: on average, each call ×1.2, was rolled back in 28.5% of first stages; outside tester.)
COST_SHIFT_MIN_FRACTION = 0.25
COST_GUARD_ALPHA = 0.05
LATENCY_CONTROL_TAIL_SHARE = 0.05
LATENCY_CANARY_TAIL_SHARE = 0.05

#: Promotion waits while a rollback gate that passes shows a degradation of at least
#: ``HOLD_FRACTION`` of its tolerance that is significant at a plain fixed-sample level
#: (``z ≥ HOLD_Z`` beyond the margin). It never rolls anything back — only the always-valid
#: test does — it keeps a regression that has not yet tripped its gate when the stage is
#: ripe at the small share until it does (or the stage times out and pauses with the
#: reason). An identical canary is held at a given look with probability ≤ 0.6%, and the
#: stage advances at the next look that is not held.
HOLD_FRACTION = 0.5
HOLD_Z = 2.5


@dataclass(frozen=True, slots=True)
class DispersionPrior:
    """Pseudo-observations that pull the overdispersion estimate toward ``phi`` early on.

    The estimate is ``max(1, (weight·phi + χ²) / (weight + df))``: with few windows it
    stays near ``phi`` (conservative where clustering cannot be measured yet), with many it
    follows the data (see :mod:`.dispersion`).
    """

    phi: float
    weight: float
    #: If set, the data move the estimate only once Pearson's statistic is significant at
    #: this level (chi-square with the pooled degrees of freedom); until then it is ``phi``.
    #: For a gate that must decide before dispersion can be measured reliably: noise in
    #: the estimate would cost it power for nothing when requests are independent.
    significance: float | None = None


#: Errors come in bursts (an incident, retries of one request) and a burst of errors in
#: one arm is what fooled the independent-errors test; the error gate has a whole stage to
#: decide, so it starts conservative. Latency must decide within a window or two, before
#: any between-window dispersion can be measured, so it starts at independence.
ERROR_DISPERSION = DispersionPrior(phi=4.0, weight=4.0)
LATENCY_DISPERSION = DispersionPrior(phi=1.0, weight=2.0, significance=0.01)
#: Latency decides only once its dispersion can be measured: at least this many pooled
#: degrees of freedom (windows − 1, per arm, summed over both arms) of the stage and the
#: router's windows before it. A router without history (or a first look of a stage
#: without earlier windows) has none, and clustered latencies taken as independent rolled
#: back 57% of identical canaries (clusters of mean 5, whole rollouts).
LATENCY_MIN_DISPERSION_DF = 8
#: Below this many pooled degrees of freedom (about 9 windows per arm: a router without
#: an hour of history, in its first stage) the latency tests use an upper confidence bound
#: of the dispersion (Pearson's χ² over its lower ``LATENCY_DISPERSION_BOUND`` quantile)
#: rather than the significance-gated estimate: with a handful of windows the estimate is
#: too noisy (CV √(2/df)) for a test at α ≈ 0.003, and underestimates roll back.
LATENCY_CONFIDENT_DF = 16
LATENCY_DISPERSION_BOUND = 0.1
COST_DISPERSION = DispersionPrior(phi=2.0, weight=4.0)
WIN_DISPERSION = DispersionPrior(phi=2.0, weight=4.0)


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
        alpha: probability of any false rollback during one whole rollout, however often
            the gates are evaluated; spent over the stages by the controller (each stage
            gets a share, see :func:`stage_alpha_shares`) and split over the gates.
        min_samples: samples per arm (judged samples for the win rate) before a gate may
            pass or fail; below it the gate is ``insufficient``.
        slo_p95_ms: promotion is blocked while the canary's P95 exceeds this.
        slo_min_win_rate: promotion is blocked while the canary's win rate is below this.
        promotion_alpha: a stage advances only when every rollback gate has *shown* the
            canary within its tolerance — a time-uniform upper confidence bound of the
            degradation below the limit — each at level ``promotion_alpha / 4``. This is
            the chance, per stage, that a canary worse than a tolerance advances on
            that evidence (a wrong promotion, a different error from a false rollback,
            so it has its own budget; it is not spent from ``alpha``).
        error_rate_promotion_increase: the limit for the error rate's upper bound (1.0:
            shown at most doubled). Errors are rare (2% of 100 canary requests a minute
            is ~30 errors in a 15-minute stage), so "within +10%" cannot be shown at a
            small share in any reasonable time; the rollback test still uses
            ``error_rate_increase``.
        error_rate_floor: a canary whose own error rate is shown below this (absolute) is
            within tolerance whatever the control's (a router with no errors at all).

    Example:
        >>> GateConfig(latency_p95_increase=0.3).margin("latency_p95")
        0.006
    """

    error_rate_increase: float = 0.10
    latency_p95_increase: float = 0.50
    cost_per_task_increase: float = 0.30
    win_rate_decrease: float = 0.10
    alpha: float = 0.01
    min_samples: int = 100
    slo_p95_ms: float = 2500.0
    slo_min_win_rate: float = 0.85
    promotion_alpha: float = 0.05
    error_rate_promotion_increase: float = 1.0
    error_rate_floor: float = 0.005

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
        if not 0 < self.promotion_alpha < 1:
            raise ValueError(f"promotion_alpha must be within (0, 1), got {self.promotion_alpha}")
        if not (math.isfinite(self.error_rate_promotion_increase) and self.error_rate_promotion_increase > 0):
            raise ValueError(
                f"error_rate_promotion_increase must be a positive number, got {self.error_rate_promotion_increase}"
            )
        if not 0 <= self.error_rate_floor < 1:
            raise ValueError(f"error_rate_floor must be within [0, 1), got {self.error_rate_floor}")

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

    def promotion_limit(self, gate: str) -> float:
        """What promotion needs shown: the upper confidence bound of a gate's relative
        degradation must be below this (the tolerance; for the error rate
        ``error_rate_promotion_increase``, since errors are rare: see README.md)."""
        if gate == "error_rate":
            return max(self.error_rate_increase, self.error_rate_promotion_increase)
        return self.tolerance(gate)

    def promotion_gate_alpha(self) -> float:
        """Level of each rollback gate's upper confidence bound at one stage: ``promotion_alpha``
        split evenly over the four gates (a stage advances only if all four are shown)."""
        return self.promotion_alpha / len(ROLLBACK_GATES)

    def gate_alpha(self, gate: str, share: float = 1.0) -> float:
        """Error budget of one rollback gate in a stage that spends ``share`` of ``alpha``."""
        return self.alpha * share * GATE_ALPHA_SHARES[gate]


def stage_alpha_shares(stages: tuple[float, ...] | list[float]) -> tuple[float, ...]:
    """α-spending over a rollout: the share of ``alpha`` each stage may spend (sums to 1).

    Only stages below 100% run gates. The first gated stage gets 80% (it has the least
    canary traffic, so detection there is the hardest and the most valuable: it is where a
    regression should be stopped, with the fewest users exposed); the other 20% is split
    evenly over the later gated stages, whose 5–10× traffic makes their tests fast even at
    a smaller level (a level ÷ 2.5 costs a test ~10% more samples). A single gated stage
    gets everything. Stages at 100% get 0.

    >>> stage_alpha_shares((0.05, 0.25, 0.5, 1.0))
    (0.8, 0.1, 0.1, 0.0)
    """
    gated = [i for i, share in enumerate(stages) if share < 1.0]
    shares = [0.0] * len(stages)
    if not gated:
        return tuple(shares)
    if len(gated) == 1:
        shares[gated[0]] = 1.0
        return tuple(shares)
    shares[gated[0]] = 0.8
    for i in gated[1:]:
        shares[i] = 0.2 / (len(gated) - 1)
    return tuple(shares)
