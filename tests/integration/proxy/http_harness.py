"""A mode-http data plane on a background loop, with small asyncio HTTP/1.1 backends."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from staplegate.proxy.accept import serve
from staplegate.proxy.backends import BackendPool, BackendServer
from staplegate.proxy.balance import Algorithm
from staplegate.proxy.frontend import BindSocket, FrontendRuntime
from staplegate.proxy.http_pool import HttpBackendSettings, HttpFrontend, HttpSettings
from staplegate.proxy.records import ConnectionInfo, ProxyTimeouts
from staplegate.tls.staples import StapleTable
from tests.integration.tls.tls_harness import TlsPki, client_context, tls_bind

T = TypeVar("T")


@dataclass
class SeenRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int


class HttpBackend:
    """Answers `200 <name> <target>`; records every request; optional delay per request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.requests: list[SeenRequest] = []
        self.connections = 0
        self.delay_s = 0.0
        self.raw_response: bytes | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.proxy_headers: list[bytes] = []
        self.expect_proxy = False
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.close()
            await self.server.wait_closed()
            self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.writers.add(writer)
        try:
            if self.expect_proxy:
                self.proxy_headers.append(await reader.readuntil(b"\r\n"))
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    key, value = h.decode().split(":", 1)
                    headers[key.strip().lower()] = (
                        headers[key.strip().lower()] + ", " + value.strip()
                        if key.strip().lower() in headers
                        else value.strip()
                    )
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                self.requests.append(SeenRequest(method, target, headers, body, number))
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if self.delay_s:  # a slow backend: the delay is the behaviour under test
                        await asyncio.sleep(self.delay_s)
                finally:
                    self.in_flight -= 1
                if self.raw_response is not None:
                    writer.write(self.raw_response)
                    await writer.drain()
                    writer.close()
                    return
                text = f"{self.name} {target}".encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%b"
                    % (len(text), text)
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


@dataclass
class RunningHttpProxy:
    pki: TlsPki
    backends: Sequence[str] = ("web1",)
    settings: HttpSettings = field(default_factory=HttpSettings)
    backend_settings: HttpBackendSettings | None = None
    algorithm: Algorithm = Algorithm.ROUNDROBIN
    servers: Callable[[list[HttpBackend]], list[BackendServer]] | None = None
    queue_timeout_s: float | None = None
    redispatch: bool = False
    accept_proxy: bool = False
    log_lines: list[str] = field(default_factory=list)
    route: Callable[[ConnectionInfo, BackendPool], BackendPool | None] | None = None

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.http_backends = [HttpBackend(name) for name in self.backends]
        self.port = 0
        self.opened: list[ssl.SSLSocket] = []
        self._stop: asyncio.Event | None = None
        self._serve: concurrent.futures.Future[None] | None = None

    def __enter__(self) -> RunningHttpProxy:
        self.thread.start()
        self.call_async(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in self.opened:
            sock.close()
        try:
            if self._stop is not None:
                self.loop.call_soon_threadsafe(self._stop.set)
            if self._serve is not None:
                self._serve.result(timeout=15)
            for backend in self.http_backends:
                self.call_async(backend.stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()
            self.sock.close()

    async def _start(self) -> None:
        for backend in self.http_backends:
            await backend.start()
        if self.servers is not None:
            servers = self.servers(self.http_backends)
        else:
            servers = [BackendServer(b.name, "127.0.0.1", b.port) for b in self.http_backends]
        self.pool = BackendPool(
            "be",
            servers,
            algorithm=self.algorithm,
            redispatch=self.redispatch,
            queue_timeout_s=self.queue_timeout_s,
        )
        be_settings = self.backend_settings or HttpBackendSettings(
            "be", connect_timeout_s=2.0, server_timeout_s=5.0
        )
        settings = HttpSettings(
            rules=self.settings.rules,
            forwardfor_header=self.settings.forwardfor_header,
            httplog=True,
            request_timeout_s=self.settings.request_timeout_s,
            keep_alive_timeout_s=self.settings.keep_alive_timeout_s,
            client_timeout_s=self.settings.client_timeout_s,
            max_head_bytes=self.settings.max_head_bytes,
            max_body_bytes=self.settings.max_body_bytes,
            backends={"be": be_settings},
        )
        self.http = HttpFrontend(settings, log_line=self.log_lines.append)
        route = self.route

        def router(info: ConnectionInfo) -> BackendPool | None:
            return route(info, self.pool) if route is not None else self.pool

        self.frontend = FrontendRuntime(
            name="fe",
            staples=StapleTable(),
            backend_router=router,
            timeouts=ProxyTimeouts(connect_s=2.0, client_s=10.0, server_s=10.0),
            maxconn=100,
            http=self.http,
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._stop = asyncio.Event()
        started = asyncio.Event()
        listener = BindSocket(
            self.sock,
            self.frontend,
            tls_bind(self.pki, "default.test"),
            accept_proxy=self.accept_proxy,
        )
        task = self.loop.create_task(serve([listener], started=started, stop=self._stop))
        self._serve = asyncio.run_coroutine_threadsafe(_await(task), self.loop)
        await started.wait()

    def call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def call_async(self, fn: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(10)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.01)

        asyncio.run_coroutine_threadsafe(asyncio.wait_for(poll(), timeout), self.loop).result(
            timeout + 1
        )

    def raw(self) -> ssl.SSLSocket:
        """A TLS client socket to the proxy; closed when the proxy stops."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        wrapped: ssl.SSLSocket = client_context(self.pki).wrap_socket(
            sock, server_hostname="default.test"
        )
        self.opened.append(wrapped)
        return wrapped


async def _await(task: asyncio.Task[None]) -> None:
    await task


def https(proxy: RunningHttpProxy) -> http.client.HTTPSConnection:
    """A keep-alive client whose TCP connection goes to the proxy (SNI default.test)."""
    conn = http.client.HTTPSConnection("127.0.0.1", proxy.port, timeout=10)
    conn.sock = proxy.raw()
    return conn


def read_all(sock: ssl.SSLSocket) -> bytes:
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLError, ConnectionError):
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)
