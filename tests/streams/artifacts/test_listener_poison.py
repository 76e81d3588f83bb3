"""Artifact announcements that are garbage cost one DLQ entry each, never the listener."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.config import Settings
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.codec import decode_as
from bifrost.schemas.dlq import DeadLetter, RejectReason
from bifrost.streams.artifacts import listener
from bifrost.streams.artifacts.listener import ArtifactListener, Rejected, accept, read_announced
from tests.streams.artifacts.test_accept import announce


def announcement(location: str, **overrides: object) -> bytes:
    fields: dict[str, object] = {
        "version": "v1",
        "sha256": "0" * 64,
        "signature": "c2ln",
        "location": location,
        "router_ids": ["web"],
        "published_at": time.time(),
    }
    fields.update(overrides)
    return msgspec.json.encode(fields)


def rejected(value: object, key: Ed25519PrivateKey | None = None, store: Path | str = "/nonexistent-store") -> Rejected:
    public = (key or Ed25519PrivateKey.generate()).public_key()
    with pytest.raises(Rejected) as info:
        accept(value, public, store_root=store)  # type: ignore[arg-type]  # some tests hand over non-bytes on purpose
    return info.value


def test_deeply_nested_announcements_are_too_deep() -> None:
    value = announcement("/nowhere")[:-1] + b',"x":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    assert rejected(value).reason is RejectReason.TOO_DEEP


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"null",
        b"[1]",
        b"\xff\xfe",
        announcement("/x", router_ids=[""]),
        announcement("/x", router_ids=["r" * 129]),
        announcement("/x", published_at="soon"),
    ],
)
def test_malformed_announcements_are_schema_errors(value: bytes) -> None:
    assert rejected(value).reason is RejectReason.SCHEMA


def test_a_non_bytes_value_is_undecodable() -> None:
    assert rejected(42).reason is RejectReason.UNDECODABLE


def test_a_location_with_a_nul_byte_is_refused(tmp_path: Path) -> None:
    error = rejected(announcement(f"{tmp_path}/a\x00b"), store=tmp_path)
    assert error.reason is RejectReason.UNVERIFIED and "not a file inside the artifact store" in str(error)


def test_a_device_is_not_read(tmp_path: Path) -> None:
    error = rejected(announcement("/dev/zero"), store=tmp_path)
    assert error.reason is RejectReason.UNVERIFIED and "not a file inside the artifact store" in str(error)


@pytest.mark.parametrize("inside", [True, False])
def test_a_fifo_does_not_block_the_listener(tmp_path: Path, inside: bool) -> None:
    store = tmp_path / "store"
    store.mkdir()
    fifo = (store if inside else tmp_path) / "pipe"
    os.mkfifo(fifo)
    outcome: list[Rejected] = []
    thread = threading.Thread(
        target=lambda: outcome.append(rejected(announcement(str(fifo)), store=store)), daemon=True
    )
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), "reading a FIFO blocked"
    assert outcome[0].reason is RejectReason.UNVERIFIED
    assert ("not a regular file" if inside else "not a file inside the artifact store") in str(outcome[0])


def test_an_oversized_artifact_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "artifact.json").write_bytes(b"x" * 101)
    parsed = msgspec.json.decode(announcement(str(tmp_path)), type=ArtifactPublished)
    with pytest.raises(Rejected) as info:
        read_announced(parsed, tmp_path, max_bytes=100)
    assert info.value.reason is RejectReason.UNVERIFIED and "larger than 100 bytes" in str(info.value)
    (tmp_path / "artifact.json").write_bytes(b"x" * 100)
    assert read_announced(parsed, tmp_path, max_bytes=100) == b"x" * 100


def test_a_verified_artifact_is_still_accepted(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    assert accept(announce(tmp_path / "v", key), key.public_key(), store_root=tmp_path).version == "v-test-1"


# --- the listener's record handler ---------------------------------------------------------


@dataclass
class Record:
    value: object
    key: bytes | None = None
    topic: str = "bifrost.artifacts"
    partition: int = 0
    offset: int = 5


@dataclass
class Producer:
    sent: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        self.sent.append((topic, value, key))


def handle(record: Record, monkeypatch: pytest.MonkeyPatch) -> tuple[ArtifactListener, Producer]:
    monkeypatch.setattr(listener, "verify_key", lambda settings: Ed25519PrivateKey.generate().public_key())
    settings = Settings(dlq_max_payload_bytes=1000)
    handler, producer = ArtifactListener(settings), Producer()
    asyncio.run(handler._handle(record, producer))
    return handler, producer


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"a":' * 100_000, RejectReason.TOO_DEEP),
        (b"{oops", RejectReason.SCHEMA),
        (None, RejectReason.SCHEMA),
        (b"x" * 900_000, RejectReason.SCHEMA),
        (announcement("/dev/zero"), RejectReason.UNVERIFIED),
    ],
)
def test_each_bad_announcement_is_one_capped_dead_letter(
    value: bytes | None, reason: RejectReason, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, producer = handle(Record(value, key=b"k" * 1_000_000), monkeypatch)
    assert handler.rejected == 1 and handler.accepted == 0
    ((topic, raw, _),) = producer.sent
    letter = decode_as(raw, DeadLetter)
    assert topic == Settings().topics.dlq and letter.reason is reason and letter.offset == 5
    assert len(raw) < 16 * 1024  # the settings' 1,000-byte payload cap, a 4 KiB key, a 2 KiB error
    assert letter.original_size == len(value or b"")


def test_an_unexpected_error_is_dead_lettered_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(value: bytes, key: object, **options: object) -> None:
        raise KeyError("something nobody expected")

    monkeypatch.setattr(listener, "accept", explode)
    handler, producer = handle(Record(b"{}"), monkeypatch)
    ((_, raw, _),) = producer.sent
    letter = decode_as(raw, DeadLetter)
    assert letter.reason is RejectReason.UNDECODABLE and "KeyError" in letter.error
    assert "something nobody expected" not in letter.error  # details stay in the worker log
    assert handler.rejected == 1
