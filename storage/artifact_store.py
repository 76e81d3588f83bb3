"""Versioned artifact store on a local folder (default ``var/artifacts``).

Layout::

    <root>/index.json          {"current": version, "history": [...], "invalidated": {version: why}}
                               — what routers should serve, and versions a catalog drift invalidated
    <root>/index.json.bak      the previous index (kept on every change)
    <root>/<version>/artifact.json   canonical artifact bytes (signed)
    <root>/<version>/artifact.sha256 hex digest
    <root>/<version>/artifact.sig    base64 Ed25519 signature
    <root>/<version>/meta.json       version, created_at, parent, sha256, published_at
    <root>/<version>/report.json, report.md   the run report

A version is written into a hidden temporary folder (every file fsynced), then renamed
into place in one step, so a killed writer leaves at most a ``.tmp-*`` folder, which is
never listed and is removed by the next writer. The index is replaced the same way
(temp file, fsync, rename), after a backup of the previous one. Writers serialize on a
lock file.
"""

from __future__ import annotations

import builtins
import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import msgspec

from bifrost.common import variables
from bifrost.common.errors import ExitCode
from bifrost.common.files import fsync_dir, write_atomic
from bifrost.router.artifact import Artifact, ArtifactVerificationError, decode, load_verified, sha256_hex
from bifrost.router.keys import PublicKeySource
from bifrost.router.reference import ARTIFACT_FILE, DIGEST_FILE, SIGNATURE_FILE, ReferenceRouter

DEFAULT_ROOT = Path(variables.ARTIFACT_STORE.default)  # BIFROST_ARTIFACT_STORE's default
INDEX_FILE = "index.json"
BACKUP_FILE = "index.json.bak"
META_FILE = "meta.json"
_REQUIRED = (ARTIFACT_FILE, DIGEST_FILE, SIGNATURE_FILE, META_FILE)
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StoreError(ValueError):
    """The store cannot do what was asked (unknown version, bad name, not earlier…)."""

    exit_code = ExitCode.USAGE


class VersionMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What the listing shows about a stored version."""

    version: str
    created_at: str
    parent: str | None
    sha256: str
    published_at: float
    size: int


class IndexEntry(msgspec.Struct, frozen=True, kw_only=True):
    ts: float
    action: str
    version: str
    previous: str | None
    reason: str = ""


class Invalidation(msgspec.Struct, frozen=True, kw_only=True):
    """Why a version should no longer be trusted as is (e.g. a price it was trained on changed).

    Kept in the index, not in the version's folder: the signed files stay untouched, so a
    marked version still verifies; the mark says it is stale and a retrain is under way.
    """

    ts: float
    reason: str
    by: str = ""
    details: dict[str, str | float] = {}


class Index(msgspec.Struct, kw_only=True):
    current: str | None = None
    history: list[IndexEntry] = []
    invalidated: dict[str, Invalidation] = {}


class ArtifactStore:
    """Complete, immutable artifact versions plus a pointer to the current one.

    Example:
        >>> store = ArtifactStore("var/artifacts")  # doctest: +SKIP
        >>> store.publish(encode(artifact), signature, reports={"report.md": b"..."})  # doctest: +SKIP
        >>> [v.version for v in store.list()], store.current()  # doctest: +SKIP
    """

    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    # -- reading -------------------------------------------------------------------------

    def list(self) -> list[VersionMeta]:
        """Every complete version, oldest first (by publication time, then name)."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".") or not entry.is_dir() or not _VERSION.match(entry.name):
                continue
            if not all((entry / name).is_file() for name in _REQUIRED):
                continue
            try:
                meta = msgspec.json.decode((entry / META_FILE).read_bytes(), type=VersionMeta)
            except (OSError, msgspec.DecodeError):
                continue
            if meta.version == entry.name:
                found.append(meta)
        return sorted(found, key=lambda m: (m.published_at, m.version))

    def current(self) -> str | None:
        """The version routers should serve (None before the first publication)."""
        return self._read_index().current

    def history(self) -> builtins.list[IndexEntry]:  # `list` is a method of this class
        """Every change of the current version, oldest first."""
        return list(self._read_index().history)

    def invalidation(self, version: str) -> Invalidation | None:
        """Why ``version`` was marked invalidated, or None."""
        return self._read_index().invalidated.get(version)

    def meta(self, version: str) -> VersionMeta:
        """Metadata of one stored version."""
        for meta in self.list():
            if meta.version == version:
                return meta
        raise StoreError(f"no complete version {version!r} in {self.root}" + self._known(version))

    def read(self, version: str) -> tuple[bytes, str, str]:
        """(artifact bytes, base64 signature, published sha256) of a version."""
        self.meta(version)
        folder = self.root / version
        digest = (folder / DIGEST_FILE).read_text(encoding="ascii", errors="replace").split()
        return (
            (folder / ARTIFACT_FILE).read_bytes(),
            (folder / SIGNATURE_FILE).read_text(encoding="ascii", errors="replace").strip(),
            digest[0] if digest else "",
        )

    def show(self, version: str) -> dict[str, object]:
        """Metadata, routing parameters and report summary of a version (not verified)."""
        meta = self.meta(version)
        data, _, _ = self.read(version)
        artifact = decode(data)
        return {
            **msgspec.to_builtins(meta),
            "current": self.current() == version,
            "invalidated": msgspec.to_builtins(self.invalidation(version)),
            "sha256_matches": sha256_hex(data) == meta.sha256,
            "alpha": artifact.alpha,
            "thresholds": msgspec.to_builtins(artifact.thresholds),
            "buckets": artifact.buckets,
            "models": artifact.models,
            "clusters": artifact.gbdt.feature_schema.clusters,
            "feature_schema": f"{artifact.gbdt.feature_schema.name} v{artifact.gbdt.feature_schema.version}",
            "validation": {
                k: artifact.reports.validation.get(k) for k in ("passed", "candidate", "parent", "decision_ms")
            },
        }

    def verify(self, version: str, public_key: PublicKeySource) -> Artifact:
        """Check digest and signature of a version; return the artifact.

        Raises:
            ArtifactVerificationError: the stored bytes were changed or signed by another key.
        """
        data, signature, digest = self.read(version)
        return load_verified(data, signature, public_key, expected_sha256=digest)

    def router(self, version: str | None, public_key: PublicKeySource) -> ReferenceRouter:
        """A router for a verified version (default: the current one)."""
        version = version or self.current()
        if version is None:
            raise StoreError(f"{self.root} has no current artifact")
        return ReferenceRouter(self.verify(version, public_key))

    # -- writing -------------------------------------------------------------------------

    def publish(
        self,
        artifact_bytes: bytes,
        signature: str,
        *,
        reports: Mapping[str, bytes] | None = None,
        make_current: bool = True,
        reason: str = "published",
    ) -> VersionMeta:
        """Store a signed artifact as a new version (atomically) and, by default, make it current."""
        artifact = decode(artifact_bytes)
        version = artifact.version
        if not _VERSION.match(version):
            raise StoreError(f"version {version!r} is not a safe folder name")
        digest = sha256_hex(artifact_bytes)
        with self._locked():
            target = self.root / version
            if target.exists():
                raise StoreError(f"version {version} already exists in {self.root}; versions are immutable")
            if make_current:
                self._read_index(strict=True)  # refuse before writing anything
            meta = VersionMeta(
                version=version,
                created_at=artifact.created_at,
                parent=artifact.parent,
                sha256=digest,
                published_at=time.time(),
                size=len(artifact_bytes),
            )
            temp = self.root / f".tmp-{version}-{os.getpid()}"
            if temp.exists():
                shutil.rmtree(temp)
            temp.mkdir(parents=True)
            files = {
                ARTIFACT_FILE: artifact_bytes,
                DIGEST_FILE: f"{digest}  {ARTIFACT_FILE}\n".encode(),
                SIGNATURE_FILE: signature.strip().encode() + b"\n",
                META_FILE: msgspec.json.encode(meta),
            }
            for name, content in {**(reports or {}), **files}.items():
                if "/" in name or name.startswith("."):
                    raise StoreError(f"report name {name!r} must be a plain file name")
                _write_synced(temp / name, content)
            fsync_dir(temp)
            os.rename(temp, target)
            fsync_dir(self.root)
            if make_current:
                self._set_current(version, action="publish", reason=reason)
        return meta

    def activate(self, version: str, *, reason: str = "activated") -> None:
        """Make any complete version current (its digest must still match)."""
        with self._locked():
            self._check_digest(version)
            self._set_current(version, action="activate", reason=reason)

    def rollback(self, to_version: str, *, reason: str = "rollback", public_key: PublicKeySource | None = None) -> str:
        """Make an earlier version current again; returns the version it replaced.

        The target must be a complete version published before the current one; its
        digest is checked, and its signature too when ``public_key`` is given.
        """
        with self._locked():
            current = self._read_index().current
            versions = [m.version for m in self.list()]
            if to_version not in versions:
                raise StoreError(f"no complete version {to_version!r} in {self.root}" + self._known(to_version))
            if current == to_version:
                raise StoreError(f"{to_version} is already the current version")
            if current in versions and versions.index(to_version) > versions.index(current):
                raise StoreError(f"{to_version} is newer than the current {current}; use activate to move forward")
            if public_key is not None:
                self.verify(to_version, public_key)
            else:
                self._check_digest(to_version)
            self._set_current(to_version, action="rollback", reason=reason)
            return current or ""

    def invalidate(
        self, version: str, *, reason: str, by: str = "", details: Mapping[str, str | float] | None = None
    ) -> Invalidation:
        """Mark a stored version invalidated (in the index; its signed files are not touched).

        Marking again replaces the reason (the newest cause is what an operator needs).
        """
        with self._locked():
            self.meta(version)
            mark = Invalidation(ts=time.time(), reason=reason, by=by, details=dict(details or {}))
            index = self._read_index()
            self._write_index(
                Index(
                    current=index.current, history=list(index.history), invalidated={**index.invalidated, version: mark}
                )
            )
            return mark

    def cleanup(self) -> int:
        """Remove leftovers of killed writers (``.tmp-*`` folders); returns how many."""
        with self._locked(clean=False):  # the lock would remove them before they are counted
            return self._remove_temps()

    # -- internals -----------------------------------------------------------------------

    def _known(self, version: str | None = None) -> str:
        folder = self.root / version if version and _VERSION.match(version) else None
        if folder is not None and folder.is_dir():
            missing = [name for name in _REQUIRED if not (folder / name).is_file()]
            what = f"missing {', '.join(missing)}" if missing else f"{META_FILE} unreadable or not for this version"
            return f" (its folder {folder} is incomplete: {what}; the version cannot be used)"
        versions = [m.version for m in self.list()]
        return f" (known: {', '.join(versions[-5:])})" if versions else " (the store is empty)"

    def _check_digest(self, version: str) -> None:
        data, _, digest = self.read(version)
        if sha256_hex(data) != digest:
            raise ArtifactVerificationError(f"version {version}: artifact.json no longer matches artifact.sha256")

    def check_index(self) -> None:
        """Raise :class:`StoreError` when the store's path is a file, or the index is damaged and has
        no readable backup (reads then see no current artifact; a write would start a new history)."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"artifact store {self.root} is a file, not a folder: give a folder (it is created)")
        self._read_index(strict=True)

    def _read_index(self, *, strict: bool = False) -> Index:
        damaged = []
        for name in (INDEX_FILE, BACKUP_FILE):
            try:
                return msgspec.json.decode((self.root / name).read_bytes(), type=Index)
            except FileNotFoundError:
                continue
            except (OSError, msgspec.DecodeError) as exc:
                damaged.append(f"{name}: {exc}")  # fall back to the backup
        if damaged and strict:
            # An empty index here reads as "no current artifact": a trainer would skip the comparison
            # with the current one, and a write would drop the history. Readers (routers) go on.
            raise StoreError(
                f"the index of {self.root} is damaged and has no readable backup ({'; '.join(damaged)}); "
                f"nothing was changed. Repair {INDEX_FILE}, or move it aside to start a new history "
                "(the versions themselves are untouched)"
            )
        return Index()

    def _set_current(self, version: str, *, action: str, reason: str) -> None:
        index = self._read_index(strict=True)
        entry = IndexEntry(ts=time.time(), action=action, version=version, previous=index.current, reason=reason)
        self._write_index(Index(current=version, history=[*index.history, entry], invalidated=dict(index.invalidated)))

    def _write_index(self, new: Index) -> None:
        index_path = self.root / INDEX_FILE
        if index_path.exists():
            previous = index_path.read_bytes()
            try:
                msgspec.json.decode(previous, type=Index)
            except msgspec.DecodeError:
                pass  # a damaged index: keep the good backup rather than overwrite it with garbage
            else:
                write_atomic(self.root / BACKUP_FILE, previous)
        write_atomic(index_path, msgspec.json.format(msgspec.json.encode(new), indent=2))

    def _remove_temps(self) -> int:
        removed = 0
        for entry in self.root.glob(".tmp-*"):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed += 1
        return removed

    @contextmanager
    def _locked(self, *, clean: bool = True) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                if clean:
                    self._remove_temps()
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _write_synced(path: Path, content: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
