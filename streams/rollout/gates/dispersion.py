"""Overdispersion: how much more the data vary than independent requests would.

Errors arrive in bursts (an incident's errors, the retries of one request), judgements
and costs can come in groups too. The per-request tests treat every request as
independent; when events come in clusters of mean size ``m`` the variance of a count is
``φ = E[size²]/E[size]`` times larger (``2m − 1`` for geometric sizes: 9 at ``m = 5``,
39 at ``m = 20``), and a test that ignores it trips on a single burst.

Every gate therefore runs on *effective* sample sizes ``n/φ̂`` (a tempered likelihood:
quasi-likelihood in the sense of Wedderburn 1974; McCullagh & Nelder 1989 §4.5), with
``φ̂`` estimated from per-window aggregates. Windows are the units: a burst lands in
one window, so between-window variation of each arm's per-window figure around the
arm's mean exposes it. Pearson's statistic per arm and metric,

    χ² = Σ_w n_w (ȳ_w − ȳ)² / s²,   df = (windows with data) − 1,

has expectation ``φ·df``. Both arms are pooled (a common clustering mechanism — the
same clients and infrastructure — is visible far sooner in the control, which has most
of the traffic at a small canary share), and a prior of ``weight`` pseudo-degrees of
freedom at ``phi`` keeps the estimate conservative while few windows exist:

    φ̂ = max(1, (weight·phi + χ²_canary + χ²_control) / (weight + df_canary + df_control)).

Variation common to both arms (diurnal mix shifts, an incident hitting everyone) also
raises ``φ̂``: that errs on the safe side (less power, never more false rollbacks).
The figures of one window are additive sums (:class:`ArmFigures`), so the stage's
figures are computed once per window and the open window's at every look.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bifrost.streams.aggregates.stats import WindowStats
from bifrost.streams.rollout.gates.config import DispersionPrior


@dataclass(frozen=True, slots=True)
class ArmFigures:
    """Additive figures of one arm in one window (what dispersion and coverage need)."""

    count: int = 0
    errors: int = 0
    cost: float = 0.0
    cost_sq: float = 0.0
    cost_paid: int = 0  # requests with a positive cost (the log-cost moments' count)
    cost_log: float = 0.0
    cost_log_sq: float = 0.0
    judged: int = 0
    win: float = 0.0  # wins + ties/2
    win_sq: float = 0.0  # wins + ties/4
    latency_n: int = 0  # values with a latency (> 0): zeros are missing measurements
    latency_k: float = 0.0  # Σ bucket index (log latency / log γ)
    latency_k2: float = 0.0

    def __add__(self, other: ArmFigures) -> ArmFigures:
        return ArmFigures(
            self.count + other.count,
            self.errors + other.errors,
            self.cost + other.cost,
            self.cost_sq + other.cost_sq,
            self.cost_paid + other.cost_paid,
            self.cost_log + other.cost_log,
            self.cost_log_sq + other.cost_log_sq,
            self.judged + other.judged,
            self.win + other.win,
            self.win_sq + other.win_sq,
            self.latency_n + other.latency_n,
            self.latency_k + other.latency_k,
            self.latency_k2 + other.latency_k2,
        )

    @classmethod
    def of(cls, stats: WindowStats) -> ArmFigures:
        """The figures of one arm's statistics in one window."""
        n = k1 = k2 = 0
        for k, c in stats.latency_ms.bins.items():
            n += c
            k1 += c * k
            k2 += c * k * k
        return cls(
            count=stats.count,
            errors=stats.errors,
            cost=stats.cost_usd,
            cost_sq=stats.cost_sq,
            cost_paid=stats.cost_paid,
            cost_log=stats.cost_log,
            cost_log_sq=stats.cost_log_sq,
            judged=stats.wins + stats.losses + stats.ties,
            win=stats.wins + 0.5 * stats.ties,
            win_sq=stats.wins + 0.25 * stats.ties,
            latency_n=n,
            latency_k=float(k1),
            latency_k2=float(k2),
        )


@dataclass(frozen=True, slots=True)
class StageWindow:
    """Both arms' figures in one window of the stage (``start``: window start, event time)."""

    start: int
    canary: ArmFigures
    control: ArmFigures


#: (n, Σy, Σy²) of one metric in one window.
Moments = tuple[float, float, float]
Metric = Callable[[ArmFigures], Moments]


def errors_of(f: ArmFigures) -> Moments:
    return float(f.count), float(f.errors), float(f.errors)


def latency_of(f: ArmFigures) -> Moments:
    return float(f.latency_n), f.latency_k, f.latency_k2


def cost_of(f: ArmFigures) -> Moments:
    return float(f.count), f.cost, f.cost_sq


def cost_log_of(f: ArmFigures) -> Moments:
    return float(f.cost_paid), f.cost_log, f.cost_log_sq


def win_of(f: ArmFigures) -> Moments:
    return float(f.judged), f.win, f.win_sq


