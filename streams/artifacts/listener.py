"""Starts a canary for every verified artifact announced on ``artifacts``.

The announcement only names the artifact; the bytes are read from its ``location`` —
only inside the artifact store (``BIFROST_ARTIFACT_STORE``), see ``confine.py`` — and
must match the announced sha256 and carry a valid Ed25519 signature from the configured
public key. A tampered or unsigned artifact never reaches ``rollout-commands``: it goes to the
DLQ with the reason (and is logged), like any other bad input. A verified one becomes, per
router it was trained for, an ``artifact_verified`` command (version + sha256) and a
``start``, both signed with the pipeline key (``BIFROST_PIPELINE_KEY_FILE``; without it
the listener does not run); the controller starts only verified versions, and then runs
the canary, or waits for ``approve`` when ``BIFROST_ROLLOUT_REQUIRE_APPROVAL`` is set.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bifrost.config import Settings
from bifrost.config.settings import SettingsError
from bifrost.kafka.producer import start_producer
from bifrost.kafka.topics import TopicSpec, ensure_topics
from bifrost.router.artifact import ArtifactError, load_verified, sha256_hex
from bifrost.router.keys import (
    SIGNING_KEY_ENV,
    SIGNING_KEY_FILE_ENV,
    VERIFY_KEY_ENV,
    PrivateKeyGiven,
    PublicKeySource,
    SigningKeyError,
    key_id,
    public_key_only,
)
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.codec import encode
from bifrost.schemas.command_signing import CommandSigner
from bifrost.schemas.dlq import RejectReason, dead_letter
from bifrost.schemas.rollout import CommandKind, RolloutCommand, pipeline_command_id
from bifrost.streams import observability as obs
from bifrost.streams.artifacts.confine import MAX_ARTIFACT_BYTES, LocationRefused, read_confined

log = logging.getLogger("bifrost.artifacts")
MAX_AGE_SECONDS = 86400.0  # older announcements are not acted on
MAX_FUTURE_SECONDS = 300.0  # clock skew allowed for published_at
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


def read_announced(
    announcement: ArtifactPublished, store_root: str | os.PathLike[str], *, max_bytes: int = MAX_ARTIFACT_BYTES
) -> bytes:
    """The artifact bytes an announcement points at (a version folder or an artifact.json).

    Only a regular file inside ``store_root`` of at most ``max_bytes`` is read (see
    :mod:`bifrost.streams.artifacts.confine`); blocking, so the listener calls it in a
    thread. Any refusal is ``unverified``, with a message that says nothing about files
    outside the store.
    """
    try:
        return read_confined(announcement.location, store_root, max_bytes=max_bytes)
    except LocationRefused as exc:
        raise Rejected(RejectReason.UNVERIFIED, f"artifact {announcement.version}: {exc}") from None


def accept(
    value: bytes,
    public_key: PublicKeySource,
    *,
    store_root: str | os.PathLike[str],
    now: float | None = None,
    max_age_s: float = MAX_AGE_SECONDS,
    max_future_s: float = MAX_FUTURE_SECONDS,
    max_bytes: int = MAX_ARTIFACT_BYTES,
) -> Accepted:
    """Decode, verify and turn one announcement into start commands (pure but for reading the file).

    Blocking (file read, hashing, signature check): async callers run it in a thread.
    """
    try:
        announcement = _announcement_decoder.decode(value)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise Rejected(RejectReason.SCHEMA, f"not an artifact announcement: {exc}") from None
    except RecursionError:
        raise Rejected(RejectReason.TOO_DEEP, "not an artifact announcement: JSON nests too deeply") from None
    except TypeError as exc:  # not bytes
        raise Rejected(RejectReason.UNDECODABLE, f"not an artifact announcement: {exc}") from None
    issued_at = time.time() if now is None else now
    check_published_at(announcement, issued_at, max_age_s=max_age_s, max_future_s=max_future_s)
    data = read_announced(announcement, store_root, max_bytes=max_bytes)
    if sha256_hex(data) != announcement.sha256:
        # Said without either digest: the bytes are the store's, not the announcer's to probe.
        raise Rejected(
            RejectReason.UNVERIFIED,
            f"artifact {announcement.version} rejected: its bytes do not match "
            "the announced sha256 (modified, or not this version)",
        )
    try:
        artifact = load_verified(data, announcement.signature, public_key, expected_sha256=announcement.sha256)
    except ArtifactError as exc:
        raise Rejected(RejectReason.UNVERIFIED, f"artifact {announcement.version} rejected: {exc}") from None
    if artifact.version != announcement.version:
        raise Rejected(
            RejectReason.UNVERIFIED, f"announced {announcement.version} but the signed artifact is {artifact.version}"
        )
    if not announcement.router_ids:
        raise Rejected(RejectReason.INVALID_VALUE, f"artifact {artifact.version} names no router to roll out to")
    # Per router: record the version as verified, then start it. Both are signed with the
    # pipeline key when sent (ArtifactListener); the controller starts only verified versions.
    reason = (
        f"new artifact {artifact.version} (parent {artifact.parent or '-'}, trigger {announcement.trigger_id or '-'})"
    )
    commands = [
        command
        for router in announcement.router_ids
        for command in (
            RolloutCommand(
                command_id=pipeline_command_id(artifact.version, router, CommandKind.ARTIFACT_VERIFIED),
                router_id=router,
                kind=CommandKind.ARTIFACT_VERIFIED,
                artifact=artifact.version,
                sha256=announcement.sha256.strip().lower(),
                reason=reason,
            ),
            RolloutCommand(
                command_id=pipeline_command_id(artifact.version, router, CommandKind.START),
                router_id=router,
                kind=CommandKind.START,
                artifact=artifact.version,
                reason=reason,
            ),
        )
    ]
    return Accepted(version=artifact.version, commands=commands)


def check_published_at(
    announcement: ArtifactPublished,
    now: float,
    *,
    max_age_s: float = MAX_AGE_SECONDS,
    max_future_s: float = MAX_FUTURE_SECONDS,
) -> None:
    """Refuse an announcement whose ``published_at`` is missing, stale or in the future (pure).

    A new consumer group starts at the beginning of the compacted topic, so old
    announcements must not restart canaries of long-replaced artifacts; a missing (0) or
    future time would dodge that check for good.
    """
    published = announcement.published_at
    version = announcement.version
    if not math.isfinite(published) or published <= 0:
        raise Rejected(
            RejectReason.INVALID_VALUE,
            f"artifact {version}: the announcement has no valid published_at (epoch seconds); not rolling it out",
        )
    if published - now > max_future_s:
        raise Rejected(
            RejectReason.INVALID_VALUE,
            f"artifact {version}: published_at is {published - now:.0f} s in the "
            f"future (more than {max_future_s:.0f} s of clock skew); not rolling it out",
        )
    if now - published > max_age_s:
        raise Rejected(
            RejectReason.TOO_LATE,
            f"artifact {version} was announced {(now - published) / 3600:.0f} h ago "
            f"(more than {max_age_s / 3600:.0f} h); not rolling it out",
        )


def verify_key(settings: Settings, environ: Mapping[str, str] | None = None) -> Ed25519PublicKey:
    """The public key artifacts are verified with: ``BIFROST_VERIFY_KEY``, else ``BIFROST_VERIFY_KEY_FILE``.

    A worker holds only the public key: a private key in either raises
    :class:`PrivateKeyGiven` (the worker refuses to start, see :func:`check_verify_key`).
    The signing-key variables are never used here.
    """
    environ = os.environ if environ is None else environ
    if environ.get(VERIFY_KEY_ENV):
        return _public_only(environ[VERIFY_KEY_ENV].encode(), f"${VERIFY_KEY_ENV}")
    path = Path(settings.verify_key_file)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(
            f"no artifact verification key: {path} does not exist (set BIFROST_VERIFY_KEY_FILE to "
            "the trainer's public key, e.g. var/keys/artifact-signing.pub.pem)"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"artifact verification key {path} cannot be read: {exc.strerror}") from None
    return _public_only(data, f"BIFROST_VERIFY_KEY_FILE={path}")


def _public_only(data: bytes, where: str) -> Ed25519PublicKey:
    try:
        return public_key_only(data, where)
    except PrivateKeyGiven:
        raise PrivateKeyGiven(
            f"{where} holds the private signing key; only the trainer needs it, workers verify with the public key. "
            "Export it (`bifrost-opt keys export-public`, or: python -c 'import sys; from bifrost.router.keys import "
            "load_private_key, public_key_pem; sys.stdout.buffer.write(public_key_pem(load_private_key(sys.argv[1])))' "
            "KEY.pem > KEY.pub.pem) and point BIFROST_VERIFY_KEY_FILE at the .pub.pem file"
        ) from None


def check_verify_key(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Stop a worker that was given a private key to verify with (SettingsError, exit code 2).

    A missing key is only logged: the worker runs, and announcements are dead-lettered
    as ``unverified`` until the key is there.
    """
    environ = os.environ if environ is None else environ
    for variable in (SIGNING_KEY_ENV, SIGNING_KEY_FILE_ENV):
        if environ.get(variable):
            log.warning(
                "event=worker.signing_key_in_environment variable=%s note=%r",
                variable,
                "workers never use the signing key; remove it from the worker's environment",
            )
    try:
        key = verify_key(settings, environ)
    except PrivateKeyGiven as exc:
        raise SettingsError(str(exc)) from None
    except SigningKeyError as exc:
        log.warning("event=artifact.no_verify_key error=%r", str(exc))
        return
    log.info("event=artifact.verify_key key=%s", key_id(key))


