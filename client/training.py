"""Asking for a retrain and following the trigger to its outcome.

A manual trigger goes to ``training-triggers``; the trainer answers on
``training-outcomes`` (published, rejected or skipped, with the reason); a published
artifact is announced on ``artifacts``, and each worker's artifact listener verifies it
and sends a signed ``start`` per router, whose answer — canary started, waiting for
approval, or refused with the reason — is in ``rollout-state.last_command``. An
announcement that fails verification, and a start the controller refuses to authenticate,
end in the DLQ instead. :func:`follow_trigger` watches all three and returns what it saw.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from bifrost.client.publisher import Publisher, connect
from bifrost.kafka.security import KafkaSecurity
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import DeadLetter
from bifrost.schemas.rollout import CommandKind, Phase, RolloutCommand, RolloutState, pipeline_command_id
from bifrost.schemas.topics import Topics
from bifrost.schemas.triggers import OutcomeKind, TrainingOutcome, TrainingTrigger


@dataclass(frozen=True, slots=True)
class CanaryAnswer:
    """What became of the start of a new artifact's canary on one router."""

    router_id: str
    accepted: bool
    reason: str
    phase: str = ""
    stage_percent: float | None = None


#: Bytes of rollout-state and DLQ records kept while the outcome (hence the version) is unknown.
EARLY_RECORDS_BYTES = 8 << 20
#: What each kept record counts for besides its bytes (the tuple and deque slot it takes).
EARLY_RECORD_OVERHEAD = 128


@dataclass(slots=True)
class TriggerProgress:
    """Everything seen about one trigger so far; :attr:`finished` once nothing more is to come."""

    trigger_id: str
    outcome: TrainingOutcome | None = None
    canaries: dict[str, CanaryAnswer] = field(default_factory=dict)
    announcement_error: str | None = None  # the artifact's announcement was dead-lettered (e.g. unverified)
    # Records from other topics read before the outcome: a consumer reads topics in no fixed
    # order, and the worker can answer the canary start before the outcome record is fetched.
    early: deque[tuple[str, bytes]] = field(default_factory=deque)
    early_bytes: int = 0

    def keep_early(self, topic: str, value: bytes) -> None:
        """Hold a record until the outcome names the version (newest kept within EARLY_RECORDS_BYTES)."""
        self.early.append((topic, value))
        self.early_bytes += len(value) + EARLY_RECORD_OVERHEAD
        while self.early_bytes > EARLY_RECORDS_BYTES and self.early:
            self.early_bytes -= len(self.early.popleft()[1]) + EARLY_RECORD_OVERHEAD

    @property
    def waiting_for(self) -> list[str]:
        """Routers whose canary start has not been answered yet (after a publication)."""
        if self.outcome is None or self.outcome.outcome is not OutcomeKind.PUBLISHED:
            return []
        return [router for router in self.outcome.router_ids if router not in self.canaries]

    @property
    def finished(self) -> bool:
        if self.outcome is None:
            return False
        if self.outcome.outcome is not OutcomeKind.PUBLISHED or self.announcement_error is not None:
            return True
        return self.outcome.version is None or not self.waiting_for  # no version: nothing to follow

    @property
    def succeeded(self) -> bool:
        """Published, and every router's canary started (or waits for approval)."""
        return (
            self.finished
            and self.outcome is not None
            and self.outcome.outcome is OutcomeKind.PUBLISHED
            and self.announcement_error is None
            and all(c.accepted for c in self.canaries.values())
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "trigger_id": self.trigger_id,
            "outcome": msgspec.to_builtins(self.outcome) if self.outcome is not None else None,
            "canaries": {
                router: {"accepted": c.accepted, "reason": c.reason, "phase": c.phase, "stage_percent": c.stage_percent}
                for router, c in self.canaries.items()
            },
            "announcement_error": self.announcement_error,
            "waiting_for": self.waiting_for,
            "finished": self.finished,
        }


def observe(progress: TriggerProgress, topics: Topics, topic: str, value: bytes) -> bool:
    """Fold one record of ``training-outcomes``, ``rollout-state`` or the DLQ into ``progress``.

    Returns whether it told something new about this trigger. Pure (records that do not
    decode, or concern other triggers, are ignored).
    """
    try:
        if topic == topics.training_outcomes:
            outcome = msgspec.json.decode(value, type=TrainingOutcome)
            if outcome.trigger_id != progress.trigger_id or progress.outcome is not None:
                return False
            progress.outcome = outcome
            early, progress.early, progress.early_bytes = progress.early, deque(), 0
            for earlier_topic, earlier in early:
                observe(progress, topics, earlier_topic, earlier)
            return True
        if progress.outcome is None:
            if _may_answer(topics, topic, value):
                progress.keep_early(topic, value)
            return False
        version = progress.outcome.version
        if version is None:
            return False
        if topic == topics.rollout_state:
            state = msgspec.json.decode(value, type=RolloutState)
            answer = state.last_command
            if (
                answer is None
                or state.router_id not in progress.waiting_for
                or answer.command_id != pipeline_command_id(version, state.router_id, CommandKind.START)
            ):
                return False
            progress.canaries[state.router_id] = CanaryAnswer(
                router_id=state.router_id,
                accepted=answer.accepted,
                reason=answer.reason,
                phase=state.phase.value,
                stage_percent=state.stage_percent if state.phase in (Phase.CANARY, Phase.PAUSED) else None,
            )
            return True
        if topic == topics.dlq:
            letter = msgspec.json.decode(value, type=DeadLetter)
            if letter.source_topic == topics.artifacts and _announces(letter, version):
                progress.announcement_error = f"{letter.reason.value}: {letter.error}"
                return True
            if letter.source_topic == topics.rollout_commands and not letter.truncated:
                command = msgspec.json.decode(letter.original, type=RolloutCommand)
                if command.router_id in progress.waiting_for and command.command_id == pipeline_command_id(
                    version, command.router_id, CommandKind.START
                ):
                    progress.canaries[command.router_id] = CanaryAnswer(
                        router_id=command.router_id, accepted=False, reason=f"{letter.reason.value}: {letter.error}"
                    )
                    return True
    except (msgspec.DecodeError, RecursionError, ValueError):
        return False
    return False


