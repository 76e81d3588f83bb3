"""Typed events of the wire contract: the router's PostHook event and late feedback.

Field constraints live in the types (``msgspec.Meta``), so decoding validates them and
the JSON Schema export documents them. Unknown fields are ignored for forward
compatibility; ``schema_version`` lets the contract evolve.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

SCHEMA_VERSION = 1

NonEmptyId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
EpochSeconds = Annotated[
    float,
    msgspec.Meta(ge=0, le=1e11, description="Event time, seconds since the Unix epoch (UTC)."),
]
NonNegativeFinite = Annotated[float, msgspec.Meta(ge=0, le=1e12)]
UnitInterval = Annotated[float, msgspec.Meta(ge=0, le=1)]
Count = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
# Every integer has an upper bound inside a signed 64-bit column (the Parquet warehouse
# writes int64; 2**70 would pass an unbounded ``int`` and crash the sink). Floats are
# finite without extra bounds: msgspec's JSON decoder rejects NaN/Infinity literals and
# numbers that overflow a double (1e400) as malformed or out of range.
SchemaVersion = Annotated[
    int,
    msgspec.Meta(ge=1, le=1_000_000, description="Version of the event contract the producer wrote."),
]


class Bucket(str, enum.Enum):
    """Difficulty bucket the router's triage assigned."""

    CHEAP = "cheap"
    MID = "mid"
    HARD = "hard"


class Outcome(str, enum.Enum):
    """Pairwise comparison against the baseline answer."""

    WIN = "win"
    LOSS = "loss"
    TIE = "tie"


class RoutingEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """One routed request, published by the router's PostHook after the call.

    Example:
        >>> RoutingEvent(request_id="r1", ts=1.7e9, router_id="web", arm="v1",
        ...              model="m", provider="p", bucket=Bucket.CHEAP, latency_ms=120.0,
        ...              cost_usd=0.001, success=True).arm
        'v1'
    """

    request_id: NonEmptyId
    ts: EpochSeconds
    router_id: Label
    arm: Annotated[
        str, msgspec.Meta(min_length=1, max_length=128, description="Artifact version that served the request.")
    ]
    model: Label
    provider: Label
    bucket: Bucket
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=86_400_000)]
    cost_usd: NonNegativeFinite
    success: bool
    cluster_id: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 0
    features: Annotated[list[float], msgspec.Meta(max_length=512)] = []
    tokens_in: Count = 0
    tokens_out: Count = 0
    error_kind: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    http_status: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    rate_limited: bool = False
    fallback_used: bool = False
    propensity: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    quality: UnitInterval | None = None
    win: Outcome | None = None
    schema_version: SchemaVersion = SCHEMA_VERSION


class FeedbackEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """A late quality signal for one request.

    It carries the request's router, arm, model and timestamp, so it aggregates into the
    request's window without a join. At least one of ``grade``, ``outcome`` or
    ``success`` must be set.
    """

    request_id: NonEmptyId
    ts: Annotated[float, msgspec.Meta(ge=0, le=1e11, description="The request's event time (not the feedback's).")]
    router_id: Label
    arm: Label
    model: Label
    bucket: Bucket | None = None
    grade: UnitInterval | None = None
    outcome: Outcome | None = None
    success: bool | None = None
    schema_version: SchemaVersion = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.grade is None and self.outcome is None and self.success is None:
            raise ValueError("feedback carries no signal: set grade, outcome or success")