def pipeline_signer(settings: Settings) -> CommandSigner | None:
    """The pipeline key the listener signs its commands with; None (logged) when unset or unreadable."""
    from bifrost.streams.rollout.auth import load_signer

    if not settings.pipeline_key_file:
        log.error(
            "event=artifact.listener.disabled note=%r",
            "BIFROST_PIPELINE_KEY_FILE is not set: verified artifacts "
            "cannot be announced to the controller (signed commands); the listener does not run",
        )
        return None
    try:
        signer = load_signer(settings.pipeline_key_file, settings.pipeline_key_name, what="BIFROST_PIPELINE_KEY_NAME")
    except SigningKeyError as exc:
        log.error("event=artifact.listener.disabled error=%r", f"pipeline key: {exc}")
        return None
    log.info("event=artifact.pipeline_key name=%s key=%s", signer.name, key_id(signer.key))
    return signer


class ArtifactListener:
    """Consumer group ``<app_id>-artifacts``: every announcement is handled by one worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.accepted = 0
        self.rejected = 0
        self.signer: CommandSigner | None = None

    async def run(self) -> None:
        s = self.settings
        topics = s.topics
        self.signer = pipeline_signer(s)
        if self.signer is None:
            return  # announcements wait in the topic (this group commits nothing) until a key is configured
        options = s.kafka_options()
        await ensure_topics(
            s.kafka_bootstrap,
            [TopicSpec(topics.artifacts, 1, compacted=True)],
            replication_factor=s.replication_factor,
            client_options=options,
        )
        consumer = AIOKafkaConsumer(
            topics.artifacts,
            bootstrap_servers=s.kafka_bootstrap,
            group_id=f"{s.app_id}-artifacts",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **options,
        )
        await consumer.start()
        try:
            # Started inside the try: a producer that cannot start still stops the consumer.
            producer = await start_producer(s.kafka_bootstrap, client_options=options)
            try:
                while True:
                    batches = await consumer.getmany(timeout_ms=1000)
                    for records in batches.values():
                        for record in records:
                            await self._handle(record, producer)
                    if batches:
                        await consumer.commit()
            finally:
                await producer.stop()
        finally:
            await consumer.stop()

    async def _handle(self, record: ConsumerRecord, producer: AIOKafkaProducer) -> None:
        topics = self.settings.topics
        try:
            # Reading, hashing and verifying run in a thread: the worker's event loop
            # (ingest, tables, HTTP views) never waits on the artifact's file.
            accepted = await asyncio.to_thread(self._check, record.value or b"")
        except (Rejected, SigningKeyError) as exc:
            reason = exc.reason if isinstance(exc, Rejected) else RejectReason.UNVERIFIED
            await self._reject(record, producer, reason, str(exc))
            return
        except MemoryError:
            raise
        except Exception as exc:
            log.exception("event=artifact.failed offset=%d", record.offset)
            await self._reject(
                record,
                producer,
                RejectReason.UNDECODABLE,
                f"internal error ({type(exc).__name__}) while checking the announcement; see the worker log",
            )
            return
        assert self.signer is not None
        for command in accepted.commands:
            signed = self.signer.sign(command)
            await producer.send_and_wait(topics.rollout_commands, encode(signed), key=orjson.dumps(command.router_id))
        self.accepted += 1
        log.info(
            "event=artifact.accepted version=%s routers=%s",
            accepted.version,
            ",".join(dict.fromkeys(c.router_id for c in accepted.commands)),
        )

    def _check(self, value: bytes) -> Accepted:
        s = self.settings
        return accept(value, verify_key(s), store_root=s.artifact_store, max_future_s=s.max_future_skew_seconds)

    async def _reject(
        self, record: ConsumerRecord, producer: AIOKafkaProducer, reason: RejectReason, error: str
    ) -> None:
        self.rejected += 1
        log.error("event=artifact.rejected offset=%d reason=%s error=%r", record.offset, reason.value, error[:2048])
        letter = dead_letter(record, reason, error, time.time(), max_payload_bytes=self.settings.dlq_max_payload_bytes)
        await producer.send_and_wait(self.settings.topics.dlq, encode(letter), key=record.topic.encode())
        obs.REJECTED.labels(record.topic, reason.value).inc()
