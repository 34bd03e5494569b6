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
import logging
import random
from collections.abc import Mapping

import pytest

from staplegate.fetch.http import FetchSettings
from staplegate.fetch.updater import OcspUpdater, UpdaterEntry, UpdateResult
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.testpki.faults import FaultKind
from staplegate.testpki.pytest_plugin import Pki

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
        started = asyncio.Event()
        task = asyncio.create_task(updater.run(started=started))
        try:
            await started.wait()
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
        finally:
            updater.stop()
            await task

    asyncio.run(scenario())
    lines = [m for m in caplog.messages if m.startswith("<OCSP-UPDATE>")]
    assert lines[0] == '<OCSP-UPDATE> /etc/certs/www.pem 1 "Update successful" 0 1'
    assert lines[1].startswith(f'<OCSP-UPDATE> /etc/certs/www.pem {int(status)} "{text}')
    assert lines[1].endswith('" 1 1')
