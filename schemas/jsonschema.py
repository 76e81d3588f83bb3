"""JSON Schema export of the wire contract, for producers in other languages."""

from __future__ import annotations

from typing import Any

import msgspec

from bifrost.common.errors import ExitCode
from bifrost.schemas.alerts import Alert
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.catalog import CatalogChange, CatalogEntry
from bifrost.schemas.dlq import DeadLetter
from bifrost.schemas.events import FeedbackEvent, RoutingEvent
from bifrost.schemas.recommendations import Recommendation, RecommendationApplied, RecommendationCommand
from bifrost.schemas.rollout import RollbackEvent, RolloutCommand, RolloutState
from bifrost.schemas.triggers import TrainingOutcome, TrainingTrigger

SCHEMA_TYPES: dict[str, type[msgspec.Struct]] = {
    "routing-event": RoutingEvent,
    "feedback": FeedbackEvent,
    "dlq": DeadLetter,
    "rollout-command": RolloutCommand,
    "rollout-state": RolloutState,
    "rollback": RollbackEvent,
    "training-trigger": TrainingTrigger,
    "training-outcome": TrainingOutcome,
    "artifact-published": ArtifactPublished,
    "alert": Alert,
    "recommendation": Recommendation,
    "recommendation-command": RecommendationCommand,
    "recommendation-applied": RecommendationApplied,
    "catalog-entry": CatalogEntry,
    "catalog-change": CatalogChange,
}


class UnknownSchema(KeyError):
    """Asked for a schema name that does not exist."""

    exit_code = ExitCode.USAGE


def json_schema(name: str) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for a named wire type, e.g. ``"routing-event"``."""
    try:
        struct = SCHEMA_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(SCHEMA_TYPES))
        raise UnknownSchema(f"unknown schema {name!r}; choose one of: {known}") from None
    schema = msgspec.json.schema(struct)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"bifrost {name}"
    return schema
