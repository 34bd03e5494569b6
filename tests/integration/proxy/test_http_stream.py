"""Mode http through the real data plane: TLS clients, asyncio HTTP backends on 127.0.0.1."""

from __future__ import annotations

import re

from staplegate.config.model import (
    AclFetch,
    AclTerm,
    Condition,
    HttpDelHeader,
    HttpDeny,
    HttpRedirectScheme,
    HttpReturn,
    HttpSetHeader,
)
from staplegate.proxy.http_pool import HttpSettings
from staplegate.proxy.http_rules import CompiledRule
from tests.integration.tls.tls_harness import TlsPki

from .http_harness import RunningHttpProxy, https, read_all

TLS = AclTerm(AclFetch.SSL_FC)


def host_is(name: str) -> Condition:
    return Condition(False, (AclTerm(AclFetch.HDR_HOST, (name,), True),))


HTTPLOG = re.compile(
    r"^127\.0\.0\.1:\d+ \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] fe~ be/web1 "
    r"\d+/\d+/\d+/\d+/\d+ 200 \d+ - - ---- \d+/\d+/\d+/\d+/0 0/0 \"GET /a HTTP/1\.1\"$"
)


def test_keep_alive_requests_reuse_one_server_connection(proxy_pki: TlsPki) -> None:
    with RunningHttpProxy(proxy_pki) as proxy:
        conn = https(proxy)
        for path in ("/a", "/b", "/c"):
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == f"web1 {path}".encode()
        conn.close()
        backend = proxy.http_backends[0]
        assert [r.target for r in backend.requests] == ["/a", "/b", "/c"]
        assert backend.connections == 1  # server-side keep-alive
        proxy.wait_until(lambda: len(proxy.log_lines) == 3)
        assert HTTPLOG.match(proxy.log_lines[0]), proxy.log_lines[0]


def test_post_body_and_chunked_body_reach_the_server(proxy_pki: TlsPki) -> None:
    with RunningHttpProxy(proxy_pki) as proxy:
        conn = https(proxy)
        conn.request("POST", "/p", body=b"hello")
        assert conn.getresponse().read() == b"web1 /p"
        assert proxy.http_backends[0].requests[0].body == b"hello"


def test_forwardfor_and_header_rules(proxy_pki: TlsPki) -> None:
    rules = (
        CompiledRule(
            HttpSetHeader("X-Forwarded-Proto", "https"),
            Condition(False, (AclTerm(AclFetch.SSL_FC),)),
        ),
        CompiledRule(HttpSetHeader("X-Sni", "%[ssl_fc_sni]")),
        CompiledRule(HttpSetHeader("X-Added", "one", add=True)),
        CompiledRule(HttpDelHeader("X-Secret")),
    )
    settings = HttpSettings(rules=rules, forwardfor_header=b"X-Forwarded-For")
    with RunningHttpProxy(proxy_pki, settings=settings) as proxy:
        conn = https(proxy)
        conn.request("GET", "/", headers={"X-Secret": "s", "X-Added": "zero"})
        assert conn.getresponse().status == 200
        seen = proxy.http_backends[0].requests[0].headers
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "https"
        assert seen["x-sni"] == "default.test"
        assert seen["x-added"] == "zero, one"
        assert "x-secret" not in seen


