"""Synthetic router traffic (pure and seeded): who served what, how fast, how well."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bifrost.schemas.events import Bucket, FeedbackEvent, Outcome, RoutingEvent


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How one model behaves: latency distribution, failures, price and quality."""

    name: str
    provider: str
    latency_median_ms: float
    latency_sigma: float = 0.35
    error_rate: float = 0.01
    rate_limit_rate: float = 0.002
    usd_per_1k_tokens: float = 0.001
    quality_mean: float = 0.8
    win_probability: float = 0.5


@dataclass(frozen=True, slots=True)
class ArmEffect:
    """How an arm (artifact version) shifts the models it uses: for regression drills."""

    latency_factor: float = 1.0
    error_factor: float = 1.0
    cost_factor: float = 1.0
    quality_delta: float = 0.0
    win_delta: float = 0.0


DEFAULT_MODELS: tuple[ModelProfile, ...] = (
    ModelProfile("small-fast", "acme", 250.0, usd_per_1k_tokens=0.0002, quality_mean=0.82, win_probability=0.86),
    ModelProfile("mid-general", "acme", 600.0, usd_per_1k_tokens=0.002, quality_mean=0.88, win_probability=0.9),
    ModelProfile(
        "large-reasoner",
        "frontier",
        1400.0,
        latency_sigma=0.45,
        usd_per_1k_tokens=0.015,
        quality_mean=0.93,
        win_probability=0.93,
    ),
)
BUCKET_MODEL = {Bucket.CHEAP: 0, Bucket.MID: 1, Bucket.HARD: 2}
BUCKET_MIX = ((Bucket.CHEAP, 0.5), (Bucket.MID, 0.3), (Bucket.HARD, 0.2))


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    """What to simulate. Rates and durations are in simulated time."""

    routers: tuple[str, ...] = ("router-a",)
    arms: dict[str, float] = field(default_factory=lambda: {"v1": 0.9, "v2": 0.1})
    arm_effects: dict[str, ArmEffect] = field(default_factory=dict)
    models: tuple[ModelProfile, ...] = DEFAULT_MODELS
    rate_per_second: float = 100.0
    duration_seconds: float = 3600.0
    start_ts: float = 0.0
    malformed_fraction: float = 0.0
    feedback_fraction: float = 0.0
    seed: int = 7


@dataclass(frozen=True, slots=True)
class Generated:
    """One simulated request: the event (or malformed bytes) and optional feedback.

    ``row`` is the dataset row a replayed request came from (None for synthetic traffic).
    """

    ts: float
    event: RoutingEvent | None
    malformed: bytes | None = None
    feedback: FeedbackEvent | None = None
    row: int | None = None


MALFORMED_SAMPLES: tuple[bytes, ...] = (
    b"{not json",
    b'{"request_id": "m", "ts": 1}',
    b'{"request_id":"m","ts":1,"router_id":"r","arm":"a","model":"m","provider":"p","bucket":"cheap","latency_ms":-5,"cost_usd":0,"success":true}',
    b'{"request_id":"m","ts":1,"router_id":"r","arm":"a","model":"m","provider":"p","bucket":"cheap","latency_ms":5,"cost_usd":1e999,"success":true}',
    b'{"request_id":"m","ts":99999999999,"router_id":"r","arm":"a","model":"m","provider":"p","bucket":"cheap","latency_ms":5,"cost_usd":0,"success":true}',
    b'{"request_id":"m","ts":1,"router_id":"r","arm":"a","model":"m","provider":"p","bucket":"tiny","latency_ms":5,"cost_usd":0,"success":"yes"}',
    b"[1, 2, 3]",
    b'{"pad": "' + b"x" * 70_000 + b'"}',
)


WeightLookup = Callable[[str], Mapping[str, float] | None]
TrafficSource = Callable[[WeightLookup | None], Iterator[Generated]]
"""Anything that yields simulated requests given live weights: ``generate`` or a replay."""


class Schedule(Protocol):
    """The timing part of a traffic config (synthetic or replayed)."""

    @property
    def rate_per_second(self) -> float: ...
    @property
    def duration_seconds(self) -> float: ...
    @property
    def start_ts(self) -> float: ...
    @property
    def malformed_fraction(self) -> float: ...


