"""FileStapleStore with real OCSP DER on a real file system (pytest's tmp_path)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from staplegate.ocsp.certid import CertId
from staplegate.store import (
    FileStapleStore,
    StapleStore,
    StoreError,
    StoreErrorReason,
    StoreProblemReason,
    cert_id_from_der,
)
from tests.ocsp_der import with_md5_cert_id

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    serial: int,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=90))
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass(frozen=True)
class Pki:
    ca: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    leaves: tuple[x509.Certificate, ...]

    def cert_id(self, index: int, algorithm: str = "sha1") -> CertId:
        return CertId.for_certificate(self.leaves[index], self.ca, algorithm)

    def response(self, index: int) -> bytes:
        """A real signed `good` response for leaf `index`."""
        return (
            ocsp.OCSPResponseBuilder()
            .add_response(
                self.leaves[index],
                self.ca,
                hashes.SHA1(),
                ocsp.OCSPCertStatus.GOOD,
                NOW - dt.timedelta(hours=1),
                NOW + dt.timedelta(days=7),
                None,
                None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca)
            .sign(self.ca_key, hashes.SHA256())
            .public_bytes(Encoding.DER)
        )


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def make_pki() -> Pki:
    """A CA and three leaves (the store tests' PKI; test_preload.py uses it too)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Store Test CA", ca_key, "Store Test CA", ca_key, 1)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaves = tuple(
        _certificate(f"www{n}.test", leaf_key, "Store Test CA", ca_key, serial)
        for n, serial in enumerate([0x0A1B2C3D, 0x7F, 2**159 - 1])
    )
    return Pki(ca=ca, ca_key=ca_key, leaves=leaves)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def restore_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- round trip ----------------------------------------------------------------------------


def test_save_then_load_returns_exactly_what_was_saved(pki: Pki, state: Path) -> None:
    store: StapleStore = FileStapleStore(state)
    staples = {pki.cert_id(n): pki.response(n) for n in range(3)}
    for cert_id, der in staples.items():
        store.save(cert_id, der)
    assert FileStapleStore(state).load_all() == staples  # a fresh instance: it is on disk


