"""Recent activity for the dashboard: rollbacks, training triggers and outcomes, artifact announcements.

:class:`Activity` (pure) keeps the newest records of each kind in bounded buffers and
answers the dashboard's ``/v1/dashboard/activity`` view; :class:`ActivityFollower` feeds it
from Kafka. The follower has no consumer group and reads every partition, so any worker
answers for every router; at start it goes back only the last few records per partition
(rollbacks, triggers and announcements are rare), and it never commits anything.

A trainer run is a trigger joined with what the trainer said of it on
``training-outcomes`` (published, rejected or skipped, with the reason and the step it
stopped at), else with the announcement naming the trigger (``ArtifactPublished.trigger_id``),
else "no outcome yet" (queued or running, or no trainer is consuming).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from typing import TypeVar

import msgspec

from bifrost.config import Settings
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.rollout import RollbackEvent
from bifrost.schemas.triggers import TrainingOutcome, TrainingTrigger
from bifrost.streams.web.tail import TopicTail, values_only

S = TypeVar("S", bound=msgspec.Struct)
V = TypeVar("V")

log = logging.getLogger("bifrost.dashboard")

MAX_ROLLBACKS = 200
MAX_ARTIFACTS = 50
MAX_TRIGGERS = 50


class TrainerRun(msgspec.Struct, kw_only=True):
    """A training trigger and what came of it, as far as Kafka tells."""

    trigger_id: str
    reason: str
    router_id: str | None
    requested_by: str
    created_at: float
    window_from: float
    window_to: float
    outcome: str  # published, rejected, skipped (from the trainer), or "no outcome yet"
    version: str | None = None
    detail: str = ""  # the trainer's reason, and the step a rejected run stopped at
    finished_at: float | None = None


class ArtifactSummary(msgspec.Struct, kw_only=True):
    """An announced artifact, without its signature."""

    version: str
    sha256: str
    parent: str | None
    trigger_id: str | None
    router_ids: list[str]
    created_at: str
    published_at: float
    validation: dict[str, float | str | bool | None]


class ActivityView(msgspec.Struct, kw_only=True):
    """What ``/v1/dashboard/activity`` answers (newest first); ``following`` names the topics read."""

    rollbacks: list[RollbackEvent]
    trainer_runs: list[TrainerRun]
    artifacts: list[ArtifactSummary]
    following: list[str]
    undecodable: int


class Activity:
    """Bounded buffers of the newest rollbacks, triggers and announcements (pure).

    Records that do not decode are counted and skipped. Announcements and triggers are
    kept by version / trigger id (the newest record wins, as in their compacted or
    idempotent topics); rollbacks in arrival order.
    """

    def __init__(
        self,
        *,
        max_rollbacks: int = MAX_ROLLBACKS,
        max_artifacts: int = MAX_ARTIFACTS,
        max_triggers: int = MAX_TRIGGERS,
    ) -> None:
        self._rollbacks: deque[RollbackEvent] = deque(maxlen=max_rollbacks)
        self._artifacts: OrderedDict[str, ArtifactPublished] = OrderedDict()
        self._triggers: OrderedDict[str, TrainingTrigger] = OrderedDict()
        self._outcomes: OrderedDict[str, TrainingOutcome] = OrderedDict()
        self._max_artifacts = max_artifacts
        self._max_triggers = max_triggers
        self.undecodable = 0
        self.following: list[str] = []

    def add_rollback(self, raw: bytes) -> bool:
        event = self._decode(raw, RollbackEvent)
        if event is not None:
            self._rollbacks.append(event)
        return event is not None

    def add_artifact(self, raw: bytes) -> bool:
        announced = self._decode(raw, ArtifactPublished)
        if announced is not None:
            _keep_newest(self._artifacts, announced.version, announced, self._max_artifacts)
        return announced is not None

    def add_trigger(self, raw: bytes) -> bool:
        trigger = self._decode(raw, TrainingTrigger)
        if trigger is not None:
            _keep_newest(self._triggers, trigger.trigger_id, trigger, self._max_triggers)
        return trigger is not None

    def add_outcome(self, raw: bytes) -> bool:
        outcome = self._decode(raw, TrainingOutcome)
        if outcome is not None and not (outcome.duplicate and outcome.trigger_id in self._outcomes):
            _keep_newest(self._outcomes, outcome.trigger_id, outcome, 4 * self._max_triggers)
        return outcome is not None

    def view(self, router_id: str | None = None, *, limit: int = 20) -> ActivityView:
        """The newest ``limit`` of each kind; rollbacks of ``router_id`` only, when given."""
        rollbacks = [r for r in reversed(self._rollbacks) if router_id is None or r.router_id == router_id][:limit]
        by_trigger = {a.trigger_id: a for a in self._artifacts.values() if a.trigger_id}
        runs = []
        for trigger in list(reversed(self._triggers.values()))[:limit]:
            artifact = by_trigger.get(trigger.trigger_id)
            ended = self._outcomes.get(trigger.trigger_id)
            run = TrainerRun(
                trigger_id=trigger.trigger_id,
                reason=trigger.reason.value,
                router_id=trigger.router_id,
                requested_by=trigger.requested_by,
                created_at=trigger.created_at,
                window_from=trigger.window_from,
                window_to=trigger.window_to,
                outcome="published" if artifact else "no outcome yet",
                version=artifact.version if artifact else None,
            )
            if ended is not None:
                stopped = f" (stopped at {ended.stopped_at})" if ended.stopped_at else ""
                run = msgspec.structs.replace(
                    run,
                    outcome=ended.outcome.value,
                    version=ended.version or run.version,
                    detail=f"{ended.reason}{stopped}",
                    finished_at=ended.finished_at or None,
                )
            runs.append(run)
        artifacts = [
            ArtifactSummary(
                version=a.version,
                sha256=a.sha256,
                parent=a.parent,
                trigger_id=a.trigger_id,
                router_ids=list(a.router_ids),
                created_at=a.created_at,
                published_at=a.published_at,
                validation=dict(a.validation),
            )
            for a in list(reversed(self._artifacts.values()))[:limit]
        ]
        return ActivityView(
            rollbacks=rollbacks,
            trainer_runs=runs,
            artifacts=artifacts,
            following=list(self.following),
            undecodable=self.undecodable,
        )

    def _decode(self, raw: object, kind: type[S]) -> S | None:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            self.undecodable += 1
            return None
        try:
            return msgspec.json.decode(raw, type=kind)
        except (msgspec.DecodeError, RecursionError, ValueError):
            self.undecodable += 1
            return None


def _keep_newest(items: OrderedDict[str, V], key: str, value: V, limit: int) -> None:
    items.pop(key, None)
    items[key] = value
    while len(items) > limit:
        items.popitem(last=False)


class ActivityFollower(TopicTail):
    """Reads rollbacks, training-triggers, artifacts and training-outcomes into an :class:`Activity` (a worker task).

    The last ``backlog`` records of each partition at start; see :class:`TopicTail`.
    """

    def __init__(
        self, settings: Settings, activity: Activity, *, backlog: int = 100, refresh_seconds: float = 10.0
    ) -> None:
        topics = settings.topics
        handlers = {
            topics.rollbacks: values_only(activity.add_rollback),
            topics.training_triggers: values_only(activity.add_trigger),
            topics.artifacts: values_only(activity.add_artifact),
            topics.training_outcomes: values_only(activity.add_outcome),
        }
        super().__init__(
            settings,
            handlers,
            name="activity",
            backlog=backlog,
            refresh_seconds=refresh_seconds,
            on_following=lambda following: setattr(activity, "following", following),
        )
