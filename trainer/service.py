"""`bifrost-opt trainer`: consume training triggers, retrain, publish signed artifacts.

One aiokafka consumer group (``<app_id>-trainer``) reads ``training-triggers``, so one
trainer acts on each trigger. A trigger is handled at most once: its id goes into a
ledger (one file per id under the runs folder) when the run ends. The offset is
committed only after that, so a trainer killed mid-run handles the trigger again after
a restart; the artifact store writes versions atomically, so the killed run leaves no
partial artifact.

Outcomes, kept in the ledger and the run folder (``report.json`` / ``report.md``):

* ``published`` — stored, made current, announced on ``artifacts``;
* ``rejected`` — data quality or validation failed; nothing published (final);
* ``skipped`` — nothing to do yet (no current artifact, no warehouse); not recorded as
  handled, so the same trigger id can be sent again once the cause is fixed.

Each outcome is also published on ``training-outcomes`` (keyed by trigger id, a
:class:`~bifrost.schemas.triggers.TrainingOutcome`; a re-delivered id repeats its outcome
with ``duplicate`` set), before the offset is committed: ``bifrost-opt retrain --wait``
and other tools follow a trigger to its end there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.common.files import write_atomic
from bifrost.kafka.producer import start_producer
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.router.artifact import encode
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.catalog import CatalogEntry, parse_aliases, parse_sources
from bifrost.schemas.triggers import OutcomeKind, TrainingOutcome, TrainingTrigger
from bifrost.storage.artifact_store import ArtifactStore, StoreError
from bifrost.storage.dataset import DatasetError, FullInfoDataset, load_dataset
from bifrost.storage.logged import LoggedData, WarehouseError, load_window
from bifrost.trainer import metrics
from bifrost.trainer.catalog_prices import ModelPrice, read_catalog, reprice
from bifrost.trainer.retrain import RetrainConfig, RetrainReport, RetrainStopped, retrain_from_logs
from bifrost.trainer.settings import TrainerSettings

log = logging.getLogger("bifrost.trainer")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a trigger ended (the ledger entry)."""

    trigger_id: str
    outcome: str
    reason: str = ""
    version: str | None = None
    announced: bool = False
    finished_at: float = 0.0
    stopped_at: str = ""


@dataclass(frozen=True, slots=True)
class Ledger:
    """Handled trigger ids: ``<runs>/<safe id>/outcome.json``, written atomically."""

    root: Path

    def folder(self, trigger_id: str) -> Path:
        safe = _UNSAFE.sub("_", trigger_id)[:80]
        return self.root / f"{safe}-{hashlib.sha256(trigger_id.encode()).hexdigest()[:10]}"

    def get(self, trigger_id: str) -> Outcome | None:
        try:
            return msgspec.json.decode((self.folder(trigger_id) / "outcome.json").read_bytes(), type=Outcome)
        except (FileNotFoundError, msgspec.DecodeError):
            return None

    def put(self, outcome: Outcome) -> None:
        folder = self.folder(outcome.trigger_id)
        write_atomic(folder / "outcome.json", msgspec.json.encode(outcome))

    def write_report(self, trigger_id: str, report: RetrainReport) -> Path:
        folder = self.folder(trigger_id)
        write_atomic(folder / "report.json", report.to_json())
        write_atomic(folder / "report.md", report.to_markdown().encode())
        return folder


