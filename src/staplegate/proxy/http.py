"""`mode http`: proxy HTTP/1.1 requests from one TLS client to backend servers.

Theory of operation. After the TLS handshake, `tcp.ClientConnection` hands each decrypted
chunk to an `HttpStream` instead of a TCP backend. The stream parses requests
(`httpmsg.RequestReader`) into a queue of events and serves them one at a time (pipelined
requests wait their turn; client reading pauses while a complete request is in flight):

1. rules: the frontend's `http-request` rules, `use_backend` (Host and SNI), the backend's
   rules, then `option forwardfor`; a `return|deny|redirect` answers here.
2. server: `BackendPool.take` (balancing, backup, `maxconn`, queue with `timeout queue`),
   then an idle keep-alive connection to that server or a new one (`timeout connect`,
   `retries`, `option redispatch` on the last retry; a connection refused by a checked
   server counts towards marking it down in this worker).
3. exchange: the request head and body go to the server as they arrive, the response head
   and body come back (backpressure both ways via transport pause/resume). At the end the
   server connection returns to the idle cache only if both sides allow keep-alive and
   both messages ended on a boundary (whole request sent, whole response read, no tunnel
   asked for), the pool slot is released, an httplog line is written, and the next
   request (or `timeout http-keep-alive`) follows. A 101 answer to a request that asked
   for it turns the connection into a tunnel; any other answer to such a request lets
   the client connection go on with HTTP.

Errors answer as HAProxy does and close: 400 malformed, 431 head too large, 413 body too
large, 408 `timeout http-request` (or `timeout client` mid-upload), 503 no server or queue
timeout, 502 bad or truncated response or connection failure, 504 `timeout server` before
the response head. `timeout client` and `timeout server` are inactivity timeouts of each side
while it is expected to send or acknowledge data (`_deadline`; docs/reference/http-mode.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, cast

from staplegate.clock import Clock, SystemClock
from staplegate.proxy.backends import BackendPool, BackendServer, QueueTimeout, SendProxy
from staplegate.proxy.httplog import Counters, HttpLogRecord
from staplegate.proxy.httpmsg import (
    END,
    HOP_BY_HOP,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    BodyKind,
    End,
    HttpError,
    LocalResponse,
    RequestEvent,
    RequestHead,
    RequestReader,
    ResponseEvent,
    ResponseHead,
    ResponseReader,
    body_chunk,
    body_end,
    error_response,
    has_line_break,
)
from staplegate.proxy.httprules import CompiledRule, RequestFacts, apply_rules
from staplegate.proxy.upstream import open_server

if TYPE_CHECKING:
    from staplegate.proxy.tcp import ClientConnection

log = logging.getLogger("staplegate.http")

IDLE_SERVER_TIMEOUT_S: Final = 5.0  # HAProxy's pool-purge-delay default


@dataclass(frozen=True)
class HttpBackendSettings:
    """What a backend adds in mode http."""

    name: str
    rules: tuple[CompiledRule, ...] = ()
    forwardfor_header: bytes | None = None
    connect_timeout_s: float | None = None
    server_timeout_s: float | None = None
    retries: int = 3
    tunnel_timeout_s: float | None = None  # HAProxy's `timeout tunnel`: a backend keyword


@dataclass(frozen=True)
class HttpSettings:
    """A mode-http frontend's settings (timeouts in seconds, None = not set)."""

    rules: tuple[CompiledRule, ...] = ()
    forwardfor_header: bytes | None = None
    httplog: bool = False
    request_timeout_s: float | None = None
    keep_alive_timeout_s: float | None = None
    client_timeout_s: float | None = None
    max_head_bytes: int = MAX_HEAD_BYTES
    max_body_bytes: int | None = None
    max_headers: int = MAX_HEADERS  # `tune.http.maxhdr`
    backends: Mapping[str, HttpBackendSettings] = field(default_factory=dict)


_STATUS_CLASSES: Final = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")
# enum members as globals on hot paths (see httpmsg: Python 3.11's EnumType.__getattr__)
_NO_PROXY: Final = SendProxy.NONE
_CHUNKED: Final = BodyKind.CHUNKED
_UNTIL_CLOSE: Final = BodyKind.UNTIL_CLOSE
# a route: the pool (None: no backend), its settings, the X-Forwarded-For line to add (b"": none;
# None: the configured name is one the head looks up, so it goes through the header list)
_Route = tuple["BackendPool | None", "HttpBackendSettings | None", bytes | None]
_LOOKED_UP: Final = HOP_BY_HOP | {b"host"}  # what RequestHead.headers_changed recomputes


