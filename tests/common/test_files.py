"""The one atomic-write helper: all or nothing, exact modes, no temp file left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bifrost.common.files import TEMP_PREFIX, atomic_path, write_atomic


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "index.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new" * 100_000)
    assert target.read_bytes() == b"new" * 100_000
    assert [p.name for p in target.parent.iterdir()] == ["index.json"]


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_mode_is_exact_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    old = os.umask(0o077)
    try:
        write_atomic(tmp_path / "key.pem", b"k", mode=mode)
    finally:
        os.umask(old)
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == mode


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"before")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"before"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_atomic_path_uses_a_given_temp_name(tmp_path: Path) -> None:
    target = tmp_path / "p0-1-2.parquet"
    temp = tmp_path / ".p0-1-2.parquet.tmp"
    with atomic_path(target, temp=temp) as written:
        assert written == temp
        written.write_bytes(b"rows")
    assert target.read_bytes() == b"rows" and not temp.exists()
