"""Following a training trigger (pure parts): which records answer it, and what the CLI concludes."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from bifrost.cli.retrain_cmd import judge
from bifrost.client.training import TriggerProgress, observe
from bifrost.schemas.dlq import DeadLetter, RejectReason
from bifrost.schemas.rollout import (
    CommandKind,
    CommandOutcome,
    Phase,
    RolloutCommand,
    RolloutState,
    pipeline_command_id,
)
from bifrost.schemas.topics import Topics
from bifrost.schemas.triggers import OutcomeKind, TrainingOutcome

TOPICS = Topics("t.")


def outcome(kind: OutcomeKind, trigger_id: str = "manual-1", **fields: Any) -> bytes:
    return msgspec.json.encode(TrainingOutcome(trigger_id=trigger_id, outcome=kind, **fields))


def state(router: str, command_id: str, *, accepted: bool, reason: str, phase: Phase = Phase.CANARY) -> bytes:
    answer = CommandOutcome(command_id=command_id, kind=CommandKind.START, accepted=accepted, reason=reason, at=1.0)
    return msgspec.json.encode(RolloutState(router_id=router, phase=phase, stage_index=0, last_command=answer))


def test_a_publication_waits_for_every_routers_canary() -> None:
    progress = TriggerProgress("manual-1")
    assert not observe(progress, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.REJECTED, trigger_id="other"))
    assert observe(
        progress, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, version="v2", router_ids=["a", "b"])
    )
    assert progress.waiting_for == ["a", "b"] and not progress.finished
    assert judge(progress, 5)[0] == 3  # published, but no canary seen yet
    # A state answering another command (an operator's, the verified record) is not the answer.
    assert not observe(progress, TOPICS, TOPICS.rollout_state, state("a", "someone-else", accepted=True, reason="x"))
    verified = pipeline_command_id("v2", "a", CommandKind.ARTIFACT_VERIFIED)
    assert not observe(progress, TOPICS, TOPICS.rollout_state, state("a", verified, accepted=True, reason="x"))
    start_a = pipeline_command_id("v2", "a", CommandKind.START)
    assert observe(
        progress, TOPICS, TOPICS.rollout_state, state("a", start_a, accepted=True, reason="canary v2 started")
    )
    assert progress.waiting_for == ["b"]
    start_b = pipeline_command_id("v2", "b", CommandKind.START)
    assert observe(
        progress,
        TOPICS,
        TOPICS.rollout_state,
        state("b", start_b, accepted=False, reason="router stopped by alice", phase=Phase.EMERGENCY_STOPPED),
    )
    assert progress.finished and not progress.succeeded
    code, line = judge(progress, 5)
    assert code == 1 and "v2 canary on b refused: router stopped by alice" in line


def test_refusals_end_the_wait_with_the_reason() -> None:
    rejected = TriggerProgress("manual-1")
    observe(
        rejected,
        TOPICS,
        TOPICS.training_outcomes,
        outcome(OutcomeKind.REJECTED, reason="too few rows for a decision", stopped_at="validation"),
    )
    assert rejected.finished and judge(rejected, 5) == (
        1,
        "bifrost-opt: error: rejected at validation: too few rows for a decision",
    )
    unverified = TriggerProgress("manual-1")
    observe(
        unverified, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, version="v2", router_ids=["a"])
    )
    letter = DeadLetter(
        source_topic=TOPICS.artifacts,
        partition=0,
        offset=3,
        reason=RejectReason.UNVERIFIED,
        error="artifact v2 rejected: bad signature",
        original_b64="",
    )
    assert observe(unverified, TOPICS, TOPICS.dlq, msgspec.json.encode(letter))
    assert unverified.finished and judge(unverified, 5)[0] == 1
    unauthorized = TriggerProgress("manual-1")
    observe(
        unauthorized, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, version="v2", router_ids=["a"])
    )
    start = RolloutCommand(
        command_id=pipeline_command_id("v2", "a", CommandKind.START),
        router_id="a",
        kind=CommandKind.START,
        artifact="v2",
    )
    letter = DeadLetter(
        source_topic=TOPICS.rollout_commands,
        partition=0,
        offset=9,
        reason=RejectReason.UNAUTHORIZED,
        error="unknown_key: pipeline",
        original_b64=base64.b64encode(msgspec.json.encode(start)).decode(),
    )
    assert observe(unauthorized, TOPICS, TOPICS.dlq, msgspec.json.encode(letter))
    assert "unauthorized: unknown_key: pipeline" in judge(unauthorized, 5)[1]


def test_no_answer_is_said_plainly_and_garbage_is_ignored() -> None:
    progress = TriggerProgress("manual-1")
    assert not observe(progress, TOPICS, TOPICS.training_outcomes, b"{not json")
    assert not observe(progress, TOPICS, TOPICS.rollout_state, b"[]")
    code, line = judge(progress, 30)
    assert code == 3 and "no trainer answered within 30 s" in line


def test_an_answer_read_before_the_outcome_still_counts() -> None:
    # The consumer reads topics in no fixed order: the worker's refusal of the canary start can be
    # fetched before the trainer's outcome that names the version (seen in an integration run).
    progress = TriggerProgress("manual-1")
    start = pipeline_command_id("v2", "a", CommandKind.START)
    refused = state("a", start, accepted=False, reason="a rollout of v1 is canary")
    assert not observe(progress, TOPICS, TOPICS.rollout_state, refused)
    assert not observe(progress, TOPICS, TOPICS.rollout_state, state("a", "someone-else", accepted=True, reason="x"))
    assert observe(
        progress, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, version="v2", router_ids=["a"])
    )
    assert progress.finished and progress.canaries["a"].reason == "a rollout of v1 is canary"
    assert not progress.early and progress.early_bytes == 0
    assert "early" not in progress.as_dict()


def test_early_records_are_bounded_newest_kept(monkeypatch: Any) -> None:
    import bifrost.client.training as training

    monkeypatch.setattr(training, "EARLY_RECORDS_BYTES", 1000)
    progress = TriggerProgress("manual-1")
    for i in range(50):
        observe(progress, TOPICS, TOPICS.rollout_state, state("a", f"other-{i}", accepted=True, reason="x" * 40))
    start = pipeline_command_id("v2", "a", CommandKind.START)
    observe(progress, TOPICS, TOPICS.rollout_state, state("a", start, accepted=True, reason="canary v2 started"))
    assert progress.early_bytes <= 1000 and len(progress.early) < 51
    observe(progress, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, version="v2", router_ids=["a"]))
    assert progress.succeeded and progress.canaries["a"].reason == "canary v2 started"


def letter_of(source: str, error: str, *, key: bytes | None = None, original: bytes = b"") -> bytes:
    return msgspec.json.encode(
        DeadLetter(
            source_topic=source,
            partition=0,
            offset=1,
            reason=RejectReason.UNVERIFIED,
            error=error,
            original_b64=base64.b64encode(original).decode(),
            key_b64=None if key is None else base64.b64encode(key).decode(),
        )
    )


def test_unrelated_dead_letters_before_the_outcome_do_not_push_the_answer_out(monkeypatch: Any) -> None:
    import bifrost.client.training as training

    monkeypatch.setattr(training, "EARLY_RECORDS_BYTES", 20_000)
    progress = TriggerProgress("manual-1")
    start = pipeline_command_id("v2", "a", CommandKind.START)
    refused = state("a", start, accepted=False, reason="a rollout of v1 is canary")
    observe(progress, TOPICS, TOPICS.rollout_state, refused)
    for _ in range(200):  # poison events of the input topics: DLQ traffic with nothing to do with the trigger
        observe(progress, TOPICS, TOPICS.dlq, letter_of(TOPICS.routing_events, "bad json", original=b"x" * 8000))
    observe(progress, TOPICS, TOPICS.rollout_state, b"{not json")
    assert len(progress.early) == 1
    observe(progress, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, version="v2", router_ids=["a"]))
    assert judge(progress, 900) == (1, "bifrost-opt: error: v2 canary on a refused: a rollout of v1 is canary")


def test_every_kept_record_counts_its_overhead_against_the_bound() -> None:
    import bifrost.client.training as training

    progress = TriggerProgress("manual-1")
    tiny = state("a", "x", accepted=True, reason="")
    for _ in range(100_000):
        progress.keep_early(TOPICS.rollout_state, tiny)
    per_record = len(tiny) + training.EARLY_RECORD_OVERHEAD
    assert len(progress.early) == training.EARLY_RECORDS_BYTES // per_record
    assert progress.early_bytes <= training.EARLY_RECORDS_BYTES


def test_a_dead_lettered_announcement_is_matched_by_its_key_not_a_prefix_of_the_text() -> None:
    def verdict(letter: bytes) -> int:
        progress = TriggerProgress("manual-1")
        observe(progress, TOPICS, TOPICS.dlq, letter)  # early or late: the same answer
        observe(
            progress, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, version="v2", router_ids=["a"])
        )
        return judge(progress, 5)[0]

    # Keyed by version, as the trainer publishes: whatever the error text says.
    assert verdict(letter_of(TOPICS.artifacts, "announced v2 but the signed artifact is v9", key=b"v2")) == 1
    assert verdict(letter_of(TOPICS.artifacts, "internal error while checking the announcement", key=b"v2")) == 1
    assert verdict(letter_of(TOPICS.artifacts, "artifact v20 rejected: bad signature", key=b"v20")) == 3
    # No key: the version must stand alone in the text.
    assert verdict(letter_of(TOPICS.artifacts, "artifact v2 rejected: bad signature")) == 1
    assert verdict(letter_of(TOPICS.artifacts, "artifact v2.1 rejected: bad signature")) == 3
    assert verdict(letter_of(TOPICS.artifacts, "artifact v20 rejected: bad signature")) == 3
    assert verdict(letter_of(TOPICS.artifacts, "artifact v2 rejected", key=b"%%%not base64")) == 3


def test_a_publication_without_a_version_or_with_an_absurd_stage_ends_plainly() -> None:
    import json

    progress = TriggerProgress("manual-1")
    observe(progress, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, router_ids=["a"]))
    code, line = judge(progress, 5)
    assert progress.finished and code == 1 and "without an artifact version" in line
    progress = TriggerProgress("manual-1")
    observe(progress, TOPICS, TOPICS.training_outcomes, outcome(OutcomeKind.PUBLISHED, version="v2", router_ids=["a"]))
    answer = CommandOutcome(
        command_id=pipeline_command_id("v2", "a", CommandKind.START),
        kind=CommandKind.START,
        accepted=True,
        reason="canary v2 started",
        at=1.0,
    )
    absurd = RolloutState(router_id="a", phase=Phase.CANARY, stage_index=0, stages=[1e308], last_command=answer)
    assert observe(progress, TOPICS, TOPICS.rollout_state, msgspec.json.encode(absurd))
    assert progress.canaries["a"].stage_percent is None
    json.dumps(progress.as_dict(), allow_nan=False)
