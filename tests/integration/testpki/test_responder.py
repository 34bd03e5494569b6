"""The OCSP responder over real HTTP on 127.0.0.1: GET/POST, caching, index changes, limits.

Responses are checked with staplegate's own verifier (real signatures, real CertIds).
Fault injection has its own file, test_responder_faults.py.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from multidict import CIMultiDict

from staplegate.clock import ManualClock
from staplegate.ocsp.verify import CertStatus, verify_response
from staplegate.testpki.ca import IssuedCertificate, KeyKind
from staplegate.testpki.pytest_plugin import Pki
from staplegate.testpki.responder import (
    BackgroundResponder,
    IssuerIndex,
    OcspResponder,
    ResponderConfig,
)
from staplegate.testpki.responder_core import Signer


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


def http(
    method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> Reply:
    """One request with aiohttp's client (a fresh connection each time)."""

    async def go() -> Reply:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, data=body, headers=headers) as response,
        ):
            return Reply(response.status, CIMultiDict(response.headers), await response.read())

    return asyncio.run(go())


def request_der(
    leaf: IssuedCertificate, *, algorithm: hashes.HashAlgorithm | None = None, nonce: bytes = b""
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        leaf.certificate, leaf.issuer, algorithm or hashes.SHA1()
    )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def post(pki: Pki, der: bytes) -> Reply:
    return http(
        "POST", pki.responder.url, body=der, headers={"Content-Type": "application/ocsp-request"}
    )


def get_url(pki: Pki, der: bytes, *, encode: bool = True) -> str:
    text = base64.b64encode(der).decode()
    return f"{pki.responder.url}/{quote(text, safe='') if encode else text}"


def verified(pki: Pki, leaf: IssuedCertificate, reply: Reply) -> CertStatus:
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/ocsp-response"
    staple = verify_response(
        reply.body, certificate=leaf.certificate, issuer=leaf.issuer, now=pki.clock.now()
    )
    return staple.status


def test_post_good_then_revoked_without_restart(pki: Pki) -> None:
    leaf = pki.issue("www.test")
    der = request_der(leaf)
    assert verified(pki, leaf, post(pki, der)) is CertStatus.GOOD
    assert verified(pki, leaf, post(pki, der)) is CertStatus.GOOD
    assert [r.cache for r in pki.responder.requests] == ["miss", "hit"]

    pki.revoke("www.test", reason="keyCompromise")
    reply = post(pki, der)
    assert verified(pki, leaf, reply) is CertStatus.REVOKED
    single = ocsp.load_der_ocsp_response(reply.body)
    assert single.revocation_reason is x509.ReasonFlags.key_compromise
    assert single.revocation_time_utc is not None
    assert pki.responder.requests[-1].cache == "miss"


def test_get_percent_encoded_raw_and_sha256(pki: Pki) -> None:
    leaf = pki.issue("get.test")
    for encode in (True, False):
        assert verified(pki, leaf, http("GET", get_url(pki, request_der(leaf), encode=encode))) is (
            CertStatus.GOOD
        )
    sha256 = request_der(leaf, algorithm=hashes.SHA256())
    reply = http("GET", get_url(pki, sha256))
    assert verified(pki, leaf, reply) is CertStatus.GOOD
    assert isinstance(ocsp.load_der_ocsp_response(reply.body).hash_algorithm, hashes.SHA256)


def test_get_under_a_path_prefix(pki: Pki) -> None:
    leaf = pki.issue("prefix.test")
    text = quote(base64.b64encode(request_der(leaf)).decode(), safe="")
    assert verified(pki, leaf, http("GET", f"{pki.responder.url}/ocsp/{text}")) is CertStatus.GOOD


def test_nonce_is_echoed_and_signed_fresh(pki: Pki) -> None:
    leaf = pki.issue("nonce.test")
    der = request_der(leaf, nonce=os.urandom(16))
    first, second = post(pki, der), post(pki, der)
    sent = ocsp.load_der_ocsp_request(der).extensions.get_extension_for_class(x509.OCSPNonce)
    for reply in (first, second):
        got = ocsp.load_der_ocsp_response(reply.body).extensions.get_extension_for_class(
            x509.OCSPNonce
        )
        assert got.value.nonce == sent.value.nonce
    assert first.body != second.body  # each one signed afresh (ECDSA signatures differ)
    assert [r.cache for r in pki.responder.requests] == ["-", "-"]
    assert all(r.has_nonce for r in pki.responder.requests)


