"""BackgroundScan: the state directory read by a forked child, handed back as a StoreScan
(the child itself: tests/unit/process/test_forked.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.store import FileStapleStore, StoreProblemReason, StoreScan
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


def test_a_child_that_fails_gives_nothing_so_the_store_reads_again() -> None:
    def scan() -> StoreScan:
        raise OSError("the disk went away")

    assert BackgroundScan(scan).result() is None


def test_a_result_that_is_not_a_scan_is_refused() -> None:
    def not_a_scan() -> StoreScan:
        return {"not": "a scan"}  # type: ignore[return-value]

    assert BackgroundScan(not_a_scan).result() is None


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
