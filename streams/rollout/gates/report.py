"""The gates' verdict: every gate's :class:`GateResult` and what the controller reads."""

from __future__ import annotations

import msgspec

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.rollout.gates.config import HOLD_FRACTION, HOLD_Z, ROLLBACK_GATES, SLO_GATES


class GateReport(msgspec.Struct, frozen=True, kw_only=True):
    """Results of all gates at one evaluation, rollback gates first, then SLO gates.

    Example:
        >>> report = GateReport(results=[])
        >>> report.rollback is None, report.promotion_blocked
        (True, False)
    """

    results: list[GateResult]

    @property
    def rollback(self) -> GateResult | None:
        """The first failed rollback gate (error rate, latency, cost, win rate), else ``None``."""
        for result in self.results:
            if result.gate in ROLLBACK_GATES and result.status is GateStatus.FAIL:
                return result
        return None

    @property
    def promotion_blocked(self) -> bool:
        """Whether the stage may not advance: see :meth:`blockers`."""
        return bool(self.blockers())

    def blockers(self) -> list[str]:
        """Why the stage may not advance now, one line per gate (empty: it may).

        A rollback gate blocks unless it passes, has *shown* non-inferiority (its
        time-uniform upper confidence bound of the degradation, ``upper``, is below
        ``upper_limit``: absence of evidence of harm is not evidence of safety) and is not
        *holding* (a degradation of at least ``HOLD_FRACTION`` of its tolerance,
        significant at ``z ≥ HOLD_Z``); an SLO gate blocks unless it passes
        (``insufficient`` included: missing data never promote).
        """
        reasons, holds = [], []
        for result in self.results:
            if result.gate in ROLLBACK_GATES:
                if result.status is not GateStatus.PASS:
                    reasons.append(_describe(result))
                if result.status is GateStatus.PASS and not shown(result):
                    holds.append(_not_shown(result))
                if holding(result):
                    holds.append(
                        f"{result.gate} holding: canary {result.degradation:+.1%} worse than control "
                        f"(z {result.z:.1f}; tolerance {result.threshold:.0%}), not yet enough to roll back"
                    )
            elif result.gate in SLO_GATES and result.status is not GateStatus.PASS:
                reasons.append(_describe(result))
        return reasons + holds  # what cannot pass (missing data, SLOs) before what is still deciding

    def get(self, gate: str) -> GateResult | None:
        """The result of one gate by name."""
        for result in self.results:
            if result.gate == gate:
                return result
        return None


def shown(result: GateResult) -> bool:
    """Whether a gate has shown the canary within its limit (or makes no claim: ``upper_limit`` unset)."""
    if result.upper_limit is None:
        return True
    return result.upper is not None and result.upper < result.upper_limit


def _not_shown(result: GateResult) -> str:
    limit = result.upper_limit or 0.0
    bound = "no finite upper bound yet" if result.upper is None else f"upper bound {result.upper:+.1%}"
    so_far = "" if result.degradation is None else f"; canary {result.degradation:+.1%} vs control so far"
    return (
        f"{result.gate} not shown within tolerance: {bound} of the degradation, needs below {limit:+.0%} "
        f"(time-uniform bound{so_far})"
    )


def holding(result: GateResult) -> bool:
    """Whether a passing rollback gate holds promotion (see :meth:`GateReport.blockers`)."""
    return (
        result.status is GateStatus.PASS
        and result.z is not None
        and result.degradation is not None
        and result.threshold is not None
        and result.z >= HOLD_Z
        and result.degradation >= HOLD_FRACTION * result.threshold
    )


def _figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _describe(result: GateResult) -> str:
    what = result.note or (
        f"canary {_figure(result.canary)} vs control {_figure(result.control)} "
        f"({result.canary_samples:,} / {result.control_samples:,} samples)"
    )
    return f"{result.gate} {result.status.value}: {what}"
