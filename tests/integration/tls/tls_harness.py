"""Real certificates, real staples and a running data plane on 127.0.0.1 for the TLS tests.

The PKI is a `staplegate.testpki` CA in a temporary directory: EC and RSA leaves, a wildcard,
a must-staple leaf; each loaded with the real certificate loader (so the CertId is the one
production computes). Staples are made with cryptography's OCSPResponseBuilder, signed by the
CA. `RunningProxy` runs `serve()` plus an asyncio echo backend on their own thread and event
loop, so tests can drive blocking clients (`openssl s_client`, Python's `ssl`) from the test
thread; readiness is the `started` event, never a sleep.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from staplegate.certs.loader import load_certificate
from staplegate.certs.model import LoadedCertificate
from staplegate.certs.source import CertificateSource, ExtraFiles
from staplegate.proxy.accept import serve
from staplegate.proxy.backends import BackendPool, BackendServer
from staplegate.proxy.frontend import BindSocket, FrontendRuntime
from staplegate.proxy.records import ConnectionRecord, ProxyTimeouts
from staplegate.testpki.ca import CertificateAuthority, KeyKind
from staplegate.tls.contexts import (
    CertificateBinding,
    TlsBind,
    TlsBindSettings,
    build_tls_bind,
)
from staplegate.tls.staples import StapleTable

T = TypeVar("T")

# name -> (key kind, SANs, must-staple)
CERTIFICATES: dict[str, tuple[KeyKind, tuple[str, ...], bool]] = {
    "default.test": (KeyKind.EC256, ("default.test",), False),
    "exact.test": (KeyKind.EC256, ("exact.test",), False),
    "wild": (KeyKind.EC256, ("*.wild.test",), False),
    "dual-ec": (KeyKind.EC256, ("dual.test",), False),
    "dual-rsa": (KeyKind.RSA2048, ("dual.test",), False),
    "must.test": (KeyKind.EC256, ("must.test",), True),
}


@dataclass
class TlsPki:
    ca: CertificateAuthority
    certs: dict[str, LoadedCertificate]

    @property
    def root_path(self) -> Path:
        return self.ca.root_cert_path

    def staple(
        self,
        name: str,
        *,
        status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
        now: dt.datetime | None = None,
    ) -> bytes:
        """A DER OCSP response for `name`, signed by the CA, valid for an hour."""
        leaf = self.certs[name].leaf
        now = now or dt.datetime.now(dt.UTC)
        revoked = status is ocsp.OCSPCertStatus.REVOKED
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf,
                issuer=self.ca.certificate,
                algorithm=hashes.SHA1(),
                cert_status=status,
                this_update=now - dt.timedelta(minutes=1),
                next_update=now + dt.timedelta(hours=1),
                revocation_time=now - dt.timedelta(hours=1) if revoked else None,
                revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.ca.certificate)
        )
        response = builder.sign(self.ca.private_key, hashes.SHA256())
        return response.public_bytes(Encoding.DER)


def build_pki(directory: Path) -> TlsPki:
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.init(directory / "ca", ocsp_url="http://127.0.0.1:9/ocsp")
    certs: dict[str, LoadedCertificate] = {}
    for name, (kind, sans, must) in CERTIFICATES.items():
        issued = ca.issue(name, sans=sans, key=kind, must_staple=must)
        certs[name] = load_certificate(
            CertificateSource.from_path(issued.bundle_path), extra=ExtraFiles(), now=now
        )
    return TlsPki(ca=ca, certs=certs)


def bindings(pki: TlsPki, *entries: str | tuple[str, tuple[str, ...]]) -> list[CertificateBinding]:
    """Bindings by certificate name, optionally with crt-list SNI filters."""
    result = []
    for entry in entries:
        name, filters = (entry, ()) if isinstance(entry, str) else entry
        result.append(CertificateBinding(pki.certs[name], sni_filters=filters))
    return result


class EchoBackend:
    """An asyncio TCP server: echoes, and on EOF answers `b"<EOF>"` then half-closes."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.greeting = b""
        self.blast = 0  # bytes to send right after connect (slow-client tests)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.greeting:
                writer.write(self.greeting)
            if self.blast:
                chunk = b"x" * 65536
                sent = 0
                while sent < self.blast:
                    writer.write(chunk)
                    sent += len(chunk)
                    await writer.drain()
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write(b"<EOF>")
            await writer.drain()
            writer.write_eof()
            await reader.read()  # until the proxy closes
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@dataclass
class RunningProxy:
    """A data plane on a background event loop: one frontend, one listener, one backend."""

    tls: TlsBind | None  # None: a plain bind
    staples: StapleTable = field(default_factory=StapleTable)
    timeouts: ProxyTimeouts = field(
        default_factory=lambda: ProxyTimeouts(connect_s=2.0, client_s=10.0, server_s=10.0)
    )
    maxconn: int = 100
    backend_servers: Sequence[BackendServer] | None = None
    buffer_limit: int = 256 * 1024
    records: list[ConnectionRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.backend = EchoBackend()
        self.port = 0
        self._stop: asyncio.Event | None = None
        self._serve: concurrent.futures.Future[None] | None = None

    def __enter__(self) -> RunningProxy:
        self.thread.start()
        self.call_async(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._stop is not None:
                self.loop.call_soon_threadsafe(self._stop.set)
            if self._serve is not None:
                self._serve.result(timeout=15)
            self.call_async(self.backend.stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()
            self.sock.close()

    async def _start(self) -> None:
        await self.backend.start()
        servers = self.backend_servers or [BackendServer("echo", "127.0.0.1", self.backend.port)]
        self.pool = BackendPool("be", servers)
        self.frontend = FrontendRuntime(
            name="fe",
            staples=self.staples,
            backend_router=lambda info: self.pool,
            timeouts=self.timeouts,
            maxconn=self.maxconn,
            log=self.records.append,
            buffer_limit=self.buffer_limit,
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._stop = asyncio.Event()
        started = asyncio.Event()
        task = self.loop.create_task(
            serve(
                [BindSocket(self.sock, self.frontend, self.tls)], started=started, stop=self._stop
            )
        )
        self._serve = asyncio.run_coroutine_threadsafe(_await(task), self.loop)
        await started.wait()

    def request_stop(self) -> None:
        """Set the `stop` event `serve` waits on (graceful stop)."""
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)

    @property
    def serving(self) -> bool:
        return self._serve is not None and not self._serve.done()

    def wait_serving_done(self, timeout: float = 10.0) -> None:
        assert self._serve is not None
        self._serve.result(timeout=timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the proxy's loop (no races with the data plane) and return its result."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def call_async(self, fn: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout=10)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll `predicate` on the loop (tiny waits) until it holds."""

        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.005)

        asyncio.run_coroutine_threadsafe(asyncio.wait_for(poll(), timeout), self.loop).result(
            timeout=timeout + 5
        )


async def _await(task: asyncio.Task[None]) -> None:
    await task


@dataclass(frozen=True)
class SClient:
    returncode: int
    output: str


def s_client(port: int, *args: str, servername: str | None = None, timeout: float = 20) -> SClient:
    """`openssl s_client` against the proxy, stdin at EOF; stdout and stderr together."""
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args]
    if servername is not None:
        command += ["-servername", servername]
    else:
        command += ["-noservername"]
    done = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    return SClient(done.returncode, done.stdout.decode("utf-8", "replace"))


def client_context(pki: TlsPki, **options: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.root_path))
    for name, value in options.items():
        setattr(context, name, value)
    return context


def tls_connect(port: int, context: ssl.SSLContext, server_name: str | None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname=server_name)


def tls_bind(pki: TlsPki, *entries: str | tuple[str, tuple[str, ...]], **settings: Any) -> TlsBind:
    return build_tls_bind(
        "bind 127.0.0.1:0", bindings(pki, *entries), TlsBindSettings(**settings), generation=1
    )