def ticks(config: Schedule, rng: random.Random) -> Iterator[tuple[int, float, Generated | None]]:
    """``(i, ts, malformed)`` per request slot of ``config``: evenly spaced in simulated time.

    ``malformed`` is the record to send instead of a request (drawn with ``rng`` at
    ``malformed_fraction``), else None.
    """
    total = int(config.rate_per_second * config.duration_seconds)
    step = 1.0 / config.rate_per_second
    for i in range(total):
        ts = config.start_ts + i * step
        if config.malformed_fraction and rng.random() < config.malformed_fraction:
            yield i, ts, Generated(ts=ts, event=None, malformed=MALFORMED_SAMPLES[i % len(MALFORMED_SAMPLES)])
        else:
            yield i, ts, None


def generate(config: TrafficConfig, weights: WeightLookup | None = None) -> Iterator[Generated]:
    """Yield simulated requests in event-time order, evenly spaced at the configured rate.

    ``weights`` (e.g. what rollout-state says) overrides ``config.arms`` per router
    whenever it returns a mapping; the simulator then obeys the rollout controller.
    """
    rng = random.Random(config.seed)
    arm_names = list(config.arms)
    arm_weights = [config.arms[a] for a in arm_names]
    buckets = [b for b, _ in BUCKET_MIX]
    bucket_weights = [w for _, w in BUCKET_MIX]
    for i, ts, malformed in ticks(config, rng):
        if malformed is not None:
            yield malformed
            continue
        router = config.routers[i % len(config.routers)]
        live = weights(router) if weights is not None else None
        if live:
            arm = rng.choices(list(live), list(live.values()))[0]
        else:
            arm = rng.choices(arm_names, arm_weights)[0]
        bucket = rng.choices(buckets, bucket_weights)[0]
        model = config.models[min(BUCKET_MODEL[bucket], len(config.models) - 1)]
        event = _request(rng, i, ts, router, arm, bucket, model, config.arm_effects.get(arm, ArmEffect()))
        feedback = None
        if config.feedback_fraction and rng.random() < config.feedback_fraction:
            feedback = _feedback(rng, event, model, config.arm_effects.get(arm, ArmEffect()))
        yield Generated(ts=ts, event=event, feedback=feedback)


def _request(
    rng: random.Random,
    i: int,
    ts: float,
    router: str,
    arm: str,
    bucket: Bucket,
    model: ModelProfile,
    effect: ArmEffect,
) -> RoutingEvent:
    latency = model.latency_median_ms * effect.latency_factor * math.exp(rng.gauss(0.0, model.latency_sigma))
    rate_limited = rng.random() < model.rate_limit_rate
    failed = rate_limited or rng.random() < min(1.0, model.error_rate * effect.error_factor)
    tokens_in = int(rng.lognormvariate(6.0, 0.8))
    tokens_out = 0 if failed else int(rng.lognormvariate(5.0, 0.7))
    cost = (tokens_in + tokens_out) / 1000.0 * model.usd_per_1k_tokens * effect.cost_factor
    return RoutingEvent(
        request_id=f"sim-{router}-{i}",
        ts=ts,
        router_id=router,
        arm=arm,
        model=model.name,
        provider=model.provider,
        bucket=bucket,
        cluster_id=rng.randrange(16),
        features=[round(rng.random(), 4) for _ in range(8)],
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost,
        latency_ms=latency,
        success=not failed,
        error_kind=("rate_limited" if rate_limited else "upstream_error") if failed else None,
        http_status=(429 if rate_limited else 502) if failed else 200,
        rate_limited=rate_limited,
        propensity=0.9,
    )


def _feedback(rng: random.Random, event: RoutingEvent, model: ModelProfile, effect: ArmEffect) -> FeedbackEvent:
    grade = min(1.0, max(0.0, rng.gauss(model.quality_mean + effect.quality_delta, 0.1)))
    p_win = min(1.0, max(0.0, model.win_probability + effect.win_delta))
    roll = rng.random()
    outcome = Outcome.WIN if roll < p_win else (Outcome.TIE if roll < p_win + 0.04 else Outcome.LOSS)
    return FeedbackEvent(
        request_id=event.request_id,
        ts=event.ts,
        router_id=event.router_id,
        arm=event.arm,
        model=event.model,
        bucket=event.bucket,
        grade=round(grade, 4),
        outcome=outcome,
    )