def test_garbage_unknown_serial_and_foreign_issuer(pki_factory: Callable[..., Pki]) -> None:
    pki = pki_factory()
    other = pki_factory("other")
    leaf = pki.issue("known.test")
    foreign = other.issue("foreign.test")

    garbage = ocsp.load_der_ocsp_response(post(pki, b"not an OCSP request").body)
    assert garbage.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    bad_get = http("GET", f"{pki.responder.url}/%%%not-base64")
    assert ocsp.load_der_ocsp_response(bad_get.body).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )

    unauthorized = ocsp.load_der_ocsp_response(post(pki, request_der(foreign)).body)
    assert unauthorized.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED

    unknown_serial = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            ocsp.load_der_ocsp_request(request_der(leaf)).issuer_name_hash,
            ocsp.load_der_ocsp_request(request_der(leaf)).issuer_key_hash,
            0x7777,
            hashes.SHA1(),
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    response = ocsp.load_der_ocsp_response(post(pki, unknown_serial).body)
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_caching_headers_etag_and_304(pki: Pki) -> None:
    leaf = pki.issue("cache.test")
    url = get_url(pki, request_der(leaf))
    first = http("GET", url)
    second = http("GET", url)
    assert first.body == second.body
    assert [r.cache for r in pki.responder.requests] == ["miss", "hit"]
    response = ocsp.load_der_ocsp_response(first.body)
    headers = second.headers
    assert email.utils.parsedate_to_datetime(headers["Last-Modified"]) == response.this_update_utc
    assert email.utils.parsedate_to_datetime(headers["Expires"]) == response.next_update_utc
    directives = {
        name: value
        for name, _, value in (
            p.strip().partition("=") for p in headers["Cache-Control"].split(",")
        )
    }
    assert 0 < int(directives["max-age"]) <= 1800  # re-signed after half the 1 h validity
    assert {"public", "no-transform", "must-revalidate"} <= set(directives)
    etag = headers["ETag"]
    assert etag == first.headers["ETag"]

    not_modified = http("GET", url, headers={"If-None-Match": etag})
    assert not_modified.status == 304
    assert not_modified.body == b""
    assert not_modified.headers["ETag"] == etag
    changed = http("GET", url, headers={"If-None-Match": '"something-else"'})
    assert changed.status == 200
    assert changed.body == first.body


def test_resigned_after_half_the_validity(pki_factory: Callable[..., Pki]) -> None:
    clock = ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    pki = pki_factory(clock=clock)
    leaf = pki.issue("resign.test")
    url = get_url(pki, request_der(leaf))
    first = ocsp.load_der_ocsp_response(http("GET", url).body)
    clock.advance(29 * 60)
    assert http("GET", url).headers["Cache-Control"].startswith("max-age=60,")
    assert ocsp.load_der_ocsp_response(http("GET", url).body).this_update_utc == (
        first.this_update_utc
    )
    clock.advance(60)
    renewed = ocsp.load_der_ocsp_response(http("GET", url).body)
    assert renewed.this_update_utc == first.this_update_utc + dt.timedelta(minutes=30)
    assert [r.cache for r in pki.responder.requests] == ["miss", "hit", "hit", "miss"]


def test_other_methods_are_refused(pki: Pki) -> None:
    reply = http("PUT", pki.responder.url + "/x", body=b"x")
    assert reply.status == 405
    assert "POST" in reply.headers["Allow"]


def test_rsa_signer_by_key_hash_without_certs(tmp_path: Path, pki: Pki) -> None:
    # The CA itself signs (no delegation), identified by key hash, nothing embedded.
    config = ResponderConfig(
        sources=(IssuerIndex(pki.ca.certificate, pki.ca.index_path),),
        signer=Signer(
            pki.ca.certificate, pki.ca.private_key, by_key_hash=True, include_certificate=False
        ),
    )
    leaf = pki.issue("direct.test", key=KeyKind.RSA2048)
    background = BackgroundResponder(OcspResponder(config))
    background.start()
    try:
        reply = http("POST", background.url, body=request_der(leaf))
    finally:
        background.stop()
    response = ocsp.load_der_ocsp_response(reply.body)
    assert response.responder_key_hash is not None
    assert response.certificates == []
    assert verified(pki, leaf, reply) is CertStatus.GOOD


