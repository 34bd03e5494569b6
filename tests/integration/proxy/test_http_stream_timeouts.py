"""`timeout client` and `timeout server` in mode http are inactivity timeouts, as HAProxy's:
each side is timed only while it is expected to send or to acknowledge data.

Real slow peers on 127.0.0.1 (a TLS client trickling its upload or not reading, asyncio
backends) with timeouts of a few hundred milliseconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from staplegate.proxy.backends import BackendServer
from staplegate.proxy.http_pool import HttpBackendSettings, HttpSettings
from tests.integration.tls.tls_harness import TlsPki

from .http_harness import RunningHttpProxy, read_all


def test_a_slow_upload_that_keeps_moving_is_not_a_server_timeout(proxy_pki: TlsPki) -> None:
    backend = HttpBackendSettings("be", connect_timeout_s=1.0, server_timeout_s=0.3)
    settings = HttpSettings(client_timeout_s=2.0)
    with RunningHttpProxy(proxy_pki, settings=settings, backend_settings=backend) as proxy:
        sock = proxy.raw()
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
        for byte in b"abcdef":  # 0.9 s in all, each gap well under `timeout server`
            time.sleep(0.15)  # a slow client's pause: the behaviour under test, not a wait
            sock.sendall(bytes([byte]))
        sock.settimeout(3)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
        assert proxy.http_backends[0].requests[0].body == b"abcdef"


def test_a_stalled_upload_ends_with_timeout_client_even_without_timeout_server(
    proxy_pki: TlsPki,
) -> None:
    backend = HttpBackendSettings("be", connect_timeout_s=1.0, server_timeout_s=None)
    settings = HttpSettings(client_timeout_s=0.3)
    with RunningHttpProxy(proxy_pki, settings=settings, backend_settings=backend) as proxy:
        sock = proxy.raw()
        sock.settimeout(3)
        started = time.monotonic()
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 408 Request Time-out\r\n"), answer
        assert time.monotonic() - started < 2.0
        proxy.wait_until(lambda: len(proxy.log_lines) == 1)
        assert " 408 " in proxy.log_lines[0]
        assert " cD-- " in proxy.log_lines[0]
        assert proxy.call(proxy.http.idle_count) == 0  # the half-sent request is not pooled


def test_a_client_that_stops_reading_the_response_hits_timeout_client(
    proxy_pki: TlsPki,
) -> None:
    backend = HttpBackendSettings("be", connect_timeout_s=1.0, server_timeout_s=0.5)
    settings = HttpSettings(client_timeout_s=0.3)
    with RunningHttpProxy(proxy_pki, settings=settings, backend_settings=backend) as proxy:
        size = 64 * 1024 * 1024  # more than every buffer on the way holds
        proxy.http_backends[0].raw_response = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (
            size,
            b"x" * size,
        )
        sock = proxy.raw()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        proxy.wait_until(lambda: len(proxy.log_lines) == 1, timeout=5)
        assert " cD-- " in proxy.log_lines[0], proxy.log_lines[0]


def test_a_server_that_stops_sending_mid_response_is_a_server_timeout(
    proxy_pki: TlsPki,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve_half() -> None:
        conn, _ = listener.accept()
        held.append(conn)
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart")  # then silence

    thread = threading.Thread(target=serve_half, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    backend = HttpBackendSettings("be", connect_timeout_s=1.0, server_timeout_s=0.3)
    settings = HttpSettings(client_timeout_s=5.0)
    try:
        with RunningHttpProxy(
            proxy_pki,
            settings=settings,
            backend_settings=backend,
            servers=lambda _: [BackendServer("half", "127.0.0.1", port)],
        ) as proxy:
            sock = proxy.raw()
            sock.settimeout(3)
            started = time.monotonic()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            answer = read_all(sock)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert answer.endswith(b"part")
            assert time.monotonic() - started < 2.0
            proxy.wait_until(lambda: len(proxy.log_lines) == 1)
            assert " sD-- " in proxy.log_lines[0]
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_a_complete_request_waiting_in_the_queue_owes_the_client_timeout_nothing(
    proxy_pki: TlsPki,
) -> None:
    backend = HttpBackendSettings("be", connect_timeout_s=1.0, server_timeout_s=2.0)
    settings = HttpSettings(client_timeout_s=0.2)
    with RunningHttpProxy(
        proxy_pki,
        settings=settings,
        backend_settings=backend,
        queue_timeout_s=3.0,
        servers=lambda backends: [BackendServer("web1", "127.0.0.1", backends[0].port, maxconn=1)],
    ) as proxy:
        proxy.http_backends[0].delay_s = 0.6  # longer than `timeout client`
        first, second = proxy.raw(), proxy.raw()
        first.sendall(b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        proxy.wait_until(lambda: proxy.http_backends[0].in_flight == 1)
        second.sendall(b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nho")
        for sock, path in ((first, b"/1"), (second, b"/2")):
            sock.settimeout(3)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
            assert answer.endswith(b"web1 " + path)


class _UpgradingServer:
    """Answers one request with 101 and echoes what follows, holding the connection open."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.listener.accept()
            self.held.append(conn)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


UPGRADE = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


@pytest.mark.parametrize(
    ("client_s", "server_s", "tunnel_s"),
    [(0.3, None, None), (None, 0.3, None), (5.0, 5.0, 0.3)],
)
def test_an_idle_tunnel_closes_after_its_timeout(
    proxy_pki: TlsPki, client_s: float | None, server_s: float | None, tunnel_s: float | None
) -> None:
    """HAProxy: `timeout tunnel` (a backend's) once the connection is a tunnel, else the
    client and server timeouts; traffic either way keeps it open."""
    upgrading = _UpgradingServer()
    backend = HttpBackendSettings(
        "be", connect_timeout_s=1.0, server_timeout_s=server_s, tunnel_timeout_s=tunnel_s
    )
    settings = HttpSettings(client_timeout_s=client_s)
    try:
        with RunningHttpProxy(
            proxy_pki,
            settings=settings,
            backend_settings=backend,
            servers=lambda _: [BackendServer("ws", "127.0.0.1", upgrading.port)],
        ) as proxy:
            sock = proxy.raw()
            sock.settimeout(3)
            sock.sendall(UPGRADE)
            assert sock.recv(65536).startswith(b"HTTP/1.1 101 ")
            for _ in range(5):  # 0.75 s of traffic, each gap under the timeout
                time.sleep(0.15)  # the slow peer's pause is the behaviour under test
                sock.sendall(b"ping")
                assert sock.recv(65536) == b"ping"
            started = time.monotonic()
            assert read_all(sock) == b""  # then idle: closed by the proxy
            assert 0.2 < time.monotonic() - started < 2.0
    finally:
        upgrading.close()
