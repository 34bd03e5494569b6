"""Every fault mode of the test responder, observed with a real HTTP client on 127.0.0.1.

OCSP-level faults are judged by staplegate's verifier: each must fail the check a real client
would fail on. Also: per-serial targeting, `times`, the /_faults control endpoint and the
watched `--faults FILE`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from staplegate.ocsp.request import get_url
from staplegate.ocsp.verify import CertStatus, FailureReason, VerificationError, verify_response
from staplegate.testpki.ca import IssuedCertificate
from staplegate.testpki.faults import Fault, FaultKind
from staplegate.testpki.pytest_plugin import Pki
from staplegate.testpki.responder import (
    BackgroundResponder,
    IssuerIndex,
    OcspResponder,
    ResponderConfig,
)
from staplegate.testpki.responder_core import Signer


def der_for(leaf: IssuedCertificate) -> bytes:
    request = ocsp.OCSPRequestBuilder().add_certificate(
        leaf.certificate, leaf.issuer, hashes.SHA1()
    )
    return request.build().public_bytes(serialization.Encoding.DER)


async def _post(url: str, body: bytes, timeout: float) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.post(url, data=body, headers={"Content-Type": "application/ocsp-request"}) as r,
    ):
        return r.status, r.headers.get("Content-Type", ""), await r.read()


def post(url: str, body: bytes, *, timeout: float = 10.0) -> tuple[int, str, bytes]:
    return asyncio.run(_post(url, body, timeout))


def check(pki: Pki, leaf: IssuedCertificate, body: bytes) -> CertStatus:
    return verify_response(
        body, certificate=leaf.certificate, issuer=leaf.issuer, now=pki.clock.now()
    ).status


@pytest.fixture
def leaf(pki: Pki) -> IssuedCertificate:
    return pki.issue("fault.test")


# -- HTTP-level faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        (FaultKind.HTTP_500, 500, "text/plain"),
        (FaultKind.HTTP_404, 404, "text/plain"),
        (FaultKind.EMPTY_BODY, 200, "application/ocsp-response"),
        (FaultKind.GARBAGE_BODY, 200, "application/ocsp-response"),
        (FaultKind.WRONG_CONTENT_TYPE, 200, "application/octet-stream"),
    ],
)
def test_http_faults(
    pki: Pki, leaf: IssuedCertificate, kind: FaultKind, status: int, content_type: str
) -> None:
    pki.responder.set_fault(kind)
    got_status, got_type, body = post(pki.responder.url, der_for(leaf))
    assert (got_status, got_type) == (status, content_type)
    if kind is FaultKind.EMPTY_BODY:
        assert body == b""
    elif kind is FaultKind.GARBAGE_BODY:
        with pytest.raises(ValueError, match="error parsing asn1 value"):
            ocsp.load_der_ocsp_response(body)
    elif kind is FaultKind.WRONG_CONTENT_TYPE:
        assert check(pki, leaf, body) is CertStatus.GOOD  # right bytes, wrong label
    assert pki.responder.requests[-1].fault == kind.value
    pki.responder.clear_faults()
    assert check(pki, leaf, post(pki.responder.url, der_for(leaf))[2]) is CertStatus.GOOD


def test_huge_body(pki: Pki, leaf: IssuedCertificate) -> None:
    pki.responder.set_fault(FaultKind.HUGE_BODY, size=3 * 1024 * 1024)
    status, content_type, body = post(pki.responder.url, der_for(leaf))
    assert (status, content_type, len(body)) == (200, "application/ocsp-response", 3 * 1024 * 1024)


def test_delay(pki: Pki, leaf: IssuedCertificate) -> None:
    pki.responder.set_fault(FaultKind.DELAY, seconds=0.4)
    started = time.monotonic()
    status, _, body = post(pki.responder.url, der_for(leaf))
    assert time.monotonic() - started >= 0.4
    assert status == 200
    assert check(pki, leaf, body) is CertStatus.GOOD


def test_hang_until_the_client_gives_up(pki: Pki, leaf: IssuedCertificate) -> None:
    pki.responder.set_fault(FaultKind.HANG)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post(pki.responder.url, der_for(leaf), timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    # The responder still serves others, and stops promptly with a hung request pending.
    pki.responder.clear_faults()
    assert post(pki.responder.url, der_for(leaf))[0] == 200


def test_hung_request_does_not_block_stop(pki: Pki, leaf: IssuedCertificate) -> None:
    pki.responder.set_fault(FaultKind.HANG)

    async def hang_then_stop() -> None:
        task = asyncio.create_task(_post(pki.responder.url, der_for(leaf), 30))
        async with asyncio.timeout(10):  # poll until the responder holds the request
            while not pki.responder.requests:
                await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.to_thread(pki.responder.stop)
        assert time.monotonic() - started < 5
        with pytest.raises(aiohttp.ClientError):
            await task

    asyncio.run(hang_then_stop())


def test_connection_reset(pki: Pki, leaf: IssuedCertificate) -> None:
    pki.responder.set_fault(FaultKind.CONNECTION_RESET)
    with pytest.raises(aiohttp.ClientError) as caught:
        post(pki.responder.url, der_for(leaf))
    assert isinstance(caught.value, aiohttp.ClientOSError | aiohttp.ServerDisconnectedError)


# -- OCSP-level faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (FaultKind.TRY_LATER, ocsp.OCSPResponseStatus.TRY_LATER),
        (FaultKind.UNAUTHORIZED, ocsp.OCSPResponseStatus.UNAUTHORIZED),
        (FaultKind.INTERNAL_ERROR, ocsp.OCSPResponseStatus.INTERNAL_ERROR),
    ],
)
def test_unsuccessful_statuses(
    pki: Pki, leaf: IssuedCertificate, kind: FaultKind, status: ocsp.OCSPResponseStatus
) -> None:
    pki.responder.set_fault(kind)
    http_status, content_type, body = post(pki.responder.url, der_for(leaf))
    assert (http_status, content_type) == (200, "application/ocsp-response")
    assert ocsp.load_der_ocsp_response(body).response_status is status
    with pytest.raises(VerificationError) as caught:
        check(pki, leaf, body)
    assert caught.value.reason is FailureReason.NOT_SUCCESSFUL
    assert caught.value.status is status


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (FaultKind.ROGUE_SIGNER, FailureReason.SIGNER_NOT_AUTHORIZED),
        (FaultKind.STALE, FailureReason.NOT_VALID_NOW),
        (FaultKind.FUTURE, FailureReason.NOT_VALID_NOW),
        (FaultKind.WRONG_CERTID, FailureReason.CERT_ID_MISMATCH),
    ],
)
def test_bad_responses_fail_verification(
    pki: Pki, leaf: IssuedCertificate, kind: FaultKind, reason: FailureReason
) -> None:
    pki.responder.set_fault(kind)
    status, _, body = post(pki.responder.url, der_for(leaf))
    assert status == 200
    response = ocsp.load_der_ocsp_response(body)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    with pytest.raises(VerificationError) as caught:
        check(pki, leaf, body)
    assert caught.value.reason is reason
    now = pki.clock.now()
    assert response.next_update_utc is not None
    if kind is FaultKind.STALE:
        assert response.next_update_utc < now
    if kind is FaultKind.FUTURE:
        assert response.this_update_utc > now + dt.timedelta(hours=1)
    if kind is FaultKind.WRONG_CERTID:
        assert response.serial_number != leaf.serial
    if kind is FaultKind.ROGUE_SIGNER:
        assert response.certificates[0].subject != pki.signer.certificate.subject


# -- targeting and control ----------------------------------------------------------------------


def test_fault_targets_one_serial(pki: Pki) -> None:
    victim, bystander = pki.issue("victim.test"), pki.issue("bystander.test")
    pki.responder.set_fault(FaultKind.HTTP_500, serial=victim.serial)
    assert post(pki.responder.url, der_for(victim))[0] == 500
    assert post(pki.responder.url, der_for(bystander))[0] == 200
    assert post(pki.responder.url, der_for(victim))[0] == 500


def test_fault_on_a_cached_answer(pki: Pki, leaf: IssuedCertificate) -> None:
    assert post(pki.responder.url, der_for(leaf))[0] == 200  # now cached
    pki.responder.set_fault(FaultKind.STALE, serial=leaf.serial)
    with pytest.raises(VerificationError):
        check(pki, leaf, post(pki.responder.url, der_for(leaf))[2])


def test_times_limits_a_fault(pki: Pki, leaf: IssuedCertificate) -> None:
    pki.responder.set_faults(Fault(FaultKind.HTTP_500, times=2), Fault(FaultKind.TRY_LATER))
    statuses = [post(pki.responder.url, der_for(leaf)) for _ in range(3)]
    assert [s[0] for s in statuses] == [500, 500, 200]
    assert ocsp.load_der_ocsp_response(statuses[2][2]).response_status is (
        ocsp.OCSPResponseStatus.TRY_LATER
    )


async def _control(method: str, url: str, body: str | None = None) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, session.request(method, url, data=body) as r:
        return r.status, await r.json()


def test_control_endpoint(pki: Pki, leaf: IssuedCertificate) -> None:
    url = pki.responder.url + "/_faults"
    plan = {"faults": [{"kind": "http-404", "serial": f"{leaf.serial:X}"}]}
    status, shown = asyncio.run(_control("POST", url, json.dumps(plan)))
    assert status == 200
    assert shown == plan
    assert post(pki.responder.url, der_for(leaf))[0] == 404
    assert asyncio.run(_control("GET", url)) == (200, plan)
    assert asyncio.run(_control("DELETE", url)) == (200, {"faults": []})
    assert post(pki.responder.url, der_for(leaf))[0] == 200
    status, error = asyncio.run(_control("POST", url, '{"faults": [{"kind": "explode"}]}'))
    assert status == 400
    assert isinstance(error, dict)
    assert "unknown kind 'explode'" in error["error"]


def test_faults_file_is_watched(tmp_path: Path, pki_factory: Callable[..., Pki]) -> None:
    pki = pki_factory()
    leaf = pki.issue("watched.test")
    faults = tmp_path / "faults.json"
    config = ResponderConfig(
        sources=(IssuerIndex(pki.ca.certificate, pki.ca.index_path),),
        signer=Signer(pki.signer.certificate, pki.signer.private_key),
        faults_path=faults,
    )
    background = BackgroundResponder(OcspResponder(config))
    background.start()
    try:
        assert post(background.url, der_for(leaf))[0] == 200
        faults.write_text('[{"kind": "http-500"}]')
        assert post(background.url, der_for(leaf))[0] == 500
        faults.write_text("")
        assert post(background.url, der_for(leaf))[0] == 200
    finally:
        background.stop()


def test_nonce_survives_no_fault(pki: Pki, leaf: IssuedCertificate) -> None:
    # A nonce request with a fault aimed at another serial is answered normally.
    pki.responder.set_fault(FaultKind.HTTP_500, serial=leaf.serial + 1000)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf.certificate, leaf.issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
        .build()
    )
    status, _, body = post(pki.responder.url, request.public_bytes(serialization.Encoding.DER))
    assert status == 200
    assert check(pki, leaf, body) is CertStatus.GOOD


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


def test_fault_on_a_cached_get_answer(pki: Pki, leaf: IssuedCertificate) -> None:
    """A GET answered from the cache must still get an OCSP-level fault (not malformed)."""
    url = get_url(pki.responder.url, der_for(leaf))
    status, body = asyncio.run(_get(url))
    assert status == 200
    assert check(pki, leaf, body) is CertStatus.GOOD  # now cached
    pki.responder.set_fault(FaultKind.TRY_LATER, serial=leaf.serial)
    status, body = asyncio.run(_get(url))
    assert status == 200
    assert ocsp.load_der_ocsp_response(body).response_status is (ocsp.OCSPResponseStatus.TRY_LATER)
