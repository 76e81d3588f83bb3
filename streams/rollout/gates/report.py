"""The gates' verdict: every gate's :class:`GateResult` and what the controller reads."""

from __future__ import annotations

import msgspec

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.rollout.gates.config import ROLLBACK_GATES, SLO_GATES


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
        """Whether the stage may not advance: a rollback gate not ``pass`` (``insufficient``
        included) or an SLO gate ``blocked``."""
        for result in self.results:
            if result.gate in ROLLBACK_GATES and result.status is not GateStatus.PASS:
                return True
            if result.gate in SLO_GATES and result.status is GateStatus.BLOCKED:
                return True
        return False

    def get(self, gate: str) -> GateResult | None:
        """The result of one gate by name."""
        for result in self.results:
            if result.gate == gate:
                return result
        return None
