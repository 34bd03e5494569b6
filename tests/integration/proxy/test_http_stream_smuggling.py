"""Request smuggling through mode http, end to end: TLS clients, a raw-bytes backend.

Each test is what an attacker would send; the backend (`raw_backend.RawBackend`) frames
requests as a lenient origin server does, so whatever the proxy forwards with framing it
did not itself follow becomes a request the backend sees and the proxy never judged.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator

import pytest

from staplegate.config.model import AclFetch, AclTerm, Condition, HttpDeny, HttpSetHeader
from staplegate.proxy.backends import BackendServer
from staplegate.proxy.http_pool import HttpSettings
from staplegate.proxy.http_rules import CompiledRule
from tests.integration.tls.tls_harness import TlsPki

from .http_harness import RunningHttpProxy, read_all
from .raw_backend import RawBackend

DENY_ADMIN = (
    CompiledRule(
        HttpDeny(), Condition(False, (AclTerm(AclFetch.HDR_HOST, ("admin.test",), True),))
    ),
)


@pytest.fixture
def lenient() -> Iterator[RawBackend]:
    backend = RawBackend(answer_before_body=True)
    yield backend
    backend.close()


def proxy_to(pki: TlsPki, backend: RawBackend, **kwargs: object) -> RunningHttpProxy:
    return RunningHttpProxy(
        pki,
        servers=lambda _: [BackendServer("raw", "127.0.0.1", backend.port)],
        **kwargs,  # type: ignore[arg-type]
    )


def one_response(sock: ssl.SSLSocket) -> tuple[int, bytes]:
    """Read exactly one response from `sock` (the connection stays usable)."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


def test_upgrade_with_a_body_cannot_slip_a_request_past_a_deny_rule(
    proxy_pki: TlsPki, lenient: RawBackend
) -> None:
    # The next request on the server connection, as staplegate forwards it (unchanged).
    carrier_head = b"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
    smuggled = b"GET /admin HTTP/1.1\r\nHost: admin.test\r\n\r\n"
    carrier = carrier_head % len(smuggled)
    settings = HttpSettings(rules=DENY_ADMIN)
    with proxy_to(proxy_pki, lenient, settings=settings) as proxy:
        attacker = proxy.raw()
        attacker.sendall(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Content-Length: %d\r\n\r\n" % len(carrier)
        )  # the body never comes: before the fix the server ate the next head as it
        attacker_status, _ = one_response(attacker)
        second = proxy.raw()
        second.sendall(carrier + smuggled)
        status, answer = one_response(second)
        # this backend answers at the end of a head and reads the body after
        proxy.wait_until(lambda: any(r.body for r in lenient.since(0)))
        seen = lenient.since(0)
        assert not any(r.header("host") == ["admin.test"] for r in seen), seen  # the bypass
        assert (status, answer) == (200, b"conn 1 req 1 POST /ok")  # its own answer
        assert [(r.method, r.target, r.body) for r in seen] == [("POST", "/ok", smuggled)]
        assert attacker_status == 400
        direct = proxy.raw()
        direct.sendall(smuggled)
        assert one_response(direct)[0] == 403


def test_connect_with_a_body_is_refused(proxy_pki: TlsPki, lenient: RawBackend) -> None:
    with proxy_to(proxy_pki, lenient) as proxy:
        sock = proxy.raw()
        sock.sendall(
            b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\nContent-Length: 41\r\n\r\n"
            b"GET /admin HTTP/1.1\r\nHost: admin.test\r\n\r\n"
        )
        assert read_all(sock).startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert lenient.since(0) == []


def test_a_refused_upgrade_closes_the_server_connection_and_the_client_goes_on(
    proxy_pki: TlsPki,
) -> None:
    backend = RawBackend()  # answers an upgrade with a plain 200
    try:
        with proxy_to(proxy_pki, backend) as proxy:
            sock = proxy.raw()
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"  # pipelined, waits for the answer
            )
            assert one_response(sock) == (200, b"conn 1 req 1 GET /ws")
            # no 101: the client connection keeps speaking HTTP; the server one is gone
            assert one_response(sock) == (200, b"conn 2 req 1 GET /next")
            sock.sendall(b"GET /last HTTP/1.1\r\nHost: a\r\n\r\n")
            assert one_response(sock) == (200, b"conn 2 req 2 GET /last")
            assert [r.header("upgrade") for r in backend.since(0)] == [["websocket"], [], []]
    finally:
        backend.close()


def test_upgrade_header_without_connection_upgrade_is_a_plain_request(
    proxy_pki: TlsPki,
) -> None:
    backend = RawBackend(upgrade_status=101)  # would switch if it were asked to
    try:
        with proxy_to(proxy_pki, backend) as proxy:
            sock = proxy.raw()
            sock.sendall(
                b"GET /a HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"
                b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
            )
            assert one_response(sock) == (200, b"conn 1 req 1 GET /a")
            assert one_response(sock) == (200, b"conn 1 req 2 GET /b")
            first = backend.since(0)[0]
            assert first.header("upgrade") == []
            assert "upgrade" not in ",".join(first.header("connection")).lower()
    finally:
        backend.close()


def test_a_real_upgrade_still_tunnels(proxy_pki: TlsPki) -> None:
    backend = RawBackend(upgrade_status=101)
    try:
        with proxy_to(proxy_pki, backend) as proxy:
            sock = proxy.raw()
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping"
            )
            received = b""
            while not received.endswith(b"ping"):
                chunk = sock.recv(65536)
                assert chunk
                received += chunk
            assert received.startswith(b"HTTP/1.1 101 ")
    finally:
        backend.close()


