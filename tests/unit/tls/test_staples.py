"""The staple table and the OCSP callback: O(1), bytes only, never raises, counted once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.tls.staples import (
    StapleOutcome,
    StapleSlot,
    StapleStats,
    StapleTable,
    ocsp_status_callback,
    unattributed_callback_errors,
)

CERT_A = CertId(
    hash_algorithm="sha1",
    issuer_name_hash=b"\x01" * 20,
    issuer_key_hash=b"\x02" * 20,
    serial_number=1,
)
CERT_B = CertId(
    hash_algorithm="sha1",
    issuer_name_hash=b"\x01" * 20,
    issuer_key_hash=b"\x02" * 20,
    serial_number=2,
)


def cert_id(serial: int) -> CertId:
    return CertId("sha1", b"\x01" * 20, b"\x02" * 20, serial)


class Recorder:
    def __init__(self, staples: Any) -> None:
        self.staples = staples
        self.staple_outcome = StapleOutcome.NOT_REQUESTED
        self.staple_error: BaseException | None = None

    def outcome(self) -> StapleOutcome:
        """What the callback recorded (read through a call: the callback mutates this
        object, so a narrowing from an earlier assert must not carry over)."""
        return self.staple_outcome


class FakeConnection:
    """Fault injection: only `get_app_data` is used by the callback."""

    def __init__(self, app_data: Any, broken: bool = False) -> None:
        self.app_data = app_data
        self.broken = broken

    def get_app_data(self) -> Any:
        if self.broken:
            raise RuntimeError("no app data")
        return self.app_data


def slot(cert_id: CertId | None, must_staple: bool = False) -> StapleSlot:
    return StapleSlot(
        key=cert_id.der if cert_id else None,
        certificate="a.pem",
        must_staple=must_staple,
        generation=1,
    )


def call(conn: FakeConnection, data: StapleSlot | None) -> bytes:
    return ocsp_status_callback(conn, data)  # type: ignore[arg-type]  # a fake SSL.Connection


def test_table_replace_is_whole() -> None:
    table = StapleTable({CERT_A: b"staple-a"})
    assert table.lookup(CERT_A.der) == b"staple-a"
    table.replace({CERT_B: b"staple-b", CERT_A: b""})
    assert table.lookup(CERT_A.der) == b""  # empty means none
    assert table.get(CERT_B) == b"staple-b"
    assert list(table) == [CERT_B]
    assert len(table) == 1


def test_callback_outcomes() -> None:
    recorder = Recorder(StapleTable({CERT_A: b"staple-a"}))
    assert call(FakeConnection(recorder), slot(CERT_A)) == b"staple-a"
    assert recorder.outcome() is StapleOutcome.STAPLED
    assert call(FakeConnection(recorder), slot(CERT_B)) == b""
    assert recorder.outcome() is StapleOutcome.NO_STAPLE
    assert call(FakeConnection(recorder), slot(CERT_B, must_staple=True)) == b""
    assert recorder.outcome() is StapleOutcome.MUST_STAPLE_MISSING
    assert call(FakeConnection(recorder), slot(None)) == b""  # no CertId: no issuer


class Exploding:
    def lookup(self, key: bytes) -> bytes:
        raise KeyError(key)


class WrongType:
    def lookup(self, key: bytes) -> Any:
        return bytearray(b"not bytes")


@pytest.mark.parametrize("table", [Exploding(), WrongType(), None])
def test_callback_never_raises(table: Any) -> None:
    recorder = Recorder(table)
    assert call(FakeConnection(recorder), slot(CERT_A)) == b""
    assert recorder.staple_outcome is StapleOutcome.CALLBACK_ERROR
    assert recorder.staple_error is not None


def test_callback_without_its_connection_state_counts_unattributed() -> None:
    before = unattributed_callback_errors()
    assert call(FakeConnection(None, broken=True), slot(CERT_A)) == b""
    assert unattributed_callback_errors() == before + 1


def test_stats_log_once_per_certificate_and_generation(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="staplegate.tls.staples")
    stats = StapleStats()
    must = slot(CERT_A, must_staple=True)
    for _ in range(3):
        stats.record(StapleOutcome.MUST_STAPLE_MISSING, must)
    stats.record(StapleOutcome.MUST_STAPLE_MISSING, StapleSlot(must.key, "a.pem", True, 2))
    stats.record(StapleOutcome.STAPLED, must)
    stats.record(StapleOutcome.NO_STAPLE, must)
    stats.record(StapleOutcome.CALLBACK_ERROR, must, KeyError("x"))
    assert (stats.stapled, stats.not_stapled, stats.must_staple_missing) == (1, 1, 4)
    assert stats.callback_errors == 1
    assert stats.failed == 6
    messages = [r.getMessage() for r in caplog.records]
    assert sum("must-staple" in m for m in messages) == 2  # generations 1 and 2
    assert sum("callback failed" in m for m in messages) == 1


def test_the_table_applies_changes_in_place_and_looks_up_by_certid_der() -> None:
    a, b, c = cert_id(1), cert_id(2), cert_id(3)
    table = StapleTable({a: b"A", b: b"B"})
    assert table.lookup(a.der) == b"A"
    table.apply({c: b"C", a: b"A2"}, (b,))
    assert table.snapshot() == {a: b"A2", c: b"C"}
    assert table.lookup(a.der) == b"A2"
    assert table.lookup(b.der) == b""  # withdrawn: the callback's "no staple"
    table.apply({c: b""}, ())  # an empty staple is no staple
    assert table.lookup(c.der) == b""
    assert len(table) == 1
    table.replace({b: b"B2"})
    assert table.snapshot() == {b: b"B2"}
    assert table.lookup(a.der) == b""
    assert table.get(b) == b"B2"
