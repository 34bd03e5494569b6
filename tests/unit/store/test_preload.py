"""BackgroundScan: the state directory read by a forked child, handed back as a StoreScan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.store import FileStapleStore, StoreProblem, StoreProblemReason, StoreScan
from staplegate.store.preload import BackgroundScan

from .test_filesystem import make_pki


@pytest.fixture(scope="module")
def staples() -> dict[CertId, bytes]:
    pki = make_pki()
    return {pki.cert_id(n): pki.response(n) for n in range(3)}


def test_the_child_reads_what_an_in_process_scan_reads(
    staples: dict[CertId, bytes], tmp_path: Path
) -> None:
    store = FileStapleStore(tmp_path / "state")
    for cert_id, der in staples.items():
        store.save(cert_id, der)
    (tmp_path / "state" / "notes.txt").write_text("not a staple")
    (tmp_path / "state" / f"{next(iter(staples)).hex}.ocsp").write_bytes(b"\x30\x03garbage")

    preloaded = BackgroundScan(store.scan).result()

    assert preloaded is not None
    here = store.scan()
    assert preloaded.staples == here.staples
    assert len(preloaded.staples) == 2
    assert preloaded.problems == here.problems
    assert {p.reason for p in preloaded.problems} == {
        StoreProblemReason.FOREIGN_NAME,
        StoreProblemReason.CORRUPT,
    }


def test_the_scan_runs_in_another_process() -> None:
    def scan() -> StoreScan:
        return StoreScan(
            {}, (StoreProblem(Path("pid"), StoreProblemReason.CORRUPT, str(os.getpid())),)
        )

    background = BackgroundScan(scan)
    preloaded = background.result()

    assert preloaded is not None
    assert int(preloaded.problems[0].detail) == background.pid != os.getpid()


def test_a_child_that_fails_gives_nothing_and_is_reaped() -> None:
    def scan() -> StoreScan:
        raise OSError("the disk went away")

    background = BackgroundScan(scan)
    assert background.result() is None
    with pytest.raises(ChildProcessError):
        os.waitpid(background.pid, os.WNOHANG)
    assert background.result() is None  # asked again: still nothing, no second wait


def test_cancel_stops_a_child_that_has_not_finished() -> None:
    never_read, never_written = os.pipe()
    try:

        def scan() -> StoreScan:
            os.read(never_read, 1)  # blocks until cancelled
            return StoreScan({}, ())

        background = BackgroundScan(scan)
        background.cancel()
        with pytest.raises(ChildProcessError):
            os.waitpid(background.pid, os.WNOHANG)
        assert background.result() is None
    finally:
        os.close(never_read)
        os.close(never_written)


def test_cancel_after_the_result_does_nothing(tmp_path: Path) -> None:
    store = FileStapleStore(tmp_path)
    background = BackgroundScan(store.scan)
    assert background.result() == StoreScan({}, ())
    background.cancel()


def test_a_preloaded_scan_answers_the_next_load_only(
    staples: dict[CertId, bytes], tmp_path: Path
) -> None:
    store = FileStapleStore(tmp_path / "state")
    first, *others = staples.items()
    store.save(*first)
    preloaded = BackgroundScan(store.scan).result()
    assert preloaded is not None
    for cert_id, der in others:  # written after the preload: the next load does not see them
        store.save(cert_id, der)

    store.use_preloaded(preloaded)

    assert store.load_all() == dict([first])
    assert store.load_all() == staples  # a later load (a reload) reads the directory again