def test_an_early_answer_to_an_unfinished_upload_closes_the_server_connection(
    proxy_pki: TlsPki, lenient: RawBackend
) -> None:
    with proxy_to(proxy_pki, lenient) as proxy:
        uploader = proxy.raw()
        uploader.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhalf")
        assert one_response(uploader) == (200, b"conn 1 req 1 POST /up")
        victim = proxy.raw()
        victim.sendall(b"GET /mine HTTP/1.1\r\nHost: a\r\n\r\n")
        assert one_response(victim) == (200, b"conn 2 req 1 GET /mine")


def test_chunked_trailers_are_not_merged_into_the_head(proxy_pki: TlsPki) -> None:
    backend = RawBackend()
    try:
        with proxy_to(proxy_pki, backend) as proxy:
            sock = proxy.raw()
            sock.sendall(
                b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n0\r\nHost: evil.test\r\nX-Trailer: 1\r\n\r\n"
            )
            assert one_response(sock) == (200, b"conn 1 req 1 POST /t")
            (seen,) = backend.since(0)
            assert seen.header("host") == ["a"]
            assert seen.header("x-trailer") == []
            assert seen.body == b"abc"
            assert b"evil" not in bytes(backend.connections[0].received)
    finally:
        backend.close()


def test_a_server_101_nobody_asked_for_is_a_bad_response(proxy_pki: TlsPki) -> None:
    with RunningHttpProxy(proxy_pki) as proxy:
        proxy.http_backends[
            0
        ].raw_response = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
        )
        sock = proxy.raw()
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")  # no tunnel was asked for
        assert b"101" not in answer
        assert [r.target for r in proxy.http_backends[0].requests] == ["/a"]


def test_an_h2c_upgrade_is_forwarded_as_a_plain_request(proxy_pki: TlsPki) -> None:
    backend = RawBackend(upgrade_status=101)  # would switch to h2c if it were asked to
    try:
        with proxy_to(proxy_pki, backend) as proxy:
            sock = proxy.raw()
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
                b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
            )
            assert one_response(sock) == (200, b"conn 1 req 1 GET /")
            assert one_response(sock) == (200, b"conn 1 req 2 GET /next")  # no tunnel
            first = backend.since(0)[0]
            assert first.header("upgrade") == []
    finally:
        backend.close()


def _pyopenssl_request(port: int, server_name: bytes, request: bytes) -> bytes:
    """One request over TLS with a raw SNI (Python's ssl refuses such a name)."""
    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.settimeout(None)
        conn = SSL.Connection(context, raw)
        conn.set_tlsext_host_name(server_name)
        conn.set_connect_state()
        conn.do_handshake()
        conn.sendall(request)
        reply = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                break
            if not chunk:
                break
            reply += chunk
        return reply


def test_a_crlf_in_the_sni_cannot_inject_a_header_or_a_request(proxy_pki: TlsPki) -> None:
    backend = RawBackend()
    rules = (CompiledRule(HttpSetHeader("X-Sni", "%[ssl_fc_sni]")),)
    try:
        with proxy_to(proxy_pki, backend, settings=HttpSettings(rules=rules)) as proxy:
            sni = b"a\r\nContent-Length: 41\r\nX-Injected: 1"
            reply = _pyopenssl_request(
                proxy.port, sni, b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            )
            received = bytes(backend.connections[0].received)
            assert b"X-Injected" not in received  # before: injected, and a body length too
            assert b"Content-Length" not in received
            assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
            (seen,) = backend.since(0)
            # a name with control bytes is no name (tls/clienthello): the fetch is empty
            assert (seen.method, seen.target, seen.header("x-sni")) == ("GET", "/a", [""])
    finally:
        backend.close()


def test_requests_before_a_malformed_one_are_served_then_400(proxy_pki: TlsPki) -> None:
    backend = RawBackend()
    try:
        with proxy_to(proxy_pki, backend) as proxy:
            for split in (False, True):  # in the same read, or the bad one later
                start = backend.snapshot()
                sock = proxy.raw()
                good = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                bad = b"GET / HTTP/1.1\r\nBad Header\r\n\r\n" + SMUGGLED
                if split:
                    sock.sendall(good)
                    assert one_response(sock)[0] == 200
                    sock.sendall(bad)
                else:
                    sock.sendall(good + bad)
                answer = read_all(sock)
                assert answer.count(b"HTTP/1.1 200 OK") == (1 if split else 2)
                assert answer.endswith(b"</body></html>\n")
                assert b"HTTP/1.1 400 Bad Request" in answer
                seen = [r.target for r in backend.since(start)]
                assert seen == ["/1", "/2"]
    finally:
        backend.close()


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


def test_a_malformed_request_behind_one_in_flight_waits_for_its_answer(
    proxy_pki: TlsPki,
) -> None:
    with RunningHttpProxy(proxy_pki) as proxy:
        backend = proxy.http_backends[0]
        backend.delay_s = 0.3
        sock = proxy.raw()
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        proxy.wait_until(lambda: backend.in_flight == 1)
        sock.sendall(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")  # before: the exchange was aborted
        assert b"web1 /slow" in answer
        assert b"HTTP/1.1 400 Bad Request\r\n" in answer
