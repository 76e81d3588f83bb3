"""The snapshot store: atomic files, the index and its backup, pruning, leadership."""

from __future__ import annotations

from pathlib import Path

import pytest

from bifrost.catalog.snapshots import BACKUP_FILE, INDEX_FILE, Snapshot, SnapshotError, SnapshotStore, unique_version
from bifrost.schemas.catalog import CatalogEntry, Source


def snap(version: str, *, published: bool = True, t: float = 0.0) -> Snapshot:
    entry = CatalogEntry(id="openrouter:a/m", source=Source.OPENROUTER, slug="a/m", provider="a", family="m")
    return Snapshot(version=version, created_at=t, mode="full", entries=[entry], published=published)


def test_save_load_current_history_and_backup(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "catalog", keep=5)
    assert store.current() is None and store.versions() == []
    with pytest.raises(SnapshotError, match="catalog refresh"):
        store.require_current()
    with store.locked():
        store.save(snap("20260101T000000Z-full"))
        store.save(snap("20260101T060000Z-quick"))
    assert store.current_version() == "20260101T060000Z-quick"
    assert store.load("20260101T000000Z-full").entries[0].slug == "a/m"
    assert [h.version for h in store.history()] == ["20260101T000000Z-full", "20260101T060000Z-quick"]
    assert (store.root / BACKUP_FILE).exists()
    (store.root / INDEX_FILE).write_text("{garbage")  # a damaged index falls back to the backup
    assert store.current_version() == "20260101T000000Z-full"
    with pytest.raises(SnapshotError, match="newest: 20260101T000000Z-full"):
        store.load("nope")
    with pytest.raises(SnapshotError, match="not a snapshot version"):
        store.load("../../etc/passwd")
    assert not list(store.root.rglob(".tmp-*"))


def test_prune_keeps_the_newest_the_current_and_the_unpublished(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "catalog", keep=3)
    with store.locked():
        store.save(snap("v00", published=False), make_current=False)
        for i in range(1, 8):
            store.save(snap(f"v{i:02d}"))
    assert store.versions() == ["v00", "v05", "v06", "v07"]  # v00 was never published: kept
    done = store.mark_published(store.load("v00"))
    assert done.published and store.load("v00").published
    store.prune()
    assert store.versions() == ["v05", "v06", "v07"]


def test_one_leader_at_a_time(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "catalog")
    first = store.try_leadership()
    assert first is not None
    assert SnapshotStore(tmp_path / "catalog").try_leadership() is None
    first.close()
    second = store.try_leadership()
    assert second is not None
    second.close()


def test_unique_versions(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "catalog")
    with store.locked():
        store.save(snap("20260101T000000Z-full"))
        assert unique_version(store, "20260101T000000Z-full") == "20260101T000000Z-full.2"
        assert unique_version(store, "20260101T000001Z-full") == "20260101T000001Z-full"


def test_cli_diff_of_a_snapshot_with_itself_lists_no_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bifrost.cli.main import main as cli
    from bifrost.schemas.catalog import Pricing

    store = SnapshotStore(tmp_path / "catalog", keep=5)
    entries = [
        CatalogEntry(
            id=f"openrouter:a/m{i}",
            source=Source.OPENROUTER,
            slug=f"a/m{i}",
            provider="a",
            family="m",
            pricing=Pricing(input=0.2 * i, output=0.4 * i),
        )
        for i in range(13)
    ]
    with store.locked():
        store.save(Snapshot(version="v01", created_at=0.0, mode="full", entries=entries))
    monkeypatch.setenv("BIFROST_CATALOG_DIR", str(tmp_path / "catalog"))
    assert cli(["catalog", "diff", "v01", "v01"]) == 0
    out = capsys.readouterr().out
    assert "0 change(s), 0 drift" in out and "USD/1M" not in out
