"""The leanest Python stapling TLS front ends we know how to write: a ceiling, not a product.

Throw-away designs from research/dataplane.md, with none of staplegate's features (no
SNI choice, logs, timeouts, maxconn, balancing, health, backpressure, half-close): one
certificate, one staple, one backend, on uvloop. They say how close *any* Python front on
pyOpenSSL can get to HAProxy per connection, so staplegate's own figures can be read against
what its design allows (docs/performance.md, "What a Python front can reach").

- `membio`: the client over uvloop's transport, TLS on memory BIOs (staplegate's design,
  "A-fast" in dataplane.md), OpenSSL called through the cffi bindings pyOpenSSL ships.
- `sockbio`: the client socket handed to OpenSSL (socket BIO, "B"), readiness from
  `loop.add_reader`, accept in Python.
- `hybrid`: the handshake as `sockbio`, then the socket moves to a uvloop transport and the
  connection to memory BIOs, as `membio` (it gains nothing: docs/performance.md).
- `http`: `membio` plus the least `mode http` can do (llhttp both ways, X-Forwarded-For,
  hop-by-hop lines dropped, one keep-alive server connection per client; GET only).

Run by bench/tls_bench.py as the proxies `probe-membio`, `probe-sockbio`, `probe-hybrid`, and
by bench/http_bench.py as `probe-http`:

    .venv/bin/python bench/tls_bench.py --splits pinned --idle 0 --tests full,resumed \\
        --proxies staplegate,haproxy,probe-membio,probe-sockbio

Usage: design_probe.py membio|sockbio|hybrid|http CERT_PEM STAPLE_DER PORT BACKEND_PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import sys
from typing import Any

import httptools
import uvloop
from OpenSSL import SSL
from OpenSSL._util import ffi, lib

WANT_READ = lib.SSL_ERROR_WANT_READ
BUFFER = ffi.new("char[]", 65536)


def make_context(pem: str, staple: bytes, session_id: bytes) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    context.use_certificate_chain_file(pem)
    context.use_privatekey_file(pem)
    context.set_session_id(session_id)
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    context.set_ocsp_server_callback(lambda _conn, _data: staple)
    return context


class Backend(asyncio.Protocol):
    """The server side: everything goes to the front's `send`; its end ends the front."""

    def __init__(self, front: Any) -> None:
        self.front = front
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.front.send(data)

    def eof_received(self) -> bool:
        self.front.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.front.close()


class Forwarder:
    """Plaintext to the backend, opened after the handshake (as HAProxy's mode tcp)."""

    backend_port = 0
    backend: Backend | None
    waiting: list[bytes]

    def forward(self, data: bytes) -> None:
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.write(data)
        else:
            self.waiting.append(data)

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        protocol = HttpBackend if isinstance(self, HttpFront) else Backend
        transport, backend = await loop.create_connection(
            lambda: protocol(self), "127.0.0.1", self.backend_port
        )
        self.backend = backend
        for data in self.waiting:
            transport.write(data)


class MemoryBioFront(Forwarder, asyncio.Protocol):
    context: SSL.Context

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        if self.__dict__.get("done"):  # handed over by HybridFront after its handshake
            return
        self.conn = SSL.Connection(self.context, None)
        self.conn.set_accept_state()
        self.done = False
        self.backend = None
        self.waiting = []

    def flush(self) -> None:
        out = self.conn._from_ssl
        size = lib.BIO_get_mem_data(out, ffi.NULL)
        if size:
            read = lib.BIO_read(out, BUFFER, size)
            self.transport.write(ffi.buffer(BUFFER, read)[:])

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        ssl = conn._ssl
        lib.BIO_write(conn._into_ssl, data, len(data))
        if not self.done:
            result = lib.SSL_do_handshake(ssl)
            if result != 1:
                if lib.SSL_get_error(ssl, result) == WANT_READ:
                    self.flush()
                else:
                    self.transport.close()
                return
            self.done = True
            asyncio.get_running_loop().create_task(self.connect())
        while lib.SSL_pending(ssl) or lib.BIO_get_mem_data(conn._into_ssl, ffi.NULL):
            read = lib.SSL_read(ssl, BUFFER, 16384)
            if read <= 0:
                break
            self.forward(ffi.buffer(BUFFER, read)[:])
        self.flush()

    def send(self, data: bytes) -> None:
        lib.SSL_write(self.conn._ssl, data, len(data))
        self.flush()

    def close(self) -> None:
        if self.transport.is_closing():
            return
        lib.SSL_shutdown(self.conn._ssl)
        lib.ERR_clear_error()
        self.flush()
        lib.SSL_set_shutdown(self.conn._ssl, lib.SSL_SENT_SHUTDOWN | lib.SSL_RECEIVED_SHUTDOWN)
        self.transport.close()
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.close()


