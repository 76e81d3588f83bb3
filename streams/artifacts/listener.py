"""Starts a canary for every verified artifact announced on ``artifacts``.

The announcement only names the artifact; the bytes are read from its ``location`` and
must match the announced sha256 and carry a valid Ed25519 signature from the configured
key. A tampered or unsigned artifact never reaches ``rollout-commands``: it goes to the
DLQ with the reason (and is logged), like any other bad input. A verified one becomes one
``start`` command per router it was trained for; the controller then runs the canary, or
waits for ``approve`` when ``BIFROST_ROLLOUT_REQUIRE_APPROVAL`` is set.
"""

from __future__ import annotations

import logging
import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from bifrost.config import Settings
from bifrost.router.artifact import ArtifactError, load_verified
from bifrost.router.keys import PublicKeySource, SigningKeyError, find_public_key
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.codec import encode
from bifrost.schemas.dlq import RejectReason, dead_letter
from bifrost.schemas.rollout import CommandKind, RolloutCommand
from bifrost.streams.topics_admin import TopicSpec, ensure_topics

log = logging.getLogger("bifrost.artifacts")
ARTIFACT_FILE = "artifact.json"
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
_announcement_decoder = msgspec.json.Decoder(ArtifactPublished)


class Rejected(ValueError):
    """The announcement cannot start a canary; the message says why."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Accepted:
    version: str
    commands: list[RolloutCommand]


def read_announced(announcement: ArtifactPublished, *, max_bytes: int = MAX_ARTIFACT_BYTES) -> bytes:
    """The artifact bytes an announcement points at (a version folder or an artifact.json).

    Only a regular file of at most ``max_bytes`` is read: a ``location`` naming a FIFO, a
    device or a huge file (``/dev/zero``) must not block or exhaust the worker.
    """
    path = Path(announcement.location)
    try:
        if path.is_dir():
            path = path / ARTIFACT_FILE
        data = _read_regular_file(path, max_bytes)
    except OSError as exc:
        raise Rejected(RejectReason.INVALID_VALUE, f"artifact {announcement.version}: cannot read {path}: "
                                                   f"{exc.strerror or exc}") from None
    except ValueError as exc:  # an embedded NUL byte in the path
        raise Rejected(RejectReason.INVALID_VALUE, f"artifact {announcement.version}: bad location {str(path)!r}: {exc}") from None
    if data is None:
        raise Rejected(RejectReason.INVALID_VALUE, f"artifact {announcement.version}: {path} is not a regular file")
    if len(data) > max_bytes:
        raise Rejected(RejectReason.OVERSIZED, f"artifact {announcement.version}: {path} is larger than {max_bytes} bytes")
    return data


def _read_regular_file(path: Path, max_bytes: int) -> bytes | None:
    """Up to ``max_bytes + 1`` bytes of ``path``, or ``None`` if it is not a regular file.

    Opened non-blocking, so a FIFO does not wait for a writer.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read(max_bytes + 1)


