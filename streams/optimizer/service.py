"""The optimizer in the worker: when to analyse a router, gathering its data, publishing the findings.

**Who analyses.** Exactly one worker per router: the one that owns the router's partition
of the windowed tables (it also runs the router's rollout controller). A leader-only
timer could not read the tables of routers other workers own without fetching them over
HTTP; the owner already holds them, and Faust moves ownership with the partition.

**When.** Every ``BIFROST_OPTIMIZER_INTERVAL_SECONDS`` (6 h) of the router's *settled* event
time (the newest window every input partition has reached), in UTC-aligned slots
(00/06/12/18 h by default) — the same clock the degradation trigger uses, so a compressed
simulation of a week runs its 28 analyses in minutes, and a backlog settles before it is
judged. The first progress a worker sees for a router analyses its current slot (after a
restart too); while an analysis runs, newer slots coalesce into one more run.

**What.** The router's hourly statistics come from the tables (8 days kept,
``BIFROST_RETENTION_SECONDS``; hours older than the feedback grace are cached, since they
cannot change); the logged requests of the last ``BIFROST_OPTIMIZER_LOOKBACK_SECONDS``
come from the warehouse (Parquet) with the serving artifact (the arm that served most of
the week, read only from inside the artifact store and verified), in a thread. The pure
:func:`~bifrost.streams.optimizer.analysis.analyze` decides.

**Publishing.** Recommendations go to ``recommendations`` (keyed by kind) and alerts to
``alerts`` (through the shared :class:`~bifrost.streams.alerts.publisher.AlertProducer`),
each only if its id is not on the topic yet (:class:`~bifrost.streams.optimizer.ledger.TopicLedger`,
read back from Kafka: a restarted worker does not repeat them); a degradation trigger goes
through the worker's trigger emitter (ids the trainer handles at most once).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaProducer

from bifrost.config import Settings
from bifrost.kafka.producer import start_producer
from bifrost.router.reference import ReferenceRouter
from bifrost.schemas.alerts import Alert
from bifrost.schemas.codec import encode
from bifrost.schemas.recommendations import Recommendation
from bifrost.schemas.triggers import TrainingTrigger
from bifrost.streams.metrics.dlq_monitor import ALERTS
from bifrost.streams.optimizer import metrics
from bifrost.streams.optimizer.analysis import Analysis, OptimizerConfig, analyze
from bifrost.streams.optimizer.counterfactual import Replay, ReplayUnavailable, build_replay
from bifrost.streams.optimizer.ledger import LedgerUnavailable, TopicLedger
from bifrost.streams.optimizer.rules import Repeats, repeated_prompts
from bifrost.streams.optimizer.series import DAY, HOUR, WEEK, span_stats
from bifrost.streams.rollup.query import MergedStats
from bifrost.streams.rollup.store import RouterWindows

log = logging.getLogger("bifrost.optimizer")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_recommendation = msgspec.json.Decoder(Recommendation)
_alert = msgspec.json.Decoder(Alert)


def recommendation_record(key: bytes | None, value: bytes | None) -> tuple[str, Recommendation] | None:
    """A ledger entry for a ``recommendations`` record (None for what does not decode)."""
    if not value:
        return None
    try:
        rec = _recommendation.decode(value)
    except (msgspec.DecodeError, RecursionError):
        return None
    return rec.recommendation_id, rec


def alert_record(key: bytes | None, value: bytes | None) -> tuple[str, Alert] | None:
    """A ledger entry for an ``alerts`` record: its id is its key (the alert's ``alert_id``)."""
    if not value:
        return None
    try:
        alert = _alert.decode(value)
    except (msgspec.DecodeError, RecursionError):
        return None
    return alert.alert_id, alert


class HourlyRollup:
    """A router's windows merged per hour; hours past the feedback grace are cached (they no longer change)."""

    def __init__(self, windows: RouterWindows, *, window_seconds: int, mutable_seconds: int) -> None:
        self._windows = windows
        self._window_seconds = window_seconds
        self._mutable_seconds = mutable_seconds
        self._cache: dict[str, dict[int, MergedStats]] = {}

    def hours(self, router_id: str, from_ts: int, to_ts: int) -> dict[int, MergedStats]:
        """Hours starting in ``[from_ts, to_ts)`` that hold data."""
        newest = self._windows.clock(router_id) or to_ts
        frozen_before = newest - self._mutable_seconds - self._window_seconds
        cache = self._cache.setdefault(router_id, {})
        out: dict[int, MergedStats] = {}
        first = from_ts // HOUR * HOUR
        for start in range(first, to_ts, HOUR):
            merged = cache.get(start)
            if merged is None:
                merged = self._windows.merged(router_id, start, min(start + HOUR, to_ts))
                if start + HOUR <= frozen_before and start + HOUR <= to_ts:
                    cache[start] = merged
            if merged.arms:
                out[start] = merged
        for start in [s for s in cache if s < from_ts - DAY]:
            del cache[start]
        return out


@dataclass
class RouterRun:
    """Bookkeeping of one router's scheduled analyses."""

    slot: int = -1
    running: bool = False
    pending: int | None = None
    last: Analysis | None = None
    last_error: str = ""


#: A scheduled analysis needs at least this many requests in its lookback (24 h by default):
#: below it no figure or trend means anything, and 10,000 near-empty router ids would each
#: cost a full analysis. ``analyze`` on demand still runs for any router.
MIN_SCHEDULED_REQUESTS = 100


@dataclass
class OptimizerStats:
    """Counters for ``/v1/optimizer/status`` (and tests)."""

    analyses: int = 0
    published: int = 0
    suppressed: int = 0  # recommendations already on the topic (after a restart, or from another worker)
    alerts_published: int = 0
    alerts_suppressed: int = 0
    triggers: int = 0
    failures: int = 0
    skipped: int = 0  # scheduled analyses left out: fewer than MIN_SCHEDULED_REQUESTS in the lookback
    last_at: dict[str, float] = field(default_factory=dict)


class Optimizer:
    """The worker's optimizer: :meth:`on_progress` from the router loop, :meth:`analyze` on demand."""

    def __init__(
        self,
        settings: Settings,
        windows: RouterWindows,
        *,
        publish_alert: Callable[[Alert], Awaitable[None]],
        emit_trigger: Callable[[TrainingTrigger], Awaitable[None]],
        config: OptimizerConfig | None = None,
    ) -> None:
        self.settings = settings
        self.windows = windows
        self.config = config or OptimizerConfig.from_settings(settings)
        self.rollup = HourlyRollup(
            windows,
            window_seconds=settings.window_seconds,
            mutable_seconds=settings.feedback_grace_seconds + settings.grace_seconds,
        )
        self.recommendations: TopicLedger[Recommendation] = TopicLedger(
            settings, settings.topics.recommendations, recommendation_record
        )
        self.alerts: TopicLedger[Alert] = TopicLedger(settings, settings.topics.alerts, alert_record, keep=500)
        self._publish_alert = publish_alert
        self._emit_trigger = emit_trigger
        self._runs: dict[str, RouterRun] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._producer: AIOKafkaProducer | None = None
        self._publish_lock = asyncio.Lock()
        # One scheduled analysis at a time: thousands of routers crossing a period together
        # must queue here, not in the default thread pool that on-demand `analyze` (and the
        # shutdown) also wait on — an outside test with 10,000 router ids timed `analyze` out.
        self._scheduled_slot = asyncio.Semaphore(1)
        self.stats = OptimizerStats()

    # -- scheduling ---------------------------------------------------------------------------

    def on_progress(self, router_id: str) -> None:
        """Called by the router loop after a snapshot of ``router_id`` is stored (owner only)."""
        interval = self.settings.optimizer_interval_seconds
        if interval <= 0:
            return
        settled = self.windows.settled_until(router_id, self.settings.topics.routing_events)
        if settled is None:
            return
        slot = int(settled // interval)
        run = self._runs.setdefault(router_id, RouterRun())
        if slot <= run.slot:
            return
        run.slot = slot
        clock = int(slot * interval)
        if run.running:
            run.pending = clock
            return
        self._start(router_id, clock)

    def _start(self, router_id: str, clock: int) -> None:
        run = self._runs[router_id]
        run.running = True
        task = asyncio.ensure_future(self._scheduled(router_id, clock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _scheduled(self, router_id: str, clock: int) -> None:
        run = self._runs[router_id]
        try:
            async with self._scheduled_slot:
                requests = self._requests_in_lookback(router_id, clock)
                if requests < MIN_SCHEDULED_REQUESTS:
                    self.stats.skipped += 1
                    metrics.ANALYSES.labels("skipped").inc()
                    log.debug(
                        "event=optimizer.analysis.skipped router=%s clock=%d requests=%d", router_id, clock, requests
                    )
                    return
                with metrics.ANALYSIS_SECONDS.time():
                    analysis = await self.analyze(router_id, clock, scheduled=True)
            await self.publish(analysis)
            run.last, run.last_error = analysis, ""
            metrics.ANALYSES.labels("ok").inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.failures += 1
            metrics.ANALYSES.labels("failed").inc()
            run.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.exception("event=optimizer.analysis.failed router=%s clock=%d", router_id, clock)
        finally:
            run.running = False
            pending, run.pending = run.pending, None
            if pending is not None:
                self._start(router_id, pending)

    def _requests_in_lookback(self, router_id: str, clock: int) -> int:
        """Requests of ``router_id`` in the analysis lookback before ``clock`` (hours already rolled up)."""
        lookback = int(self.settings.optimizer_lookback_seconds)
        hours = self.rollup.hours(router_id, clock - lookback, clock)
        return span_stats(hours, "router", clock - lookback, clock).count

    def forget(self) -> None:
        """Partitions moved: schedule afresh from the next progress (cached hours stay valid)."""
        for run in self._runs.values():
            run.slot = -1

    # -- analysis ---------------------------------------------------------------------------

    async def analyze(self, router_id: str, clock: int | None = None, *, scheduled: bool = False) -> Analysis:
        """Analyse ``router_id`` up to ``clock`` (default: its newest closed window). Publishes nothing."""
        if clock is None:
            clock = self.windows.frontier(router_id)
            if clock is None:
                raise LookupError(f"no windows for router {router_id!r} on this worker")
        lookback = int(self.settings.optimizer_lookback_seconds)
        hours = self.rollup.hours(router_id, clock - WEEK, clock)
        arm = serving_arm(hours, clock - lookback, clock)
        started = time.monotonic()
        analysis = await asyncio.to_thread(self._analyze_blocking, router_id, clock, hours, arm)
        if scheduled:
            self.stats.analyses += 1
            self.stats.last_at[router_id] = time.time()
        log.info(
            "event=optimizer.analysis router=%s scheduled=%s clock=%d hours=%d arm=%s "
            "replayed=%d recommendations=%d "
            "alerts=%d trigger=%s seconds=%.2f notes=%r",
            router_id,
            str(scheduled).lower(),
            clock,
            analysis.hours,
            arm,
            analysis.counterfactual_rows,
            len(analysis.recommendations),
            len(analysis.alerts),
            analysis.trigger.trigger_id if analysis.trigger else "-",
            time.monotonic() - started,
            analysis.notes,
        )
        return analysis

    def _analyze_blocking(
        self, router_id: str, clock: int, hours: Mapping[int, MergedStats], arm: str | None
    ) -> Analysis:
        replay, note, repeats, created = self._logged_inputs(router_id, clock, arm)
        return analyze(
            router_id,
            clock,
            hours,
            self.config,
            replay=replay,
            replay_note=note,
            repeats=repeats,
            artifact_version=arm,
            artifact_created_at=created,
            now=time.time(),
        )

    def _logged_inputs(
        self, router_id: str, clock: int, arm: str | None
    ) -> tuple[Replay | None, str, Repeats | None, float | None]:
        """Warehouse rows → (replay through the serving artifact, why not, repeated prompts, artifact creation time)."""
        from bifrost.storage.logged import WarehouseError, load_window

        s = self.settings
        if not s.warehouse_dir or not Path(s.warehouse_dir).is_dir():
            return None, f"no warehouse folder at {s.warehouse_dir!r} (BIFROST_WAREHOUSE_DIR)", None, None
        try:
            data = load_window(
                s.warehouse_dir,
                s.topics.routing_events,
                s.topics.feedback,
                clock - s.optimizer_lookback_seconds,
                clock,
                router_id=router_id,
            )
        except (WarehouseError, OSError, ValueError) as exc:
            return None, f"warehouse not readable: {exc}", None, None
        if len(data) == 0:
            return None, "no logged requests of the router in the warehouse window", None, None
        repeats = repeated_prompts(data.features, data.ts, data.cost, ttl_seconds=self.config.rules.cache_ttl_seconds)
        if arm is None:
            return None, "no serving arm in the window", repeats, None
        try:
            router = load_router(s, arm)
        except (ArtifactUnavailable, ValueError) as exc:
            return None, f"artifact {arm}: {exc}", repeats, None
        try:
            replay = build_replay(data, router, arm=arm, max_rows=s.optimizer_max_rows)
        except ReplayUnavailable as exc:
            return None, str(exc), repeats, _created_at(router)
        return replay, "", repeats, _created_at(router)

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, analysis: Analysis) -> None:
        """Send what is new: recommendations and alerts not yet on their topics, and the trigger."""
        async with self._publish_lock:  # one analysis publishes at a time: the check-then-send is not interleaved
            await self.recommendations.sync()
            for rec in analysis.recommendations:
                if self.recommendations.seen(rec.recommendation_id):
                    self.stats.suppressed += 1
                    metrics.RECOMMENDATIONS.labels(rec.kind.value, "suppressed").inc()
                    continue
                await self._send_recommendation(rec)
                self.recommendations.note(rec.recommendation_id, rec)
                self.stats.published += 1
                metrics.RECOMMENDATIONS.labels(rec.kind.value, "published").inc()
                log.info(
                    "event=optimizer.recommendation id=%s router=%s kind=%s subject=%r priority=%d score=%.4f",
                    rec.recommendation_id,
                    rec.router_id,
                    rec.kind.value,
                    rec.subject,
                    rec.priority,
                    rec.score,
                )
            if analysis.alerts:
                await self.alerts.sync()
            for alert in analysis.alerts:
                if self.alerts.seen(alert.alert_id):
                    self.stats.alerts_suppressed += 1
                    continue
                await self._publish_alert(alert)
                self.alerts.note(alert.alert_id, alert)
                self.stats.alerts_published += 1
                ALERTS.labels(alert.kind.value).inc()
                log.warning(
                    "event=optimizer.alert id=%s kind=%s severity=%s message=%r",
                    alert.alert_id,
                    alert.kind.value,
                    alert.severity.value,
                    alert.message,
                )
            if analysis.trigger is not None:
                await self._emit_trigger(analysis.trigger)
                self.stats.triggers += 1

    async def _send_recommendation(self, rec: Recommendation) -> None:
        producer = await self._started()
        try:
            await producer.send_and_wait(self.settings.topics.recommendations, encode(rec), key=rec.kind.value.encode())
        except BaseException:
            await self.close()
            raise

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            s = self.settings
            self._producer = await start_producer(
                s.kafka_bootstrap, client_id=f"{s.app_id}-optimizer", client_options=s.kafka_options()
            )
        return self._producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def status(self) -> dict[str, object]:
        """What ``/v1/optimizer/status`` shows."""
        return {
            "interval_seconds": self.settings.optimizer_interval_seconds,
            "analyses": self.stats.analyses,
            "published": self.stats.published,
            "suppressed": self.stats.suppressed,
            "alerts_published": self.stats.alerts_published,
            "alerts_suppressed": self.stats.alerts_suppressed,
            "triggers": self.stats.triggers,
            "failures": self.stats.failures,
            "skipped": self.stats.skipped,
            "ledger_records": self.recommendations.records,
            "routers": {
                router: {
                    "slot_clock": int(run.slot * self.settings.optimizer_interval_seconds) if run.slot >= 0 else None,
                    "running": run.running,
                    "last_analysis_at": run.last.analysis_at if run.last else None,
                    "last_recommendations": [r.recommendation_id for r in run.last.recommendations] if run.last else [],
                    "last_error": run.last_error,
                }
                for router, run in sorted(self._runs.items())
            },
        }


def serving_arm(hours: Mapping[int, MergedStats], from_ts: int, to_ts: int) -> str | None:
    """The arm that served most requests in ``[from_ts, to_ts)`` (the artifact the logs mostly come from)."""
    counts: dict[str, int] = {}
    for start, hour in hours.items():
        if from_ts <= start < to_ts:
            for arm, stats in hour.arms.items():
                counts[arm] = counts.get(arm, 0) + stats.count
    if not counts:
        return None
    return max(sorted(counts), key=lambda arm: counts[arm])


class ArtifactUnavailable(RuntimeError):
    """The serving artifact cannot be read from the store or does not verify."""


def load_router(settings: Settings, version: str) -> ReferenceRouter:
    """The verified artifact ``version`` from the store (read confined to it; the version is untrusted input)."""
    from bifrost.router.artifact import ArtifactError
    from bifrost.router.keys import SigningKeyError
    from bifrost.streams.artifacts.confine import LocationRefused, read_confined
    from bifrost.streams.artifacts.listener import verify_key

    if not VERSION.match(version):
        raise ArtifactUnavailable(f"{version[:40]!r} is not an artifact version")
    root = settings.artifact_store
    try:
        data = read_confined(f"{version}/artifact.json", root)
        signature = read_confined(f"{version}/artifact.sig", root, max_bytes=4096).decode("ascii", "replace").strip()
        digest = read_confined(f"{version}/artifact.sha256", root, max_bytes=4096).decode("ascii", "replace").split()
        return ReferenceRouter.load(
            data, verify_key(settings), signature=signature, expected_sha256=digest[0] if digest else None
        )
    except (LocationRefused, OSError) as exc:
        raise ArtifactUnavailable(f"not in the artifact store ({settings.artifact_store}): {exc}") from None
    except (ArtifactError, SigningKeyError) as exc:
        raise ArtifactUnavailable(str(exc)) from None


def _created_at(router: ReferenceRouter) -> float | None:
    try:
        return datetime.fromisoformat(router.artifact.created_at.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


__all__ = ["ArtifactUnavailable", "HourlyRollup", "LedgerUnavailable", "Optimizer", "load_router", "serving_arm"]
