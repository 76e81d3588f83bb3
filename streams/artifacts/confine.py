"""Reading an announced artifact without trusting its ``location``.

An announcement on ``artifacts`` is input like any other: whoever can write to the topic
chooses ``location``. The worker reads only a regular file inside the artifact store
(``BIFROST_ARTIFACT_STORE``), of bounded size, without following a symlink that was
swapped in after the check, and without blocking on a FIFO or a device:

1. ``resolve_in_store``: reject NUL bytes, resolve the location (relative locations are
   relative to the store) with ``os.path.realpath`` and require the result to lie inside
   the store's real path (``relative_parts``, pure).
2. ``read_confined``: walk from the store root one component at a time with
   ``openat``-style ``dir_fd`` opens and ``O_NOFOLLOW``, so a component replaced by a
   symlink between the check and the open fails instead of leading outside; the last
   component is opened ``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor
   (regular file, size limit); a version folder means its ``artifact.json``; the read is
   bounded.

Every refusal is a :class:`LocationRefused` whose message says nothing about files
outside the store: a location outside it gets the same text whether or not that file
exists, and nothing outside is ever opened, so nothing about its content can leak.
"""

from __future__ import annotations

import os
import stat

ARTIFACT_FILE = "artifact.json"
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024
OUTSIDE = "the location is not a file inside the artifact store"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1024 * 1024


class LocationRefused(ValueError):
    """The announced location cannot be read as an artifact; the message is safe to publish."""

    def __init__(self, message: str, *, oversized: bool = False) -> None:
        super().__init__(message)
        self.oversized = oversized


def relative_parts(path: str, root: str) -> tuple[str, ...] | None:
    """The components of ``path`` below ``root``, or None when it is not inside ``root``.

    Both must be absolute and normalized (``realpath`` output). Pure.

    Example:
        >>> relative_parts("/srv/store/v2/artifact.json", "/srv/store")
        ('v2', 'artifact.json')
        >>> relative_parts("/srv/store-evil/v2", "/srv/store") is None
        True
    """
    if not (os.path.isabs(path) and os.path.isabs(root)):
        return None
    if path == root:
        return ()
    prefix = root if root.endswith(os.sep) else root + os.sep
    if not path.startswith(prefix):
        return None
    parts = tuple(path[len(prefix) :].split(os.sep))
    if any(part in ("", ".", "..") for part in parts):
        return None
    return parts


def resolve_in_store(location: str, root: str | os.PathLike[str]) -> tuple[str, tuple[str, ...]]:
    """(the store's real path, the location's components below it), or LocationRefused.

    A relative ``location`` is taken relative to the store; an absolute one must resolve
    (symlinks followed) to a path inside it. A version folder stands for its
    ``artifact.json``, which must resolve inside the store as well.
    """
    root_text = os.fspath(root)
    if not isinstance(location, str) or not location or "\x00" in location or "\x00" in root_text:
        raise LocationRefused(OUTSIDE)
    real_root = os.path.realpath(root_text)
    real = os.path.realpath(os.path.join(real_root, location))
    if relative_parts(real, real_root) is not None and os.path.isdir(real):
        real = os.path.realpath(os.path.join(real, ARTIFACT_FILE))  # a version folder: its artifact, checked too
    parts = relative_parts(real, real_root)
    if parts is None:
        raise LocationRefused(OUTSIDE)
    return real_root, parts


def read_confined(location: str, root: str | os.PathLike[str], *, max_bytes: int = MAX_ARTIFACT_BYTES) -> bytes:
    """The artifact bytes at ``location`` (a version folder or a file), read safely.

    Blocking (file I/O): call it through ``asyncio.to_thread`` from async code.
    """
    real_root, parts = resolve_in_store(location, root)
    shown = "/".join(parts) or "."
    try:
        dir_fd = os.open(real_root, _DIR_FLAGS)
    except OSError:
        raise LocationRefused("the artifact store cannot be opened") from None
    try:
        fd = _open_below(dir_fd, parts, shown)
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            folder, fd = fd, -1
            try:
                fd = _open_at(folder, ARTIFACT_FILE, _FILE_FLAGS, f"{shown}/{ARTIFACT_FILE}")
            finally:
                os.close(folder)
            shown = f"{shown}/{ARTIFACT_FILE}"
            info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LocationRefused(f"{shown} in the artifact store is not a regular file")
        if info.st_size > max_bytes:
            raise LocationRefused(f"{shown} in the artifact store is larger than {max_bytes} bytes", oversized=True)
        data = _read_bounded(fd, max_bytes)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise LocationRefused(f"{shown} in the artifact store is larger than {max_bytes} bytes", oversized=True)
    return data


def _open_below(dir_fd: int, parts: tuple[str, ...], shown: str) -> int:
    """Open ``parts`` below ``dir_fd`` one component at a time, never following a symlink."""
    current = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            following = _open_at(current, part, _DIR_FLAGS, shown)
            os.close(current)
            current = following
        if not parts:
            return os.dup(current)
        return _open_at(current, parts[-1], _FILE_FLAGS, shown)
    finally:
        os.close(current)


def _open_at(dir_fd: int, name: str, flags: int, shown: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise LocationRefused(f"{shown} does not exist in the artifact store") from None
    except OSError:
        # ELOOP/ENOTDIR: a component is (now) a symlink or not a folder; EACCES; EIO.
        raise LocationRefused(f"{shown} in the artifact store cannot be opened") from None


def _read_bounded(fd: int, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes (one more than allowed reveals a file that grew)."""
    chunks: list[bytes] = []
    remaining = max_bytes + 1
    try:
        while remaining > 0:
            chunk = os.read(fd, min(_CHUNK, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError:
        raise LocationRefused("the artifact file cannot be read") from None
    return b"".join(chunks)
