"""OcspUpdater without the network: result mapping, entry grouping and misuse of the hooks."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Mapping
from pathlib import Path

import pytest

from staplegate.clock import ManualClock
from staplegate.fetch.http import FetchFailure, FetchResult, FetchSettings
from staplegate.fetch.updater import (
    OcspUpdater,
    UpdaterEntry,
    UpdaterNotRunning,
    fetch_event,
)
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.machine import FetchFailed, FetchFailureKind, FetchSucceeded, State
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.testpki.ca import CertificateAuthority, IssuedCertificate

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


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


@pytest.fixture(scope="module")
def leaves(tmp_path_factory: pytest.TempPathFactory) -> tuple[IssuedCertificate, ...]:
    ca = CertificateAuthority.init(tmp_path_factory.mktemp("ca"), ocsp_url="http://127.0.0.1:9")
    no_uri = ca.issue("no-uri.test", ocsp_url=None)
    return ca.issue("a.test"), ca.issue("b.test"), no_uri


def _entry(leaf: IssuedCertificate, path: str, *, uri: str | None, auto: bool) -> UpdaterEntry:
    return UpdaterEntry(leaf.certificate, leaf.issuer, path, uri, auto_update=auto)


def _updater(entries: list[UpdaterEntry], tables: list[Mapping[CertId, bytes]]) -> OcspUpdater:
    return OcspUpdater(
        entries,
        update_settings=UpdateSettings(),
        fetch_settings=FetchSettings(),
        on_staples=tables.append,
        clock=ManualClock(NOW),
        rng=random.Random(1),
    )


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


def test_runtime_hooks_refuse_before_run(leaves: tuple[IssuedCertificate, ...]) -> None:
    a, _, _ = leaves
    updater = _updater([_entry(a, "/c/a.pem", uri="http://127.0.0.1:9", auto=True)], [])
    with pytest.raises(UpdaterNotRunning, match="not running"):
        updater.set_response(b"")
    cert_id = CertId.for_certificate(a.certificate, a.issuer)
    with pytest.raises(UpdaterNotRunning):
        asyncio.run(updater.update_now(cert_id, timeout=1))


def test_certificate_without_uri_is_idle_and_update_now_says_why(
    leaves: tuple[IssuedCertificate, ...], tmp_path: Path
) -> None:
    _, _, no_uri = leaves
    tables: list[Mapping[CertId, bytes]] = []
    updater = _updater([_entry(no_uri, "/c/n.pem", uri=None, auto=True)], tables)
    cert_id = CertId.for_certificate(no_uri.certificate, no_uri.issuer)

    async def scenario() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(updater.run(started=started))
        await started.wait()
        outcome = await updater.update_now(cert_id, timeout=1)
        (row,) = updater.snapshot()
        updater.stop()
        await task
        assert outcome.result.value == "cannot-fetch"
        assert outcome.text == (
            "/c/n.pem: cannot update: the certificate has no OCSP URI; "
            "check the certificate's AIA extension"
        )
        assert row.state is State.IDLE
        assert row.next_attempt is None

    asyncio.run(scenario())
    assert tables == [{}]


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
