"""The worker's listener for "apply this recommendation" commands (a thin shell over :mod:`.apply`).

One consumer group (``<app_id>-recommendation-commands``) across the workers, so one of them
handles each command. For each: decode (garbage → DLQ ``schema``), look the recommendation up
in the optimizer's ledger of ``recommendations`` and its earlier answer in the ledger of
``recommendation-outcomes``, decide, then send the DLQ letter, or the trigger and the answer
(keyed by recommendation id, compacted), and commit the command's offset. A crash before the
commit re-handles the command: the trigger id and the "already applied" answer make that
harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from bifrost.config import Settings
from bifrost.kafka.producer import new_producer
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import RejectReason, dead_letter
from bifrost.schemas.recommendations import Recommendation, RecommendationApplied, RecommendationCommand
from bifrost.streams.optimizer import metrics
from bifrost.streams.optimizer.apply import decide_apply
from bifrost.streams.optimizer.ledger import TopicLedger
from bifrost.streams.rollout.auth import Keyring

log = logging.getLogger("bifrost.optimizer")
_command = msgspec.json.Decoder(RecommendationCommand)
_applied = msgspec.json.Decoder(RecommendationApplied)


def applied_record(key: bytes | None, value: bytes | None) -> tuple[str, RecommendationApplied] | None:
    """A ledger entry for ``recommendation-outcomes``: keep accepted answers only (refusals do not apply)."""
    if not value:
        return None
    try:
        answer = _applied.decode(value)
    except (msgspec.DecodeError, RecursionError):
        return None
    return (answer.recommendation_id, answer) if answer.accepted else None


class ApplyListener:
    """Consumes ``recommendation-commands``; answers on ``recommendation-outcomes``."""

    def __init__(self, settings: Settings, keyring: Keyring, recommendations: TopicLedger[Recommendation]) -> None:
        self.settings = settings
        self.keyring = keyring
        self.recommendations = recommendations
        self.outcomes: TopicLedger[RecommendationApplied] = TopicLedger(
            settings, settings.topics.recommendation_outcomes, applied_record
        )
        self.handled = 0

    async def run(self) -> None:
        """Run forever (a worker task); Kafka errors are logged and the loop starts again."""
        ledger = asyncio.ensure_future(self.outcomes.run())
        try:
            while True:
                try:
                    await self._consume()
                except asyncio.CancelledError:
                    raise
                except (KafkaError, OSError) as exc:
                    log.warning("event=optimizer.apply.error error=%r", str(exc)[:300])
                    await asyncio.sleep(2.0)
        finally:
            ledger.cancel()

    async def _consume(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            s.topics.recommendation_commands,
            bootstrap_servers=s.kafka_bootstrap,
            group_id=f"{s.app_id}-recommendation-commands",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=f"{s.app_id}-apply",
            **s.kafka_options(),
        )
        producer = new_producer(s.kafka_bootstrap, client_id=f"{s.app_id}-apply", client_options=s.kafka_options())
        await consumer.start()
        try:
            await producer.start()
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, records in batches.items():
                    for record in records:
                        await self._handle(record, producer)
                        await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})
                        self.handled += 1
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle(self, record: ConsumerRecord, producer: AIOKafkaProducer) -> None:
        s = self.settings
        try:
            command = _command.decode(record.value or b"")
        except (msgspec.DecodeError, RecursionError) as exc:
            await self._dead_letter(producer, record, RejectReason.SCHEMA, f"not a recommendation command: {exc}"[:500])
            metrics.APPLIED.labels("invalid").inc()
            return
        await self.recommendations.sync()
        await self.outcomes.sync()
        decision = decide_apply(
            command,
            self.recommendations.values.get(command.recommendation_id),
            self.outcomes.values.get(command.recommendation_id),
            self.keyring,
            wall=time.time(),
            max_age=s.command_max_age_seconds,
        )
        if decision.unauthorized is not None:
            log.warning(
                "event=optimizer.apply.unauthorized recommendation=%s command=%s key=%r check=%s",
                command.recommendation_id,
                command.command_id,
                command.key_id[:64],
                decision.unauthorized.check.value,
            )
            await self._dead_letter(producer, record, RejectReason.UNAUTHORIZED, str(decision.unauthorized))
            metrics.APPLIED.labels("unauthorized").inc()
            return
        assert decision.outcome is not None
        if decision.trigger is not None:
            await producer.send_and_wait(
                s.topics.training_triggers, encode(decision.trigger), key=decision.trigger.trigger_id.encode()
            )
        await producer.send_and_wait(
            s.topics.recommendation_outcomes, encode(decision.outcome), key=command.recommendation_id.encode()
        )
        if decision.outcome.accepted and not decision.outcome.already_applied:
            self.outcomes.note(command.recommendation_id, decision.outcome)
        metrics.APPLIED.labels(
            "already_applied"
            if decision.outcome.already_applied
            else "accepted"
            if decision.outcome.accepted
            else "refused"
        ).inc()
        log.info(
            "event=optimizer.apply recommendation=%s by=%s accepted=%s trigger=%s reason=%r",
            command.recommendation_id,
            decision.outcome.applied_by,
            decision.outcome.accepted,
            decision.outcome.trigger_id or "-",
            decision.outcome.reason,
        )

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: ConsumerRecord, reason: RejectReason, error: str
    ) -> None:
        letter = dead_letter(record, reason, error, time.time(), max_payload_bytes=self.settings.dlq_max_payload_bytes)
        await producer.send_and_wait(self.settings.topics.dlq, encode(letter), key=record.topic.encode())


__all__ = ["ApplyListener", "applied_record"]
