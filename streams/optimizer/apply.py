"""Applying a recommendation (pure): authenticate the signed command, decide the action.

Checks, in the order of rollout commands (:func:`bifrost.streams.rollout.auth.authenticate`),
naming the first that fails: ``unsigned``, ``unknown_key``, ``bad_signature``,
``insufficient_role`` (operators only: applying a recommendation can start a retrain),
``bad_nonce``, ``stale``. A refused command goes to the DLQ (reason ``unauthorized``) and
does nothing else.

Replays are harmless by construction rather than by a nonce store: the action of a
recommendation is derived from its id (the retrain trigger is ``recommendation-<id>``, which
the trainer handles at most once), and a recommendation that was applied is answered
"already applied" without a second action. ``stale`` bounds a captured command's life to
``BIFROST_COMMAND_MAX_AGE_SECONDS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bifrost.schemas.recommendation_signing import apply_signature_valid
from bifrost.schemas.recommendations import (
    ActionKind,
    Recommendation,
    RecommendationApplied,
    RecommendationCommand,
    RecommendationKind,
)
from bifrost.schemas.triggers import TrainingTrigger, TriggerReason
from bifrost.streams.rollout.auth import CommandKey, Keyring, Role, Unauthorized, verify_signed

WEEK = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class ApplyDecision:
    """What to do with one command: refuse it (``unauthorized``), or answer ``outcome`` (and send ``trigger``)."""

    unauthorized: Unauthorized | None = None
    outcome: RecommendationApplied | None = None
    trigger: TrainingTrigger | None = None


def authenticate_apply(
    command: RecommendationCommand, keyring: Keyring, *, wall: float, max_age: float
) -> CommandKey | Unauthorized:
    """The verified operator key of ``command``, or the first check it fails (the rollout commands' checks)."""

    def role_refusal(key: CommandKey) -> str | None:
        if key.role is Role.OPERATOR:
            return None
        return f"key {key.name!r} has role {key.role.value}; only operator keys apply recommendations"

    def signature_ok(public_key: Ed25519PublicKey) -> bool:
        return apply_signature_valid(command, public_key)

    return verify_signed(
        command, keyring, signature_ok=signature_ok, role_refusal=role_refusal, wall=wall, max_age=max_age
    )


def retrain_trigger(rec: Recommendation, *, requested_by: str, now: float) -> TrainingTrigger:
    """The training trigger that applies ``rec``.

    Its suggested parameters go in ``details``; its window is the week before its analysis.
    """
    details: dict[str, float | str] = {
        "recommendation_id": rec.recommendation_id,
        "recommendation_kind": rec.kind.value,
        "subject": rec.subject,
    }
    for name, value in rec.action.parameters.items():
        details[f"suggested.{name}"] = float(value) if isinstance(value, int) and not isinstance(value, bool) else value
    window_to = rec.analysis_at or now
    return TrainingTrigger(
        trigger_id=f"recommendation-{rec.recommendation_id}",
        reason=TriggerReason.MANUAL,
        window_from=window_to - WEEK,
        window_to=window_to,
        router_id=rec.router_id,
        details=details,
        requested_by=requested_by,
        created_at=now,
    )


def decide_apply(
    command: RecommendationCommand,
    recommendation: Recommendation | None,
    previous: RecommendationApplied | None,
    keyring: Keyring,
    *,
    wall: float,
    max_age: float,
) -> ApplyDecision:
    """Authenticate, then apply once: a retrain trigger or an acknowledgement, answered on the outcomes topic."""
    key = authenticate_apply(command, keyring, wall=wall, max_age=max_age)
    if isinstance(key, Unauthorized):
        return ApplyDecision(unauthorized=key)

    def answer(
        accepted: bool,
        reason: str,
        *,
        kind: RecommendationKind | None = None,
        action: ActionKind | None = None,
        trigger_id: str | None = None,
        already_applied: bool = False,
    ) -> RecommendationApplied:
        return RecommendationApplied(
            recommendation_id=command.recommendation_id,
            command_id=command.command_id,
            router_id=command.router_id,
            accepted=accepted,
            reason=reason,
            kind=kind,
            action=action,
            trigger_id=trigger_id,
            applied_by=key.name,
            already_applied=already_applied,
            applied_at=wall,
        )

    if recommendation is None:
        return ApplyDecision(
            outcome=answer(
                False,
                f"unknown recommendation {command.recommendation_id} (not on the "
                "recommendations topic, or past its retention)",
            )
        )
    if recommendation.router_id != command.router_id:
        return ApplyDecision(
            outcome=answer(
                False,
                f"recommendation {recommendation.recommendation_id} is for router "
                f"{recommendation.router_id!r}, not {command.router_id!r}",
                kind=recommendation.kind,
            )
        )
    action = recommendation.action.kind
    if previous is not None and previous.accepted:
        return ApplyDecision(
            outcome=answer(
                True,
                f"already applied by {previous.applied_by} at {previous.applied_at:.0f}; nothing sent again",
                kind=recommendation.kind,
                action=action,
                trigger_id=previous.trigger_id,
                already_applied=True,
            )
        )
    if action is ActionKind.RETRAIN:
        trigger = retrain_trigger(recommendation, requested_by=key.name, now=wall)
        return ApplyDecision(
            outcome=answer(
                True,
                f"retrain requested ({trigger.trigger_id}) with {dict(recommendation.action.parameters)}",
                kind=recommendation.kind,
                action=action,
                trigger_id=trigger.trigger_id,
            ),
            trigger=trigger,
        )
    return ApplyDecision(
        outcome=answer(
            True,
            f"acknowledged: this recommendation has no automatic action ({recommendation.title})",
            kind=recommendation.kind,
            action=action,
        )
    )
