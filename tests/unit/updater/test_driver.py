"""The driver without the network: result mapping, entry grouping, stopping, timers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping

import pytest

from staplegate.fetch.client import FetchFailure, FetchResult
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.machine import FetchFailed, FetchFailureKind, FetchSucceeded, State
from staplegate.testpki.ca import IssuedCertificate
from staplegate.updater.driver import fetch_event

from .conftest import NOW
from .conftest import entry as _entry
from .conftest import make_updater as _updater


def _result(failure: FetchFailure | None, body: bytes | None = None) -> FetchResult:
    return FetchResult(
        ok=failure is None,
        body=body,
        failure=failure,
        detail=f"detail of {failure}",
        http_status=None,
        elapsed=0.1,
    )


EXPECTED_KINDS = {
    FetchFailure.INVALID_URL: FetchFailureKind.INTERNAL,
    FetchFailure.DNS_FAILED: FetchFailureKind.CONNECT,
    FetchFailure.CONNECT_FAILED: FetchFailureKind.CONNECT,
    FetchFailure.TLS_FAILED: FetchFailureKind.CONNECT,
    FetchFailure.PROXY_FAILED: FetchFailureKind.CONNECT,
    FetchFailure.CONNECTION_LOST: FetchFailureKind.CONNECT,
    FetchFailure.PROTOCOL_ERROR: FetchFailureKind.CONNECT,
    FetchFailure.TIMEOUT: FetchFailureKind.TIMEOUT,
    FetchFailure.HTTP_STATUS: FetchFailureKind.HTTP_STATUS,
    FetchFailure.WRONG_CONTENT_TYPE: FetchFailureKind.CONTENT_TYPE,
    FetchFailure.BODY_TOO_LARGE: FetchFailureKind.TOO_LARGE,
}


@pytest.mark.parametrize("failure", [f for f in FetchFailure if f is not FetchFailure.EMPTY_BODY])
def test_every_fetch_failure_maps_to_the_documented_kind_with_its_detail(
    failure: FetchFailure,
) -> None:
    event = fetch_event(_result(failure), NOW)
    assert isinstance(event, FetchFailed)
    assert event.kind is EXPECTED_KINDS[failure]
    assert event.detail == f"detail of {failure}"
    assert event.now == NOW


def test_success_and_empty_body_become_fetch_succeeded() -> None:
    ok = fetch_event(_result(None, b"\x30\x03abc"), NOW)
    assert ok == FetchSucceeded(NOW, b"\x30\x03abc")
    empty = fetch_event(_result(FetchFailure.EMPTY_BODY), NOW)
    assert empty == FetchSucceeded(NOW, b"")  # verification then fails: status 4


def test_same_certid_shares_one_machine_whichever_file_carries_the_uri(
    leaves: tuple[IssuedCertificate, ...],
) -> None:
    a, b, _ = leaves
    updater = _updater(
        [
            _entry(a, "/c/a1.pem", uri=None, auto=False),
            _entry(b, "/c/b.pem", uri="http://127.0.0.1:9", auto=False),
            _entry(a, "/c/a2.pem", uri="http://127.0.0.1:9", auto=True),
        ],
        [],
    )
    rows = updater.snapshot()
    assert [row.paths for row in rows] == [("/c/a1.pem", "/c/a2.pem"), ("/c/b.pem",)]
    first = rows[0]
    assert first.path == "/c/a1.pem"
    assert first.uri == "http://127.0.0.1:9"
    assert first.auto_update
    assert first.state is State.NEW
    assert not rows[1].auto_update
    cert_id = CertId.for_certificate(a.certificate, a.issuer)
    assert first.cert_id == cert_id
    assert updater.find("/c/a2.pem") == cert_id
    sha256 = CertId.for_certificate(a.certificate, a.issuer, "sha256")
    assert updater.find(sha256.hex) == cert_id
    assert updater.find("/c/none.pem") is None


def test_stop_before_run_starts_still_publishes_then_returns(
    leaves: tuple[IssuedCertificate, ...],
) -> None:
    a, _, _ = leaves
    tables: list[Mapping[CertId, bytes]] = []
    updater = _updater([_entry(a, "/c/a.pem", uri="http://127.0.0.1:9", auto=True)], tables)

    async def scenario() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(updater.run(started=started))
        updater.stop()  # the task has not run a single step yet
        async with asyncio.timeout(5):
            await task
        assert started.is_set()
        with pytest.raises(RuntimeError, match="runs once"):
            await updater.run()

    asyncio.run(scenario())
    assert tables == [{}]
    (row,) = updater.snapshot()
    assert row.successes + row.failures == 0  # nothing was fetched


def test_superseded_timers_do_not_pile_up(leaves: tuple[IssuedCertificate, ...]) -> None:
    a, b, _ = leaves
    updater = _updater(
        [
            _entry(a, "/c/a.pem", uri="http://127.0.0.1:9", auto=True),
            _entry(b, "/c/b.pem", uri="http://127.0.0.1:9", auto=True),
        ],
        [],
    )
    ids = [row.cert_id for row in updater.snapshot()]
    for step in range(1000):
        updater._set_timer(ids[step % 2], NOW + dt.timedelta(days=1, seconds=step))
    assert len(updater._timers) <= 2 * len(ids) + 65
    # the newest timer of each certificate is the one that counts
    assert updater._sleep_seconds() > 0
    live = sorted(
        (when, cert) for when, seq, cert in updater._timers if updater._timer_seq[cert] == seq
    )
    assert [when for when, _ in live] == [
        NOW + dt.timedelta(days=1, seconds=998),
        NOW + dt.timedelta(days=1, seconds=999),
    ]