class SocketBioFront(Forwarder):
    context: SSL.Context

    def __init__(self, sock: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = SSL.Connection(self.context, sock)
        self.conn.set_accept_state()
        self.ssl = self.conn._ssl
        self.done = self.closed = False
        self.backend = None
        self.waiting = []
        self.loop.add_reader(self.fd, self.readable)

    def readable(self) -> None:
        ssl = self.ssl
        if not self.done:
            result = lib.SSL_do_handshake(ssl)
            if result != 1:
                if lib.SSL_get_error(ssl, result) != WANT_READ:
                    self.close()
                return
            self.done = True
            self.loop.create_task(self.connect())
        while True:
            read = lib.SSL_read(ssl, BUFFER, 16384)
            if read <= 0:
                if lib.SSL_get_error(ssl, read) != WANT_READ:
                    self.close()
                return
            self.forward(ffi.buffer(BUFFER, read)[:])

    def send(self, data: bytes) -> None:
        lib.SSL_write(self.ssl, data, len(data))  # loopback, small answers: never blocks here

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        lib.SSL_shutdown(self.ssl)
        lib.ERR_clear_error()
        lib.SSL_set_shutdown(self.ssl, lib.SSL_SENT_SHUTDOWN | lib.SSL_RECEIVED_SHUTDOWN)
        self.loop.remove_reader(self.fd)
        self.sock.close()
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.close()


class HybridFront(SocketBioFront):
    """The handshake on the socket BIO, then memory BIOs on a uvloop transport (as membio)."""

    def readable(self) -> None:
        ssl = self.ssl
        result = lib.SSL_do_handshake(ssl)
        if result != 1:
            if lib.SSL_get_error(ssl, result) != WANT_READ:
                self.close()
            return
        self.loop.remove_reader(self.fd)
        into, out = lib.BIO_new(lib.BIO_s_mem()), lib.BIO_new(lib.BIO_s_mem())
        lib.SSL_set_bio(ssl, into, out)
        self.conn._into_ssl, self.conn._from_ssl = into, out
        coroutine = self.loop.connect_accepted_socket(self.established, self.sock)
        self.loop.create_task(coroutine)

    def established(self) -> MemoryBioFront:
        front = MemoryBioFront.__new__(MemoryBioFront)
        front.conn = self.conn
        front.done = True
        front.backend = None
        front.waiting = []
        self.loop.create_task(front.connect())
        return front


class HttpFront(MemoryBioFront):
    """`mode http` at its leanest: the membio front, llhttp (httptools) validating each
    request and response, X-Forwarded-For added, hop-by-hop lines dropped from the answer,
    one keep-alive server connection per client. GET without a body only; no routing, rules,
    limits, timeouts or logs."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.xff = b"x-forwarded-for: %s\r\n\r\n" % peer[0].encode()
        self.requests = httptools.HttpRequestParser(self)
        self.chunk = b""

    def forward(self, data: bytes) -> None:
        self.chunk = data
        self.requests.feed_data(data)  # calls on_headers_complete for each request head

    def on_headers_complete(self) -> None:
        data = self.chunk
        end = data.find(b"\r\n\r\n")
        Forwarder.forward(self, data[: end + 2] + self.xff)


class HttpBackend(Backend):
    """The server side of `HttpFront`: each answer validated, hop-by-hop lines dropped."""

    def __init__(self, front: Any) -> None:
        super().__init__(front)
        self.responses = httptools.HttpResponseParser(self)
        self.out: list[bytes] = []
        self.chunk = b""

    def data_received(self, data: bytes) -> None:
        self.chunk = data
        self.responses.feed_data(data)
        if self.out:
            self.front.send(b"".join(self.out))
            self.out = []

    def on_headers_complete(self) -> None:
        data = self.chunk
        end = data.find(b"\r\n\r\n")
        self.out.append(HOP_BY_HOP.sub(b"", data[: end + 2]) + data[end + 2 :])


HOP_BY_HOP = re.compile(
    rb"(?im)^(?:connection|keep-alive|proxy-connection|te|trailer|upgrade)[ \t]*:[^\r]*\r\n"
)
FRONT: type[SocketBioFront] = SocketBioFront


def accept_all(listener: socket.socket) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        FRONT(sock)


async def serve(design: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    listener.setblocking(False)
    if design in ("membio", "http"):
        front = HttpFront if design == "http" else MemoryBioFront
        await loop.create_server(front, sock=listener, backlog=4096)
    else:
        loop.add_reader(listener.fileno(), accept_all, listener)
    await asyncio.Event().wait()


def main(argv: list[str]) -> int:
    design, pem, staple_path, port, backend_port = argv
    if design not in ("membio", "sockbio", "hybrid", "http"):
        print(f"unknown design {design!r}: membio, sockbio, hybrid or http", file=sys.stderr)
        return 2
    global FRONT
    FRONT = HybridFront if design == "hybrid" else SocketBioFront
    with open(staple_path, "rb") as file:
        staple = file.read()
    context = make_context(pem, staple, design.encode())
    MemoryBioFront.context = SocketBioFront.context = HybridFront.context = context
    Forwarder.backend_port = int(backend_port)
    with contextlib.suppress(RuntimeError):  # the loop stopped on SIGTERM
        uvloop.run(serve(design, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
