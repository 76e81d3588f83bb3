"""Artifact announcements: only verified artifacts become start commands."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import encode, sha256_hex, sign
from bifrost.schemas.artifacts import ArtifactPublished
from bifrost.schemas.dlq import RejectReason
from bifrost.schemas.rollout import CommandKind
from bifrost.streams.artifacts.listener import Rejected, accept
from tests.router.artifacts import make_artifact


def announce(
    folder: Path,
    key: Ed25519PrivateKey,
    *,
    version: str = "v-test-1",
    data: bytes | None = None,
    routers: list[str] | None = None,
    published_at: float | None = None,
) -> bytes:
    artifact = make_artifact(version=version)
    signed = encode(artifact)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "artifact.json").write_bytes(signed if data is None else data)
    message = ArtifactPublished(
        version=version,
        sha256=sha256_hex(signed),
        signature=sign(signed, key),
        location=str(folder),
        router_ids=["web", "api"] if routers is None else routers,
        trigger_id="t1",
        published_at=time.time() if published_at is None else published_at,
    )
    return msgspec.json.encode(message)


def test_a_verified_artifact_starts_one_canary_per_router(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    accepted = accept(announce(tmp_path / "v", key), key.public_key(), store_root=tmp_path)
    assert accepted.version == "v-test-1"
    # Per router: the version is recorded as verified (with its sha256), then started.
    assert [(c.router_id, c.kind, c.artifact) for c in accepted.commands] == [
        ("web", CommandKind.ARTIFACT_VERIFIED, "v-test-1"),
        ("web", CommandKind.START, "v-test-1"),
        ("api", CommandKind.ARTIFACT_VERIFIED, "v-test-1"),
        ("api", CommandKind.START, "v-test-1"),
    ]
    assert {c.sha256 for c in accepted.commands if c.kind is CommandKind.ARTIFACT_VERIFIED} == {
        sha256_hex(encode(make_artifact(version="v-test-1")))
    }
    assert all(not c.signature for c in accepted.commands)  # the listener signs them when it sends them
    again = accept(announce(tmp_path / "v", key), key.public_key(), store_root=tmp_path)
    assert [c.command_id for c in again.commands] == [c.command_id for c in accepted.commands]  # idempotent ids


def test_a_changed_byte_another_key_or_a_wrong_version_is_refused(tmp_path: Path) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    tampered = encode(make_artifact(version="v-test-1", alpha=0.9))
    with pytest.raises(Rejected) as changed:
        accept(announce(tmp_path / "a", key, data=tampered), key.public_key(), store_root=tmp_path)
    assert changed.value.reason is RejectReason.UNVERIFIED and "sha256" in str(changed.value)
    assert sha256_hex(tampered)[:16] not in str(changed.value)  # no digest of the bytes read
    with pytest.raises(Rejected) as foreign:
        accept(announce(tmp_path / "b", other), key.public_key(), store_root=tmp_path)
    assert foreign.value.reason is RejectReason.UNVERIFIED and "signature" in str(foreign.value)


def test_missing_files_no_routers_old_announcements_and_garbage_are_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    value = announce(tmp_path / "c", key)
    (tmp_path / "c" / "artifact.json").unlink()
    with pytest.raises(Rejected, match="c/artifact.json does not exist in the artifact store"):
        accept(value, key.public_key(), store_root=tmp_path)
    with pytest.raises(Rejected, match="names no router"):
        accept(announce(tmp_path / "d", key, routers=[]), key.public_key(), store_root=tmp_path)
    with pytest.raises(Rejected) as old:
        accept(
            announce(tmp_path / "e", key, published_at=time.time() - 3 * 86400), key.public_key(), store_root=tmp_path
        )
    assert old.value.reason is RejectReason.TOO_LATE
    with pytest.raises(Rejected) as garbage:
        accept(b"{not json", key.public_key(), store_root=tmp_path)
    assert garbage.value.reason is RejectReason.SCHEMA


@pytest.mark.parametrize(
    ("published_at", "reason", "fragment"),
    [
        (0.0, RejectReason.INVALID_VALUE, "no valid published_at"),
        (-5.0, RejectReason.INVALID_VALUE, "no valid published_at"),
        (1.0, RejectReason.TOO_LATE, "announced"),
        (time.time() + 3600, RejectReason.INVALID_VALUE, "in the future"),
        (4e18, RejectReason.INVALID_VALUE, "in the future"),
    ],
)
def test_a_missing_stale_or_future_publication_time_is_refused(
    tmp_path: Path, published_at: float, reason: RejectReason, fragment: str
) -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(Rejected) as info:
        accept(announce(tmp_path / "v", key, published_at=published_at), key.public_key(), store_root=tmp_path)
    assert info.value.reason is reason and fragment in str(info.value)


def test_a_little_clock_skew_is_accepted(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    value = announce(tmp_path / "v", key, published_at=time.time() + 60)
    assert accept(value, key.public_key(), store_root=tmp_path).version == "v-test-1"


def test_a_relative_location_is_relative_to_the_store(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    announce(tmp_path / "v", key)
    value = msgspec.json.encode({**msgspec.json.decode(announce(tmp_path / "v", key)), "location": "v"})
    assert accept(value, key.public_key(), store_root=tmp_path).version == "v-test-1"
    with pytest.raises(Rejected) as outside:
        accept(value, key.public_key(), store_root=tmp_path / "elsewhere")
    assert outside.value.reason is RejectReason.UNVERIFIED
