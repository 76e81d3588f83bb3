"""Artifact reads are confined to the store: pure path checks and the safe reader."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bifrost.streams.artifacts import confine
from bifrost.streams.artifacts.confine import OUTSIDE, LocationRefused, read_confined, relative_parts, resolve_in_store


@pytest.mark.parametrize(
    ("path", "root", "parts"),
    [
        ("/srv/store/v2/artifact.json", "/srv/store", ("v2", "artifact.json")),
        ("/srv/store/v2", "/srv/store", ("v2",)),
        ("/srv/store", "/srv/store", ()),
        ("/srv/store/v2", "/srv/store/", ("v2",)),
        ("/srv/store-evil/v2", "/srv/store", None),  # a sibling sharing the prefix
        ("/srv/storev2", "/srv/store", None),
        ("/srv", "/srv/store", None),
        ("/etc/passwd", "/srv/store", None),
        ("/srv/store/../etc", "/srv/store", None),  # not normalized: refused, never trusted
        ("/srv/store//v2", "/srv/store", None),
        ("relative/v2", "/srv/store", None),
        ("/srv/store/v2", "relative", None),
        ("/", "/", ()),
        ("/anything", "/", ("anything",)),
    ],
)
def test_relative_parts_is_a_strict_containment_check(path: str, root: str, parts: tuple[str, ...] | None) -> None:
    assert relative_parts(path, root) == parts


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    (root / "v1").mkdir(parents=True)
    (root / "v1" / "artifact.json").write_bytes(b'{"v":1}')
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    return root


def refusal(location: str, root: Path, **options: int) -> str:
    with pytest.raises(LocationRefused) as info:
        read_confined(location, root, **options)
    return str(info.value)


def test_a_version_folder_a_file_and_a_relative_name_are_read(store: Path) -> None:
    assert read_confined(str(store / "v1"), store) == b'{"v":1}'
    assert read_confined(str(store / "v1" / "artifact.json"), store) == b'{"v":1}'
    assert read_confined("v1", store) == b'{"v":1}'
    assert read_confined(str(store / "v1" / "." / ".." / "v1"), store) == b'{"v":1}'


def test_a_symlink_inside_the_store_that_stays_inside_is_followed(store: Path) -> None:
    (store / "current").symlink_to(store / "v1")
    assert read_confined(str(store / "current"), store) == b'{"v":1}'
    linked_root = store.parent / "store-link"
    linked_root.symlink_to(store)  # the configured root itself may be a symlink
    assert read_confined(str(linked_root / "v1"), linked_root) == b'{"v":1}'


@pytest.mark.parametrize(
    "location",
    [
        "../outside/secret.pem",
        "v1/../../outside/secret.pem",
        "{tmp}/outside/secret.pem",
        "{tmp}/outside/does-not-exist.pem",
        "{tmp}/store/../outside/secret.pem",
        "{tmp}/store-sibling/artifact.json",
        "/etc/passwd",
        "/nonexistent/at/all",
        "/dev/zero",
        "/proc/self/environ",
        "",
        "v1/artifact.json\x00.png",
        "\x00",
    ],
)
def test_everything_outside_the_store_gets_one_message(store: Path, location: str) -> None:
    assert refusal(location.format(tmp=store.parent), store) == OUTSIDE


def test_a_symlink_pointing_outside_is_refused_like_any_outside_path(store: Path) -> None:
    (store / "escape").symlink_to(store.parent / "outside")
    (store / "v2").mkdir()
    (store / "v2" / "artifact.json").symlink_to(store.parent / "outside" / "secret.pem")
    (store / "dangling").symlink_to(store.parent / "outside" / "nothing-here")
    for location in ("escape/secret.pem", "escape", "v2", "v2/artifact.json", "dangling"):
        assert refusal(str(store / location), store) == OUTSIDE


def test_missing_and_non_regular_files_inside_the_store(store: Path) -> None:
    assert "v9 does not exist in the artifact store" in refusal(str(store / "v9"), store)
    (store / "v3").mkdir()
    assert "v3/artifact.json does not exist" in refusal(str(store / "v3"), store)
    os.mkfifo(store / "pipe")
    done: list[str] = []
    thread = threading.Thread(target=lambda: done.append(refusal(str(store / "pipe"), store)), daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), "a FIFO blocked the reader"
    assert "pipe in the artifact store is not a regular file" in done[0]
    (store / "v4").mkdir()
    os.mkfifo(store / "v4" / "artifact.json")
    assert "not a regular file" in refusal(str(store / "v4"), store)


def test_size_is_checked_on_the_open_file_and_the_read_is_bounded(store: Path) -> None:
    (store / "big").write_bytes(b"x" * 101)
    message = refusal(str(store / "big"), store, max_bytes=100)
    assert "larger than 100 bytes" in message
    (store / "big").write_bytes(b"x" * 100)
    assert read_confined(str(store / "big"), store, max_bytes=100) == b"x" * 100


def test_a_component_swapped_for_a_symlink_after_the_check_is_not_followed(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk opens each component with O_NOFOLLOW: a swap after realpath cannot lead outside."""
    checked = resolve_in_store(str(store / "v1" / "artifact.json"), store)

    def swapped(location: str, root: object) -> tuple[str, tuple[str, ...]]:
        os.rename(store / "v1", store / "v1-moved")
        (store / "v1").symlink_to(store.parent / "outside")  # v1/artifact.json would now be foreign
        (store.parent / "outside" / "artifact.json").write_bytes(b"foreign")
        return checked

    monkeypatch.setattr(confine, "resolve_in_store", swapped)
    message = refusal(str(store / "v1" / "artifact.json"), store)
    assert "cannot be opened" in message and "foreign" not in message


def test_a_final_symlink_swapped_in_is_not_followed(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = resolve_in_store(str(store / "v1" / "artifact.json"), store)

    def swapped(location: str, root: object) -> tuple[str, tuple[str, ...]]:
        (store / "v1" / "artifact.json").unlink()
        (store / "v1" / "artifact.json").symlink_to(store.parent / "outside" / "secret.pem")
        return checked

    monkeypatch.setattr(confine, "resolve_in_store", swapped)
    assert "cannot be opened" in refusal(str(store / "v1" / "artifact.json"), store)


def test_an_unopenable_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocationRefused, match="cannot be opened|not a file inside"):
        read_confined(str(tmp_path / "no-store" / "v1"), tmp_path / "no-store")
