"""write_atomically and write_sidecar_atomically on a real file system."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from staplegate.store import write_atomically, write_sidecar_atomically
from staplegate.store.atomic import is_temporary_name


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_creates_with_the_exact_mode_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_atomically(tmp_path / "a", b"one", mode=0o644)
    finally:
        os.umask(previous)
    assert (tmp_path / "a").read_bytes() == b"one"
    assert mode(tmp_path / "a") == 0o644


def test_replace_is_a_new_inode_not_an_in_place_rewrite(tmp_path: Path) -> None:
    target = tmp_path / "staple"
    write_atomically(target, b"old", mode=0o600)
    with target.open("rb") as reader_of_the_old_file:
        write_atomically(target, b"new", mode=0o600)
        # A reader that opened the file before the write still sees the whole old bytes.
        assert reader_of_the_old_file.read() == b"old"
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["staple"]


def test_failed_write_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.ocsp"
    write_atomically(target, b"old", mode=0o600)

    def no_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("staplegate.store.atomic.os.fsync", no_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_atomically(target, b"new", mode=0o600)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.ocsp"]


def test_temporary_names_are_recognisable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr("staplegate.store.atomic.os.replace", spy)
    write_atomically(tmp_path / "abc.ocsp", b"x", mode=0o600)
    [name] = seen
    assert name.startswith(".abc.ocsp.")
    assert is_temporary_name(name)
    assert not is_temporary_name("abc.ocsp")


def test_sidecar_is_world_readable_when_new(tmp_path: Path) -> None:
    sidecar = tmp_path / "site.pem.ocsp"
    write_sidecar_atomically(sidecar, b"\x30\x03\x0a\x01\x00")
    assert sidecar.read_bytes() == b"\x30\x03\x0a\x01\x00"
    assert mode(sidecar) == 0o644


def test_sidecar_keeps_the_mode_the_operator_chose(tmp_path: Path) -> None:
    sidecar = tmp_path / "site.pem.ocsp"
    sidecar.write_bytes(b"old")
    sidecar.chmod(0o640)
    write_sidecar_atomically(sidecar, b"new")
    assert sidecar.read_bytes() == b"new"
    assert mode(sidecar) == 0o640
