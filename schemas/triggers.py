"""Training triggers: why the trainer should run, and on which data window."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec


class TriggerReason(str, enum.Enum):
    """What asked for a retrain."""

    SCHEDULE = "schedule"
    DEGRADATION = "degradation"
    CATALOG_DRIFT = "catalog_drift"
    MANUAL = "manual"


class TrainingTrigger(msgspec.Struct, frozen=True, kw_only=True):
    """One request to train, on ``training-triggers`` keyed by ``trigger_id``.

    ``trigger_id`` is idempotent: the same cause yields the same id (e.g. one schedule
    trigger per ISO week, one degradation trigger per router, metric and day), and the
    trainer handles an id at most once.
    """

    trigger_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    reason: TriggerReason
    window_from: float
    window_to: float
    router_id: str | None = None
    details: dict[str, float | str] = {}
    requested_by: str = "bifrost"
    created_at: float = 0.0
