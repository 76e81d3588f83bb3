"""The versioned artifact store: publish, list, current, show, verify, rollback, activate, crash leftovers."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.router.artifact import ArtifactFormatError, ArtifactVerificationError, encode, sha256_hex
from bifrost.router.reference import ARTIFACT_FILE, DIGEST_FILE, SIGNATURE_FILE
from bifrost.storage.artifact_store import BACKUP_FILE, INDEX_FILE, META_FILE, ArtifactStore, StoreError
from tests.router.artifacts import make_artifact, signed

KEY = Ed25519PrivateKey.generate()


def publish(
    store: ArtifactStore, version: str, *, parent: str | None = None, key: Ed25519PrivateKey = KEY, **kwargs: object
) -> str:
    """Publish a small signed artifact under ``version``; returns the version."""
    data, signature = signed(make_artifact(version=version, parent=parent), key)
    store.publish(data, signature, **kwargs)  # type: ignore[arg-type]
    return version


def versions(store: ArtifactStore) -> list[str]:
    return [m.version for m in store.list()]


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def test_empty_store(store: ArtifactStore) -> None:
    assert store.list() == [] and store.current() is None and store.history() == []
    with pytest.raises(StoreError, match="the store is empty"):
        store.meta("v1")
    with pytest.raises(StoreError, match="has no current artifact"):
        store.router(None, KEY)


def test_an_incomplete_version_is_named_as_such(store: ArtifactStore) -> None:
    data, signature = signed(make_artifact(version="v1"), KEY)
    store.publish(data, signature)
    (store.root / "v1" / "artifact.json").unlink()  # e.g. removed by hand or by a broken copy
    with pytest.raises(StoreError, match=r"no complete version 'v1' .*incomplete: missing artifact\.json"):
        store.meta("v1")
    with pytest.raises(StoreError, match="the store is empty"):  # nothing else in it
        store.meta("v2")


def test_publish_list_current_show_verify(store: ArtifactStore) -> None:
    data, signature = signed(make_artifact(version="v1"), KEY)
    meta = store.publish(data, signature, reports={"report.md": b"# hi\n", "report.json": b"{}"})
    assert meta.version == "v1" and meta.sha256 == sha256_hex(data) and meta.size == len(data)
    assert meta.parent is None and meta.created_at == "2025-01-01T00:00:00Z"
    folder = store.root / "v1"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [ARTIFACT_FILE, DIGEST_FILE, SIGNATURE_FILE, META_FILE, "report.md", "report.json"]
    )
    assert (folder / ARTIFACT_FILE).read_bytes() == data
    assert (folder / DIGEST_FILE).read_text() == f"{sha256_hex(data)}  {ARTIFACT_FILE}\n"
    assert (folder / "report.md").read_bytes() == b"# hi\n"
    assert versions(store) == ["v1"] and store.current() == "v1"
    assert store.read("v1") == (data, signature, sha256_hex(data))
    assert store.verify("v1", KEY.public_key()) == make_artifact(version="v1")
    assert store.router(None, KEY).version == "v1"
    info = store.show("v1")
    assert info["version"] == "v1" and info["current"] is True and info["sha256_matches"] is True
    assert info["alpha"] == 0.5 and info["models"] == ["large", "medium", "small"] and info["clusters"] == 2
    assert info["thresholds"] == {"cheap": 0.5, "hard": 0.5}
    assert info["feature_schema"] == "bifrost-triage v1"
    [entry] = store.history()
    assert (entry.action, entry.version, entry.previous) == ("publish", "v1", None)


def test_publish_makes_the_newest_current_and_keeps_history(store: ArtifactStore) -> None:
    publish(store, "v1")
    publish(store, "v2", parent="v1")
    publish(store, "v3", parent="v2", make_current=False)
    assert versions(store) == ["v1", "v2", "v3"]
    assert store.current() == "v2"
    assert store.meta("v3").parent == "v2"
    assert [(e.action, e.version, e.previous) for e in store.history()] == [
        ("publish", "v1", None),
        ("publish", "v2", "v1"),
    ]
    index = json.loads((store.root / INDEX_FILE).read_text())
    assert index["current"] == "v2"
    assert json.loads((store.root / BACKUP_FILE).read_text())["current"] == "v1"


def test_versions_are_immutable(store: ArtifactStore) -> None:
    publish(store, "v1")
    before = (store.root / "v1" / ARTIFACT_FILE).read_bytes()
    data, signature = signed(make_artifact(version="v1", alpha=0.9), KEY)
    with pytest.raises(StoreError, match="already exists.*immutable"):
        store.publish(data, signature)
    assert (store.root / "v1" / ARTIFACT_FILE).read_bytes() == before
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".tmp")] == []


def test_publish_refuses_bad_input(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactFormatError):
        store.publish(b"{}", "sig")
    data, signature = signed(make_artifact(version="../escape"), KEY)
    with pytest.raises(StoreError, match="not a safe folder name"):
        store.publish(data, signature)
    data, signature = signed(make_artifact(version="v1"), KEY)
    with pytest.raises(StoreError, match="must be a plain file name"):
        store.publish(data, signature, reports={"../evil": b"x"})
    with pytest.raises(StoreError, match="must be a plain file name"):
        store.publish(data, signature, reports={".hidden": b"x"})
    assert store.list() == [] and store.current() is None
    # The aborted write left only a temp folder, which the next writer removes.
    publish(store, "v1")
    assert versions(store) == ["v1"]
    assert not list(store.root.glob(".tmp-*"))


def test_rollback_and_activate(store: ArtifactStore) -> None:
    for v in ("v1", "v2", "v3"):
        publish(store, v)
    assert store.rollback("v1", reason="bad canary", public_key=KEY.public_key()) == "v3"
    assert store.current() == "v1"
    last = store.history()[-1]
    assert (last.action, last.version, last.previous, last.reason) == ("rollback", "v1", "v3", "bad canary")
    # Rolling back to a version newer than the current one is refused: that is activate.
    with pytest.raises(StoreError, match="newer than the current v1; use activate"):
        store.rollback("v2")
    assert store.current() == "v1"
    with pytest.raises(StoreError, match="already the current version"):
        store.rollback("v1")
    with pytest.raises(StoreError, match=r"no complete version 'v9'.*known: v1, v2, v3"):
        store.rollback("v9")
    store.activate("v3", reason="fixed")
    assert store.current() == "v3"
    assert store.history()[-1].action == "activate"
    assert store.rollback("v2") == "v3"  # without a key only the digest is checked
    assert store.current() == "v2"


def test_rollback_with_a_key_checks_the_signature(store: ArtifactStore) -> None:
    publish(store, "v1", key=Ed25519PrivateKey.generate())  # signed by someone else
    publish(store, "v2")
    with pytest.raises(ArtifactVerificationError, match="signed by another key"):
        store.rollback("v1", public_key=KEY.public_key())
    assert store.current() == "v2"


def test_tampered_artifact_fails_verify_activate_and_rollback(store: ArtifactStore) -> None:
    publish(store, "v1")
    publish(store, "v2")
    path = store.root / "v1" / ARTIFACT_FILE
    path.write_bytes(path.read_bytes().replace(b'"alpha":0.5', b'"alpha":0.7'))
    with pytest.raises(ArtifactVerificationError, match="sha256 mismatch"):
        store.verify("v1", KEY.public_key())
    with pytest.raises(ArtifactVerificationError, match="no longer matches"):
        store.activate("v1")
    with pytest.raises(ArtifactVerificationError):
        store.rollback("v1")
    assert store.current() == "v2"
    assert store.show("v1")["sha256_matches"] is False
    # Rewriting the digest too still fails on the signature.
    (store.root / "v1" / DIGEST_FILE).write_text(sha256_hex(path.read_bytes()) + "\n")
    with pytest.raises(ArtifactVerificationError, match="signature check failed"):
        store.verify("v1", KEY.public_key())


@pytest.mark.parametrize("name", [SIGNATURE_FILE, DIGEST_FILE])
def test_damaged_signature_or_digest_file_fails_verify(store: ArtifactStore, name: str) -> None:
    publish(store, "v1")
    path = store.root / "v1" / name
    original = path.read_bytes()
    for damaged in (b"", b"\xff\xfe" + original[2:], original[:10]):
        path.write_bytes(damaged)
        with pytest.raises(ArtifactVerificationError):
            store.verify("v1", KEY.public_key())
    path.write_bytes(original)
    assert store.verify("v1", KEY.public_key()).version == "v1"


def test_leftover_temp_folder_is_ignored_and_cleaned(store: ArtifactStore) -> None:
    publish(store, "v1")
    # A writer killed mid-way: a complete-looking version in a hidden temp folder.
    leftover = store.root / ".tmp-v2-99999"
    leftover.mkdir()
    for name in (ARTIFACT_FILE, DIGEST_FILE, SIGNATURE_FILE):
        (leftover / name).write_bytes((store.root / "v1" / name).read_bytes())
    (leftover / META_FILE).write_bytes((store.root / "v1" / META_FILE).read_bytes().replace(b'"v1"', b'"v2"'))
    stray_index = store.root / ".tmp-index.json-99999"
    stray_index.write_text("{")
    assert versions(store) == ["v1"]
    with pytest.raises(StoreError):
        store.meta("v2")
    publish(store, "v3")  # the next writer cleans up
    assert not leftover.exists() and not stray_index.exists()
    assert versions(store) == ["v1", "v3"]


def test_cleanup(store: ArtifactStore) -> None:
    publish(store, "v1")
    (store.root / ".tmp-x-1").mkdir()
    (store.root / ".tmp-y-2").write_text("partial")
    assert store.cleanup() == 2
    assert store.cleanup() == 0
    assert versions(store) == ["v1"]


def test_incomplete_or_foreign_folders_are_not_listed(store: ArtifactStore) -> None:
    publish(store, "v1")
    publish(store, "v2")
    (store.root / "v2" / SIGNATURE_FILE).unlink()  # incomplete
    (store.root / "notes").mkdir()  # no artifact files
    renamed = store.root / "v1-copy"
    renamed.mkdir()
    for p in (store.root / "v1").iterdir():
        (renamed / p.name).write_bytes(p.read_bytes())  # meta says v1: not this folder's name
    (store.root / "v1" / META_FILE).write_text("{damaged")
    assert versions(store) == []
    with pytest.raises(StoreError):
        store.read("v2")


def test_damaged_index_falls_back_to_the_backup(store: ArtifactStore) -> None:
    publish(store, "v1")
    publish(store, "v2")
    (store.root / INDEX_FILE).write_text('{"current": "v2", "hist')
    assert store.current() == "v1"  # the backup is the previous index
    assert [e.version for e in store.history()] == ["v1"]
    # Writing again repairs the index and keeps the good backup (not the damaged bytes).
    publish(store, "v3")
    assert store.current() == "v3"
    assert json.loads((store.root / BACKUP_FILE).read_text())["current"] == "v1"
    (store.root / INDEX_FILE).write_bytes(b"\x00\x00")
    assert store.current() == "v1"


def test_index_of_the_wrong_shape_is_damaged(store: ArtifactStore) -> None:
    publish(store, "v1")
    (store.root / INDEX_FILE).write_text('{"current": 3}')
    assert store.current() is None  # no backup yet: readers see no current artifact…
    with pytest.raises(StoreError, match="damaged and has no readable backup"):
        store.check_index()
    with pytest.raises(StoreError, match="nothing was changed"):  # …and no write starts a new history over it
        publish(store, "v2")
    assert json.loads((store.root / INDEX_FILE).read_text()) == {"current": 3}
    (store.root / INDEX_FILE).unlink()
    assert store.current() is None
    store.check_index()  # no index at all: a new store


def test_listing_order_is_publication_order(store: ArtifactStore) -> None:
    for v in ("vb", "va", "vc"):
        publish(store, v)
    assert versions(store) == ["vb", "va", "vc"]
    metas = store.list()
    assert [m.published_at for m in metas] == sorted(m.published_at for m in metas)
    # Meta files are plain JSON with the documented fields.
    meta = msgspec.json.decode((store.root / "va" / META_FILE).read_bytes())
    assert set(meta) == {"version", "created_at", "parent", "sha256", "published_at", "size"}
    assert meta["sha256"] == sha256_hex(encode(make_artifact(version="va")))


def test_a_store_path_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    # An outside test gave `train --store` a key file and read "the index of … is damaged".
    not_a_folder = tmp_path / "k.pem"
    not_a_folder.write_text("not a store")
    with pytest.raises(StoreError, match=r"k\.pem is a file, not a folder"):
        ArtifactStore(not_a_folder).check_index()