def test_file_is_named_by_certid_hex_and_holds_plain_der(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    der = pki.response(0)
    store.save(pki.cert_id(0), der)
    path = state / f"{pki.cert_id(0).hex}.ocsp"
    assert store.path_for(pki.cert_id(0)) == path
    assert path.read_bytes() == der
    assert path.name.startswith("303d300906052b0e03021a0500")  # as spec §5.2
    assert sorted(p.name for p in state.iterdir()) == [path.name]  # no temporary left


def test_save_replaces_the_previous_staple(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    cert_id = pki.cert_id(1)
    store.save(cert_id, pki.response(1))
    newer = pki.response(1)  # signed again: different signature bytes (ECDSA)
    store.save(cert_id, newer)
    assert store.load_all() == {cert_id: newer}
    assert len(list(state.iterdir())) == 1


def test_delete(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    kept = pki.response(1)
    store.save(pki.cert_id(0), pki.response(0))
    store.save(pki.cert_id(1), kept)
    store.delete(pki.cert_id(0))
    store.delete(pki.cert_id(0))  # again: nothing to do, no error
    store.delete(pki.cert_id(2))  # never saved
    assert store.load_all() == {pki.cert_id(1): kept}
    assert not store.path_for(pki.cert_id(0)).exists()


def test_missing_directory_is_an_empty_store(state: Path) -> None:
    found = FileStapleStore(state).scan()
    assert found.staples == {}
    assert found.problems == ()
    assert not state.exists()  # loading creates nothing


# --- permissions ---------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_umask")
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_created_directory_is_0700_and_files_0600(pki: Pki, tmp_path: Path, umask: int) -> None:
    os.umask(umask)
    state = tmp_path / "a" / "b" / "state"
    store = FileStapleStore(state)
    store.save(pki.cert_id(0), pki.response(0))
    os.umask(0o022)
    assert mode(state) == 0o700
    assert mode(store.path_for(pki.cert_id(0))) == 0o600


def test_existing_directory_mode_is_left_alone(pki: Pki, state: Path) -> None:
    state.mkdir(mode=0o750)
    state.chmod(0o750)
    FileStapleStore(state).save(pki.cert_id(0), pki.response(0))
    assert mode(state) == 0o750


def test_directory_writable_by_others_is_reported(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    store.save(pki.cert_id(0), pki.response(0))
    state.chmod(0o777)
    found = store.scan()
    assert set(found.staples) == {pki.cert_id(0)}  # still loaded: the engine verifies
    [problem] = found.problems
    assert problem.reason is StoreProblemReason.DIRECTORY_WRITABLE_BY_OTHERS
    assert "chmod 0700" in problem.detail


def test_state_path_that_is_a_file_is_refused(pki: Pki, state: Path) -> None:
    state.write_bytes(b"")
    store = FileStapleStore(state)
    with pytest.raises(StoreError, match="not a directory") as caught:
        store.save(pki.cert_id(0), pki.response(0))
    assert caught.value.reason is StoreErrorReason.NOT_A_DIRECTORY
    with pytest.raises(StoreError) as caught:
        store.scan()
    assert caught.value.reason is StoreErrorReason.READ_DIRECTORY_FAILED


# --- atomicity -----------------------------------------------------------------------------


def test_leftover_temporary_file_is_ignored(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    cert_id = pki.cert_id(0)
    saved = pki.response(0)
    store.save(cert_id, saved)
    # What a crash between write and rename leaves behind: a complete-looking temporary file
    # (even a valid response) and a half-written one.
    (state / f".{cert_id.hex}.ocsp.x1y2z3.tmp").write_bytes(pki.response(1))
    (state / f".{cert_id.hex}.ocsp.q9w8e7.tmp").write_bytes(pki.response(0)[:40])
    found = store.scan()
    assert found.staples == {cert_id: saved}
    assert [p.reason for p in found.problems] == [StoreProblemReason.LEFTOVER_TEMPORARY] * 2


def test_failed_rename_keeps_the_old_staple_and_cleans_up(
    pki: Pki, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStapleStore(state)
    cert_id = pki.cert_id(0)
    old = pki.response(0)
    store.save(cert_id, old)

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("staplegate.store.atomic.os.replace", failing_replace)
    with pytest.raises(StoreError, match="No space left on device") as caught:
        store.save(cert_id, pki.response(0))
    monkeypatch.undo()
    assert caught.value.reason is StoreErrorReason.WRITE_FAILED
    assert "stays in memory" in str(caught.value)
    assert store.load_all() == {cert_id: old}
    assert [p.name for p in state.iterdir()] == [f"{cert_id.hex}.ocsp"]


def test_truncated_file_is_never_returned(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    cert_id = pki.cert_id(0)
    der = pki.response(0)
    state.mkdir()
    for cut in (1, len(der) // 2, len(der) - 1):
        store.path_for(cert_id).write_bytes(der[:cut])
        found = store.scan()
        assert found.staples == {}, cut
        assert [p.reason for p in found.problems] == [StoreProblemReason.CORRUPT]


# --- foreign and garbage files -------------------------------------------------------------


def test_garbage_and_foreign_files_are_skipped_with_reasons(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    good_id = pki.cert_id(0)
    good = pki.response(0)
    store.save(good_id, good)
    other_hex = pki.cert_id(1).hex
    third_hex = pki.cert_id(2).hex
    (state / f"{other_hex}.ocsp").write_bytes(b"\x00garbage\xff" * 10)  # CORRUPT
    (state / f"{third_hex}.ocsp").write_bytes(pki.response(1))  # answers for leaf 1
    (state / "README").write_text("hello")  # FOREIGN_NAME
    (state / "abc.ocsp").write_bytes(pki.response(0))  # odd hex, not a CertId
    (state / f"{good_id.hex.upper()}.ocsp").write_bytes(pki.response(0))  # not our spelling
    (state / "deadbeef.ocsp").write_bytes(pki.response(0))  # hex, but not a CertID
    found = store.scan()
    assert found.staples == {good_id: good}
    reasons = {p.path.name: p.reason for p in found.problems}
    assert reasons == {
        f"{other_hex}.ocsp": StoreProblemReason.CORRUPT,
        f"{third_hex}.ocsp": StoreProblemReason.CERTID_MISMATCH,
        "README": StoreProblemReason.FOREIGN_NAME,
        "abc.ocsp": StoreProblemReason.FOREIGN_NAME,
        f"{good_id.hex.upper()}.ocsp": StoreProblemReason.FOREIGN_NAME,
        "deadbeef.ocsp": StoreProblemReason.FOREIGN_NAME,
    }


def test_unsuccessful_response_is_not_a_staple(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    state.mkdir()
    unauthorized = ocsp.OCSPResponseBuilder.build_unsuccessful(
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    ).public_bytes(Encoding.DER)
    store.path_for(pki.cert_id(0)).write_bytes(unauthorized)
    found = store.scan()
    assert found.staples == {}
    [problem] = found.problems
    assert problem.reason is StoreProblemReason.NOT_SUCCESSFUL
    assert "unauthorized" in problem.detail


def test_symlinks_directories_and_huge_files_are_not_read(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    state.mkdir()
    outside = state.parent / "elsewhere.der"
    outside.write_bytes(pki.response(0))
    store.path_for(pki.cert_id(0)).symlink_to(outside)
    store.path_for(pki.cert_id(1)).mkdir()
    with store.path_for(pki.cert_id(2)).open("wb") as sparse:
        sparse.truncate(64 * 1024 * 1024)  # sparse: costs no disk, must not be read
    found = store.scan()
    assert found.staples == {}
    reasons = {p.path.name: p.reason for p in found.problems}
    assert reasons == {
        f"{pki.cert_id(0).hex}.ocsp": StoreProblemReason.NOT_A_REGULAR_FILE,
        f"{pki.cert_id(1).hex}.ocsp": StoreProblemReason.NOT_A_REGULAR_FILE,
        f"{pki.cert_id(2).hex}.ocsp": StoreProblemReason.TOO_LARGE,
    }


def test_load_all_logs_each_skipped_file(
    pki: Pki, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileStapleStore(state)
    store.save(pki.cert_id(0), pki.response(0))
    (state / f"{pki.cert_id(1).hex}.ocsp").write_bytes(b"junk")
    (state / f".{pki.cert_id(0).hex}.ocsp.abc.tmp").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="staplegate.store"):
        loaded = store.load_all()
    assert set(loaded) == {pki.cert_id(0)}
    logged = sorted((r.levelno, r.getMessage()) for r in caplog.records)
    assert len(logged) == 2, logged
    (info, temporary), (warning, junk) = logged
    assert (info, warning) == (logging.INFO, logging.WARNING)
    assert "leftover temporary file" in temporary
    assert f"{pki.cert_id(1).hex}.ocsp: not a DER OCSP response" in junk


def test_a_certid_in_an_unsupported_hash_is_skipped_with_a_warning_naming_the_file(
    pki: Pki, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14, defect 6: an MD5 CertId raised UnsupportedAlgorithm out of load_all, and the
    master, waiting for the store, never started and ignored SIGTERM."""
    store = FileStapleStore(state)
    store.save(pki.cert_id(0), pki.response(0))
    md5_name = with_md5_cert_id(pki.cert_id(1).der).hex() + ".ocsp"
    (state / md5_name).write_bytes(with_md5_cert_id(pki.response(1)))
    # a SHA-1 file name whose response answers in MD5
    (state / f"{pki.cert_id(2).hex}.ocsp").write_bytes(with_md5_cert_id(pki.response(2)))
    with caplog.at_level(logging.INFO, logger="staplegate.store"):
        loaded = store.load_all()
    assert set(loaded) == {pki.cert_id(0)}
    problems = {p.path.name: p for p in store.scan().problems}
    assert problems[md5_name].reason is StoreProblemReason.UNSUPPORTED_CERTID
    assert "1.2.840.113549.2.5" in problems[md5_name].detail
    third = problems[f"{pki.cert_id(2).hex}.ocsp"]
    assert third.reason is StoreProblemReason.UNSUPPORTED_CERTID
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(md5_name in w and "unsupported hash algorithm" in w for w in warnings), warnings


def test_cert_id_from_der_refuses_an_unsupported_hash(pki: Pki) -> None:
    assert cert_id_from_der(with_md5_cert_id(pki.cert_id(0).der)) is None


# --- CertIds in file names -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_cert_id_from_der_round_trips(pki: Pki, algorithm: str) -> None:
    for index in range(3):  # includes a 20-byte serial
        cert_id = pki.cert_id(index, algorithm)
        assert cert_id_from_der(cert_id.der) == cert_id


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30\x00", bytes.fromhex("deadbeef"), b"\x30" * 50],
)
def test_cert_id_from_der_refuses_non_certids(der: bytes) -> None:
    assert cert_id_from_der(der) is None


def test_cert_id_from_der_refuses_trailing_bytes(pki: Pki) -> None:
    assert cert_id_from_der(pki.cert_id(0).der + b"\x00") is None


def test_sha256_certids_fit_in_a_file_name_sha512_ones_are_refused(pki: Pki, state: Path) -> None:
    store = FileStapleStore(state)
    store.save(pki.cert_id(2, "sha256"), b"whatever")
    with pytest.raises(StoreError, match="too long for a file name") as caught:
        store.save(pki.cert_id(2, "sha512"), b"whatever")
    assert caught.value.reason is StoreErrorReason.NAME_TOO_LONG


def _save_all_at_once(pki: Pki, store: FileStapleStore) -> list[BaseException]:
    """Save every leaf's staple from its own thread, all released together."""
    barrier = threading.Barrier(len(pki.leaves))
    failures: list[BaseException] = []

    def save(index: int) -> None:
        barrier.wait()
        try:
            store.save(pki.cert_id(index), pki.response(index))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(pki.leaves))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_first_saves_racing_to_create_the_directory_all_land(pki: Pki, tmp_path: Path) -> None:
    """On a first start several writer threads create the state directory at once.

    One thread used to see "no directory" and then "something exists" (the other thread's new
    directory) and refuse with NOT_A_DIRECTORY, losing that staple until the next refresh.
    """
    for attempt in range(60):
        store = FileStapleStore(tmp_path / f"round{attempt}" / "state")
        assert _save_all_at_once(pki, store) == []
        assert set(store.load_all()) == {pki.cert_id(i) for i in range(len(pki.leaves))}
        assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
