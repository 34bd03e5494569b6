"""Forwarding through the data plane: both ways, half-close, backend failures, backpressure,
maxconn, timeouts and graceful stop, with real sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from staplegate.proxy import frontend as frontend_module
from staplegate.proxy.backends import BackendServer
from staplegate.proxy.connection import ClientConnection
from staplegate.proxy.records import ProxyTimeouts, Termination
from tests.integration.tls.tls_harness import (
    RunningProxy,
    TlsPki,
    client_context,
    tls_bind,
    tls_connect,
)


class MemoryTlsClient:
    """A TLS client on stdlib memory BIOs, so a test controls close_notify and TCP FIN apart."""

    def __init__(self, port: int, context: ssl.SSLContext, server_name: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_name)
        self.peer_closed = False
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def read_until_closed(self) -> bytes:
        """Everything the server sends until its close_notify (or TCP EOF)."""
        received = bytearray()
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                if not self._fill():
                    return bytes(received)
                continue
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                return bytes(received)
            if not chunk:  # close_notify, when we have not sent ours
                self.peer_closed = True
                return bytes(received)
            received += chunk

    def read_exactly(self, count: int) -> bytes:
        received = bytearray()
        while len(received) < count:
            try:
                received += self.tls.read(count - len(received))
            except ssl.SSLWantReadError:
                assert self._fill(), "connection closed early"
        return bytes(received)

    def close_notify(self) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.unwrap()
        self._flush()

    def close(self) -> None:
        self.sock.close()


def test_forwarding_both_ways_and_close_notify_half_close(proxy_pki: TlsPki) -> None:
    with RunningProxy(tls_bind(proxy_pki, "default.test")) as proxy:
        client = MemoryTlsClient(proxy.port, client_context(proxy_pki), "default.test")
        payload = bytes(range(256)) * 1024  # 256 KiB, several records each way
        client.send(payload)
        assert client.read_exactly(len(payload)) == payload
        client.close_notify()  # → FIN to the backend, which answers <EOF> and closes its side
        assert client.read_until_closed() == b"<EOF>"
        assert client.peer_closed  # the server's FIN came to us as close_notify
        client.close()
        proxy.wait_until(lambda: len(proxy.records) == 1)
        record = proxy.records[0]
        assert record.termination is Termination.NORMAL
        assert (record.bytes_from_client, record.bytes_to_client) == (
            len(payload),
            len(payload) + 5,
        )
        assert proxy.call(lambda: proxy.frontend.stats.active) == 0


def test_tcp_fin_from_client_is_a_half_close(proxy_pki: TlsPki) -> None:
    with RunningProxy(tls_bind(proxy_pki, "default.test")) as proxy:
        client = MemoryTlsClient(proxy.port, client_context(proxy_pki), "default.test")
        client.send(b"hello")
        assert client.read_exactly(5) == b"hello"
        client.sock.shutdown(socket.SHUT_WR)  # no close_notify, just FIN
        assert client.read_until_closed() == b"<EOF>"
        client.close()
        proxy.wait_until(lambda: len(proxy.records) == 1)
        assert proxy.records[0].termination is Termination.NORMAL


def test_python_ssl_client_round_trip(proxy_pki: TlsPki) -> None:
    with (
        RunningProxy(tls_bind(proxy_pki, "default.test")) as proxy,
        tls_connect(proxy.port, client_context(proxy_pki), "default.test") as sock,
    ):
        for size in (1, 100, 70000):
            data = b"z" * size
            sock.sendall(data)
            received = b""
            while len(received) < size:
                received += sock.recv(65536)
            assert received == data


def _read_until_gone(sock: ssl.SSLSocket) -> None:
    with contextlib.suppress(OSError):  # ssl.SSLError is an OSError too
        while sock.recv(10):
            pass


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_backend_down_closes_the_client_cleanly(proxy_pki: TlsPki) -> None:
    dead = BackendServer("dead", "127.0.0.1", _unused_port())
    proxy = RunningProxy(tls_bind(proxy_pki, "default.test"), backend_servers=[dead])
    with proxy:
        client = MemoryTlsClient(proxy.port, client_context(proxy_pki), "default.test")
        assert client.read_until_closed() == b""
        assert client.peer_closed  # close_notify, not a reset
        client.close()
        proxy.wait_until(lambda: len(proxy.records) == 1)
        assert proxy.records[0].termination is Termination.SERVER_CONNECT_FAILED
        assert proxy.records[0].server == "dead"  # the server tried, as HAProxy logs it
        assert proxy.call(lambda: proxy.frontend.stats.backend_connect_failures) == 1


def test_connect_timeout_on_a_server_that_never_answers(proxy_pki: TlsPki) -> None:
    # A listener whose accept queue is full drops new SYNs: the connect hangs, as to a host
    # that is down, without leaving 127.0.0.1.
    with socket.socket() as stuck:
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(0)
        fillers = [socket.create_connection(stuck.getsockname(), timeout=5)]  # queue: full
        server = BackendServer("stuck", "127.0.0.1", stuck.getsockname()[1])
        timeouts = ProxyTimeouts(connect_s=0.3, client_s=10.0, server_s=10.0)
        proxy = RunningProxy(
            tls_bind(proxy_pki, "default.test"), backend_servers=[server], timeouts=timeouts
        )
        try:
            with proxy:
                proxy.call(lambda: setattr(proxy.frontend, "retries", 1))
                client = MemoryTlsClient(proxy.port, client_context(proxy_pki), "default.test")
                started = time.monotonic()
                assert client.read_until_closed() == b""
                waited = time.monotonic() - started
                assert client.peer_closed  # close_notify, not a reset
                client.close()
                proxy.wait_until(lambda: len(proxy.records) == 1)
                record = proxy.records[0]
                assert record.termination is Termination.SERVER_CONNECT_TIMEOUT
                assert record.server == "stuck"  # the server tried, as HAProxy logs it
                assert 0.5 <= waited < 5.0  # two attempts of 0.3 s each, then the close
                stats = proxy.call(lambda: proxy.frontend.stats.backend_connect_failures)
                assert stats == 1
        finally:
            for filler in fillers:
                filler.close()


def test_retries_go_to_the_next_server(proxy_pki: TlsPki) -> None:
    dead = BackendServer("dead", "127.0.0.1", _unused_port())
    proxy = RunningProxy(tls_bind(proxy_pki, "default.test"))
    with proxy:
        live = proxy.pool.servers[0]
        proxy.call(lambda: setattr(proxy, "pool", type(proxy.pool)("be", [dead, live])))
        with tls_connect(proxy.port, client_context(proxy_pki), "default.test") as sock:
            sock.sendall(b"retry")
            assert sock.recv(100) == b"retry"
        proxy.wait_until(lambda: len(proxy.records) == 1)
        assert proxy.records[0].server == "echo"


def _client_connection(proxy: RunningProxy) -> ClientConnection:
    """The frontend's one connection, as the class it is (the frontend sees a Protocol)."""
    connection = next(iter(proxy.call(lambda: set(proxy.frontend.connections))))
    assert isinstance(connection, ClientConnection)
    return connection