def test_return_deny_and_redirect(proxy_pki: TlsPki) -> None:
    rules = (
        CompiledRule(HttpReturn(200, "text/plain", "pong"), host_is("ping.test")),
        CompiledRule(HttpDeny(), host_is("deny.test")),
        CompiledRule(HttpRedirectScheme("https", 301), host_is("old.test")),
    )
    with RunningHttpProxy(proxy_pki, settings=HttpSettings(rules=rules)) as proxy:
        conn = https(proxy)
        conn.request("GET", "/x", headers={"Host": "ping.test"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"pong")
        assert response.getheader("content-type") == "text/plain"
        conn.request("GET", "/y?q=1", headers={"Host": "OLD.test"})  # kept alive after return
        response = conn.getresponse()
        response.read()
        assert response.status == 301
        assert response.getheader("location") == "https://OLD.test/y?q=1"
        conn.request("GET", "/", headers={"Host": "deny.test"})
        response = conn.getresponse()
        assert response.status == 403
        assert b"Request forbidden by administrative rules." in response.read()
        assert proxy.http_backends[0].requests == []
        proxy.wait_until(lambda: len(proxy.log_lines) == 3)
        assert " fe~ fe/<NOSRV> " in proxy.log_lines[0]
        assert " 200 " in proxy.log_lines[0]
        assert " LR-- " in proxy.log_lines[0]
        assert " 403 " in proxy.log_lines[2]
        assert " PR-- " in proxy.log_lines[2]


def test_malformed_request_is_400(proxy_pki: TlsPki) -> None:
    with RunningHttpProxy(proxy_pki) as proxy:
        sock = proxy.raw()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        proxy.wait_until(lambda: len(proxy.log_lines) == 1)
        assert '"<BADREQ>"' in proxy.log_lines[0]
        assert " PR-- " in proxy.log_lines[0]


def test_oversized_head_is_431_and_oversized_body_413(proxy_pki: TlsPki) -> None:
    settings = HttpSettings(max_head_bytes=2048, max_body_bytes=10)
    with RunningHttpProxy(proxy_pki, settings=settings) as proxy:
        sock = proxy.raw()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 4000 + b"\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        sock = proxy.raw()
        sock.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
        assert read_all(sock).startswith(b"HTTP/1.1 413 Payload Too Large\r\n")
        assert proxy.http_backends[0].requests == []


def test_slow_request_is_408(proxy_pki: TlsPki) -> None:
    settings = HttpSettings(request_timeout_s=0.3)
    with RunningHttpProxy(proxy_pki, settings=settings) as proxy:
        sock = proxy.raw()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")  # never finishes the head
        assert read_all(sock).startswith(b"HTTP/1.1 408 Request Time-out\r\n")
        proxy.wait_until(lambda: len(proxy.log_lines) == 1)
        assert " 408 " in proxy.log_lines[0]
        assert " cR-- " in proxy.log_lines[0]


def test_no_server_is_503_and_bad_response_502(proxy_pki: TlsPki) -> None:
    with RunningHttpProxy(proxy_pki, route=lambda info, pool: None) as proxy:
        conn = https(proxy)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 503
        assert b"No server is available" in response.read()
    with RunningHttpProxy(proxy_pki) as proxy:
        proxy.http_backends[0].raw_response = b"NOT HTTP AT ALL\r\n\r\n"
        conn = https(proxy)
        conn.request("GET", "/")
        assert conn.getresponse().status == 502


def test_server_timeout_is_504(proxy_pki: TlsPki) -> None:
    from staplegate.proxy.http_pool import HttpBackendSettings

    backend = HttpBackendSettings("be", connect_timeout_s=1.0, server_timeout_s=0.2)
    with RunningHttpProxy(proxy_pki, backend_settings=backend) as proxy:
        proxy.http_backends[0].delay_s = 2.0
        conn = https(proxy)
        conn.request("GET", "/")
        assert conn.getresponse().status == 504
        proxy.wait_until(lambda: len(proxy.log_lines) == 1)
        assert " sH-- " in proxy.log_lines[0]


def test_pipelined_requests_are_answered_in_order(proxy_pki: TlsPki) -> None:
    with RunningHttpProxy(proxy_pki) as proxy:
        sock = proxy.raw()
        sock.sendall(
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        answer = read_all(sock)
        assert answer.count(b"HTTP/1.1 200 OK") == 3
        assert answer.index(b"web1 /1") < answer.index(b"web1 /2") < answer.index(b"web1 /3")
        assert b"connection: close" in answer


def test_idle_server_connection_closes_after_its_timeout_and_the_next_opens_anew(
    proxy_pki: TlsPki,
) -> None:
    with RunningHttpProxy(proxy_pki) as proxy:
        proxy.http.idle_server_timeout_s = 0.2
        conn = https(proxy)
        for path in ("/a", "/b"):
            conn.request("GET", path)
            assert conn.getresponse().read() == f"web1 {path}".encode()
        assert proxy.call(proxy.http.idle_count) == 1
        assert proxy.http.stats.server_reuses == 1
        proxy.wait_until(lambda: proxy.http.idle_count() == 0)  # the sweep closed it
        conn.request("GET", "/c")
        assert conn.getresponse().read() == b"web1 /c"
        assert proxy.http_backends[0].connections == 2
        assert proxy.http.stats.server_connects == 2


def test_request_pipelined_while_the_first_is_at_the_server_waits_its_turn(
    proxy_pki: TlsPki,
) -> None:
    with RunningHttpProxy(proxy_pki) as proxy:
        backend = proxy.http_backends[0]
        backend.delay_s = 0.3
        sock = proxy.raw()
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        proxy.wait_until(lambda: backend.in_flight == 1)
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        answer = read_all(sock)
        assert answer.count(b"HTTP/1.1 200 OK") == 2
        assert answer.index(b"web1 /slow") < answer.index(b"web1 /next")
        assert [r.connection for r in backend.requests] == [1, 1]  # one server connection
        assert backend.max_in_flight == 1
