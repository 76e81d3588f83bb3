"""Canary rollback gates that stay valid under continuous monitoring.

The controller calls :func:`evaluate_gates` after every window with the cumulative
:class:`~bifrost.streams.aggregates.stats.WindowStats` of the canary and the control
since the stage began; ``report.rollback`` names the gate that tripped (with its
evidence), ``report.promotion_blocked`` says whether the stage may advance.
The dev-only gate simulator (:mod:`bifrost.gatesim`, outside the worker's package) measures
them against a fixed-threshold baseline (:func:`bifrost.gatesim.naive.naive_gates`).

``GateStatus`` and ``GateResult`` are the wire types of :mod:`bifrost.schemas.rollout`
(the same classes), so results go into rollout-state and rollback events unchanged.
"""

from bifrost.schemas.rollout import GateResult, GateStatus
from bifrost.streams.rollout.gates.config import ROLLBACK_GATES, SLO_GATES, GateConfig
from bifrost.streams.rollout.gates.gates import evaluate_gates
from bifrost.streams.rollout.gates.report import GateReport

__all__ = [
    "ROLLBACK_GATES",
    "SLO_GATES",
    "GateConfig",
    "GateReport",
    "GateResult",
    "GateStatus",
    "evaluate_gates",
]
