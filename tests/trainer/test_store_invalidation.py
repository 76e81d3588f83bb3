"""The store's "invalidated" mark: in the index, beside the signed files, which still verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bifrost.storage.artifact_store import INDEX_FILE, ArtifactStore
from bifrost.trainer.cli import main_artifacts
from tests.router.artifacts import make_artifact, signed

KEY = Ed25519PrivateKey.generate()


def publish(store: ArtifactStore, version: str) -> None:
    data, signature = signed(make_artifact(version=version), KEY)
    store.publish(data, signature)


def test_invalidated_versions_still_verify_and_the_mark_survives_later_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    publish(store, "v1")
    files_before = {p.name: p.read_bytes() for p in (store.root / "v1").iterdir()}
    mark = store.invalidate(
        "v1", reason="catalog drift: openrouter:a/m price +12.0%", by="catalog-refresher", details={"snapshot": "s2"}
    )
    assert store.invalidation("v1") == mark and mark.by == "catalog-refresher"
    assert {p.name: p.read_bytes() for p in (store.root / "v1").iterdir()} == files_before  # signed files untouched
    assert store.verify("v1", KEY.public_key()).version == "v1"
    shown = store.show("v1")["invalidated"]  # the mark as JSON builtins
    assert isinstance(shown, dict) and shown["reason"].startswith("catalog drift")
    publish(store, "v2")  # the retrained successor; the mark of v1 stays, v2 has none
    store.rollback("v1", reason="test")
    assert store.invalidation("v1") == mark and store.invalidation("v2") is None
    assert json.loads((store.root / INDEX_FILE).read_text())["invalidated"]["v1"]["reason"] == mark.reason
    assert main_artifacts(["list", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "v1" in out and "INVALIDATED: catalog drift" in out
    assert main_artifacts(["list", "--store", str(store.root), "--json"]) == 0
    assert "v1" in json.loads(capsys.readouterr().out)["invalidated"]


def test_an_index_written_before_the_mark_existed_still_reads(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    publish(store, "v1")
    index = json.loads((store.root / INDEX_FILE).read_text())
    index.pop("invalidated")
    (store.root / INDEX_FILE).write_text(json.dumps(index))
    assert store.current() == "v1" and store.invalidation("v1") is None