def _count(stats: HttpStats, status: int) -> None:
    stats.responses_by_class[_STATUS_CLASSES[status // 100] if 0 < status < 600 else "other"] += 1


class HttpStats:
    def __init__(self) -> None:
        self.requests = 0
        self.responses_by_class: collections.Counter[str] = collections.Counter()
        self.server_connects = 0
        self.server_reuses = 0


class HttpFrontend:
    """A frontend's mode-http runtime: settings, idle server connections, counters."""

    def __init__(
        self,
        settings: HttpSettings,
        *,
        clock: Clock | None = None,
        log_line: Callable[[str], None] | None = None,
        idle_server_timeout_s: float = IDLE_SERVER_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.log_line = log_line or (lambda line: log.info("%s", line))
        self.idle_server_timeout_s = idle_server_timeout_s
        self.stats = HttpStats()
        self.default_backends: dict[str, HttpBackendSettings] = {}
        # oldest first: put_idle appends, take_idle pops the newest (warm) one
        self._idle: dict[tuple[str, str, str | None], list[ServerConnection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    def backend(self, name: str) -> HttpBackendSettings:
        """The backend's settings; a backend with none gets the defaults (made once)."""
        settings = self.settings.backends.get(name) or self.default_backends.get(name)
        if settings is None:
            settings = self.default_backends[name] = HttpBackendSettings(name)
        return settings

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def take_idle(self, key: tuple[str, str, str | None]) -> ServerConnection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            conn.idle_since = None
            if conn.usable:
                return conn
        return None

    def put_idle(self, conn: ServerConnection, now: float) -> None:
        """Keep `conn` for reuse; it closes after `idle_server_timeout_s` unused.

        One sweep timer serves every idle connection (a timer per request costs more than
        the rest of the bookkeeping).
        """
        conn.owner = None
        conn.attached = False
        conn.idle_since = now
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = []
        idle.append(conn)
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_at(now + self.idle_server_timeout_s, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        loop = asyncio.get_running_loop()
        timeout = self.idle_server_timeout_s
        expired_before = loop.time() - timeout
        next_due: float | None = None
        for conns in list(self._idle.values()):
            while conns and cast(float, conns[0].idle_since) <= expired_before:
                conns[0].close()  # close() takes it out of the list
            if conns:
                oldest = cast(float, conns[0].idle_since)
                next_due = oldest if next_due is None else min(next_due, oldest)
        if next_due is not None:
            self._sweeper = loop.call_at(next_due + timeout, self._sweep)

    def discard(self, conn: ServerConnection) -> None:
        if conn.idle_since is None:
            return
        conn.idle_since = None
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close_idle(self) -> None:
        for conns in list(self._idle.values()):
            for conn in list(conns):
                conn.close()
        self._idle.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None


class ServerConnection(asyncio.Protocol):
    """One connection to a backend server, owned by at most one stream at a time."""

    __slots__ = (
        "attached",
        "early",
        "early_eof",
        "frontend",
        "idle_since",
        "key",
        "owner",
        "reader",
        "transport",
        "write_paused",
    )

    def __init__(
        self,
        frontend: HttpFrontend,
        key: tuple[str, str, str | None],
        owner: HttpStream | None = None,
    ) -> None:
        self.frontend = frontend
        self.key = key
        self.owner = owner
        self.attached = False  # the owner's exchange has taken it (until then, buffer)
        self.early: list[bytes] = []
        self.early_eof = False
        self.transport: asyncio.Transport | None = None
        self.idle_since: float | None = None  # loop time it went idle; None when in use
        self.reader: ResponseReader | None = None  # kept across keep-alive responses
        self.write_paused = False

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None:  # an idle server must not talk: drop the connection
            self.close()
        elif self.attached:
            owner.server_data(self, data)
        else:
            self.early.append(data)  # a fast server answered before the connect returned

    def eof_received(self) -> bool:
        if self.owner is not None and not self.attached:
            self.early_eof = True
            return True
        if self.owner is not None:
            self.owner.server_eof(self)
        else:
            self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.frontend.discard(self)
        if self.owner is not None and not self.attached:
            self.early_eof = True
        elif self.owner is not None:
            self.owner.server_eof(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.owner is not None:
            self.owner.pause_client()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.owner is not None:
            self.owner.server_writable()

    def write(self, data: bytes) -> None:
        if data and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        self.frontend.discard(self)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.frontend.discard(self)
        if self.transport is not None:
            self.transport.abort()


class _Exchange:
    """One request and its response.

    What `__init__` does not set starts as the class default: a request costs six stores,
    not two dozen (no `__slots__`, so the defaults can live on the class).
    """

    backend: HttpBackendSettings | None = None
    pool: BackendPool | None = None
    server: BackendServer | None = None
    conn: ServerConnection | None = None
    reader: ResponseReader | None = None
    response: ResponseHead | None = None
    chunked = False  # the response body is chunked (re-chunked to the client)
    request_done = False
    slot_held = False
    queue_s: float | None = None
    connect_s: float | None = None
    sent_at: float | None = None
    response_at: float | None = None
    bytes_out = 0
    status = 0
    retries = 0
    task: asyncio.Task[None] | None = None

    def __init__(self, head: RequestHead, started: float, received_at: object) -> None:
        self.head = head
        self.started = started
        self.received_at = received_at
        self.head_at = started
        self.server_activity = started
        self.close_client = not head.keep_alive


_new_exchange = object.__new__


class HttpStream:
    """The HTTP side of one client connection (see the module docstring)."""

    def __init__(self, client_side: ClientConnection, http: HttpFrontend) -> None:
        self.client_side = client_side
        self.http = http
        self.settings = http.settings
        self.loop = asyncio.get_running_loop()
        self.reader = RequestReader(
            max_head_bytes=self.settings.max_head_bytes,
            max_body_bytes=self.settings.max_body_bytes,
            max_headers=self.settings.max_headers,
        )
        self.events: collections.deque[RequestEvent] = collections.deque()
        self.exchange: _Exchange | None = None
        self.served = 0
        self.closed = False
        self.tunnel: ServerConnection | None = None
        self.last_backend: str | None = None
        self.last_server: str | None = None
        self._private: ServerConnection | None = None  # send-proxy connections stay ours
        self._idle_since = self.loop.time()
        # `timeout client` during an exchange: the last time the client sent or took bytes
        self._client_activity = self._idle_since
        self._tunnel_limit: float | None = None  # after a 101: the tunnel's inactivity limit
        self._first_byte: float | None = None
        self._client_eof = False
        self._client_paused = False
        self._routes: dict[str | None, _Route] = {}  # by Host, for this connection
        self._client_ip = client_side.client_address[0]
        self._client_ip_bytes = self._client_ip.encode()
        self._send_plain = client_side.send_plain
        self._httplog = self.settings.httplog
        settings = self.settings
        self._keep_alive_s = (
            settings.keep_alive_timeout_s or settings.request_timeout_s or settings.client_timeout_s
        )
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._arm()

    # -- client side ---------------------------------------------------------------------

    def client_data(self, chunks: list[bytes]) -> None:
        if self.closed:
            return
        if self.tunnel is not None:
            for chunk in chunks:
                self.tunnel.write(chunk)
            self._client_activity = self.loop.time()
            return
        now = self._client_activity = self.loop.time()
        reader = self.reader
        events = self.events
        exchange = self.exchange
        try:
            for chunk in chunks:
                if self._first_byte is None and exchange is None and not events:
                    self._first_byte = now
                new = reader.feed(chunk)
                if new:
                    events.extend(new)
                if reader.failed is not None:
                    break
        except HttpError as error:
            if (exchange is None and not events) or (
                exchange is not None and not exchange.request_done and END not in events
            ):
                self._bad_request(error)  # nothing complete comes before it
                return
            reader.failed = error  # answered once the requests before it are (HAProxy)
        if reader.failed is not None:
            self.pause_client()
        if exchange is None:
            if events:
                head: RequestHead = events.popleft()  # type: ignore[assignment]
                self._start(head, now)  # heads come first
                exchange = self.exchange
                if exchange is not None and not exchange.request_done:
                    self._arm()  # its body is to come: `timeout client`
            elif reader.failed is not None:
                self._bad_request(reader.failed)
            elif reader.in_head:
                self._arm()  # `timeout http-request` from the first byte
        elif not exchange.request_done:
            self._pump(exchange)
            self._arm()  # the upload goes on: `timeout client` (and, once sent, server)
        elif events:
            self.pause_client()  # a pipelined request waits its turn, and no more come in

    def client_eof(self) -> None:
        """The client will send nothing more (FIN or close_notify)."""
        self._client_eof = True
        if self.closed:
            return
        exchange = self.exchange
        if exchange is None:
            if self.reader.in_head:
                self._bad_request(None, status=400)
            else:
                self._end(aborted=False)
        elif not exchange.request_done:
            self._abort_exchange("CD--", status=-1)
        else:
            exchange.close_client = True

    def client_writable(self) -> None:
        exchange = self.exchange
        conn = exchange.conn if exchange else self.tunnel
        if conn is not None and conn.transport is not None:
            conn.transport.resume_reading()
        now = self._client_activity = self.loop.time()
        if exchange is not None:
            exchange.server_activity = now  # the server is read again: its clock restarts

    def client_blocked(self) -> None:
        exchange = self.exchange
        conn = exchange.conn if exchange else self.tunnel
        if conn is not None and conn.transport is not None:
            conn.transport.pause_reading()
        self._client_activity = self.loop.time()  # the client owes an acknowledgement
        if exchange is not None:
            self._arm()

    def server_writable(self) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.server_activity = self._client_activity = self.loop.time()
        if self.tunnel is not None or (exchange is not None and not exchange.request_done):
            self.resume_client()

    def pause_client(self) -> None:
        if not self._client_paused:
            self._client_paused = True
            self.client_side.pause_client_reading()

    def resume_client(self) -> None:
        if self._client_paused:
            self._client_paused = False
            self.client_side.resume_client_reading()

    # -- request processing ----------------------------------------------------------------

    def _advance(self) -> None:
        """Start the next queued request (if none is in flight), then mind the timer."""
        while not self.closed:
            exchange = self.exchange
            if exchange is None:
                if not self.events:
                    break
                event = self.events.popleft()
                if event.__class__ is not RequestHead:  # cannot happen: heads come first
                    continue
                self._start(event, self.loop.time())
                continue
            if not exchange.request_done:
                self._pump(exchange)
            break
        self._arm()

    def _facts(self, head: RequestHead) -> RequestFacts:
        side = self.client_side
        session = side.session
        client_certificate = session.client_certificate if session is not None else None
        return RequestFacts(
            side.client_address, side.server_name, True, head.host, client_certificate
        )

    def _route(self, host: str | None) -> _Route:
        """`use_backend`/`default_backend` for this Host, with what the backend adds; the
        rest of the facts are fixed for the connection, so each Host is routed once per
        connection."""
        try:
            return self._routes[host]
        except KeyError:
            pass
        pool = self.client_side.route(self.client_side.connection_info(host))
        if pool is None:
            route: _Route = (None, None, None)
        else:
            backend = self.http.backend(pool.name)
            name = backend.forwardfor_header or self.settings.forwardfor_header
            if name is None:
                extra: bytes | None = b""
            elif name.lower() in _LOOKED_UP or has_line_break(self._client_ip_bytes):
                # not expected (a PROXY-protocol address is checked where it is parsed):
                # the header list, whose lines `RequestHead.encode` checks one by one
                extra = None
            else:
                extra = name + b": " + self._client_ip_bytes + b"\r\n"
            route = (pool, backend, extra)
        if len(self._routes) < 8:
            self._routes[host] = route
        return route

    def _start(self, head: RequestHead, now: float) -> None:
        """Rules, routing, a server slot; with an idle connection to it, send at once."""
        started = self._first_byte
        if started is None:
            started = now
        else:
            self._first_byte = None
        settings = self.settings
        exchange = _new_exchange(_Exchange)  # `_Exchange.__init__`, inline
        exchange.head = head
        exchange.started = started
        exchange.received_at = self.http.clock.now() if self._httplog else None
        exchange.head_at = now
        exchange.server_activity = started
        exchange.close_client = not head.keep_alive
        self.exchange = exchange
        self.http.stats.requests += 1
        if settings.rules:
            answer, _ = apply_rules(settings.rules, head, self._facts(head))
            if answer is not None:
                self._respond_locally(exchange, answer, "LR--" if answer.status < 400 else "PR--")
                return
        route = self._routes.get(head.host)
        if route is None:
            route = self._route(head.host)
        pool, backend, extra = route
        if pool is None or backend is None:
            self._respond_locally(exchange, error_response(503), "SC--")
            return
        exchange.pool = pool
        exchange.backend = backend
        if backend.rules:
            answer, _ = apply_rules(backend.rules, head, self._facts(head))
            if answer is not None:
                self._respond_locally(exchange, answer, "LR--" if answer.status < 400 else "PR--")
                return
        if extra:
            head.extra = extra
        elif extra is None:
            forwardfor = backend.forwardfor_header or settings.forwardfor_header
            assert forwardfor is not None
            head.headers.append((forwardfor, self._client_ip_bytes))
            head.headers_changed()
        # The common case needs no task: a free slot at once and an idle connection to it.
        server = pool.take_now(self._client_ip)
        if server is None:
            exchange.task = self.loop.create_task(self._connect(exchange, None))
            return
        exchange.slot_held = True
        exchange.server = server
        exchange.queue_s = 0.0
        conn: ServerConnection | None = None
        tls = server.tls
        key = (
            backend.name,
            server.name,
            self.client_side.server_name if tls and tls.sni_from_client else None,
        )
        if self._private is not None or server.send_proxy is not _NO_PROXY:
            conn = self._reuse(server)
        else:
            idle = self.http._idle.get(key)
            while idle:
                conn = idle.pop()
                conn.idle_since = None
                transport = conn.transport
                if transport is not None and not transport.is_closing():
                    break
                conn = None
        if conn is None:
            exchange.task = self.loop.create_task(self._connect(exchange, server))
            return
        self.http.stats.server_reuses += 1
        exchange.connect_s = 0.0
        # `_attach` for an idle connection (it has nothing early to hand over)
        conn.owner = self
        conn.attached = True
        exchange.conn = conn
        head_request = head.method == "HEAD"
        reader = conn.reader
        if reader is None or not reader.renew(head_request):
            reader = conn.reader = ResponseReader(
                head_request=head_request, max_headers=self.settings.max_headers
            )
        exchange.reader = reader
        exchange.sent_at = exchange.server_activity = now
        self.last_backend = pool.name
        self.last_server = server.name
        transport = conn.transport
        assert transport is not None
        if self.client_side.client_write_paused:
            transport.pause_reading()
        events = self.events
        if events and events[0] is END:  # no body: the head is the request
            events.popleft()
            exchange.request_done = True
            plain = head.plain
            transport.write(plain + head.extra + b"\r\n" if plain is not None else head.encode())
            if events or self.reader.upgraded is not None or conn.write_paused:
                self.pause_client()
        else:
            self._pump(exchange, head.encode())
        limit = backend.server_timeout_s
        if limit and (self._timer is None or self._timer_due > now + limit):
            self._arm()

    async def _connect(self, exchange: _Exchange, server: BackendServer | None) -> None:
        """Wait for a server slot if `server` is None, then reuse or open a connection."""
        pool = exchange.pool
        backend = exchange.backend
        assert pool is not None
        assert backend is not None
        client_ip = self.client_side.client_address[0]
        if server is None:
            queued_at = self.loop.time()
            try:
                server = await pool.take(client_ip)
            except QueueTimeout:
                exchange.queue_s = self.loop.time() - queued_at
                self._fail(exchange, 503, "sQ--")
                return
            exchange.queue_s = self.loop.time() - queued_at
            if server is None:
                self._fail(exchange, 503, "SC--")
                return
            exchange.slot_held = True
            exchange.server = server
        failed: list[str] = []
        timeout_code = False
        started = self.loop.time()
        for attempt in range(backend.retries + 1):
            if attempt:
                exchange.retries = attempt
                if attempt == backend.retries and pool.redispatch:
                    other = pool.pick(client_ip, exclude=failed) or server
                    if other is not server:
                        pool.release(server)
                        pool.acquire(other)
                        server = other
                        exchange.server = server
            conn = self._reuse(server)
            if conn is not None:
                self.http.stats.server_reuses += 1
                exchange.connect_s = 0.0
                self._attach(exchange, conn)
                self._arm()
                return
            try:
                conn = await self._open(server, backend, exchange)
            except TimeoutError:
                timeout_code = True
            except (OSError, ValueError) as error:
                log.debug("backend %s/%s: connect failed: %s", pool.name, server.name, error)
                timeout_code = False
            else:
                pool.observe(server, ok=True)
                exchange.connect_s = self.loop.time() - started
                self.http.stats.server_connects += 1
                if self.closed or self.exchange is not exchange:
                    conn.owner = None
                    conn.close()
                    return
                self._attach(exchange, conn)
                self._arm()
                return
            pool.connect_failed(server)
            failed.append(server.name)
        exchange.connect_s = None
        self._fail(exchange, 503, "sC--" if timeout_code else "SC--")  # HAProxy: 503 here

    def _key(
        self, server: BackendServer, backend: HttpBackendSettings
    ) -> tuple[str, str, str | None]:
        sni = self.client_side.server_name if server.tls and server.tls.sni_from_client else None
        return (backend.name, server.name, sni)

    def _reuse(self, server: BackendServer) -> ServerConnection | None:
        exchange = self.exchange
        if exchange is None or exchange.backend is None:
            return None
        key = self._key(server, exchange.backend)
        private = self._private
        if private is not None and private.key == key and private.usable:
            self._private = None
            return private
        if server.send_proxy is not SendProxy.NONE:
            return None
        return self.http.take_idle(key)

    async def _open(
        self, server: BackendServer, backend: HttpBackendSettings, exchange: _Exchange
    ) -> ServerConnection:
        side = self.client_side
        key = self._key(server, backend)
        _, conn = await asyncio.wait_for(
            open_server(
                server,
                lambda: ServerConnection(self.http, key, owner=self),
                client_address=side.client_address,
                frontend_address=side.frontend_address,
                client_sni=side.server_name,
            ),
            backend.connect_timeout_s,
        )
        return conn

    def _attach(self, exchange: _Exchange, conn: ServerConnection) -> None:
        conn.owner = self
        conn.attached = True
        exchange.conn = conn
        head_request = exchange.head.method == "HEAD"
        reader = conn.reader
        if reader is not None and reader.reusable:
            reader.reset(head_request=head_request)
        else:
            reader = conn.reader = ResponseReader(
                head_request=head_request, max_headers=self.settings.max_headers
            )
        exchange.reader = reader
        exchange.sent_at = self.loop.time()
        exchange.server_activity = exchange.sent_at
        self.last_backend = exchange.pool.name if exchange.pool else None
        self.last_server = exchange.server.name if exchange.server else None
        if self.client_side.client_write_paused and conn.transport is not None:
            conn.transport.pause_reading()
        self._pump(exchange, exchange.head.encode())
        if conn.early or conn.early_eof:
            early, conn.early = conn.early, []
            for data in early:
                self.server_data(conn, data)
            if conn.early_eof:
                conn.early_eof = False
                self.server_eof(conn)

    def _pump(self, exchange: _Exchange, head: bytes = b"") -> None:
        """Send the current request's body events to its server, if it has one yet.

        What is ready goes out in one write (head and a small body: one segment).
        """
        conn = exchange.conn
        if conn is None:
            return
        kind = exchange.head.body
        events = self.events
        out = [head] if head else []
        while events and not exchange.request_done:
            event = events[0]
            if isinstance(event, RequestHead):
                break
            events.popleft()
            if isinstance(event, End):
                if kind is BodyKind.CHUNKED:
                    out.append(body_end(kind))
                exchange.request_done = True
                # after an upgrade request, the rest is for the tunnel once the server says 101
            else:
                out.append(body_chunk(kind, event))
        if out:
            conn.write(out[0] if len(out) == 1 else b"".join(out))
            # HAProxy: what the server accepts is activity on its side too
            exchange.server_activity = self.loop.time()
        waiting = events or self.reader.upgraded is not None
        if (exchange.request_done and waiting) or conn.write_paused:
            self.pause_client()  # a pipelined request waits its turn / the server is full
            if conn.write_paused:
                self._arm()  # the server owes an acknowledgement: `timeout server`

    # -- server side ---------------------------------------------------------------------

    def server_data(
        self, conn: ServerConnection, data: bytes, eof_events: list[ResponseEvent] | None = None
    ) -> None:
        """Pass a response on; what one read produced goes to the client in one TLS write.

        `server_eof` passes the events the end of the connection made instead of data. The
        usual keep-alive exchange (head, body and end in one read) ends here, and its
        server connection goes back to the idle cache, without further calls.
        """
        exchange = self.exchange
        if eof_events is None:
            if self.tunnel is conn:
                self.client_side.send_plain(data)
                self._client_activity = self.loop.time()  # tunnel traffic either way
                return
            if exchange is None or exchange.conn is not conn or exchange.reader is None:
                conn.close()
                return
            try:
                events = exchange.reader.feed(data)
            except HttpError:
                self._server_failed(exchange, "SH--")
                return
        elif exchange is None:
            return
        else:
            events = eof_events
        out: list[bytes] = []
        chunked = exchange.chunked
        for event in events:
            if event.__class__ is bytes:
                if chunked:
                    if event:
                        out.append(b"%x\r\n%b\r\n" % (len(event), event))
                else:
                    out.append(event)
            elif event is END:
                if chunked:
                    out.append(b"0\r\n\r\n")
                if out:
                    data = out[0] if len(out) == 1 else b"".join(out)
                    exchange.bytes_out += len(data)
                    self._send_plain(data)
                    if self.closed or self.exchange is not exchange:
                        return
                # The response is through: keep its server connection only if both
                # messages ended on a boundary: the whole request sent (an early answer to
                # an unfinished upload closes it) and no tunnel asked for that did not
                # happen (after an upgrade or CONNECT without 101, who knows what the
                # server expects next).
                ended = exchange.reader
                final = exchange.response
                now = self.loop.time()
                conn.owner = None
                transport = conn.transport
                server = exchange.server
                if (
                    transport is not None
                    and not transport.is_closing()
                    and final is not None
                    and final.keep_alive
                    and exchange.request_done
                    and not exchange.head.upgrade
                    and exchange.head.method != "CONNECT"
                    and ended is not None
                    and ended.complete
                    and not ended.trailing
                    and final.body is not _UNTIL_CLOSE
                    and server is not None
                ):
                    if server.send_proxy is _NO_PROXY:  # `HttpFrontend.put_idle`, inline
                        http = self.http
                        conn.attached = False
                        conn.idle_since = now
                        idle = http._idle.get(conn.key)
                        if idle is None:
                            idle = http._idle[conn.key] = []
                        idle.append(conn)
                        if http._sweeper is None:
                            http._sweeper = self.loop.call_at(
                                now + http.idle_server_timeout_s, http._sweep
                            )
                    else:
                        if self._private is not None:
                            self._private.close()
                        self._private = conn
                else:
                    conn.close()
                if not exchange.request_done:
                    exchange.close_client = True
                self._finish_exchange(exchange, "----", now)
                return
            else:
                response: ResponseHead = event  # type: ignore[assignment]
                if response.informational:
                    out.append(response.wire + b"\r\n")
                    continue
                if response.status == 101 and not (exchange.head.upgrade and exchange.request_done):
                    self._server_failed(exchange, "SH--")  # 502: no tunnel was asked for
                    return
                exchange.response = response
                if self._httplog:
                    exchange.response_at = self.loop.time()
                status = exchange.status = response.status
                if response.body is _UNTIL_CLOSE or self._client_eof:
                    exchange.close_client = True
                if status == 101:
                    exchange.close_client = False
                    out.append(response.encode(close=False, client_version="1.1"))
                    if self._flush(exchange, out):
                        reader = exchange.reader
                        assert reader is not None
                        self._start_tunnel(exchange, reader.upgraded or b"")
                    return
                chunked = exchange.chunked = response.body is _CHUNKED
                if exchange.close_client:
                    out.append(response.wire + b"connection: close\r\n\r\n")
                elif exchange.head.version == "1.0":
                    out.append(response.wire + b"connection: keep-alive\r\n\r\n")
                else:
                    out.append(response.wire + b"\r\n")
        if self._flush(exchange, out):
            exchange.server_activity = self.loop.time()
            limit = exchange.backend.server_timeout_s if exchange.backend else None
            if limit and self._timer is None:
                self._arm()

    def server_eof(self, conn: ServerConnection) -> None:
        if self.tunnel is conn:
            self._end(aborted=False)
            return
        exchange = self.exchange
        if exchange is None or exchange.conn is not conn or exchange.reader is None:
            return
        try:
            events = exchange.reader.eof()
        except HttpError:
            self._server_failed(exchange, "SH--" if exchange.response is None else "SD--")
            return
        exchange.close_client = True  # the body ended with the connection
        self.server_data(conn, b"", events)

    def _flush(self, exchange: _Exchange, out: list[bytes]) -> bool:
        """Send `out` to the client; False when the exchange ended meanwhile."""
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            exchange.bytes_out += len(data)
            self._send_plain(data)
        return not self.closed and self.exchange is exchange

    def _send(self, exchange: _Exchange, data: bytes) -> None:
        if data:
            exchange.bytes_out += len(data)
            self.client_side.send_plain(data)

    def _start_tunnel(self, exchange: _Exchange, early: bytes) -> None:
        conn = exchange.conn
        assert conn is not None
        self.tunnel = conn
        self._log(exchange, "----")
        self._release(exchange)
        self.exchange = None
        if early:
            self.client_side.send_plain(early)
        pending = self.reader.upgraded
        if pending:
            conn.write(pending)
        self.resume_client()
        # HAProxy: a backend's `timeout tunnel` once the connection is a tunnel, else the
        # client and server timeouts, each refreshed by traffic in either direction
        backend = exchange.backend
        limits = [
            limit
            for limit in (
                self.settings.client_timeout_s,
                backend.server_timeout_s if backend else None,
            )
            if limit
        ]
        tunnel_limit = backend.tunnel_timeout_s if backend else None
        self._tunnel_limit = tunnel_limit or (min(limits) if limits else None)
        self._client_activity = self.loop.time()
        self._cancel_timer()
        self._arm()

    def _finish_exchange(
        self, exchange: _Exchange, termination: str, now: float | None = None
    ) -> None:
        if exchange.slot_held:
            exchange.slot_held = False
            if exchange.pool is not None and exchange.server is not None:
                exchange.pool.release(exchange.server)
        if self._httplog:
            self._log(exchange, termination)
        else:
            status = exchange.status
            self.http.stats.responses_by_class[
                _STATUS_CLASSES[status // 100] if 0 < status < 600 else "other"
            ] += 1
        self.exchange = None
        self.served += 1
        if now is None:
            now = self.loop.time()
        self._idle_since = now
        if exchange.close_client or self.client_side.frontend.stopping:
            self._end(aborted=False)
            return
        if self._client_paused:
            self.resume_client()
        if self.reader.upgraded is not None and self.tunnel is None:
            try:  # no 101: what the client sent after the upgrade request is HTTP again
                self.events.extend(self.reader.resume())
            except HttpError as error:
                self._bad_request(error)
                return
        if self.events or self.reader.in_head:
            self._advance()
        elif self.reader.failed is not None:  # the requests before a bad one are served
            self._bad_request(self.reader.failed)
        else:
            limit = self._keep_alive_s
            if limit and (self._timer is None or self._timer_due > now + limit):
                self._arm()

    def _release(self, exchange: _Exchange) -> None:
        if exchange.slot_held and exchange.pool is not None and exchange.server is not None:
            exchange.slot_held = False
            exchange.pool.release(exchange.server)

    # -- local answers and failures ------------------------------------------------------

    def _respond_locally(self, exchange: _Exchange, answer: LocalResponse, code: str) -> None:
        self._drop_request_body(exchange)
        close = answer.close or not exchange.request_done or exchange.close_client
        if close and not answer.close:
            answer = LocalResponse(answer.status, answer.reason, answer.headers, answer.body)
        exchange.close_client = close
        exchange.status = answer.status
        exchange.response_at = self.loop.time()
        self._send(exchange, answer.encode(version="1.1"))
        self._finish_exchange(exchange, code)

    def _drop_request_body(self, exchange: _Exchange) -> None:
        while self.events and not exchange.request_done:
            event = self.events.popleft()
            if isinstance(event, End):
                exchange.request_done = True
            elif isinstance(event, RequestHead):
                self.events.appendleft(event)
                break

    def _fail(self, exchange: _Exchange, status: int, code: str) -> None:
        if self.closed or self.exchange is not exchange:
            return
        self._respond_locally(exchange, error_response(status), code)

    def _server_failed(self, exchange: _Exchange, code: str) -> None:
        """A bad or truncated response, or a server timeout."""
        if exchange.conn is not None:
            exchange.conn.owner = None
            exchange.conn.abort()
        if exchange.response is None:
            status = 504 if code.startswith("sH") else 502
            exchange.close_client = True
            self._respond_locally(exchange, error_response(status), code)
        else:
            self._abort_exchange(code, status=exchange.status)

    def _client_timed_out(self, exchange: _Exchange) -> None:
        """`timeout client` mid-exchange: 408 if nothing was answered yet, as HAProxy's
        `cD--` (the server connection, holding part of a request or response, is closed)."""
        if exchange.response is not None or exchange.bytes_out:
            self._abort_exchange("cD--", status=exchange.status)
            return
        if exchange.task is not None and exchange.task is not asyncio.current_task():
            exchange.task.cancel()
        if exchange.conn is not None:
            exchange.conn.owner = None
            exchange.conn.abort()
        exchange.close_client = True
        self._respond_locally(exchange, error_response(408), "cD--")

    def _bad_request(self, error: HttpError | None, *, status: int | None = None) -> None:
        code = status if status is not None else (error.status if error else 400)
        head = RequestHead("", b"", "1.1", [], keep_alive=False)
        exchange = self.exchange
        if exchange is not None:  # a pipelined request broke while another was served
            self._abort_exchange("PR--", status=exchange.status)
            return
        exchange = _Exchange(head, self._first_byte or self.loop.time(), self.http.clock.now())
        exchange.close_client = True
        exchange.request_done = True
        self.exchange = exchange
        exchange.status = code
        self._send(exchange, error_response(code).encode())
        termination = "cR--" if code == 408 else "PR--"
        self._log(exchange, termination, bad=True)
        self.exchange = None
        self._end(aborted=False)

    def _abort_exchange(self, termination: str, *, status: int) -> None:
        exchange = self.exchange
        if exchange is None:
            self._end(aborted=True)
            return
        if exchange.task is not None and exchange.task is not asyncio.current_task():
            exchange.task.cancel()
        if exchange.conn is not None:
            exchange.conn.owner = None
            exchange.conn.abort()
        self._release(exchange)
        if status >= 0:
            exchange.status = status
        self._log(exchange, termination)
        self.exchange = None
        self._end(aborted=True)

    def _end(self, *, aborted: bool) -> None:
        if self.closed:
            return
        self.client_side.end_http(aborted=aborted)

    def close(self) -> None:
        """The client connection is gone or being closed: let go of everything."""
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            if exchange.task is not None and exchange.task is not asyncio.current_task():
                exchange.task.cancel()
            if exchange.conn is not None:
                exchange.conn.owner = None
                exchange.conn.abort()
            self._release(exchange)
            self._log(exchange, "CD--")
        for conn in (self.tunnel, self._private):
            if conn is not None:
                conn.owner = None
                conn.close()
        self.tunnel = None
        self._private = None

    # -- timers --------------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline(self) -> tuple[float, str] | None:
        settings = self.settings
        exchange = self.exchange
        if self.tunnel is not None:
            limit = self._tunnel_limit
            return (self._client_activity + limit, "tunnel") if limit else None
        if exchange is None:
            if self._first_byte is not None or self.reader.in_head:
                limit = settings.request_timeout_s or settings.client_timeout_s
                start = self._first_byte or self._idle_since
                return (start + limit, "request") if limit else None
            if self.served:
                limit = (
                    settings.keep_alive_timeout_s
                    or settings.request_timeout_s
                    or settings.client_timeout_s
                )
                return (self._idle_since + limit, "keep-alive") if limit else None
            limit = settings.request_timeout_s or settings.client_timeout_s
            return (self._idle_since + limit, "request") if limit else None
        # An exchange: each side is timed only while it is expected to send or acknowledge
        # (HAProxy's inactivity timeouts). The server owes bytes once it has the whole
        # request or has begun its answer, unless the client's full window holds it back,
        # and owes room while request bytes wait for it; the client owes the rest of its
        # request while we read it, and room while the response waits for it.
        found: tuple[float, str] | None = None
        backend = exchange.backend
        server_limit = backend.server_timeout_s if backend else None
        conn = exchange.conn
        client_side = self.client_side
        server_owes = conn is not None and (
            conn.write_paused
            or (
                (exchange.request_done or exchange.response is not None)
                and not client_side.client_write_paused
            )
        )
        if server_owes and server_limit:
            found = (exchange.server_activity + server_limit, "server")
        client_limit = settings.client_timeout_s
        if client_limit and (
            client_side.client_write_paused
            or not (
                exchange.request_done
                or self._client_paused
                or (conn is None and END in self.events)  # all in, waiting for a server
            )
        ):
            due = self._client_activity + client_limit
            if found is None or due < found[0]:
                found = (due, "client")
        return found

    def _arm(self) -> None:
        """Make sure a timer fires by the current deadline.

        Lazy: a timer already due no later than the deadline stays (when it fires,
        `_on_timer` looks again), so a busy keep-alive connection re-arms about once per
        timeout instead of several times per request.
        """
        if self.closed:
            return
        deadline = self._deadline()
        if deadline is None:
            return
        due = deadline[0]
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = self.loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        deadline = self._deadline()
        if deadline is None:
            return
        due, kind = deadline
        if self.loop.time() < due:
            self._arm()
            return
        if kind == "request":
            self._bad_request(None, status=408)
        elif kind in ("keep-alive", "tunnel"):
            self._end(aborted=False)
        elif kind == "client" and self.exchange is not None:
            self._client_timed_out(self.exchange)
        elif self.exchange is not None:
            self._server_failed(self.exchange, "sH--" if self.exchange.response is None else "sD--")

    # -- logging -------------------------------------------------------------------------

    def _log(self, exchange: _Exchange, termination: str, *, bad: bool = False) -> None:
        _count(self.http.stats, exchange.status)
        if not self.settings.httplog:
            return
        side = self.client_side
        now = self.loop.time()
        pool = exchange.pool
        server = exchange.server if exchange.conn is not None or exchange.slot_held else None
        if server is None and exchange.conn is not None:
            server = exchange.server
        record = HttpLogRecord(
            client=side.client_address,
            received_at=exchange.received_at,  # type: ignore[arg-type]
            frontend=side.frontend.name,
            tls=True,
            backend=pool.name if pool else side.frontend.name,
            server=exchange.server.name if exchange.server and exchange.sent_at else None,
            request_s=None if bad else exchange.head_at - exchange.started,
            queue_s=exchange.queue_s,
            connect_s=exchange.connect_s,
            response_s=(
                exchange.response_at - exchange.sent_at
                if exchange.response_at is not None and exchange.sent_at is not None
                else None
            ),
            active_s=now - exchange.started,
            status=exchange.status if exchange.status > 0 else -1,
            bytes_out=exchange.bytes_out,
            termination=termination,
            counters=Counters(
                process=side.frontend.stats.active,
                frontend=side.frontend.stats.active,
                backend=sum(pool.active(s) for s in pool.servers) if pool else 0,
                server=pool.active(server) if pool and server else 0,
                retries=exchange.retries,
                server_queue=0,
                backend_queue=pool.queue_length if pool else 0,
            ),
            request_line=None if bad else exchange.head.request_line(),
        )
        with contextlib.suppress(Exception):
            self.http.log_line(record.render())
