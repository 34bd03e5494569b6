"""OcspUpdater against the staplegate test responder (pytest plugin) with every fault it has.

Each case first gets a good staple, then turns a fault on and asks for an update: the
outcome and the `<OCSP-UPDATE>` line carry HAProxy's status code and a specific detail, and
the last good staple keeps being served whatever the responder did.

The certificate's URI is long enough that the request goes by POST (HAProxy's rule: GET only
when DER + URI < 255 bytes): the responder answers a repeated GET from its cache without
re-reading the request, and then bends a cached answer it can no longer parse
(`malformedrequest`), which would hide what the fault is meant to show.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from staplegate.clock import SystemClock
from staplegate.fetch.client import FetchSettings
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.machine import Action, CertificateMachine, Event, State, Tick
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.ocsp.verify import VerifiedStaple, verify_response
from staplegate.testpki.faults import Fault, FaultKind
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.driver import RETRY_AFTER_INTERNAL_ERROR_S, UpdaterEntry
from staplegate.updater.results import UpdateResult
from staplegate.updater.service import OcspUpdater
from tests.ocsp_der import BOOLEAN, INTEGER, retag_string

FAST = FetchSettings(connect_timeout=1.0, total_timeout=3.0, connect_retries=0, max_body=8192)

CASES = [
    (FaultKind.HTTP_404, UpdateStatus.HTTP_ERROR, "HTTP error (HTTP 404 from http://"),
    (FaultKind.HTTP_500, UpdateStatus.HTTP_ERROR, "HTTP error (HTTP 500 from http://"),
    (FaultKind.CONNECTION_RESET, UpdateStatus.HTTP_ERROR, "HTTP error ("),
    (FaultKind.HUGE_BODY, UpdateStatus.HTTP_ERROR, "HTTP error (body"),
    (
        FaultKind.WRONG_CONTENT_TYPE,
        UpdateStatus.MISSING_CONTENT_TYPE,
        "Missing \"ocsp-response\" header (Content-Type 'application/octet-stream' is not",
    ),
    (
        FaultKind.EMPTY_BODY,
        UpdateStatus.CHECK_FAILURE,
        "OCSP response check failure (d2i_OCSP_RESPONSE() failed)",
    ),
    (
        FaultKind.GARBAGE_BODY,
        UpdateStatus.CHECK_FAILURE,
        "OCSP response check failure (d2i_OCSP_RESPONSE() failed)",
    ),
    (
        FaultKind.TRY_LATER,
        UpdateStatus.CHECK_FAILURE,
        "OCSP response check failure (OCSP response not successful (3: trylater))",
    ),
    (
        FaultKind.UNAUTHORIZED,
        UpdateStatus.CHECK_FAILURE,
        "OCSP response check failure (OCSP response not successful (6: unauthorized))",
    ),
    (
        FaultKind.ROGUE_SIGNER,
        UpdateStatus.CHECK_FAILURE,
        "OCSP response check failure (OCSP_basic_verify() failed)",
    ),
    (
        FaultKind.WRONG_CERTID,
        UpdateStatus.INSERTION_ERROR,
        "Error during insertion (OCSP single response: Certificate ID does not match",
    ),
    (FaultKind.STALE, UpdateStatus.INSERTION_ERROR, "Error during insertion (OCSP single"),
    (FaultKind.FUTURE, UpdateStatus.INSERTION_ERROR, "Error during insertion (OCSP single"),
]


@asynccontextmanager
async def running(updater: OcspUpdater) -> AsyncIterator[OcspUpdater]:
    """The updater running on this loop, started (its first table published), then stopped."""
    started = asyncio.Event()
    task = asyncio.create_task(updater.run(started=started))
    try:
        await started.wait()
        yield updater
    finally:
        updater.stop()
        await task


@pytest.mark.parametrize(("fault", "status", "text"), CASES, ids=[c[0].value for c in CASES])
def test_fault_is_reported_specifically_and_the_last_good_staple_stays(
    pki: Pki, caplog: pytest.LogCaptureFixture, fault: FaultKind, status: UpdateStatus, text: str
) -> None:
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")
    leaf = pki.issue("www.fault.test")
    other = pki.issue("other.fault.test")  # WRONG_CERTID answers for another certificate
    cert_id = CertId.for_certificate(leaf.certificate, leaf.issuer)
    uri = f"{pki.responder.url}/{'post' * 60}"
    tables: list[Mapping[CertId, bytes]] = []
    updater = OcspUpdater(
        [UpdaterEntry(leaf.certificate, leaf.issuer, "/etc/certs/www.pem", uri)],
        update_settings=UpdateSettings(),
        fetch_settings=FAST,
        on_staples=tables.append,
        rng=random.Random(3),
    )
    assert other.serial != leaf.serial

    async def scenario() -> None:
        async with running(updater):
            first = await updater.update_now(cert_id, timeout=10)
            assert first.ok, first
            assert pki.responder.requests[-1].method == "POST"
            good = tables[-1][cert_id]
            pki.responder.set_fault(fault)
            outcome = await updater.update_now(cert_id, timeout=10)
            assert outcome.result is UpdateResult.COMPLETED
            assert outcome.status is status
            assert outcome.text.startswith(text), outcome.text
            assert (outcome.failures, outcome.successes) == (1, 1)
            assert tables[-1] == {cert_id: good}

    asyncio.run(scenario())
    lines = [m for m in caplog.messages if m.startswith("<OCSP-UPDATE>")]
    assert lines[0] == '<OCSP-UPDATE> /etc/certs/www.pem 1 "Update successful" 0 1'
    assert lines[1].startswith(f'<OCSP-UPDATE> /etc/certs/www.pem {int(status)} "{text}')
    assert lines[1].endswith('" 1 1')


MALFORMED = [
    # (which copy of the signer's CN: 0 = the ResponderID name, 1 = the embedded certificate's
    # subject; the wrong ASN.1 tag; HAProxy's detail for the failed check)
    (0, BOOLEAN, "d2i_OCSP_RESPONSE() failed"),
    (0, INTEGER, "d2i_OCSP_RESPONSE() failed"),
    (1, BOOLEAN, "OCSP_basic_verify() failed"),
    (1, INTEGER, "OCSP_basic_verify() failed"),
]


@pytest.mark.parametrize(
    ("occurrence", "tag", "detail"),
    MALFORMED,
    ids=["responder-id-boolean", "responder-id-integer", "subject-boolean", "subject-integer"],
)
def test_a_malformed_name_in_the_answer_is_a_failure_and_refreshes_go_on(
    pki: Pki, caplog: pytest.LogCaptureFixture, occurrence: int, tag: int, detail: str
) -> None:
    """Issue 14, defect 2: a name attribute of the wrong ASN.1 type (anyone on the path can
    send it; no key needed) raised TypeError/ValueError in the fetch task, which died with
    the certificate left "fetching" forever. Now it is a check failure (status 4), counted,
    and the next attempts go on."""
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")
    leaf = pki.issue("www.malformed.test")
    cert_id = CertId.for_certificate(leaf.certificate, leaf.issuer)
    uri = f"{pki.responder.url}/{'post' * 60}"
    tables: list[Mapping[CertId, bytes]] = []
    updater = OcspUpdater(
        [UpdaterEntry(leaf.certificate, leaf.issuer, "/etc/certs/www.pem", uri)],
        update_settings=UpdateSettings(),
        fetch_settings=FAST,
        on_staples=tables.append,
        rng=random.Random(3),
    )

    async def scenario() -> None:
        async with running(updater):
            assert (await updater.update_now(cert_id, timeout=10)).ok
            good = tables[-1][cert_id]
            responder = ocsp.load_der_ocsp_response(good).responder_name
            assert responder is not None  # the test responder answers byName
            signer_cn = responder.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            assert isinstance(signer_cn, str)
            bad = retag_string(good, signer_cn, tag=tag, occurrence=occurrence)
            pki.responder.set_fault(Fault(FaultKind.FIXED_BODY, body=bad))
            outcome = await updater.update_now(cert_id, timeout=10)
            assert outcome.result is UpdateResult.COMPLETED, outcome
            assert outcome.status is UpdateStatus.CHECK_FAILURE
            assert outcome.text == f"OCSP response check failure ({detail})"
            (row,) = updater.snapshot()
            assert row.state is State.WAITING
            assert row.next_attempt is not None
            assert tables[-1] == {cert_id: good}  # the last good staple stays
            pki.responder.clear_faults()
            again = await updater.update_now(cert_id, timeout=10)
            assert again.ok, again
            assert (again.failures, again.successes) == (1, 2)

    asyncio.run(scenario())
    assert not [r for r in caplog.records if r.exc_info], "nothing may crash"


def test_whatever_handling_a_fetch_raises_the_certificate_leaves_fetching(
    pki: Pki, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The updater's own guard, below the verifier's: a bug that raises while a fetched body
    is handled (no real responder can cause one once the verifier is fixed, hence the fake)
    is logged with its traceback, counted as a failure, and a retry is scheduled."""
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")
    leaf = pki.issue("www.bug.test")
    cert_id = CertId.for_certificate(leaf.certificate, leaf.issuer)
    updater = OcspUpdater(
        [UpdaterEntry(leaf.certificate, leaf.issuer, "/etc/certs/www.pem", pki.responder.url)],
        update_settings=UpdateSettings(),
        fetch_settings=FAST,
        on_staples=lambda table: None,
        rng=random.Random(3),
    )

    def broken_verifier(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug in the verifier")

    async def scenario() -> None:
        async with running(updater):
            monkeypatch.setattr("staplegate.ocsp.machine.verify_response", broken_verifier)
            outcome = await updater.update_now(cert_id, timeout=10)
            assert outcome.result is UpdateResult.COMPLETED, outcome
            assert outcome.status is UpdateStatus.UNKNOWN  # internal: HAProxy's status 0
            assert outcome.failures == 1
            (row,) = updater.snapshot()
            assert row.state is State.WAITING
            assert row.next_attempt is not None
            monkeypatch.undo()
            assert (await updater.update_now(cert_id, timeout=10)).ok

    asyncio.run(scenario())
    (crash,) = [r for r in caplog.records if r.exc_info]
    assert "www.pem failed internally; counted as a failure, will retry" in crash.getMessage()
    assert "a bug in the verifier" in caplog.text


def test_a_stored_response_that_breaks_the_checks_is_ignored_and_fetched_instead(
    pki: Pki, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored candidates are untrusted too: should checking one raise (a verifier bug, hence
    the fake), the certificate starts without it and is fetched, never left NEW."""
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")
    leaf = pki.issue("www.stored.test")
    cert_id = CertId.for_certificate(leaf.certificate, leaf.issuer)
    tables: list[Mapping[CertId, bytes]] = []
    entry = UpdaterEntry(
        leaf.certificate, leaf.issuer, "/etc/certs/www.pem", pki.responder.url, True, b"stored"
    )
    updater = OcspUpdater(
        [entry],
        update_settings=UpdateSettings(),
        fetch_settings=FAST,
        on_staples=tables.append,
        rng=random.Random(3),
    )

    def breaks_on_stored(der: bytes, **kwargs: Any) -> VerifiedStaple:
        if der == b"stored":
            raise TypeError("a bug in the verifier")
        return verify_response(der, **kwargs)

    monkeypatch.setattr("staplegate.ocsp.machine.verify_response", breaks_on_stored)

    async def scenario() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(updater.run(started=started))
        try:
            async with asyncio.timeout(10):
                await started.wait()
                while cert_id not in (tables[-1] if tables else {}):
                    await asyncio.sleep(0.01)
        finally:
            updater.stop()
            await task

    asyncio.run(scenario())
    assert "stored OCSP responses could not be checked; ignored, fetching instead" in caplog.text


class _OffsetClock:
    """Wall time plus an offset the test moves (the updater re-reads it on `wake()`)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return SystemClock().now() + self.offset


def test_a_bug_on_one_certificates_timer_costs_it_one_attempt_and_nothing_else(
    pki: Pki, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The updater's loop serves every certificate: an exception while one certificate's
    timer is handled (a bug, hence the fake) is logged, that certificate is looked at again
    later, and the others are served as if nothing happened."""
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")
    broken, healthy = pki.issue("broken.test"), pki.issue("healthy.test")
    ids = [CertId.for_certificate(c.certificate, c.issuer) for c in (broken, healthy)]
    clock = _OffsetClock()
    tables: list[Mapping[CertId, bytes]] = [{}]
    updater = OcspUpdater(
        [
            UpdaterEntry(broken.certificate, broken.issuer, "/c/broken.pem", pki.responder.url),
            UpdaterEntry(healthy.certificate, healthy.issuer, "/c/healthy.pem", pki.responder.url),
        ],
        update_settings=UpdateSettings(),
        fetch_settings=FAST,
        on_staples=tables.append,
        clock=clock,
        rng=random.Random(3),
    )
    handle = CertificateMachine.handle
    raised: list[Event] = []

    def handle_with_a_bug(machine: CertificateMachine, event: Event) -> list[Action]:
        if machine.path == "/c/broken.pem" and isinstance(event, Tick) and not raised:
            raised.append(event)
            raise RuntimeError("a bug in the machine")
        return handle(machine, event)

    monkeypatch.setattr(CertificateMachine, "handle", handle_with_a_bug)

    async def wait_for(cert_id: CertId) -> None:
        async with asyncio.timeout(10):
            while cert_id not in tables[-1]:
                await asyncio.sleep(0.01)

    async def scenario() -> None:
        async with running(updater):
            await wait_for(ids[1])
            assert ids[0] not in tables[-1]
            clock.offset = dt.timedelta(seconds=RETRY_AFTER_INTERNAL_ERROR_S + 1)
            updater.wake()
            await wait_for(ids[0])

    asyncio.run(scenario())
    assert len(raised) == 1
    assert "/c/broken.pem failed internally; trying again in 60 s" in caplog.text


def test_a_responders_max_age_moves_the_next_refresh(pki_factory: Any) -> None:
    """Issue 19 item 5: responses valid 10 minutes (withdrawn 5 minutes from now); HAProxy's
    formula refreshes 60 s before that (now + 240 s, less jitter). The responder says
    `max-age=250`: the next refresh waits for it (jitter included). A hint past the
    withdrawal (the test responder's own: half the life, 300 s) stops 30 s before it."""
    pki = pki_factory("short", validity=dt.timedelta(minutes=10))
    leaf = pki.issue("www.cache.test")
    cert_id = CertId.for_certificate(leaf.certificate, leaf.issuer)
    updater = OcspUpdater(
        [UpdaterEntry(leaf.certificate, leaf.issuer, "/etc/certs/www.pem", pki.responder.url)],
        update_settings=UpdateSettings(mindelay=0, maxdelay=3600),
        fetch_settings=FAST,
        on_staples=lambda table: None,
        rng=random.Random(3),
    )

    async def scenario() -> None:
        async with running(updater):
            pki.responder.set_fault(Fault(FaultKind.MAX_AGE, seconds=250))
            before = SystemClock().now()
            assert (await updater.update_now(cert_id, timeout=10)).ok
            (row,) = updater.snapshot()
            assert row.next_attempt is not None
            assert row.staple is not None
            withdrawal = row.staple.next_update - dt.timedelta(seconds=300)
            assert withdrawal - before < dt.timedelta(seconds=301)
            hinted = row.next_attempt - before
            assert dt.timedelta(seconds=249) <= hinted <= dt.timedelta(seconds=252), hinted
            pki.responder.clear_faults()
            before = SystemClock().now()
            assert (await updater.update_now(cert_id, timeout=10)).ok
            (row,) = updater.snapshot()
            assert row.next_attempt is not None
            assert row.staple is not None
            withdrawal = row.staple.next_update - dt.timedelta(seconds=300)
            assert row.next_attempt == withdrawal - dt.timedelta(seconds=30)

    asyncio.run(scenario())


def _dead_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/ocsp"


def test_a_dead_first_responder_hands_over_to_the_next_and_is_asked_last_after(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 19 item 4: two AIA OCSP URLs, the first refusing connections."""
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")
    dead = _dead_url()
    leaf = pki.issue("www.failover.test", ocsp_url=[dead, pki.responder.url])
    cert_id = CertId.for_certificate(leaf.certificate, leaf.issuer)
    tables: list[Mapping[CertId, bytes]] = []
    updater = OcspUpdater(
        [
            UpdaterEntry(
                leaf.certificate,
                leaf.issuer,
                "/etc/certs/www.pem",
                dead,
                fallback_uris=(pki.responder.url,),
            )
        ],
        update_settings=UpdateSettings(),
        fetch_settings=FAST,
        on_staples=tables.append,
        rng=random.Random(3),
    )

    async def scenario() -> None:
        async with running(updater):
            first = await updater.update_now(cert_id, timeout=10)
            assert first.ok, first
            assert cert_id in tables[-1]
            handovers = [r.getMessage() for r in caplog.records if "answered" in r.getMessage()]
            assert len(handovers) == 1
            assert f"OCSP responder {dead} (" in handovers[0]
            assert handovers[0].endswith(f"; {pki.responder.url} answered")
            second = await updater.update_now(cert_id, timeout=10)
            assert second.ok, second
            # the one that answered is asked first now: no second hand-over
            assert len([r for r in caplog.records if "answered" in r.getMessage()]) == 1
            assert len(pki.responder.requests) == 2

    asyncio.run(scenario())


def test_when_every_responder_fails_the_first_failure_is_reported_naming_the_others(
    pki: Pki,
) -> None:
    dead, also_dead = _dead_url(), _dead_url()
    leaf = pki.issue("www.nobody.test", ocsp_url=[dead, also_dead])
    cert_id = CertId.for_certificate(leaf.certificate, leaf.issuer)
    updater = OcspUpdater(
        [
            UpdaterEntry(
                leaf.certificate,
                leaf.issuer,
                "/etc/certs/www.pem",
                dead,
                fallback_uris=(also_dead,),
            )
        ],
        update_settings=UpdateSettings(),
        fetch_settings=FAST,
        on_staples=lambda table: None,
        rng=random.Random(3),
    )

    async def scenario() -> None:
        async with running(updater):
            outcome = await updater.update_now(cert_id, timeout=10)
            assert outcome.status is UpdateStatus.HTTP_ERROR
            assert dead.split("/ocsp")[0].removeprefix("http://") in outcome.text
            assert outcome.text.endswith(f"; also failed: {also_dead})"), outcome.text

    asyncio.run(scenario())
