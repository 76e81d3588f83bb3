"""Publishing simulated traffic to Kafka, paced by a time-compression factor."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, TypeVar

from bifrost.client.publisher import Publisher
from bifrost.client.simulator.model import TrafficConfig, TrafficSource, WeightLookup, generate
from bifrost.kafka.security import KafkaSecurity
from bifrost.schemas.events import FeedbackEvent, RoutingEvent
from bifrost.schemas.topics import Topics

log = logging.getLogger("bifrost.simulate")


@dataclass(slots=True)
class SimulationReport:
    """What was published: exact counts, so tests and operators can reconcile tables."""

    events: int = 0
    malformed: int = 0
    feedback: int = 0
    per_arm: Counter[str] = field(default_factory=Counter)
    per_model: Counter[str] = field(default_factory=Counter)
    first_ts: float = 0.0
    last_ts: float = 0.0
    wall_seconds: float = 0.0
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (event time, wall clock) samples

    def as_dict(self) -> dict[str, object]:
        return {
            "events": self.events,
            "malformed": self.malformed,
            "feedback": self.feedback,
            "per_arm": dict(self.per_arm),
            "per_model": dict(self.per_model),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "wall_seconds": round(self.wall_seconds, 3),
        }


class Span(Protocol):
    """What the runner needs of a traffic config (:class:`TrafficConfig`, ``ReplayConfig``)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def routers(self) -> tuple[str, ...]: ...

    @property
    def start_ts(self) -> float: ...

    @property
    def duration_seconds(self) -> float: ...


SpanT = TypeVar("SpanT", bound=Span)


class EventSink(Protocol):
    """What the runner publishes through: a :class:`Publisher` (or a test's recorder)."""

    @property
    def topics(self) -> Topics: ...

    async def publish(self, event: RoutingEvent) -> None: ...

    async def publish_feedback(self, feedback: FeedbackEvent) -> None: ...

    async def send_raw(self, topic: str, key: bytes, value: bytes) -> None: ...

    async def flush(self) -> None: ...


def anchored(config: SpanT, *, speed: float, now: float) -> SpanT:
    """Place the simulated span so that it ends at wall-clock ``now + duration/speed``.

    Events then never lie in the future, however strong the compression. ``speed <= 0``
    (as fast as possible) places the span just before ``now``.
    """
    wall_span = config.duration_seconds / speed if speed > 0 else 0.0
    return replace(config, start_ts=now + wall_span - config.duration_seconds)


async def run_simulation(
    publisher: EventSink,
    config: Span,
    *,
    speed: float = 60.0,
    progress_every_s: float = 5.0,
    weights: WeightLookup | None = None,
    report: SimulationReport | None = None,
    source: TrafficSource | None = None,
) -> SimulationReport:
    """Publish ``config``'s traffic; one simulated second takes ``1/speed`` wall seconds.

    ``speed <= 0`` publishes as fast as possible. ``weights`` makes the traffic obey
    rollout-state (see :class:`bifrost.client.rollout.WeightsFollower`). Pass ``report``
    to watch progress while it runs. ``source`` replaces the synthetic traffic model
    (``generate(config, weights)``), e.g. with a dataset replay over the same span.
    """
    report = SimulationReport() if report is None else report
    wall0 = time.monotonic()
    last_progress = wall0
    sim0 = config.start_ts
    if source is not None:
        items = source(weights)
    else:
        assert isinstance(config, TrafficConfig), "without a source, config is the synthetic traffic model"
        items = generate(config, weights)
    for i, item in enumerate(items):
        if i == 0:
            report.first_ts = item.ts
        report.last_ts = item.ts
        if item.malformed is not None:
            await publisher.send_raw(publisher.topics.routing_events, b"malformed", item.malformed)
            report.malformed += 1
        elif item.event is not None:
            await publisher.publish(item.event)
            report.events += 1
            report.per_arm[f"{item.event.router_id}/{item.event.arm}"] += 1
            report.per_model[f"{item.event.router_id}/{item.event.model}"] += 1
        if item.feedback is not None:
            await publisher.publish_feedback(item.feedback)
            report.feedback += 1
        if i % 256 == 0:
            report.timeline.append((item.ts, time.time()))
        if speed > 0 and i % 256 == 0:
            ahead = (item.ts - sim0) / speed - (time.monotonic() - wall0)
            if ahead > 0:
                await asyncio.sleep(ahead)
        now = time.monotonic()
        if now - last_progress >= progress_every_s:
            last_progress = now
            log.info(
                "event=simulate.progress published=%d malformed=%d feedback=%d sim_ts=%.0f",
                report.events,
                report.malformed,
                report.feedback,
                item.ts,
            )
    await publisher.flush()
    report.wall_seconds = time.monotonic() - wall0
    return report


async def simulate(
    bootstrap: str,
    topics: Topics,
    config: Span,
    *,
    speed: float,
    follow_rollouts: bool = True,
    progress_every_s: float = 5.0,
    report: SimulationReport | None = None,
    source: TrafficSource | None = None,
    security: KafkaSecurity | None = None,
) -> SimulationReport:
    """Publish ``config``'s traffic to Kafka, obeying rollout-state weights when asked.

    ``security`` is the TLS/SASL group of the Kafka clients (plaintext by default).

    ``source`` (default: the synthetic model of ``config``) yields the requests; see
    :func:`run_simulation`.
    """
    from bifrost.client.rollout import WeightsFollower

    follower = WeightsFollower(bootstrap, topics, set(config.routers), security=security) if follow_rollouts else None
    if follower is not None:
        follower.start()
    try:
        async with Publisher(bootstrap, topics, security=security) as publisher:
            return await run_simulation(
                publisher,
                config,
                speed=speed,
                progress_every_s=progress_every_s,
                weights=follower.lookup if follower is not None else None,
                report=report,
                source=source,
            )
    finally:
        if follower is not None:
            await follower.stop()