METRICS: dict[str, Metric] = {
    "error_rate": errors_of,
    "latency_p95": latency_of,
    "cost_per_task": cost_of,
    "win_rate": win_of,
    # Not a gate of its own: the cost gate's shift test (log cost) has its own dispersion.
    "cost_shift": cost_log_of,
}
METRIC_ORDER: tuple[str, ...] = tuple(METRICS)


@dataclass(frozen=True, slots=True)
class Sums:
    """Pearson accumulator of one metric in one arm over windows (additive)."""

    n: float = 0.0
    s: float = 0.0
    q: float = 0.0
    between: float = 0.0  # Σ_w S_w²/n_w
    windows: int = 0

    def add(self, moments: Moments) -> Sums:
        n, s, q = moments
        if n <= 0:
            return self
        return Sums(self.n + n, self.s + s, self.q + q, self.between + s * s / n, self.windows + 1)

    def __add__(self, other: Sums) -> Sums:
        return Sums(
            self.n + other.n,
            self.s + other.s,
            self.q + other.q,
            self.between + other.between,
            self.windows + other.windows,
        )

    def chi2(self) -> tuple[float, int]:
        """Pearson's dispersion statistic and its degrees of freedom.

        ``χ² = (Σ_w S_w²/n_w − S²/N) / s²`` (``S_w``, ``n_w``: window sum and size; ``s²``:
        the per-sample variance over all windows). ``(0, 0)`` with fewer than two windows
        with data or no variation at all.
        """
        if self.windows < 2 or self.n < 2:
            return 0.0, 0
        mean = self.s / self.n
        variance = (self.q - self.s * mean) / (self.n - 1)
        if variance <= 1e-300:
            return 0.0, 0
        return max(self.between - self.s * mean, 0.0) / variance, self.windows - 1


@dataclass(frozen=True, slots=True)
class WindowSums:
    """Pearson accumulators of every gate's metric in both arms over a set of windows.

    Additive, so the stage's windows and the router's earlier windows (``history``: the
    hour before the stage, when the clustering of its traffic was already visible) are
    summed without keeping every window.
    """

    canary: tuple[Sums, ...] = tuple(Sums() for _ in METRIC_ORDER)
    control: tuple[Sums, ...] = tuple(Sums() for _ in METRIC_ORDER)

    @classmethod
    def of(cls, windows: Sequence[StageWindow]) -> WindowSums:
        canary = [Sums() for _ in METRIC_ORDER]
        control = [Sums() for _ in METRIC_ORDER]
        for w in windows:
            for i, name in enumerate(METRIC_ORDER):
                metric = METRICS[name]
                canary[i] = canary[i].add(metric(w.canary))
                control[i] = control[i].add(metric(w.control))
        return cls(tuple(canary), tuple(control))

    def __add__(self, other: WindowSums) -> WindowSums:
        return WindowSums(
            tuple(a + b for a, b in zip(self.canary, other.canary)),
            tuple(a + b for a, b in zip(self.control, other.control)),
        )

    def metric(self, gate: str) -> tuple[Sums, Sums]:
        i = METRIC_ORDER.index(gate)
        return self.canary[i], self.control[i]


def pearson(moments: Sequence[Moments]) -> tuple[float, int]:
    """Pearson's dispersion statistic of one arm over windows (see :meth:`Sums.chi2`)."""
    total = Sums()
    for m in moments:
        total = total.add(m)
    return total.chi2()


def chi2_quantile(q: float, df: int) -> float:
    """Upper-tail quantile of chi-square (Wilson & Hilferty 1931; within ~1% for df ≥ 2)."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(q)
    c = 2.0 / (9.0 * df)
    return df * max(1.0 - c + z * math.sqrt(c), 0.0) ** 3


def degrees_of_freedom(sums: WindowSums, gate: str) -> int:
    """Pooled degrees of freedom (windows with data − 1, per arm) behind ``gate``'s estimate."""
    return sum(arm.chi2()[1] for arm in sums.metric(gate))


def upper_bound(sums: WindowSums, gate: str, quantile: float) -> float:
    """An upper confidence bound of ``φ`` for ``gate`` (≥ 1): Pearson's pooled χ² over its
    lower ``quantile`` (chi-square with the pooled degrees of freedom); ``inf`` without any."""
    chi, df = 0.0, 0
    for arm in sums.metric(gate):
        c, d = arm.chi2()
        chi, df = chi + c, df + d
    if df == 0:
        return math.inf
    return max(1.0, chi / max(chi2_quantile(quantile, df), 1e-12))


def estimate(sums: WindowSums, gate: str, prior: DispersionPrior) -> float:
    """``φ̂ ≥ 1`` for one gate's metric from both arms' per-window sums (see the module doc)."""
    canary, control = sums.metric(gate)
    chi_c, df_c = canary.chi2()
    chi_k, df_k = control.chi2()
    df = df_c + df_k
    if prior.significance is not None and (df == 0 or chi_c + chi_k <= chi2_quantile(1.0 - prior.significance, df)):
        return max(1.0, prior.phi)
    denominator = prior.weight + df
    if denominator <= 0:
        return max(1.0, prior.phi)
    value = (prior.weight * prior.phi + chi_c + chi_k) / denominator
    return max(1.0, value) if math.isfinite(value) else math.inf