def accept(value: bytes, public_key: PublicKeySource, *, now: float | None = None, max_age_s: float = 86400.0) -> Accepted:
    """Decode, verify and turn one announcement into start commands (pure but for reading the file)."""
    try:
        announcement = _announcement_decoder.decode(value)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise Rejected(RejectReason.SCHEMA, f"not an artifact announcement: {exc}") from None
    except RecursionError:
        raise Rejected(RejectReason.TOO_DEEP, "not an artifact announcement: JSON nests too deeply") from None
    except TypeError as exc:  # not bytes
        raise Rejected(RejectReason.UNDECODABLE, f"not an artifact announcement: {exc}") from None
    issued_at = time.time() if now is None else now
    if announcement.published_at and issued_at - announcement.published_at > max_age_s:
        # A new consumer group starts at the beginning of the compacted topic; old
        # announcements must not restart canaries of long-replaced artifacts.
        raise Rejected(RejectReason.TOO_LATE, f"artifact {announcement.version} was announced "
                                              f"{(issued_at - announcement.published_at) / 3600:.0f} h ago; not rolling it out")
    data = read_announced(announcement)
    try:
        artifact = load_verified(data, announcement.signature, public_key, expected_sha256=announcement.sha256)
    except ArtifactError as exc:
        raise Rejected(RejectReason.UNVERIFIED, f"artifact {announcement.version} rejected: {exc}") from None
    if artifact.version != announcement.version:
        raise Rejected(RejectReason.UNVERIFIED, f"announced {announcement.version} but the signed artifact is {artifact.version}")
    if not announcement.router_ids:
        raise Rejected(RejectReason.INVALID_VALUE, f"artifact {artifact.version} names no router to roll out to")
    commands = [
        RolloutCommand(command_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{artifact.version}/{router}").hex, router_id=router,
                       kind=CommandKind.START, artifact=artifact.version,
                       reason=f"new artifact {artifact.version} (parent {artifact.parent or '-'}, trigger "
                              f"{announcement.trigger_id or '-'})", issued_by="artifacts", issued_at=issued_at)
        for router in announcement.router_ids
    ]
    return Accepted(version=artifact.version, commands=commands)


def verify_key(settings: Settings) -> PublicKeySource:
    """``BIFROST_VERIFY_KEY`` (or the signing key variables), else ``BIFROST_VERIFY_KEY_FILE``."""
    key = find_public_key(default=settings.verify_key_file)
    if key is None:
        raise SigningKeyError(f"no artifact verification key: {settings.verify_key_file} does not exist "
                              "(set BIFROST_VERIFY_KEY_FILE or BIFROST_VERIFY_KEY)")
    return key


class ArtifactListener:
    """Consumer group ``<app_id>-artifacts``: every announcement is handled by one worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.accepted = 0
        self.rejected = 0

    async def run(self) -> None:
        s = self.settings
        topics = s.topics
        await ensure_topics(s.kafka_bootstrap, [TopicSpec(topics.artifacts, 1, compacted=True)],
                            replication_factor=s.replication_factor)
        consumer = AIOKafkaConsumer(topics.artifacts, bootstrap_servers=s.kafka_bootstrap, group_id=f"{s.app_id}-artifacts",
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", enable_idempotence=True)
        await consumer.start()
        await producer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        await self._handle(record, producer)
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()
            await producer.stop()

    async def _handle(self, record: ConsumerRecord, producer: AIOKafkaProducer) -> None:
        topics = self.settings.topics
        try:
            key = verify_key(self.settings)
            accepted = accept(record.value or b"", key)
        except (Rejected, SigningKeyError) as exc:
            reason = exc.reason if isinstance(exc, Rejected) else RejectReason.UNVERIFIED
            await self._reject(record, producer, reason, str(exc))
            return
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 — one bad announcement costs one DLQ entry, not the listener
            log.exception("event=artifact.failed offset=%d", record.offset)
            await self._reject(record, producer, RejectReason.UNDECODABLE, f"{type(exc).__name__}: {exc}")
            return
        for command in accepted.commands:
            await producer.send_and_wait(topics.rollout_commands, encode(command), key=orjson.dumps(command.router_id))
        self.accepted += 1
        log.info("event=artifact.accepted version=%s routers=%s", accepted.version,
                 ",".join(c.router_id for c in accepted.commands))

    async def _reject(self, record: ConsumerRecord, producer: AIOKafkaProducer, reason: RejectReason, error: str) -> None:
        self.rejected += 1
        log.error("event=artifact.rejected offset=%d reason=%s error=%r", record.offset, reason.value, error[:2048])
        letter = dead_letter(record, reason, error, time.time(), max_payload_bytes=self.settings.dlq_max_payload_bytes)
        await producer.send_and_wait(self.settings.topics.dlq, encode(letter), key=record.topic.encode())