class TrainerService:
    """The trainer loop. ``run(stop_after=n)`` returns after ``n`` triggers (tests)."""

    def __init__(self, settings: TrainerSettings, signing_key: Ed25519PrivateKey) -> None:
        self.settings = settings
        self.key = signing_key
        self.store = ArtifactStore(settings.artifact_store)
        self.ledger = Ledger(Path(settings.runs_dir) / "runs")
        self.handled = 0
        self._evaluation_set: FullInfoDataset | None = None

    async def run(self, *, stop_after: int | None = None) -> None:
        s = self.settings
        topics = s.topics
        await _ensure_topics(s)
        consumer = AIOKafkaConsumer(
            topics.training_triggers,
            bootstrap_servers=s.kafka_bootstrap,
            group_id=f"{s.app_id}-trainer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1,
            max_poll_interval_ms=30 * 60 * 1000,
            **s.kafka_options(),
        )
        await consumer.start()
        try:
            # Started inside the try: a producer that cannot start still stops the consumer.
            producer = await start_producer(s.kafka_bootstrap, client_options=s.kafka_options())
            try:
                metrics.serve(s.metrics_host, s.metrics_port)
                metrics.set_current_artifact(self.store.current())
                log.info(
                    "event=trainer.started group=%s-trainer topic=%s store=%s",
                    s.app_id,
                    topics.training_triggers,
                    self.store.root,
                )
                while stop_after is None or self.handled < stop_after:
                    batches = await consumer.getmany(timeout_ms=1000, max_records=1)
                    for records in batches.values():
                        for record in records:
                            await self.handle(record.value, producer)
                            await consumer.commit()
                            self.handled += 1
            finally:
                await producer.stop()
        finally:
            await consumer.stop()

    async def handle(self, value: bytes | None, producer: AIOKafkaProducer) -> Outcome | None:
        """Handle one trigger record; returns its outcome (None for an undecodable record)."""
        try:
            trigger = msgspec.json.decode(value or b"", type=TrainingTrigger)
        except Exception as exc:  # noqa: BLE001 - one bad record (even one nested too deep) must not stop the trainer
            log.error("event=trainer.bad_trigger reason=%r", str(exc)[:500])
            metrics.IGNORED.labels("invalid").inc()
            return None
        previous = self.ledger.get(trigger.trigger_id)
        if previous is not None and (previous.announced or previous.outcome == "rejected"):
            metrics.IGNORED.labels("duplicate").inc()
            log.info(
                "event=trainer.duplicate trigger=%s outcome=%s version=%s",
                trigger.trigger_id,
                previous.outcome,
                previous.version,
            )
            await self._publish_outcome(previous, trigger, producer, duplicate=True)
            return previous
        if previous is not None and previous.version is not None:
            outcome = previous  # stored before a crash, not announced yet
        else:
            entries = await self._catalog()
            with metrics.training_run() as run:
                outcome = await asyncio.to_thread(self._train, trigger, entries)
                run.outcome = outcome.outcome
            metrics.set_current_artifact(self.store.current())
            if outcome.outcome == "skipped":
                await self._publish_outcome(outcome, trigger, producer)
                return outcome
            self.ledger.put(outcome)
        if outcome.outcome == "published" and not outcome.announced:
            await self._announce(outcome, trigger, producer)
            outcome = msgspec.structs.replace(outcome, announced=True)
            self.ledger.put(outcome)
        await self._publish_outcome(outcome, trigger, producer)
        return outcome

    async def _publish_outcome(
        self, outcome: Outcome, trigger: TrainingTrigger, producer: AIOKafkaProducer, *, duplicate: bool = False
    ) -> None:
        """Publish the trigger's outcome on ``training-outcomes`` (keyed by trigger id)."""
        routers: list[str] = []
        parent = None
        if outcome.version is not None:
            routers = self._routers(outcome.version, trigger)
            try:
                parent = self.store.meta(outcome.version).parent
            except StoreError:  # the run report still says; the outcome must go out
                parent = None
        folder = self.ledger.folder(trigger.trigger_id)
        record = TrainingOutcome(
            trigger_id=trigger.trigger_id,
            outcome=OutcomeKind(outcome.outcome),
            reason=outcome.reason,
            version=outcome.version,
            parent=parent,
            router_ids=routers,
            stopped_at=outcome.stopped_at,
            duplicate=duplicate,
            report=str(folder / "report.md") if (folder / "report.md").exists() else "",
            finished_at=outcome.finished_at,
        )
        await producer.send_and_wait(
            self.settings.topics.training_outcomes, msgspec.json.encode(record), key=trigger.trigger_id.encode()
        )
        log.info(
            "event=trainer.outcome trigger=%s outcome=%s version=%s duplicate=%s",
            trigger.trigger_id,
            outcome.outcome,
            outcome.version,
            duplicate,
        )

    def _routers(self, version: str, trigger: TrainingTrigger) -> list[str]:
        try:
            return msgspec.json.decode((self.store.root / version / "routers.json").read_bytes(), type=list[str])
        except (FileNotFoundError, msgspec.DecodeError):
            return [trigger.router_id] if trigger.router_id else []

    async def _catalog(self) -> list[CatalogEntry]:
        """The catalog's current entries (empty when turned off, absent or unreadable: logged costs are used)."""
        if not self.settings.catalog_prices:
            return []
        try:
            entries = await read_catalog(self.settings)
        except Exception as exc:  # noqa: BLE001 - prices are an improvement; a run must not fail for them
            log.warning(
                "event=trainer.catalog.unavailable error=%r note=%r", str(exc)[:300], "training on logged costs"
            )
            return []
        log.info("event=trainer.catalog entries=%d topic=%s", len(entries), self.settings.topics.catalog)
        return entries

    def _reprice(self, data: LoggedData, entries: list[CatalogEntry]) -> tuple[LoggedData, dict[str, ModelPrice]]:
        try:
            aliases, preference = (
                parse_aliases(self.settings.catalog_aliases),
                parse_sources(self.settings.catalog_providers),
            )
        except ValueError as exc:
            log.warning(
                "event=trainer.catalog.bad_settings error=%r note=%r", str(exc), "no aliases, default preference"
            )
            aliases, preference = {}, parse_sources("openrouter,openai,gemini")
        data, prices = reprice(data, entries, aliases=aliases, preference=preference)
        for model, price in prices.items():
            log.info(
                "event=trainer.repriced model=%s entry=%s price_in=%s price_out=%s rows=%d logged_mean=%.3g "
                "repriced_mean=%.3g",
                model,
                price.entry,
                price.price_in,
                price.price_out,
                price.repriced,
                price.logged_mean_usd,
                price.repriced_mean_usd,
            )
        return data, prices

    def _train(self, trigger: TrainingTrigger, entries: list[CatalogEntry] | None = None) -> Outcome:
        s = self.settings
        log.info(
            "event=trainer.trigger trigger=%s reason=%s router=%s window_from=%.0f window_to=%.0f",
            trigger.trigger_id,
            trigger.reason.value,
            trigger.router_id or "all",
            trigger.window_from,
            trigger.window_to,
        )
        current = self.store.current()
        if current is None:
            return self._skip(
                trigger,
                f"no current artifact in {self.store.root}: bootstrap one with `bifrost-opt train --dataset FILE`",
            )
        try:
            parent = self.store.verify(current, self.key.public_key())
            data = load_window(
                s.warehouse_dir,
                s.topics.routing_events,
                s.topics.feedback,
                trigger.window_from,
                trigger.window_to,
                router_id=trigger.router_id,
            )
            evaluation_set = self._evaluation()
        except (WarehouseError, DatasetError, StoreError, ValueError) as exc:
            return self._skip(trigger, str(exc))
        data, prices = self._reprice(data, entries or [])
        config = RetrainConfig(
            trials=s.trials,
            seed=s.seed,
            min_rows=s.min_rows,
            slo_p95_ms=s.slo_p95_ms,
            max_triage_rows=s.max_triage_rows,
        )
        try:
            artifact, report = retrain_from_logs(
                data,
                parent,
                signing_key=self.key,
                config=config,
                trigger_id=trigger.trigger_id,
                router_id=trigger.router_id,
                evaluation_set=evaluation_set,
                catalog_prices={m: msgspec.to_builtins(p) for m, p in prices.items()},
            )
        except RetrainStopped as stopped:
            folder = self.ledger.write_report(trigger.trigger_id, stopped.report)
            log.warning(
                "event=trainer.rejected trigger=%s at=%s reason=%r report=%s",
                trigger.trigger_id,
                stopped.report.stopped_at,
                stopped.report.reason,
                folder / "report.md",
            )
            return Outcome(
                trigger_id=trigger.trigger_id,
                outcome="rejected",
                reason=str(stopped),
                finished_at=time.time(),
                stopped_at=str(stopped.report.stopped_at or ""),
            )
        folder = self.ledger.write_report(trigger.trigger_id, report)
        routers = (
            sorted({str(r) for r in data.router_ids.tolist()}) if trigger.router_id is None else [trigger.router_id]
        )
        self.store.publish(
            encode(artifact),
            report.signature,
            reports={
                "report.json": report.to_json(),
                "report.md": report.to_markdown().encode(),
                "routers.json": msgspec.json.encode(routers),
            },
            reason=f"trigger {trigger.trigger_id}",
        )
        log.info(
            "event=trainer.published trigger=%s version=%s parent=%s sha256=%s report=%s",
            trigger.trigger_id,
            artifact.version,
            parent.version,
            report.sha256[:16],
            folder / "report.md",
        )
        return Outcome(
            trigger_id=trigger.trigger_id, outcome="published", version=artifact.version, finished_at=time.time()
        )

    def _skip(self, trigger: TrainingTrigger, reason: str) -> Outcome:
        log.error("event=trainer.skipped trigger=%s reason=%r", trigger.trigger_id, reason)
        return Outcome(trigger_id=trigger.trigger_id, outcome="skipped", reason=reason, finished_at=time.time())

    def _evaluation(self) -> FullInfoDataset | None:
        if self.settings.evaluation_set and self._evaluation_set is None:
            self._evaluation_set = load_dataset(self.settings.evaluation_set)
        return self._evaluation_set

    async def _announce(self, outcome: Outcome, trigger: TrainingTrigger, producer: AIOKafkaProducer) -> None:
        assert outcome.version is not None
        meta = self.store.meta(outcome.version)
        _, signature, digest = self.store.read(outcome.version)
        folder = self.store.root / outcome.version
        routers = self._routers(outcome.version, trigger)
        announcement = ArtifactPublished(
            version=outcome.version,
            sha256=digest,
            signature=signature,
            location=str(folder.resolve()),
            router_ids=routers,
            parent=meta.parent,
            trigger_id=trigger.trigger_id,
            created_at=meta.created_at,
            published_at=time.time(),
        )
        await producer.send_and_wait(
            self.settings.topics.artifacts, msgspec.json.encode(announcement), key=outcome.version.encode()
        )
        log.info(
            "event=trainer.announced version=%s routers=%s topic=%s",
            outcome.version,
            ",".join(routers),
            self.settings.topics.artifacts,
        )


async def _ensure_topics(s: TrainerSettings) -> None:
    """Create the trainer's topics if no worker has yet (it reads any partition count of training-triggers)."""
    topics = s.topics
    await ensure_topics(
        s.kafka_bootstrap,
        [
            TopicSpec(topics.training_triggers, s.partitions),
            TopicSpec(topics.artifacts, 1, compacted=True),
            TopicSpec(topics.training_outcomes, 1),
        ],
        client_options=s.kafka_options(),
        check_partitions=False,
    )
