"""One client connection: terminate TLS, then forward plain TCP to a server (or HTTP).

Theory of operation, per client connection (`ClientConnection`):

1. HELLO: buffer the first bytes until `parse_client_hello` has the whole ClientHello (capped);
   pick the certificate's context with the bind's `SniIndex` (strict-sni: send
   `unrecognized_name` and close), then create a `TlsEndpoint` and feed it the buffer. A bind
   with one certificate and no strict-sni skips the parse (`SniIndex.only`): OpenSSL reads
   the hello and `server_name` asks it for the SNI.
2. HANDSHAKE: every ciphertext chunk goes through the endpoint; its output goes back to the
   client. `timeout client` bounds the whole handshake. Once it is done, a client read is one
   `TlsEndpoint.read` and a server read one `encrypt_plaintext_buffer` (`_established`).
3. CONNECTING: the backend connection opens after the handshake, as HAProxy does in
   `mode tcp`: round-robin among UP servers, `timeout connect` per attempt, `retries` more
   attempts (each on the next server). What the client sends meanwhile is kept for the
   server; past the buffer limit, client reading pauses until the connection is up.
4. FORWARDING: both ways, with backpressure: when the client's transport buffer passes the
   high-water mark, reading from the server pauses, and the other way round, so a slow peer
   never makes us buffer more than about one buffer limit plus one read per direction.
   Half-close: the client's close_notify (or FIN) becomes a FIN to the server; the server's
   FIN becomes close_notify plus FIN to the client; the connection ends when both directions
   have ended, or on an error or timeout (`timeout client|server`, or `timeout tunnel` for
   both once forwarding).

`mode http` (the frontend has an `http` runtime): after the handshake the decrypted stream
goes to a `http_stream.HttpStream` instead of one backend connection (see that module).
`accept-proxy` binds read a PROXY protocol header before the ClientHello; its source
address replaces the socket's for routing, logs and X-Forwarded-For.

A plain bind (no `ssl`, `BindSocket.tls` None) skips steps 1 and 2: once started (after the
PROXY header, with `accept-proxy`) the connection goes straight to routing (`_open`), and
its bytes go to the server or the HTTP stream as they are (`_plain_received`,
`server_data`). The TLS paths never test for it: a plain connection never has an endpoint,
and only the paths taken without one look at the bind.

The connection's frontend (`frontend.FrontendRuntime`) holds what its connections share;
accepting is `accept.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Final

from staplegate.proxy.backend_connection import BackendConnection
from staplegate.proxy.backends import BackendPool, BackendServer, QueueTimeout, SendProxy
from staplegate.proxy.deadlines import TICK_S
from staplegate.proxy.frontend import BindSocket
from staplegate.proxy.http_request import RequestHead
from staplegate.proxy.http_rules import Inspected
from staplegate.proxy.http_stream import HttpStream
from staplegate.proxy.inspection import inspect, wants_more
from staplegate.proxy.proxyproto import NeedMore, ProxyHeaderError, parse_proxy_header
from staplegate.proxy.records import (
    ConnectionInfo,
    ConnectionPhase,
    ConnectionRecord,
    Termination,
)
from staplegate.proxy.upstream import open_server
from staplegate.tls.clienthello import (
    ClientHelloError,
    ClientHelloErrorReason,
    NeedMoreData,
    parse_client_hello,
)
from staplegate.tls.endpoint import (
    DIRECT,
    PLAINTEXT_BUFFER,
    AlertDescription,
    SessionInfo,
    TlsEndpoint,
    TlsEndpointError,
    fatal_alert,
)

log = logging.getLogger("staplegate.proxy")


def _address(address: object) -> tuple[str, int]:
    if isinstance(address, tuple) and len(address) >= 2:
        return (str(address[0]), int(address[1]))
    return (str(address), 0)


# Read per request: a module constant, because on Python 3.11 `ConnectionPhase.CLOSED` goes through
# the enum metaclass's __getattr__ (about ten times a global's cost).
_CLOSED: Final = ConnectionPhase.CLOSED
_HELLO: Final = ConnectionPhase.HELLO
_EMBRYONIC: Final = frozenset(
    (ConnectionPhase.PROXY_HEADER, ConnectionPhase.HELLO, ConnectionPhase.HANDSHAKE)
)
_TLS_HANDSHAKE_RECORD: Final = 22  # the content type a ClientHello's record starts with
# `_sni` before the SNI is known: the hello went to OpenSSL unparsed (one certificate).
_ASK_OPENSSL: Final = "\x00ask OpenSSL"


class ClientConnection(asyncio.Protocol):
    """One client: TLS termination and forwarding to one backend server (see module doc)."""

    # Slots, and only the SNI kept from the hello: an idle connection costs ~3 KB less
    # (bench/tls_bench.py idle test; HAProxy needs ~18 KB per idle TLS connection).
    __slots__ = (
        "_client_activity",
        "_connect_due",
        "_connect_expired",
        "_connect_s",
        "_connect_task",
        "_deadline_key",
        "_established",
        "_frontend_address",
        "_held",
        "_hello_buffer",
        "_inspect_timer",
        "_inspected",
        "_queue_s",
        "_server_activity",
        "_slot_server",
        "_sni",
        "_started",
        "_to_server",
        "backend",
        "bytes_from_client",
        "bytes_to_client",
        "client_address",
        "client_done",
        "client_write_paused",
        "endpoint",
        "frontend",
        "http",
        "listener",
        "loop",
        "phase",
        "pool",
        "server",
        "server_done",
        "session",
        "slot_held",
        "termination",
        "tls_error",
        "transport",
    )

    def __init__(self, listener: BindSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.listener = listener
        self.frontend = listener.frontend
        self.client_address: tuple[str, int] = ("0.0.0.0", 0)  # from the transport, or PROXY
        self.loop = loop
        # A plain bind without `accept-proxy` leaves HELLO in `_start`, before any byte.
        self.phase = (
            ConnectionPhase.PROXY_HEADER if listener.accept_proxy else ConnectionPhase.HELLO
        )
        self._frontend_address: tuple[str, int] | None = None  # asked of the socket when used
        self.http: HttpStream | None = None
        self.slot_held = False
        self._slot_server: BackendServer | None = None
        self._queue_s: float | None = None
        self.transport: asyncio.Transport | None = None
        self.endpoint: TlsEndpoint | None = None
        # The endpoint once its handshake is done, when it has the direct read/encrypt path
        # (`DIRECT`): data_received's hot path tests this one slot.
        self._established: TlsEndpoint | None = None
        self._sni: str | None = None  # the ClientHello's server_name
        self.backend: BackendConnection | None = None
        self.pool: BackendPool | None = None
        self.server: BackendServer | None = None
        self.session: SessionInfo | None = None
        self.tls_error: str | None = None
        self.termination = Termination.NORMAL
        self.client_done = False  # no more data will come from the client
        self.server_done = False  # no more data will come from the server
        self.client_write_paused = False
        self.bytes_from_client = 0
        self.bytes_to_client = 0
        self._hello_buffer = bytearray()
        self._inspect_timer: asyncio.TimerHandle | None = None  # `tcp-request inspect-delay`
        self._inspected: Inspected | None = None  # what the inspection read
        self._held = b""  # handshake output waiting to go out with the first answer
        self._to_server: list[bytes] = []
        self._started = self.loop.time()
        self._connect_s: float | None = None
        self._client_activity = self._started
        self._server_activity = self._started
        self._deadline_key: int | None = None  # where the frontend's wheel holds us
        self._connect_due: float | None = None  # this connect attempt's deadline
        self._connect_task: asyncio.Task[None] | None = None
        self._connect_expired = False  # set by the connect timer before it cancels the task

    # -- introspection (tests, runtime API) ------------------------------------------------

    @property
    def client_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport else 0

    @property
    def backend_reading(self) -> bool:
        transport = self.backend.transport if self.backend else None
        return bool(transport and transport.is_reading())

    # -- client transport callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods (no
        # typing.cast: a Python call per connection)
        self.transport = transport  # type: ignore[assignment]
        frontend = self.frontend
        if len(frontend.connections) >= frontend.maxconn or frontend.parked:
            # a burst accepted past maxconn: wait unread
            transport.pause_reading()  # type: ignore[attr-defined]
            frontend.parked.append(self)
            return
        self._start()

    def unpark(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.phase is _CLOSED:
            return
        self._started = self._client_activity = self._server_activity = self.loop.time()
        self._start()
        transport.resume_reading()

    def _start(self) -> None:
        transport = self.transport
        assert transport is not None
        frontend = self.frontend
        frontend.connection_opened(self)
        peer = transport.get_extra_info("peername")
        if type(peer) is tuple:  # AF_INET/AF_INET6: (host, port, ...)
            self.client_address = (peer[0], peer[1])
        elif peer:
            self.client_address = _address(peer)
        transport.set_write_buffer_limits(high=frontend.buffer_limit)
        if isinstance(self.loop, asyncio.SelectorEventLoop):  # uvloop sets TCP_NODELAY itself
            sock = transport.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # HAProxy's embryonic session: `timeout client` from the accept bounds the hello and
        # the handshake (`_deadlines`).
        client_s = frontend.timeouts.client_s
        if client_s:
            self._deadline_key = frontend.deadlines.add(self, self._started + client_s)
        if self.listener.tls is None and self.phase is ConnectionPhase.HELLO:
            self._plain_ready()  # a plain bind: nothing to read before routing (or inspect)

    @property
    def frontend_address(self) -> tuple[str, int]:
        """The address the client connected to (or the PROXY header's destination)."""
        if self._frontend_address is None:
            transport = self.transport
            sockname = transport.get_extra_info("sockname") if transport else None
            self._frontend_address = _address(sockname) if sockname else ("0.0.0.0", 0)
        return self._frontend_address

    def data_received(self, data: bytes) -> None:
        self._client_activity = self.loop.time()
        endpoint = self._established
        if endpoint is not None:  # the keep-alive hot path: one call into the TLS layer
            plaintext: list[bytes] = []
            try:
                to_peer, closed = endpoint.read(data, plaintext)
            except TlsEndpointError as error:
                self._tls_failed(endpoint, error)
                return
            if to_peer:
                self._write_client(to_peer)
            if plaintext and self.phase is not _CLOSED:
                http = self.http
                if http is not None:
                    self.bytes_from_client += sum(map(len, plaintext))
                    http.client_data(plaintext)
                else:
                    self._forward_to_server(plaintext)
            if closed and self.phase is not _CLOSED:
                self._client_closed_tls()
            return
        if self.endpoint is None:
            if self.phase is ConnectionPhase.PROXY_HEADER:
                self._proxy_header_received(data)
            elif self.listener.tls is not None:
                self._hello_received(data)
            else:
                self._plain_received(data)
        else:
            self._tls_received(data)

    def eof_received(self) -> bool:
        if self.phase in (
            ConnectionPhase.PROXY_HEADER,
            ConnectionPhase.HELLO,
            ConnectionPhase.HANDSHAKE,
        ):
            self._finish(Termination.CLIENT_ABORT_HANDSHAKE)
            return False
        if self.http is not None:
            self.http.client_eof()
            return True
        self._client_finished()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.phase is _CLOSED:
            return
        parked = self.frontend.parked
        if parked and self in parked:  # never started: nothing to log (like a backlog drop)
            parked.remove(self)
            self.phase = _CLOSED
            return
        if self.phase in (
            ConnectionPhase.PROXY_HEADER,
            ConnectionPhase.HELLO,
            ConnectionPhase.HANDSHAKE,
        ):
            self._finish(Termination.CLIENT_ABORT_HANDSHAKE)
        elif self.phase is ConnectionPhase.HTTP:
            self._finish(Termination.NORMAL if self.client_done else Termination.CLIENT_ABORT)
        elif self.client_done and self.server_done:
            self._finish(Termination.NORMAL)
        else:
            self._finish(Termination.CLIENT_ABORT)

    def pause_writing(self) -> None:
        self.client_write_paused = True
        if self.http is not None:
            self.http.client_blocked()
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client_write_paused = False
        if self.http is not None:
            self.http.client_writable()
        backend = self.backend
        if backend is not None and backend.transport is not None and not self.server_done:
            backend.transport.resume_reading()

    # -- PROXY protocol (accept-proxy) ------------------------------------------------------

    def _proxy_header_received(self, data: bytes) -> None:
        self._hello_buffer += data
        try:
            parsed = parse_proxy_header(bytes(self._hello_buffer))
        except ProxyHeaderError as error:
            self.tls_error = str(error)
            self._finish(Termination.CLIENT_ABORT_HANDSHAKE)
            return
        if isinstance(parsed, NeedMore):
            return
        if parsed.source is not None and parsed.destination is not None:
            self.client_address = parsed.source
            self._frontend_address = parsed.destination
        rest = bytes(self._hello_buffer[parsed.length :])
        self._hello_buffer = bytearray()
        self.phase = ConnectionPhase.HELLO
        if self.listener.tls is None:
            self._plain_ready()
            if rest:
                self._plain_received(rest)
        elif rest:
            self._hello_received(rest)

    # -- plain binds ------------------------------------------------------------------------

    def _plain_ready(self) -> None:
        """A plain bind's client is there: route now, or first read what `tcp-request
        inspect-delay` waits for (a whole ClientHello, other bytes, or the delay's end)."""
        frontend = self.frontend
        delay = frontend.inspect_delay_s
        if delay is not None:
            self._inspect_timer = self.loop.call_later(delay, self._inspect_done)
            return
        if frontend.content_check is None or self._content_accepted():
            self._open()

    def _inspect_received(self, data: bytes) -> None:
        """Bytes read while inspecting: wait for more only while they are the beginning of a
        ClientHello (anything else decides at once, as HAProxy's fetches do)."""
        self._hello_buffer += data
        if not wants_more(self._hello_buffer):
            self._inspect_done()

    def _inspect_done(self) -> None:
        """Evaluate `tcp-request content` on what was read, route, and pass the bytes on."""
        timer = self._inspect_timer
        if timer is not None:
            self._inspect_timer = None
            timer.cancel()
        if self.phase is not ConnectionPhase.HELLO:  # closed meanwhile
            return
        data = bytes(self._hello_buffer)
        self._hello_buffer = bytearray()
        self._inspected, self._sni = inspect(data)  # `req.ssl_*` fetches, `req.ssl_sni`
        if self.frontend.content_check is not None and not self._content_accepted():
            return
        self._open()
        if data:
            self._plain_received(data)  # to the server (or dropped if `_open` refused)

    def _content_accepted(self) -> bool:
        """`tcp-request content` rules; a reject closes the connection (`PR--`)."""
        check = self.frontend.content_check
        if check is None or check(self.connection_info()):
            return True
        self._finish(Termination.PROXY_REFUSED)
        return False

    def _plain_received(self, data: bytes) -> None:
        """Client bytes on a plain bind: to the HTTP stream or the server, as they are."""
        if self.phase is _CLOSED:
            return
        if self.phase is _HELLO:  # still inspecting (`tcp-request inspect-delay`)
            self._inspect_received(data)
            return
        http = self.http
        if http is not None:
            self.bytes_from_client += len(data)
            http.client_data([data])
        else:
            self._forward_to_server([data])

    # -- what the HTTP stream uses -----------------------------------------------------------

    @property
    def server_name(self) -> str | None:
        """The ClientHello's SNI (from our parser, or OpenSSL's when the hello skipped it)."""
        sni = self._sni
        if sni is _ASK_OPENSSL:
            endpoint = self.endpoint
            sni = self._sni = endpoint.server_name() if endpoint is not None else None
        return sni

    @property
    def stopping(self) -> bool:
        return self.frontend.stopping

    def connection_info(
        self,
        host: str | None = None,
        target: bytes | None = None,
        head: RequestHead | None = None,
    ) -> ConnectionInfo:
        session = self.session
        return ConnectionInfo(
            frontend=self.frontend.name,
            client_address=self.client_address,
            server_name=self.server_name,
            alpn=session.alpn if session else None,
            host=host,
            client_certificate=session.client_certificate if session else None,
            tls=session is not None,
            target=target,
            head=head,
            frontend_address=self.frontend_address,
            inspected=self._inspected,
        )

    def route(self, info: ConnectionInfo) -> BackendPool | None:
        try:
            return self.frontend.backend_router(info)
        except Exception:
            log.exception("frontend %s: the backend router failed", self.frontend.name)
            return None

    def pause_client_reading(self) -> None:
        if self.transport is not None and self.phase is not _CLOSED:
            self.transport.pause_reading()

    def resume_client_reading(self) -> None:
        if self.transport is not None and self.phase is not _CLOSED:
            self.transport.resume_reading()

    def end_http(self, *, aborted: bool) -> None:
        """The HTTP stream is done: close_notify and close (or abort)."""
        if self.phase is _CLOSED:
            return
        if aborted:
            self.abort(Termination.CLIENT_ABORT)
            return
        if self.endpoint is not None:
            self._write_client(self.endpoint.close_notify())
        self.client_done = self.server_done = True
        self._finish(Termination.NORMAL)

    # -- TLS --------------------------------------------------------------------------------

    def _hello_received(self, data: bytes) -> None:
        buffered = self._hello_buffer
        tls = self.listener.tls
        assert tls is not None  # only TLS binds read a hello (`data_received`)
        only = tls.sni.only
        if only is not None and not buffered:
            # One certificate and no strict-sni: nothing in the hello changes the choice, so
            # OpenSSL reads it (and rejects a malformed one) and the SNI is asked of it later.
            if data[0] != _TLS_HANDSHAKE_RECORD:  # plain HTTP, SSLv2, garbage: as the parser
                self._hello_failed(
                    ClientHelloError(
                        ClientHelloErrorReason.NOT_HANDSHAKE, f"content type {data[0]}"
                    )
                )
                return
            self._sni = _ASK_OPENSSL
            frontend = self.frontend
            self.endpoint = TlsEndpoint(only.value, frontend.staples, frontend.stats.staples)
            self.phase = ConnectionPhase.HANDSHAKE
            self._tls_received(data)
            return
        if buffered:  # the hello came in pieces: parse all of it so far
            buffered += data
            data = bytes(buffered)
        stats = self.frontend.stats
        try:
            parsed = parse_client_hello(data)
        except ClientHelloError as error:
            self._hello_failed(error)
            return
        if isinstance(parsed, NeedMoreData):
            if not buffered:
                buffered += data
            return
        self._sni = parsed.server_name
        choice = tls.sni.choose(parsed, self.frontend.staples.lookup)
        if choice is None:
            stats.strict_sni_refusals += 1
            self.tls_error = f"strict-sni: no certificate for {parsed.server_name!r}"
            self._write_client(fatal_alert(AlertDescription.UNRECOGNIZED_NAME))
            self._finish(Termination.PROXY_REFUSED)
            return
        self.endpoint = TlsEndpoint(choice.value, self.frontend.staples, stats.staples)
        self.phase = ConnectionPhase.HANDSHAKE
        if buffered:
            self._hello_buffer = bytearray()
        self._tls_received(data)

    def _hello_failed(self, error: ClientHelloError) -> None:
        self.frontend.stats.hello_errors += 1
        self.tls_error = str(error)
        self._write_client(fatal_alert(AlertDescription.HANDSHAKE_FAILURE))
        self._finish(Termination.CLIENT_ABORT_HANDSHAKE)

    def _tls_received(self, data: bytes) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        try:
            result = endpoint.receive(data)
        except TlsEndpointError as error:
            self._tls_failed(endpoint, error)
            return
        to_peer = result.to_peer
        if to_peer:
            if result.handshake_completed and result.plaintext:
                # The session tickets OpenSSL wrote at the end of the handshake: the client
                # sent its first data with its Finished, so an answer follows; they go out
                # with it, one send instead of two (`_write_client`, `_finish`).
                self._held = to_peer
            else:
                self._write_client(to_peer)
        if result.handshake_completed:
            self._handshake_completed(endpoint)
        if result.plaintext and self.phase is not _CLOSED:
            if self.http is not None:
                self.bytes_from_client += sum(map(len, result.plaintext))
                self.http.client_data(result.plaintext)
            else:
                self._forward_to_server(result.plaintext)
        if result.peer_closed and self.phase is not _CLOSED:
            self._client_closed_tls()

    def _tls_failed(self, endpoint: TlsEndpoint, error: TlsEndpointError) -> None:
        self.tls_error = str(error)
        if error.to_peer:
            self._write_client(error.to_peer)
        if endpoint.handshake_complete:
            self._finish(Termination.CLIENT_ABORT)
        else:
            self.frontend.stats.handshake_failures += 1
            self._finish(Termination.CLIENT_ABORT_HANDSHAKE)

    def _client_closed_tls(self) -> None:
        """The client's close_notify arrived."""
        if self.http is not None:
            self.client_done = True
            self.http.client_eof()
        else:
            self._client_finished()

    def _handshake_completed(self, endpoint: TlsEndpoint) -> None:
        frontend = self.frontend
        frontend.handshake_done(self)
        stats = frontend.stats
        stats.handshakes += 1
        if DIRECT:
            self._established = endpoint
        self.session = endpoint.session_info()
        if self.session.resumed:
            stats.resumed += 1
        self._open()

    def _open(self) -> None:
        """The client is ready (handshake done, or a plain bind started): mode http gets
        its stream; mode tcp picks a backend and connects."""
        frontend = self.frontend
        if frontend.http is not None:
            self.phase = ConnectionPhase.HTTP
            self._disarm()  # the stream runs its own timers from here
            self.http = HttpStream(self, frontend.http)
            return
        pool = frontend.only_backend
        if pool is None:
            try:
                pool = frontend.backend_router(self.connection_info())
            except Exception:
                log.exception("frontend %s: the backend router failed", frontend.name)
        if pool is None:
            frontend.stats.no_backend += 1
            if self.endpoint is not None:
                self._write_client(self.endpoint.close_notify())
            self._finish(Termination.PROXY_REFUSED)
            return
        if frontend.backend_checks:  # the backend's `tcp-request content` rules
            check = frontend.backend_checks.get(pool.name)
            if check is not None and not check(self.connection_info()):
                self._finish(Termination.PROXY_REFUSED)
                return
        self.pool = pool
        self.phase = ConnectionPhase.CONNECTING
        # Client data read meanwhile waits in `_to_server`; reading pauses only if that
        # passes the buffer limit (`_forward_to_server`), not on every connection.
        self._connect_task = self.loop.create_task(self._connect(pool))

    # -- backend ----------------------------------------------------------------------------

    def _connect_timed_out(self) -> None:
        """`timeout connect` passed: cancel the attempt (`_connect` tells it from a stop)."""
        task = self._connect_task
        if task is not None and self.phase is not _CLOSED:
            self._connect_expired = True
            task.cancel()

    async def _connect(self, pool: BackendPool) -> None:
        """HAProxy's order: take a server (queue if full), retry it, redispatch last."""
        try:
            timeouts = self.frontend.timeouts
            failure = Termination.SERVER_CONNECT_FAILED
            started = self.loop.time()
            server = pool.take_now(self.client_address[0])  # the usual case: a free slot
            if server is None:
                try:
                    server = await pool.take(self.client_address[0])
                except QueueTimeout:
                    self._queue_s = self.loop.time() - started
                    self.frontend.stats.backend_connect_failures += 1
                    self._close_after_failure(Termination.QUEUE_TIMEOUT)
                    return
                self._queue_s = self.loop.time() - started
            else:
                self._queue_s = 0.0
            if server is None:
                self.frontend.stats.backend_connect_failures += 1
                self._close_after_failure(failure)
                return
            self.slot_held = True
            self._slot_server = server
            failed: list[str] = []
            retries = self.frontend.retries
            for attempt in range(retries + 1):
                if attempt and attempt == retries and pool.redispatch:
                    other = pool.pick(self.client_address[0], exclude=failed)
                    if other is not None and other is not server:
                        pool.release(server)
                        pool.acquire(other)
                        server = self._slot_server = other
                # The connection's own wake-up, not asyncio.timeout (an object, two coroutine
                # hooks and a timer each) nor wait_for (a task per connect in 3.11).
                connect_s = timeouts.connect_s
                if connect_s:
                    self._connect_due = due = self.loop.time() + connect_s
                    self._wake_by(due)
                try:
                    if (
                        server.send_proxy is SendProxy.NONE
                        and server.tls is None
                        and server.source is None
                    ):
                        # plain TCP: the loop's connect (both loops set TCP_NODELAY)
                        transport, protocol = await self.loop.create_connection(
                            lambda: BackendConnection(self), server.host, server.port
                        )
                    else:
                        transport, protocol = await open_server(
                            server,
                            lambda: BackendConnection(self),
                            client_address=self.client_address,
                            frontend_address=self.frontend_address,
                            client_sni=self.server_name,
                        )
                except asyncio.CancelledError:
                    if not self._connect_expired:
                        raise  # the connection closed, or the worker stops
                    self._connect_expired = False
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
                    failure = Termination.SERVER_CONNECT_TIMEOUT
                except (OSError, ValueError):
                    failure = Termination.SERVER_CONNECT_FAILED
                else:
                    pool.observe(server, ok=True)
                    self.server = server
                    self._connect_s = self.loop.time() - started
                    if self.phase is _CLOSED:
                        transport.close()
                        return
                    self._backend_connected(protocol)
                    return
                finally:
                    self._connect_due = None  # its wake-up, if still armed, finds nothing due
                pool.connect_failed(server)
                failed.append(server.name)
            self.frontend.stats.backend_connect_failures += 1
            self._close_after_failure(failure)
        finally:
            self._connect_task = None  # a finished task kept per connection costs memory

    def _close_after_failure(self, termination: Termination) -> None:
        if self.endpoint is not None:
            self._write_client(self.endpoint.close_notify())
        self._finish(termination)

    def _backend_connected(self, backend: BackendConnection) -> None:
        transport = backend.transport
        assert transport is not None
        self.backend = backend
        self.phase = ConnectionPhase.FORWARDING
        self._server_activity = self.loop.time()
        transport.set_write_buffer_limits(high=self.frontend.buffer_limit)
        # TCP_NODELAY: both loops' TCP transports set it (and open_server for its own sockets)
        pending = self._to_server
        if pending:
            self._to_server = []
            transport.writelines(pending)
        if self.client_done:
            if transport.can_write_eof():
                transport.write_eof()
        elif self.transport is not None and not backend.write_paused:
            self.transport.resume_reading()  # paused if `_to_server` filled up
        if self.client_write_paused:
            transport.pause_reading()
        # An earlier wake-up (the handshake's deadline, the connect's) stays armed: it
        # re-arms for the forwarding deadlines when it fires.
        due = self._next_deadline()
        if due is not None:
            self._wake_by(due)

    def _forward_to_server(self, chunks: list[bytes]) -> None:
        size = len(chunks[0]) if len(chunks) == 1 else sum(map(len, chunks))
        self.bytes_from_client += size
        self.frontend.stats.bytes_in += size
        backend = self.backend
        transport = backend.transport if backend is not None else None
        if transport is None:  # still connecting
            waiting = self._to_server
            waiting.extend(chunks)
            client = self.transport
            if client is not None and sum(map(len, waiting)) > self.frontend.buffer_limit:
                client.pause_reading()  # resumed once connected
            return
        if len(chunks) == 1:
            transport.write(chunks[0])
        else:
            transport.writelines(chunks)
        self._server_activity = self.loop.time()

    def server_read(self, size: int) -> None:
        """A backend read of `size` bytes landed in `PLAINTEXT_BUFFER`: encrypt and send it."""
        endpoint = self._established
        if endpoint is None:  # no direct bindings (or not established): the general path
            self.server_data(PLAINTEXT_BUFFER[:size])
            return
        loop_time = self.loop.time()
        self._server_activity = loop_time
        if self.phase is _CLOSED:
            return
        self.bytes_to_client += size
        self.frontend.stats.bytes_out += size
        try:
            ciphertext = endpoint.encrypt_plaintext_buffer(size)
        except TlsEndpointError as error:
            self.tls_error = str(error)
            self._finish(Termination.CLIENT_ABORT)
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            held = self._held
            if held:
                self._held = b""
                ciphertext = held + ciphertext
            transport.write(ciphertext)
            self._client_activity = loop_time

    def server_data(self, data: bytes | memoryview) -> None:
        now = self._server_activity = self.loop.time()
        endpoint = self.endpoint
        if endpoint is None or self.phase is _CLOSED:
            if self.listener.tls is None and self.phase is not _CLOSED:
                self._plain_to_client(data, now)
            return
        size = len(data)
        self.bytes_to_client += size
        self.frontend.stats.bytes_out += size
        try:
            ciphertext = endpoint.send(data)
        except TlsEndpointError as error:
            self.tls_error = str(error)
            self._finish(Termination.CLIENT_ABORT)
            return
        transport = self.transport  # `_write_client`, inline: once per HTTP response part
        if ciphertext and transport is not None and not transport.is_closing():
            held = self._held
            if held:
                self._held = b""
                ciphertext = held + ciphertext
            transport.write(ciphertext)
            self._client_activity = now

    # What the HTTP stream calls to answer the client: encrypt and send (no extra call).
    send_plain = server_data

    def _plain_to_client(self, data: bytes | memoryview, now: float) -> None:
        """`server_data` on a plain bind: the bytes as they are (a copy: a server read's
        view is into `PLAINTEXT_BUFFER`, which the next read overwrites)."""
        size = len(data)
        self.bytes_to_client += size
        self.frontend.stats.bytes_out += size
        transport = self.transport
        if size and transport is not None and not transport.is_closing():
            transport.write(bytes(data))
            self._client_activity = now

    # -- half-close and close ----------------------------------------------------------------

    def _client_finished(self) -> None:
        if self.client_done:
            return
        self.client_done = True
        if self.server_done:  # both ways done: closing sends the server its FIN
            self._finish(Termination.NORMAL)
            return
        transport = self.backend.transport if self.backend is not None else None
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    def server_finished(self) -> None:
        if self.server_done or self.phase is _CLOSED:
            return
        self.server_done = True
        if self.endpoint is not None:
            self._write_client(self.endpoint.close_notify())
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        if self.client_done:
            self._finish(Termination.NORMAL)

    def server_lost(self, exc: Exception | None) -> None:
        if self.phase is _CLOSED:
            return
        if exc is None and self.server_done and self.client_done:
            self._finish(Termination.NORMAL)
            return
        if not self.server_done and self.endpoint is not None:
            self._write_client(self.endpoint.close_notify())
        self._finish(Termination.SERVER_ABORT if exc is not None else Termination.NORMAL)

    def _write_client(self, data: bytes) -> None:
        held = self._held
        if held:
            self._held = b""
            data = held + data
        transport = self.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            self._client_activity = self.loop.time()

    def abort(self, termination: Termination) -> None:
        """Close at once, without flushing (hard stop, timeouts)."""
        self._finish(termination, abort=True)

    def _finish(self, termination: Termination, *, abort: bool = False) -> None:
        if self.phase is _CLOSED:
            return
        self.phase = _CLOSED
        self.termination = termination
        self._disarm()
        if self._inspect_timer is not None:
            self._inspect_timer.cancel()
            self._inspect_timer = None
        task = self._connect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        if self.http is not None:
            self.http.close()
        if self.slot_held and self.pool is not None and self._slot_server is not None:
            self.slot_held = False
            self.pool.release(self._slot_server)
        if self.endpoint is not None:
            self.endpoint.release()
        if self._held and not abort:  # tickets still held: no answer came (`_tls_received`)
            self._write_client(b"")
        for transport in (self.transport, self.backend.transport if self.backend else None):
            if transport is not None:
                if abort:
                    transport.abort()
                else:
                    transport.close()
        self.frontend.connection_closed(self)

    def record(self) -> ConnectionRecord:
        return ConnectionRecord(
            frontend=self.frontend.name,
            bind=self.listener.name,
            client_address=self.client_address,
            server_name=self.server_name,
            certificate=self.endpoint.server.certificate.name if self.endpoint else None,
            tls=self.session,
            tls_error=self.tls_error,
            backend=self.pool.name
            if self.pool
            else (self.http.last_backend if self.http else None),
            # the server tried names the line even when its connect failed (HAProxy's `b/s SC--`)
            server=self.server.name
            if self.server
            else (
                self._slot_server.name
                if self._slot_server
                else (self.http.last_server if self.http else None)
            ),
            bytes_from_client=self.bytes_from_client,
            bytes_to_client=self.bytes_to_client,
            termination=self.termination,
            duration_s=self.loop.time() - self._started,
            connect_s=self._connect_s,
            queue_s=self._queue_s,
            tls_bind=self.listener.tls is not None,
        )

    # -- timeouts ----------------------------------------------------------------------------

    def _deadlines(self) -> tuple[float | None, float | None]:
        """(client side, server side) deadlines in the current phase; None: no limit."""
        timeouts = self.frontend.timeouts
        phase = self.phase
        if phase is ConnectionPhase.CONNECTING:
            return None, self._connect_due
        if phase is ConnectionPhase.HTTP:  # the stream's own timers
            return None, None
        if phase in _EMBRYONIC:
            # From the accept, not the last byte (HAProxy's embryonic session): a client
            # trickling its hello a byte at a time must not hold the connection forever.
            client = timeouts.client_s
            return (self._started + client if client else None), None
        client = timeouts.tunnel_s or timeouts.client_s
        server = timeouts.tunnel_s or timeouts.server_s
        return (
            self._client_activity + client if client else None,
            self._server_activity + server if server else None,
        )

    def _next_deadline(self) -> float | None:
        client, server = self._deadlines()
        if client is None:
            return server
        return client if server is None or client <= server else server

    def _wake_by(self, due: float) -> None:
        """Make sure `deadline_reached` runs by `due` (up to one wheel tick late)."""
        wheel = self.frontend.deadlines
        key = self._deadline_key
        if key is not None:
            if wheel.when(key) <= due + TICK_S:  # the armed wake-up is no later
                return
            wheel.remove(self, key)
        self._deadline_key = wheel.add(self, due)

    def _disarm(self) -> None:
        key = self._deadline_key
        if key is not None:
            self._deadline_key = None
            self.frontend.deadlines.remove(self, key)

    def deadline_reached(self) -> None:
        """The wheel's wake-up: act on what is due, or arm again for what is next."""
        self._deadline_key = None
        if self.phase is _CLOSED:
            return
        now = self.loop.time()
        client_due, server_due = self._deadlines()
        if client_due is not None and now >= client_due:
            if self.phase in _EMBRYONIC:
                self.abort(Termination.CLIENT_TIMEOUT_HANDSHAKE)
            else:
                self.abort(Termination.CLIENT_TIMEOUT)
            return
        if server_due is not None and now >= server_due:
            if self.phase is ConnectionPhase.CONNECTING:
                self._connect_timed_out()  # `_connect` retries or gives up, and re-arms
            else:
                self.abort(Termination.SERVER_TIMEOUT)
            return
        due = self._next_deadline()
        if due is not None:
            self._wake_by(due)