# -- limits and slow clients ------------------------------------------------------------------


@pytest.fixture
def strict(pki: Pki) -> Iterator[BackgroundResponder]:
    """A second responder on the same CA with small limits and short timeouts."""
    config = ResponderConfig(
        sources=(IssuerIndex(pki.ca.certificate, pki.ca.index_path),),
        signer=Signer(pki.signer.certificate, pki.signer.private_key),
        max_request_bytes=1024,
        idle_timeout=0.5,
        body_timeout=0.3,
    )
    background = BackgroundResponder(OcspResponder(config))
    background.start()
    yield background
    background.stop()


def _raw(port: int, payload: bytes, *, shut_write: bool = False) -> bytes:
    """Send `payload` on a raw socket and read until the server closes (5 s cap)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_oversized_body_gets_413(strict: BackgroundResponder) -> None:
    assert http("POST", strict.url, body=b"\x30" * 2000).status == 413
    chunked = _raw(
        strict.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"7d0\r\n" + b"\x30" * 2000 + b"\r\n0\r\n\r\n",
    )
    assert chunked.startswith(b"HTTP/1.1 413")


def test_oversized_header_is_refused(strict: BackgroundResponder) -> None:
    reply = _raw(
        strict.port,
        b"GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\nConnection: close\r\n\r\n",
    )
    assert reply.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")  # aiohttp: 8190 bytes max


def test_slow_body_gets_408(strict: BackgroundResponder) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408")


def test_idle_and_slow_header_clients_are_dropped(strict: BackgroundResponder) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        assert sock.recv(1) == b""  # closed by the server after idle_timeout, no request sent
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        assert sock.recv(1) == b""


def test_half_closed_client_gets_its_answer(pki: Pki) -> None:
    leaf = pki.issue("half.test")
    der = request_der(leaf)
    raw = _raw(
        pki.responder.port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        + f"Content-Length: {len(der)}\r\n\r\n".encode()
        + der,
        shut_write=True,
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    response = ocsp.load_der_ocsp_response(body)
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD


# -- lifecycle and log ------------------------------------------------------------------------


def test_stop_and_start_on_the_same_port(pki: Pki) -> None:
    leaf = pki.issue("restart.test")
    url = pki.responder.url
    pki.responder.stop()
    assert not pki.responder.running
    with pytest.raises(aiohttp.ClientConnectionError):
        http("POST", url, body=request_der(leaf))
    pki.responder.start()
    assert pki.responder.url == url
    assert verified(pki, leaf, post(pki, request_der(leaf))) is CertStatus.GOOD


def test_certificates_carry_the_responder_url(pki: Pki) -> None:
    leaf = pki.issue("aia.test")
    aia = leaf.certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    urls = [d.access_location.value for d in aia.value]
    assert urls == [pki.responder.url]


def test_request_log_records_each_request(pki: Pki) -> None:
    leaf = pki.issue("log.test")
    post(pki, request_der(leaf))
    http("GET", get_url(pki, request_der(leaf)))
    records = pki.responder.wait_for_requests(2)
    assert [(r.method, r.http_status, r.cert_state) for r in records] == [
        ("POST", 200, "good"),
        ("GET", 200, "good"),
    ]
    assert records[0].serial == leaf.serial
    assert records[0].remote == "127.0.0.1"
    line = records[1].log_line(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), 1.5)
    assert line.startswith("2026-01-02T03:04:05Z 127.0.0.1 GET /")
    assert f"serial={leaf.serial:X} cert=good nonce=no cache=miss fault=- 1.50ms" in line


def test_crl_is_served_as_der_once_the_ca_wrote_one(pki: Pki) -> None:
    missing = http("GET", f"{pki.responder.url}/crl")
    assert missing.status == 404
    leaf = pki.issue("crl.test")
    pki.ca.crl()
    first = http("GET", f"{pki.responder.url}/crl")
    assert first.status == 200
    assert first.headers["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(first.body)
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial) is None
    pki.revoke("crl.test")
    pki.ca.crl()
    second = x509.load_der_x509_crl(http("GET", f"{pki.responder.url}/crl/0").body)
    assert second.get_revoked_certificate_by_serial_number(leaf.serial) is not None
    assert http("GET", f"{pki.responder.url}/crl/1").status == 404
    head = http("HEAD", f"{pki.responder.url}/crl")
    assert head.status == 200
    assert head.body == b""