def _may_answer(topics: Topics, topic: str, value: bytes) -> bool:
    """Whether a record read before the outcome could answer some trigger's canary start.

    Only these are kept until the version is known: rollout states answering a ``start``,
    and dead letters of announcements or rollout commands — not the rest of the DLQ.
    """
    if topic == topics.rollout_state:
        answer = msgspec.json.decode(value, type=RolloutState).last_command
        return answer is not None and answer.kind is CommandKind.START
    if topic == topics.dlq:
        source = msgspec.json.decode(value, type=DeadLetter).source_topic
        return source in (topics.artifacts, topics.rollout_commands)
    return False


def _announces(letter: DeadLetter, version: str) -> bool:
    """Whether a dead-lettered announcement is of ``version``: by its key (announcements are
    keyed by version), else by the version standing alone in the error text."""
    if letter.key_b64 is not None and not letter.key_truncated:
        return base64.b64decode(letter.key_b64, validate=True) == version.encode()
    return re.search(rf"(?<![\w.-]){re.escape(version)}(?![\w.-])", letter.error) is not None


async def ensure_outcomes_topic(bootstrap: str, topics: Topics, security: KafkaSecurity | None = None) -> None:
    """Create ``training-outcomes`` (one partition) if no trainer has yet, so it can be watched now."""
    await ensure_topics(
        bootstrap,
        [TopicSpec(topics.training_outcomes, 1)],
        client_options=(security or KafkaSecurity()).client_options(),
        check_partitions=False,
    )


async def follow_trigger(
    bootstrap: str,
    topics: Topics,
    trigger: TrainingTrigger,
    *,
    timeout: float,
    security: KafkaSecurity | None = None,
    on_progress: Callable[[TriggerProgress], None] | None = None,
) -> TriggerProgress:
    """Publish ``trigger`` and follow it until it finished or ``timeout`` seconds passed.

    The watched topics are pinned at their ends *before* the trigger is sent, so only
    answers to this trigger can match. ``on_progress`` is called after each new fact.

    Example:
        >>> progress = await follow_trigger(bootstrap, Topics(), trigger, timeout=900)  # doctest: +SKIP
        >>> progress.outcome.outcome, progress.canaries  # doctest: +SKIP
    """
    security = security or KafkaSecurity()
    progress = TriggerProgress(trigger.trigger_id)
    async with Publisher(bootstrap, topics, security=security) as publisher:  # fails fast when Kafka is unreachable
        await ensure_outcomes_topic(bootstrap, topics, security)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            metadata_max_age_ms=5000,
            **security.client_options(),
        )
        await connect(consumer, bootstrap, security)
        try:
            existing = await consumer.topics()
            created_by = time.monotonic() + 15
            while topics.training_outcomes not in existing and time.monotonic() < created_by:
                await asyncio.sleep(0.5)  # just created: metadata catches up
                existing = await consumer.topics()
            watched = {t for t in (topics.training_outcomes, topics.rollout_state, topics.dlq) if t in existing}
            consumer.subscribe(sorted(watched))  # no group: every partition of each topic
            ready_by = time.monotonic() + 30
            while {tp.topic for tp in consumer.assignment()} != watched and time.monotonic() < ready_by:
                await consumer.getmany(timeout_ms=100)
            for tp in consumer.assignment():
                await consumer.position(tp)  # pin the ends before the trigger goes out
            await publisher.send_raw(topics.training_triggers, trigger.trigger_id.encode(), encode(trigger))
            await publisher.flush()
            deadline = time.monotonic() + timeout
            while not progress.finished and time.monotonic() < deadline:
                remaining_ms = int(max(0.0, min(1.0, deadline - time.monotonic())) * 1000)
                try:
                    batches = await consumer.getmany(timeout_ms=max(remaining_ms, 1))
                except KafkaError:
                    await asyncio.sleep(0.5)  # a broker hiccup: keep waiting until the deadline
                    continue
                for records in batches.values():
                    for record in records:
                        if record.value and observe(progress, topics, record.topic, record.value) and on_progress:
                            on_progress(progress)
        finally:
            await consumer.stop()
    return progress
