"""The store contract's error types, and the file store honouring the `StapleStore` protocol."""

from __future__ import annotations

from pathlib import Path

from staplegate.ocsp.certid import CertId
from staplegate.store import FileStapleStore
from staplegate.store.base import (
    StapleStore,
    StoreError,
    StoreErrorReason,
    StoreProblem,
    StoreProblemReason,
)


def test_errors_and_problems_name_the_path_first() -> None:
    error = StoreError(StoreErrorReason.WRITE_FAILED, Path("/var/lib/sg"), "disk full")
    assert str(error) == "/var/lib/sg: disk full"
    assert error.reason is StoreErrorReason.WRITE_FAILED
    assert error.path == Path("/var/lib/sg")
    problem = StoreProblem(
        Path("/var/lib/sg/x.tmp"), StoreProblemReason.LEFTOVER_TEMPORARY, "a leftover"
    )
    assert str(problem) == "/var/lib/sg/x.tmp: a leftover"


def test_the_file_store_keeps_the_promises_of_the_protocol(tmp_path: Path) -> None:
    store: StapleStore = FileStapleStore(tmp_path / "state")  # checked by mypy, used below
    assert store.load_all() == {}
    cert_id = CertId("sha1", b"\x01" * 20, b"\x02" * 20, 7)
    store.delete(cert_id)  # no staple yet: no error
    assert store.load_all() == {}
