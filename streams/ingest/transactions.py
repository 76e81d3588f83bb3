"""One Kafka transaction per input partition and batch: state, outputs and offsets together.

Every input partition has its own transactional producer, ``transactional.id =
<app_id>-ingest-<topic>-<partition>``. Whoever is assigned the partition starts that
producer, and the broker then fences every older holder of the id (a worker that was
presumed dead, paused or partitioned away) and aborts its open transaction. So a
zombie cannot write, and each committed transaction was built on the state its writer
recovered after the last fence. aiokafka's ``send_offsets_to_transaction`` has no
consumer-group generation check (KIP-447), which is why ownership is tied to the
transactional id of the partition and not to the worker.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import InvalidProducerEpoch, KafkaError, ProducerFenced

from bifrost.kafka.producer import new_producer
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import DeadLetter
from bifrost.streams.aggregates.partial import WindowPartial, encode_partial, partition_of_key
from bifrost.streams.aggregates.stats import WindowStats

log = logging.getLogger("bifrost.ingest.txn")


class OwnershipLost(RuntimeError):
    """Another worker started this partition's producer: this one no longer owns it."""


@dataclass(slots=True)
class PartitionWrites:
    """What one input partition must write, all or nothing, encoded when folded.

    Snapshots are encoded at fold time, not at send time: the fold keeps changing the
    same partial objects while an earlier transaction is still being written, and a
    snapshot must never contain records beyond the offset its transaction commits.
    Writes of consecutive batches merge (:meth:`absorb`): the newest snapshot of a key
    wins, so a slow transaction makes the next one bigger, not the queue longer.
    """

    snapshots: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)  # key -> (partition, router, bytes)
    expired: dict[str, int] = field(default_factory=dict)  # key -> changelog partition
    dead_letters: list[DeadLetter] = field(default_factory=list)
    next_offset: int = 0
    records: int = 0
    accepted: int = 0
    # (router, arm, batch statistics): counted in Prometheus once the transaction commits.
    traffic: list[tuple[str, str, WindowStats]] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        changed: dict[str, WindowPartial],
        expired: list[str],
        dead_letters: list[DeadLetter],
        next_offset: int,
        records: int,
    ) -> PartitionWrites:
        """Encode one fold's result."""
        writes = cls(dead_letters=list(dead_letters), next_offset=next_offset, records=records)
        for key, partial in changed.items():
            writes.snapshots[key] = (partial.partition, partial.router_id, encode_partial(partial))
        for key in expired:
            writes.expired[key] = partition_of_key(key)
        return writes

    def absorb(self, later: PartitionWrites) -> None:
        """Fold a later batch's writes into these (same partition, later offsets)."""
        for key in later.snapshots:
            self.expired.pop(key, None)
        self.snapshots.update(later.snapshots)
        # An expired key keeps its last snapshot: window-partials readers still need the
        # final figures; the commit writes snapshots before changelog tombstones.
        self.expired.update(later.expired)
        self.dead_letters.extend(later.dead_letters)
        self.next_offset = max(self.next_offset, later.next_offset)
        self.records += later.records
        self.accepted += later.accepted
        self.traffic.extend(later.traffic)


@dataclass(frozen=True, slots=True)
class OutputTopics:
    changelog: str
    window_partials: str
    dlq: str


def transactional_id(app_id: str, tp: TopicPartition) -> str:
    """The transactional id that stands for ownership of input partition ``tp``."""
    return f"{app_id}-ingest-{tp.topic}-{tp.partition}"


class PartitionWriter:
    """The transactional producer of one input partition."""

    def __init__(
        self,
        tp: TopicPartition,
        *,
        bootstrap: str,
        app_id: str,
        group_id: str,
        outputs: OutputTopics,
        transaction_timeout_ms: int,
        client_options: dict[str, object] | None = None,
    ) -> None:
        self.tp = tp
        self._group_id = group_id
        self._outputs = outputs
        self._producer = new_producer(
            bootstrap,
            transactional_id=transactional_id(app_id, tp),
            transaction_timeout_ms=transaction_timeout_ms,
            client_id=f"{app_id}-ingest-{tp.topic}-{tp.partition}",
            # Sends are flushed by the commit anyway; lingering would only add latency.
            linger_ms=0,
            # aiokafka retries AddOffsetsToTxn (CONCURRENT_TRANSACTIONS, while the previous
            # commit's markers are written) and produce requests after this back-off;
            # its 100 ms default dominated a transaction's duration.
            retry_backoff_ms=10,
            max_batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            client_options=client_options,
        )
        self._started = False

    async def start(self) -> None:
        """Connect and register the transactional id (this fences older holders)."""
        await self._producer.start()
        self._started = True
        # The producer id is fetched in the background; waiting for it here makes the
        # fence (and the abort of a predecessor's open transaction) happen before we
        # read the changelog, not at the first batch.
        txn = self._producer._txn_manager  # noqa: SLF001 - aiokafka has no public "init_transactions"
        if txn is not None:
            await txn.wait_for_pid()

    async def commit(self, writes: PartitionWrites) -> None:
        """Write ``writes`` and commit the input offset in one transaction.

        Raises :class:`OwnershipLost` when fenced; any other failure aborts the
        transaction (if the producer still can) and re-raises: the caller then restores
        the partition's state from Kafka.
        """
        producer = self._producer
        outputs = self._outputs
        try:
            await producer.begin_transaction()
            deliveries: list[asyncio.Future[object]] = []
            for key, (partition, router_id, raw) in writes.snapshots.items():
                deliveries.append(await producer.send(outputs.changelog, raw, key=key.encode(), partition=partition))
                deliveries.append(await producer.send(outputs.window_partials, raw, key=orjson.dumps(router_id)))
            for key, partition in writes.expired.items():
                deliveries.append(await producer.send(outputs.changelog, None, key=key.encode(), partition=partition))
            for letter in writes.dead_letters:
                deliveries.append(await producer.send(outputs.dlq, encode(letter), key=letter.source_topic.encode()))
            await producer.send_offsets_to_transaction({self.tp: writes.next_offset}, self._group_id)
            # A failed delivery must never be followed by a commit of the offsets.
            await asyncio.gather(*deliveries)
            await producer.commit_transaction()
        except (ProducerFenced, InvalidProducerEpoch) as exc:
            raise OwnershipLost(f"{self.tp.topic}:{self.tp.partition} was taken over by another worker") from exc
        except (TimeoutError, KafkaError, OSError):
            await self._try_abort()
            raise

    async def _try_abort(self) -> None:
        txn = self._producer._txn_manager  # noqa: SLF001 - aiokafka exposes no transaction state publicly
        if txn is None or not txn.is_in_transaction() or txn.is_fatal_error():
            return
        try:
            await asyncio.wait_for(self._producer.abort_transaction(), timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - the next owner's fence aborts it anyway
            log.warning("event=ingest.txn.abort_failed partition=%s:%d error=%r", self.tp.topic, self.tp.partition, exc)

    async def close(self) -> None:
        """Abort an open transaction (best effort) and disconnect.

        Also after a failed :meth:`start`: aiokafka keeps the connections it opened.
        """
        if self._started:
            self._started = False
            await self._try_abort()
        try:
            await asyncio.wait_for(self._producer.stop(), timeout=10.0)
        except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
            log.warning("event=ingest.txn.close_failed partition=%s:%d error=%r", self.tp.topic, self.tp.partition, exc)
