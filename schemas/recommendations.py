"""Recommendations: what the optimizer suggests for a router, with evidence and expected impact.

Published on ``recommendations`` (keyed by ``kind``). A recommendation's
``recommendation_id`` is derived from its kind, router, subject and period
(:func:`recommendation_id`), so the same finding in the same period is the same record,
and the optimizer never publishes an id twice (it reads the topic back first).

Operators turn one into an action with a signed :class:`RecommendationCommand` on
``recommendation-commands``; the worker answers with a :class:`RecommendationApplied` on
``recommendation-outcomes`` (compacted, keyed by recommendation id).
"""

from __future__ import annotations

import enum
import hashlib
from typing import Annotated

import msgspec

RECOMMENDATION_SCHEMA_VERSION = 1
RouterId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]  # as RoutingEvent.router_id
RecommendationId = Annotated[str, msgspec.Meta(pattern=r"^rec-[0-9a-f]{20}$")]
Figures = dict[str, float | int | str | None]


class RecommendationKind(str, enum.Enum):
    """What a recommendation is about. Consumers ignore kinds they do not know."""

    CHEAPER_MODEL = "cheaper_model"  # a cheaper model matches the chosen one's quality on a cluster
    TAU_CHEAP = "tau_cheap"  # move the cheap-bucket threshold
    ALPHA_TUNING = "alpha_tuning"  # move the quality/cost knob α
    DATA_REFRESH = "data_refresh"  # retrain: label coverage low or the artifact's data old
    CACHING = "caching"  # repeated prompts could be served from a cache
    SLOW_PROVIDER = "slow_provider"  # a model/provider pushes the router's P95 up
    RATE_LIMIT_HOTSPOT = "rate_limit_hotspot"  # a model/provider answers 429 often
    THINKING_BUDGET = "thinking_budget"  # a model spends many output tokens without better quality


class Category(str, enum.Enum):
    """The goal a recommendation serves (the spec's cost, quality and performance groups)."""

    COST = "cost"
    QUALITY = "quality"
    PERFORMANCE = "performance"


class ImpactMethod(str, enum.Enum):
    """How an expected impact was computed.

    ``counterfactual``: logged requests (features, served model, propensity, outcome) replayed
    through the reference router with the changed policy, valued with the doubly robust
    off-policy estimator (IPS and SNIPS reported beside it). ``evidence``: a simpler estimate
    from the windowed metrics or logs (e.g. "if every repeat were served from a cache");
    usually an upper bound, and labelled as such in ``assumption``.
    """

    COUNTERFACTUAL = "counterfactual"
    EVIDENCE = "evidence"


class Impact(msgspec.Struct, frozen=True, kw_only=True):
    """The expected effect of following a recommendation, on the router as a whole.

    Relative changes are fractions (−0.12 = 12% lower). ``*_ci`` are two-sided
    confidence intervals at ``confidence``; None where not estimated.
    """

    method: ImpactMethod
    cost_per_task_change: float | None = None
    cost_per_task_ci: list[float] | None = None
    cost_usd_per_day: float | None = None  # absolute change at the observed volume (negative = saving)
    quality_change: float | None = None  # absolute change of mean quality (0..1 scale)
    quality_ci: list[float] | None = None
    p95_ms_change: float | None = None
    availability_change: float | None = None
    confidence: float = 0.9
    rows: int = 0  # logged requests behind the estimate
    assumption: str = ""


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """What the recommendation rests on: figures, the time window and sample sizes."""

    window_from: float
    window_to: float
    samples: int
    figures: Figures = {}
    source: str = ""  # "windows" (the worker's tables), "warehouse" (logged requests), or both


class ActionKind(str, enum.Enum):
    """What applying a recommendation does."""

    RETRAIN = "retrain"  # a training trigger carrying the suggested parameters
    ACKNOWLEDGE = "acknowledge"  # nothing automatic (provider quota, caching): recorded as applied


class Action(msgspec.Struct, frozen=True, kw_only=True):
    kind: ActionKind
    parameters: dict[str, float | int | str] = {}


