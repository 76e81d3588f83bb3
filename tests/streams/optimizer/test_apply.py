"""Applying a recommendation: authentication like rollout commands, one action per recommendation."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.schemas.command_signing import CommandSigner, sign_command
from bifrost.schemas.recommendation_signing import apply_signature_valid, canonical_bytes, sign_apply
from bifrost.schemas.recommendations import (
    Action,
    ActionKind,
    Category,
    Evidence,
    Impact,
    ImpactMethod,
    Recommendation,
    RecommendationApplied,
    RecommendationCommand,
    RecommendationKind,
    recommendation_id,
)
from bifrost.schemas.rollout import CommandKind, RolloutCommand
from bifrost.schemas.triggers import TriggerReason
from bifrost.streams.optimizer.apply import ApplyDecision, decide_apply
from bifrost.streams.rollout.auth import Check, Keyring, public_line

NOW = 1_800_000_000.0
OPERATOR = CommandSigner("alice", Ed25519PrivateKey.generate())
PIPELINE = CommandSigner("pipe", Ed25519PrivateKey.generate())
KEYRING = Keyring.parse(
    (public_line("alice", "operator", OPERATOR.key) + "\n" + public_line("pipe", "pipeline", PIPELINE.key), "test")
)


def rec(action: ActionKind = ActionKind.RETRAIN, router: str = "web") -> Recommendation:
    rid = recommendation_id("cheaper_model", router, "cluster=2 model=m", "2025-06-05/7d")
    return Recommendation(
        recommendation_id=rid,
        kind=RecommendationKind.CHEAPER_MODEL,
        category=Category.COST,
        router_id=router,
        subject="cluster=2 model=m",
        period="2025-06-05/7d",
        priority=1,
        score=0.09,
        title="route cluster 2 to m",
        evidence=Evidence(window_from=NOW - 7 * 86400, window_to=NOW, samples=1000),
        impact=Impact(method=ImpactMethod.COUNTERFACTUAL, cost_per_task_change=-0.09),
        action=Action(kind=action, parameters={"cluster": 2, "model": "m"}),
        analysis_at=NOW - 3600,
    )


def command(signer: CommandSigner = OPERATOR, *, router: str = "web", at: float = NOW) -> RecommendationCommand:
    unsigned = RecommendationCommand(command_id="c1", recommendation_id=rec().recommendation_id, router_id=router)
    return sign_apply(unsigned, signer.key, signer.name, now=at)


def decide(
    cmd: RecommendationCommand, found: Recommendation | None = None, previous: RecommendationApplied | None = None
) -> ApplyDecision:
    return decide_apply(cmd, found, previous, KEYRING, wall=NOW, max_age=300.0)


def test_an_operator_applies_a_retrain_recommendation_once() -> None:
    decision = decide(command(), rec())
    assert decision.unauthorized is None and decision.outcome is not None and decision.trigger is not None
    assert decision.outcome.accepted and decision.outcome.applied_by == "alice"
    trigger = decision.trigger
    assert trigger.trigger_id == f"recommendation-{rec().recommendation_id}" == decision.outcome.trigger_id
    assert trigger.reason is TriggerReason.MANUAL and trigger.router_id == "web" and trigger.requested_by == "alice"
    assert trigger.details["suggested.cluster"] == 2.0 and trigger.details["suggested.model"] == "m"
    assert trigger.window_to == NOW - 3600 and trigger.window_to - trigger.window_from == 7 * 86400
    again = decide(command(), rec(), previous=decision.outcome)
    assert again.outcome is not None and again.outcome.accepted and again.outcome.already_applied
    assert again.trigger is None


def test_acknowledge_actions_send_nothing() -> None:
    decision = decide(command(), rec(ActionKind.ACKNOWLEDGE))
    assert decision.outcome is not None and decision.outcome.accepted and decision.trigger is None
    assert decision.outcome.action is ActionKind.ACKNOWLEDGE


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda c: msgspec.structs.replace(c, signature="", key_id=""), Check.UNSIGNED),
        (lambda c: msgspec.structs.replace(c, key_id="mallory"), Check.UNKNOWN_KEY),
        (lambda c: msgspec.structs.replace(c, router_id="other"), Check.BAD_SIGNATURE),  # every field is signed
        (lambda c: command(PIPELINE), Check.INSUFFICIENT_ROLE),
        (
            lambda c: sign_apply(msgspec.structs.replace(c, signature=""), OPERATOR.key, "alice", now=NOW, nonce="ab"),
            Check.BAD_NONCE,
        ),
        (lambda c: command(at=NOW - 301), Check.STALE),
        (lambda c: command(at=NOW + 301), Check.STALE),
    ],
)
def test_refusals_name_the_failing_check(
    mutate: Callable[[RecommendationCommand], RecommendationCommand], check: Check
) -> None:
    decision = decide(mutate(command()), rec())
    assert decision.unauthorized is not None and decision.unauthorized.check is check
    assert decision.outcome is None and decision.trigger is None


def test_a_rollout_signature_is_not_valid_for_an_apply_command() -> None:
    # Same key, different domain prefix: a signature over one kind of message never verifies the other.
    rollout = sign_command(
        RolloutCommand(command_id="c1", router_id="web", kind=CommandKind.PAUSE), OPERATOR.key, "alice", now=NOW
    )
    forged = msgspec.structs.replace(command(), signature=rollout.signature)
    assert not apply_signature_valid(forged, OPERATOR.key.public_key())
    assert canonical_bytes(command()).startswith(b"bifrost-recommendation-command/v1\n")


def test_unknown_recommendation_and_router_mismatch_are_refused_with_reasons() -> None:
    unknown = decide(command(), None)
    assert (
        unknown.outcome is not None
        and not unknown.outcome.accepted
        and "unknown recommendation" in unknown.outcome.reason
    )
    elsewhere = decide(command(router="api"), rec(router="web"))
    assert (
        elsewhere.outcome is not None
        and not elsewhere.outcome.accepted
        and "for router 'web'" in elsewhere.outcome.reason
    )
