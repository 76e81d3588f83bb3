"""Atomic file replacement: a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

#: Prefix of the temp files :func:`atomic_path` writes (``.tmp-<name>-<pid>``); cleaners match it.
TEMP_PREFIX = ".tmp-"


def temp_name(path: Path) -> Path:
    """The hidden temp file next to ``path`` that this process writes before the rename."""
    return path.with_name(f"{TEMP_PREFIX}{path.name}-{os.getpid()}")


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` survive a power loss."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path, *, temp: Path | None = None, sync: bool = True) -> Iterator[Path]:
    """Yield a temp path to write; on success it is fsynced and renamed over ``path``.

    On an exception the temp file is removed and ``path`` is untouched. ``temp`` names the
    temp file when a reader of the folder expects its own pattern; ``sync=False`` skips the
    fsyncs (files that are cheap to lose, e.g. a public key written again on every start).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp or temp_name(path)
    try:
        yield temp
        if sync:
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    if sync:
        fsync_dir(path.parent)


def write_atomic(path: Path, content: bytes, *, mode: int | None = None, sync: bool = True) -> None:
    """Replace ``path`` with ``content`` in one step: temp file, fsync, rename, folder fsync.

    ``mode`` sets the file's permission bits exactly (not filtered by the umask); the
    temp file is created owner-only, so a secret is never readable by others, even briefly.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.txt"
        >>> write_atomic(target, b"new", mode=0o600)
        >>> target.read_bytes(), oct(target.stat().st_mode & 0o777)
        (b'new', '0o600')
    """
    with atomic_path(path, sync=sync) as temp:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if mode is not None else 0o666)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