class Recommendation(msgspec.Struct, frozen=True, kw_only=True):
    """One recommendation, on ``recommendations`` keyed by ``kind``.

    ``priority`` is 1 (act first) to 3; ``score`` orders recommendations within the same
    analysis (higher first). ``subject`` names what it is about within the router (e.g.
    ``cluster=3 model=qwen``); ``period`` the dedup period it belongs to.

    Example:
        >>> rec = Recommendation(recommendation_id=recommendation_id("caching", "web", "all", "2025-06-02/7d"),
        ...     kind=RecommendationKind.CACHING, category=Category.COST, router_id="web", subject="all",
        ...     period="2025-06-02/7d", priority=2, score=0.1, title="cache repeats",
        ...     evidence=Evidence(window_from=0, window_to=1, samples=10),
        ...     impact=Impact(method=ImpactMethod.EVIDENCE), action=Action(kind=ActionKind.ACKNOWLEDGE))
        >>> rec.recommendation_id.startswith("rec-")
        True
    """

    recommendation_id: RecommendationId
    kind: RecommendationKind
    category: Category
    router_id: RouterId
    subject: Annotated[str, msgspec.Meta(max_length=300)]
    period: Annotated[str, msgspec.Meta(max_length=64)]
    priority: Annotated[int, msgspec.Meta(ge=1, le=3)]
    score: float
    title: Annotated[str, msgspec.Meta(max_length=300)]
    detail: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    evidence: Evidence
    impact: Impact
    action: Action
    artifact_version: str | None = None
    analysis_at: float = 0.0  # event time the analysis looked up to
    created_at: float = 0.0  # wall clock
    schema_version: int = RECOMMENDATION_SCHEMA_VERSION


def recommendation_id(kind: str, router_id: str, subject: str, period: str) -> str:
    """The deterministic id of a finding: same kind, router, subject and period → same id.

    Example:
        >>> recommendation_id("caching", "web", "all", "2025-06-02/7d") == recommendation_id(
        ...     "caching", "web", "all", "2025-06-02/7d")
        True
    """
    digest = hashlib.sha256("\x1f".join((kind, router_id, subject, period)).encode()).hexdigest()
    return f"rec-{digest[:20]}"


class RecommendationCommand(msgspec.Struct, frozen=True, kw_only=True):
    """ "Apply this recommendation", signed by an allow-listed operator key.

    On ``recommendation-commands`` keyed by ``recommendation_id``. Signed like rollout
    commands (Ed25519 over canonical bytes with every field but ``signature``; see
    :mod:`bifrost.schemas.recommendation_signing`): the worker checks the key, role, signature,
    nonce and age, then acts once per recommendation (a replay of an applied one is
    answered "already applied" and does nothing).
    """

    command_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    recommendation_id: RecommendationId
    router_id: RouterId
    note: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    key_id: Annotated[str, msgspec.Meta(max_length=128)] = ""
    nonce: Annotated[str, msgspec.Meta(max_length=128)] = ""
    issued_at: Annotated[float, msgspec.Meta(ge=0.0, le=1e11)] = 0.0
    signature: Annotated[str, msgspec.Meta(max_length=256)] = ""


class RecommendationApplied(msgspec.Struct, frozen=True, kw_only=True):
    """The worker's answer to a :class:`RecommendationCommand` (``recommendation-outcomes``).

    ``accepted`` False carries the ``reason`` (unknown recommendation, router mismatch);
    authentication failures go to the DLQ like refused rollout commands. ``trigger_id`` is
    the training trigger a retrain action sent (deterministic: ``recommendation-<id>``).
    """

    recommendation_id: RecommendationId
    command_id: str
    router_id: RouterId
    accepted: bool
    reason: str = ""
    kind: RecommendationKind | None = None
    action: ActionKind | None = None
    trigger_id: str | None = None
    applied_by: str = ""
    already_applied: bool = False
    applied_at: float = 0.0
