"""Alerts: something an operator should look at now, on the ``alerts`` topic."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec


class AlertKind(str, enum.Enum):
    """What raised the alert. Later features add kinds; consumers ignore unknown ones."""

    CONSUMER_LAG = "consumer_lag"
    DLQ_SURGE = "dlq_surge"
    SLO_BREACH = "slo_breach"
    COST_INCREASE = "cost_increase"
    DEGRADATION = "degradation"
    ROLLOUT_PAUSED = "rollout_paused"
    CATALOG_DRIFT = (
        "catalog_drift"  # a model the current artifact routes to changed price, context, capabilities or availability
    )


class Severity(str, enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert, on ``alerts`` keyed by ``alert_id``.

    ``alert_id`` is idempotent (kind + subject + the episode, e.g. the minute a lag
    status turned ERR), so a re-sent alert is recognisable as the same one.
    ``resolved`` marks the all-clear of an earlier alert with the same kind and subject.
    """

    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    kind: AlertKind
    severity: Severity
    subject: Annotated[str, msgspec.Meta(max_length=300)]
    message: Annotated[str, msgspec.Meta(max_length=2000)]
    evidence: dict[str, float | int | str] = {}
    resolved: bool = False
    created_at: float = 0.0
