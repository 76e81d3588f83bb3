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


class OutcomeKind(str, enum.Enum):
    """How the trainer ended a trigger."""

    PUBLISHED = "published"  # a new signed artifact is stored and announced on ``artifacts``
    REJECTED = "rejected"  # data quality or validation refused it; nothing published (final)
    SKIPPED = "skipped"  # nothing could be done yet (no current artifact, no warehouse data); may be re-sent


class TrainingOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one training trigger, on ``training-outcomes`` keyed by ``trigger_id``.

    The trainer publishes one per trigger it handles (again, with ``duplicate`` set, when
    an id it already handled is delivered again). ``version`` and ``router_ids``: the
    artifact published and the routers its canary starts for; ``stopped_at``: the step a
    rejected run stopped at (``data_quality``, ``validation``…); ``report``: where the run
    report is, on the trainer's file system.

    Example:
        >>> TrainingOutcome(trigger_id="manual-1", outcome=OutcomeKind.REJECTED, reason="too few rows").outcome.value
        'rejected'
    """

    trigger_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    outcome: OutcomeKind
    reason: str = ""
    version: str | None = None
    parent: str | None = None
    router_ids: list[str] = []
    stopped_at: str = ""
    duplicate: bool = False
    report: str = ""
    finished_at: float = 0.0