def test_slow_client_bounds_buffering(proxy_pki: TlsPki) -> None:
    limit = 64 * 1024
    proxy = RunningProxy(tls_bind(proxy_pki, "default.test"), buffer_limit=limit)
    with proxy:
        proxy.backend.blast = 64 * 1024 * 1024  # far more than any socket buffer
        client = MemoryTlsClient(proxy.port, client_context(proxy_pki), "default.test")
        proxy.wait_until(lambda: len(proxy.frontend.connections) == 1)
        connection = _client_connection(proxy)
        proxy.wait_until(lambda: connection.backend is not None and not connection.backend_reading)
        buffered = proxy.call(lambda: connection.client_write_buffer_size)
        # at most the high-water mark plus one 64 KiB read, encrypted (records add ~1.4 %)
        assert limit <= buffered <= limit + 70 * 1024
        assert proxy.call(lambda: connection.client_write_paused)
        received = client.read_exactly(1024 * 1024)  # reading resumes the flow
        assert received == b"x" * len(received)
        client.close()


@contextlib.contextmanager
def _unanswered_server() -> Iterator[BackendServer]:
    """A server whose accept queue is full: a connect to it waits unanswered (SYN dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        yield BackendServer("busy", "127.0.0.1", listener.getsockname()[1])
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_client_data_while_the_backend_connects_is_bounded(proxy_pki: TlsPki) -> None:
    limit = 64 * 1024
    timeouts = ProxyTimeouts(connect_s=2.0, client_s=10.0, server_s=10.0)  # 4 tries: 8 s
    with _unanswered_server() as busy:
        proxy = RunningProxy(
            tls_bind(proxy_pki, "default.test"),
            backend_servers=[busy],
            buffer_limit=limit,
            timeouts=timeouts,
        )
        with proxy:
            client = MemoryTlsClient(proxy.port, client_context(proxy_pki), "default.test")
            proxy.wait_until(lambda: len(proxy.frontend.connections) == 1)
            connection = _client_connection(proxy)
            client.sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):  # the kernel's buffers fill up too
                for _ in range(64):
                    client.send(b"y" * 16384)  # 1 MiB while the connect waits
            proxy.wait_until(
                lambda: connection.transport is not None and not connection.transport.is_reading()
            )
            waiting = proxy.call(lambda: sum(map(len, connection._to_server)))
            # reading paused past the limit: at most one more read (asyncio reads 256 KiB)
            assert limit < waiting <= limit + 256 * 1024
            assert connection.backend is None  # still connecting
            client.close()


def test_maxconn_stops_accepting_until_a_connection_ends(proxy_pki: TlsPki) -> None:
    context = client_context(proxy_pki)
    with RunningProxy(tls_bind(proxy_pki, "default.test"), maxconn=1) as proxy:
        first = tls_connect(proxy.port, context, "default.test")
        first.sendall(b"1")
        assert first.recv(10) == b"1"
        assert not proxy.call(lambda: proxy.frontend.accepting)
        waiting = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)  # in backlog
        first.sendall(b"2")
        assert first.recv(10) == b"2"  # the loop ran; it still did not accept
        assert proxy.call(lambda: proxy.frontend.stats.accepted) == 1
        first.close()
        second = context.wrap_socket(waiting, server_hostname="default.test")
        second.sendall(b"3")
        assert second.recv(10) == b"3"
        assert proxy.call(lambda: proxy.frontend.stats.accepted) == 2
        assert proxy.call(lambda: proxy.frontend.stats.accept_pauses) >= 1
        second.close()


def test_client_timeout_during_handshake(proxy_pki: TlsPki) -> None:
    timeouts = ProxyTimeouts(connect_s=2.0, client_s=0.2, server_s=10.0)
    with RunningProxy(tls_bind(proxy_pki, "default.test"), timeouts=timeouts) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as silent:
            assert silent.recv(10) == b""  # closed by the proxy, not by us
        proxy.wait_until(lambda: len(proxy.records) == 1)
        assert proxy.records[0].termination is Termination.CLIENT_TIMEOUT_HANDSHAKE


def test_server_timeout_while_forwarding(proxy_pki: TlsPki) -> None:
    timeouts = ProxyTimeouts(connect_s=2.0, client_s=10.0, server_s=0.2)
    with RunningProxy(tls_bind(proxy_pki, "default.test"), timeouts=timeouts) as proxy:
        with tls_connect(proxy.port, client_context(proxy_pki), "default.test") as sock:
            sock.sendall(b"a")
            assert sock.recv(10) == b"a"
            _read_until_gone(sock)  # the proxy aborts: EOF or a reset, within 0.2 s
        proxy.wait_until(lambda: len(proxy.records) == 1)
        assert proxy.records[0].termination is Termination.SERVER_TIMEOUT


def test_garbage_instead_of_client_hello(proxy_pki: TlsPki) -> None:
    with RunningProxy(tls_bind(proxy_pki, "default.test")) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            alert = plain.recv(100)
            assert alert[:1] == b"\x15"  # a TLS alert record, then EOF
            assert plain.recv(100) == b""
        proxy.wait_until(lambda: len(proxy.records) == 1)
        assert proxy.records[0].termination is Termination.CLIENT_ABORT_HANDSHAKE
        assert proxy.call(lambda: proxy.frontend.stats.hello_errors) == 1


def test_one_certificate_bind_still_knows_the_sni(proxy_pki: TlsPki) -> None:
    # One certificate, no strict-sni: the hello goes to OpenSSL unparsed; the name the client
    # sent (any name: the only certificate answers) comes from OpenSSL for logs and routing.
    with RunningProxy(tls_bind(proxy_pki, "default.test")) as proxy:
        context = client_context(proxy_pki)
        context.check_hostname = False
        for sent in ("other.example.test", None):
            with tls_connect(proxy.port, context, sent) as sock:
                sock.sendall(b"hi")
                assert sock.recv(10) == b"hi"
        proxy.wait_until(lambda: len(proxy.records) == 2)
        assert [r.server_name for r in proxy.records] == ["other.example.test", None]
        assert all(
            r.certificate and r.certificate.endswith("default.test.pem") for r in proxy.records
        )


def _memory_handshake(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[socket.socket, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A client handshake whose Finished stays unsent (in the outgoing BIO) at the end."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="default.test", session=session)
    while True:
        try:
            tls.do_handshake()
            return sock, tls, incoming, outgoing
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            data = sock.recv(65536)
            assert data, "the proxy closed during the handshake"
            incoming.write(data)


def test_tickets_sent_with_the_first_answer_still_resume(proxy_pki: TlsPki) -> None:
    # The client's Finished and its first data in one segment: the proxy holds the session
    # tickets until the answer and sends both at once; the client still gets them and resumes.
    with RunningProxy(tls_bind(proxy_pki, "default.test")) as proxy:
        context = client_context(proxy_pki)
        session = None
        for attempt in range(2):
            sock, tls, incoming, outgoing = _memory_handshake(proxy.port, context, session)
            with sock:
                tls.write(b"ping")
                sock.sendall(outgoing.read())  # Finished + application data together
                echoed = b""
                while echoed != b"ping":
                    try:
                        echoed += tls.read(100)
                    except ssl.SSLWantReadError:
                        data = sock.recv(65536)
                        assert data, "closed before the answer"
                        incoming.write(data)
                assert tls.session is not None
                assert tls.session.has_ticket  # the tickets came before the answer
                assert tls.session_reused is (attempt == 1)
                session = tls.session
        proxy.wait_until(lambda: len(proxy.records) == 2)
        assert [r.tls.resumed for r in proxy.records if r.tls] == [False, True]


def test_graceful_stop_lets_connections_finish(proxy_pki: TlsPki) -> None:
    proxy = RunningProxy(tls_bind(proxy_pki, "default.test"))
    with proxy:
        sock = tls_connect(proxy.port, client_context(proxy_pki), "default.test")
        sock.sendall(b"before")
        assert sock.recv(10) == b"before"
        proxy.request_stop()
        proxy.wait_until(lambda: not proxy.frontend.accepting)
        sock.sendall(b"after")
        assert sock.recv(10) == b"after"  # still served while draining
        assert proxy.serving
        sock.close()
        proxy.wait_until(lambda: not proxy.frontend.connections)
        proxy.wait_serving_done()


def test_a_closed_connection_is_not_held_for_the_buffer_sweep(
    proxy_pki: TlsPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sweep that sheds idle connections' handshake buffers runs half a second after a
    # batch of handshakes; a connection that closes meanwhile must not wait for it (it would
    # keep its SSL object and buffers alive until then).
    monkeypatch.setattr(frontend_module, "SHED_AFTER_S", 60.0)  # no sweep while the test looks
    with RunningProxy(tls_bind(proxy_pki, "default.test")) as proxy:
        context = client_context(proxy_pki)
        with tls_connect(proxy.port, context, "default.test") as staying:
            staying.sendall(b"a")
            assert staying.recv(1) == b"a"
            with tls_connect(proxy.port, context, "default.test") as leaving:
                leaving.sendall(b"b")
                assert leaving.recv(1) == b"b"
            proxy.wait_until(lambda: len(proxy.records) == 1)
            held = proxy.call(lambda: list(proxy.frontend._handshaken))
            still_open = proxy.call(lambda: list(proxy.frontend.connections))
            assert len(still_open) == 1
            assert held == still_open
