"""Versioned catalog snapshots on a local folder (``BIFROST_CATALOG_DIR``, default ``var/catalog``).

Layout::

    <root>/index.json            {"current": version, "history": [...]}
    <root>/index.json.bak        the previous index (kept on every change)
    <root>/snapshots/<version>.json   one snapshot: entries, provider outcomes, changes
    <root>/.lock                 writers serialize on it
    <root>/.leader               held by the refresher that runs the schedules

Files are written with the project's one helper (:func:`bifrost.common.files.write_atomic`:
temp file, fsync, rename), so a killed writer never leaves half a snapshot. A snapshot
is written *before* its outputs go to Kafka, with ``published`` False, and marked
published after; a refresher that died in between publishes it again at its next start
(every output is idempotent). The newest ``BIFROST_CATALOG_KEEP`` snapshots are kept
(never the current one, and never one not yet published).
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import msgspec

from bifrost.common.files import write_atomic
from bifrost.schemas.catalog import CatalogChange, CatalogEntry

INDEX_FILE = "index.json"
BACKUP_FILE = "index.json.bak"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SnapshotError(ValueError):
    """The snapshot store cannot do what was asked (unknown version, no catalog yet…)."""


class ProviderOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one source did in a refresh."""

    source: str
    outcome: str  # ok | failed | skipped
    entries: int = 0
    skipped_items: int = 0
    invalid_prices: int = 0  # entries listed with a malformed price (they keep their last known price, stale)
    error: str = ""
    seconds: float = 0.0


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The whole catalog after one refresh (or rollback), and what changed since the previous one."""

    version: str
    created_at: float
    mode: str  # full | quick | rollback
    previous: str | None = None
    entries: list[CatalogEntry] = []
    providers: list[ProviderOutcome] = []
    changes: list[CatalogChange] = []
    artifact_version: str | None = None
    trigger_id: str | None = None
    alert_id: str | None = None
    rolled_back_to: str | None = None
    reason: str = ""
    published: bool = False

    def by_id(self) -> dict[str, CatalogEntry]:
        return {e.id: e for e in self.entries}


class IndexEntry(msgspec.Struct, frozen=True, kw_only=True):
    ts: float
    version: str
    previous: str | None
    mode: str
    changes: int = 0


class CatalogIndex(msgspec.Struct, kw_only=True):
    current: str | None = None
    history: list[IndexEntry] = []


class SnapshotStore:
    """Snapshots plus a pointer to the current one.

    Example:
        >>> store = SnapshotStore("var/catalog")  # doctest: +SKIP
        >>> with store.locked():  # doctest: +SKIP
        ...     store.save(snapshot)
    """

    def __init__(self, root: str | Path, *, keep: int = 30) -> None:
        self.root = Path(root)
        self.keep = max(2, keep)

    # -- reading -------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Every snapshot on disk, oldest first (versions sort by time)."""
        folder = self.root / "snapshots"
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.json") if _VERSION.match(p.stem))

    def current_version(self) -> str | None:
        return self._read_index().current

    def history(self) -> list[IndexEntry]:
        return list(self._read_index().history)

    def load(self, version: str) -> Snapshot:
        """One snapshot (raises :class:`SnapshotError` naming the known ones)."""
        if not _VERSION.match(version):
            raise SnapshotError(f"{version!r} is not a snapshot version")
        path = self.root / "snapshots" / f"{version}.json"
        try:
            return msgspec.json.decode(path.read_bytes(), type=Snapshot)
        except FileNotFoundError:
            known = self.versions()
            hint = (
                f" (newest: {', '.join(known[-5:])})"
                if known
                else " (no snapshots yet: run `bifrost-opt catalog refresh`)"
            )
            raise SnapshotError(f"no catalog snapshot {version!r} in {self.root}{hint}") from None
        except (OSError, msgspec.DecodeError) as exc:
            raise SnapshotError(f"catalog snapshot {path} cannot be read: {exc}") from None

    def current(self) -> Snapshot | None:
        """The current snapshot, or None before the first refresh."""
        version = self.current_version()
        return None if version is None else self.load(version)

    def require_current(self) -> Snapshot:
        current = self.current()
        if current is None:
            raise SnapshotError(
                f"no catalog in {self.root} yet: run `bifrost-opt catalog refresh` (or start `bifrost-opt refresher`)"
            )
        return current

    # -- writing (inside `locked()`) -----------------------------------------------------

    def save(self, snapshot: Snapshot, *, make_current: bool = True) -> None:
        """Write a snapshot (atomically) and, by default, make it current; then prune old ones."""
        if not _VERSION.match(snapshot.version):
            raise SnapshotError(f"{snapshot.version!r} is not a safe snapshot version")
        write_atomic(self.root / "snapshots" / f"{snapshot.version}.json", msgspec.json.encode(snapshot))
        if make_current:
            index = self._read_index()
            entry = IndexEntry(
                ts=time.time(),
                version=snapshot.version,
                previous=index.current,
                mode=snapshot.mode,
                changes=len(snapshot.changes),
            )
            self._write_index(CatalogIndex(current=snapshot.version, history=[*index.history, entry][-1000:]))
        self.prune()

    def mark_published(self, snapshot: Snapshot) -> Snapshot:
        """Record that every output of ``snapshot`` reached Kafka."""
        done = msgspec.structs.replace(snapshot, published=True)
        write_atomic(self.root / "snapshots" / f"{snapshot.version}.json", msgspec.json.encode(done))
        return done

    def prune(self) -> list[str]:
        """Delete the oldest snapshots beyond ``keep`` (never the current or an unpublished one)."""
        current = self.current_version()
        versions = self.versions()
        removed = []
        for version in versions[: max(0, len(versions) - self.keep)]:
            if version == current:
                continue
            try:
                if not self.load(version).published:
                    continue
            except SnapshotError:
                pass  # unreadable: not worth keeping
            (self.root / "snapshots" / f"{version}.json").unlink(missing_ok=True)
            removed.append(version)
        return removed

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialize writers (the scheduled refresher, `catalog refresh`, `catalog rollback`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def try_leadership(self) -> IO[bytes] | None:
        """Take the leader lock without waiting; the open file holds it (close it to let go), None if held."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".leader", "a+b")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        return handle

    # -- internals -----------------------------------------------------------------------

    def _read_index(self) -> CatalogIndex:
        for name in (INDEX_FILE, BACKUP_FILE):
            try:
                return msgspec.json.decode((self.root / name).read_bytes(), type=CatalogIndex)
            except (OSError, msgspec.DecodeError):
                continue  # missing or damaged: fall back to the backup
        return CatalogIndex()

    def _write_index(self, new: CatalogIndex) -> None:
        path = self.root / INDEX_FILE
        try:
            previous = path.read_bytes()
            msgspec.json.decode(previous, type=CatalogIndex)
        except (OSError, msgspec.DecodeError):
            pass  # none yet, or damaged: keep the backup as it is
        else:
            write_atomic(self.root / BACKUP_FILE, previous)
        write_atomic(path, msgspec.json.format(msgspec.json.encode(new), indent=2))


def unique_version(store: SnapshotStore, base: str) -> str:
    """``base``, or ``base.2``, ``base.3``… if taken (two manual refreshes in one second)."""
    taken = set(store.versions())
    if base not in taken:
        return base
    n = 2
    while f"{base}.{n}" in taken:
        n += 1
    return f"{base}.{n}"
