"""`mode http`: proxy HTTP/1.1 requests from one TLS client to backend servers.

Theory of operation. After the TLS handshake, `connection.ClientConnection` hands each
decrypted chunk to an `HttpStream` instead of a TCP backend. The stream parses requests
(`http_request.RequestReader`) into a queue of events and serves them one at a time (pipelined
requests wait their turn; client reading pauses while a complete request is in flight):

1. rules: the frontend's `http-request` rules, `use_backend` (Host and SNI), the backend's
   rules, then `option forwardfor`; a `return|deny|redirect` answers here.
2. server: `BackendPool.take` (balancing, backup, `maxconn`, queue with `timeout queue`),
   then an idle keep-alive connection to that server (`http_pool`) or a new one (`timeout connect`,
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
while it is expected to send or acknowledge data (`http_exchange`, `_deadline`;
docs/reference/http-mode.md). The stream sees its client connection through
`http_exchange.ClientSide`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import Final

from staplegate.config.model import CookiePersistence
from staplegate.proxy import stats_admin
from staplegate.proxy.backends import BackendPool, BackendServer, QueueTimeout
from staplegate.proxy.http_exchange import STATUS_CLASSES, Exchange, ExchangeLifecycle, Route
from staplegate.proxy.http_message import (
    END,
    HOP_BY_HOP,
    BodyKind,
    End,
    HttpError,
    LocalResponse,
    body_chunk,
    body_end,
    error_response,
    has_line_break,
)
from staplegate.proxy.http_pool import HttpBackendSettings, ServerConnection
from staplegate.proxy.http_request import RequestHead
from staplegate.proxy.http_response import ResponseEvent, ResponseHead, ResponseReader
from staplegate.proxy.http_rules import (
    apply_response_rules,
    apply_rules,
    condition_holds,
    render_unique_id,
    source_in,
)
from staplegate.proxy.persistence import insert_cookie, request_cookie
from staplegate.proxy.upstream import open_server

log = logging.getLogger("staplegate.http")

# enum members as globals on hot paths (see http_message: Python 3.11's EnumType.__getattr__)
_CHUNKED: Final = BodyKind.CHUNKED
_UNTIL_CLOSE: Final = BodyKind.UNTIL_CLOSE
_LOOKED_UP: Final = HOP_BY_HOP | {b"host"}  # what RequestHead.headers_changed recomputes
_new_exchange = object.__new__


class HttpStream(ExchangeLifecycle):
    """The HTTP side of one client connection (see the module docstring).

    Its state and the ends of its exchanges other than a forwarded response (local
    answers, failures, timers, the httplog line) are in its base, `ExchangeLifecycle`.
    """

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

    def _route(self, head: RequestHead) -> Route:
        """`use_backend`/`default_backend` for this Host, with what the backend adds; the
        rest of the facts are fixed for the connection, so each Host is routed once per
        connection (unless a rule looks at more of the request, such as its path, method or
        other headers: then every request is routed)."""
        host = head.host
        try:
            return self._routes[host]
        except KeyError:
            pass
        side = self.client_side
        pool = side.route(side.connection_info(host, head.target, head))
        if pool is None:
            route: Route = (None, None, None)
        else:
            backend = self.http.backend(pool.name)
            name = backend.forwardfor_header or self.settings.forwardfor_header
            excepted = (
                backend.forwardfor_except
                if backend.forwardfor_header
                else self.settings.forwardfor_except
            )
            if_none = (
                backend.forwardfor_if_none
                if backend.forwardfor_header
                else self.settings.forwardfor_if_none
            )
            if name is None or (excepted and source_in(excepted, self._client_ip)):
                extra: bytes | None = b""
            elif (
                if_none or name.lower() in _LOOKED_UP or has_line_break(self._client_ip_bytes)
            ):  # `if-none` looks at each request's headers
                # not expected (a PROXY-protocol address is checked where it is parsed):
                # the header list, whose lines `RequestHead.encode` checks one by one
                extra = None
            else:
                extra = name + b": " + self._client_ip_bytes + b"\r\n"
            route = (pool, backend, extra)
        if len(self._routes) < 8 and not self.settings.route_per_request:
            self._routes[host] = route
        return route

    def _content_accepted(self, head: RequestHead) -> bool:
        """`tcp-request content` in mode http: the first rule whose condition holds decides;
        none holding accepts (HAProxy evaluates them for each request)."""
        facts = self._facts(head)
        for rule in self.settings.content_rules:
            if condition_holds(rule.condition, facts):
                return rule.accept
        return True

    def _start(self, head: RequestHead, now: float) -> None:
        """Rules, routing, a server slot; with an idle connection to it, send at once."""
        started = self._first_byte
        if started is None:
            started = now
        else:
            self._first_byte = None
        settings = self.settings
        exchange = _new_exchange(Exchange)  # `Exchange.__init__`, inline
        exchange.head = head
        exchange.started = started
        exchange.received_at = self.http.clock.now() if self._httplog else None
        exchange.head_at = now
        exchange.server_activity = started
        exchange.close_client = not head.keep_alive
        self.exchange = exchange
        self.http.stats.requests += 1
        if settings.content_rules and not self._content_accepted(head):
            self._abort_exchange("PR--", status=-1)  # HAProxy: closed without an answer
            return
        if settings.rules:
            answer, _ = apply_rules(settings.rules, head, self._facts(head))
            if answer is not None:
                self._respond_locally(exchange, answer, "LR--" if answer.status < 400 else "PR--")
                return
        if settings.unique_id_header is not None and settings.unique_id:
            self._add_unique_id(head)
        stats = settings.stats
        if stats is not None and stats.matches(head):
            facts = self._facts(head) if stats.admin is not None or stats.rules else None
            if stats.takes_form(head, facts):  # a `stats admin` POST: read its form first
                exchange.stats = stats
                exchange.form = bytearray()
                self._read_form(exchange)
                return
            answer = stats.answer(head, facts)
            self._respond_locally(exchange, answer, "LR--" if answer.status < 400 else "PR--")
            return
        route = self._routes.get(head.host)
        if route is None:
            route = self._route(head)
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
            lower = forwardfor.lower()
            if_none = (
                backend.forwardfor_if_none
                if backend.forwardfor_header
                else settings.forwardfor_if_none
            )
            if not (if_none and any(k.lower() == lower for k, _ in head.headers)):
                head.headers.append((forwardfor, self._client_ip_bytes))
                head.headers_changed()
        # The common case needs no task: a free slot at once and an idle connection to it.
        server = None
        if backend.cookie is not None:
            server = self._persistent_server(exchange, backend.cookie, pool)
        if server is None:
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
        if self._private is not None or server.private_connections:
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

    async def _connect(self, exchange: Exchange, server: BackendServer | None) -> None:
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
        if server.dynamic and self.exchange is not None:  # one destination per connection
            host, port = self._destination(server, self.exchange.head)
            return (backend.name, f"{server.name}@{host}:{port}", sni)
        return (backend.name, server.name, sni)

    def _destination(self, server: BackendServer, head: RequestHead) -> tuple[str, int]:
        """Where a server line without an address or a port connects for this request:
        `set-dst`/`set-dst-port`, else the address the client connected to."""
        wanted = getattr(head, "destination", None) or self.client_side.frontend_address
        host = wanted[0] if server.host in ("0.0.0.0", "::") else server.host
        return host, server.port or wanted[1]

    def _reuse(self, server: BackendServer) -> ServerConnection | None:
        exchange = self.exchange
        if exchange is None or exchange.backend is None:
            return None
        key = self._key(server, exchange.backend)
        private = self._private
        if private is not None and private.key == key and private.usable:
            self._private = None
            return private
        if server.private_connections:
            return None
        return self.http.take_idle(key)

    async def _open(
        self, server: BackendServer, backend: HttpBackendSettings, exchange: Exchange
    ) -> ServerConnection:
        side = self.client_side
        key = self._key(server, backend)
        if server.dynamic:
            host, port = self._destination(server, exchange.head)
            server = dataclasses.replace(server, host=host, port=port)
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

    def _attach(self, exchange: Exchange, conn: ServerConnection) -> None:
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

    def _pump(self, exchange: Exchange, head: bytes = b"") -> None:
        """Send the current request's body events to its server, if it has one yet.

        What is ready goes out in one write (head and a small body: one segment).
        """
        conn = exchange.conn
        if conn is None:
            if exchange.form is not None:
                self._read_form(exchange)
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

    def _read_form(self, exchange: Exchange) -> None:
        """Take a `stats admin` POST's body as it arrives (bounded; `timeout client` runs
        meanwhile); once whole, send its action to the master and answer 303. A body over
        `MAX_FORM_BYTES` is answered `EXCD` at once, and the connection closed."""
        form = exchange.form
        assert form is not None
        events = self.events
        while events and not exchange.request_done:
            event = events[0]
            if isinstance(event, RequestHead):
                break
            events.popleft()
            if isinstance(event, End):
                exchange.request_done = True
            else:
                form += event
                if len(form) > stats_admin.MAX_FORM_BYTES:
                    exchange.form = None
                    self._stats_answer(exchange, stats_admin.EXCD)
                    return
        if not exchange.request_done:
            return
        exchange.form = None
        if events:
            self.pause_client()  # a pipelined request waits its turn
        stats = exchange.stats
        assert stats is not None
        parsed = stats_admin.parse_form(stats.name, bytes(form))
        if isinstance(parsed, str):
            self._stats_answer(exchange, parsed)
        else:
            exchange.task = self.loop.create_task(self._stats_action(exchange, parsed))

    async def _stats_action(self, exchange: Exchange, request: stats_admin.AdminRequest) -> None:
        stats = exchange.stats
        assert stats is not None
        code = await stats.channel.submit(request)
        if not self.closed and self.exchange is exchange:
            exchange.task = None
            self._stats_answer(exchange, code)

    def _stats_answer(self, exchange: Exchange, code: str) -> None:
        stats = exchange.stats
        assert stats is not None
        self._respond_locally(exchange, stats_admin.redirect(stats.uri, code), "LR--")

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
                    if not server.private_connections:  # `HttpFrontend.put_idle`, inline
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
                if self._response_rules or (
                    exchange.backend is not None and exchange.backend.has_response_rules
                ):
                    denied = self._rewrite_response(exchange, response)
                    if denied is not None:
                        self._deny_response(exchange, denied)
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

    def _add_unique_id(self, head: RequestHead) -> None:
        """`unique-id-header`: this request's `unique-id-format`, sent to the server."""
        settings = self.settings
        assert settings.unique_id_header is not None
        value = render_unique_id(
            settings.unique_id,
            self._facts(head),
            now_s=int(self.http.clock.now().timestamp()),
            request_number=self.http.stats.requests,
            pid=os.getpid(),
        )
        head.headers.append((settings.unique_id_header, value.encode("latin-1", "replace")))
        head.headers_changed()

    def _persistent_server(
        self, exchange: Exchange, persistence: CookiePersistence, pool: BackendPool
    ) -> BackendServer | None:
        """Cookie persistence on the request: the server the client's cookie names (taken
        when usable and free); with `indirect` the cookie does not reach the server."""
        head = exchange.head
        value = request_cookie(head, persistence.name, remove=persistence.indirect)
        if value is None:
            return None
        server = pool.take_by_cookie(value)
        exchange.direct = server is not None
        return server

    def _rewrite_response(self, exchange: Exchange, response: ResponseHead) -> LocalResponse | None:
        """`http-response` then `http-after-response` rules, the backend's before the
        frontend's (HAProxy's order), then the persistence cookie; never on a 101 (the
        tunnel's head). An `http-response deny` that applies: its answer, for the client
        instead of the server's."""
        if response.status == 101:
            return None
        backend = exchange.backend
        settings = self.settings
        rules = (
            *(backend.response_rules if backend is not None else ()),
            *settings.response_rules,
            *(backend.after_response_rules if backend is not None else ()),
            *settings.after_response_rules,
        )
        if rules:
            denied = apply_response_rules(rules, response, self._facts(exchange.head))
            if denied is not None:
                return denied
        if backend is not None and backend.cookie is not None and exchange.server is not None:
            insert_cookie(response, backend.cookie, exchange.server.cookie, direct=exchange.direct)
        return None

    def _deny_response(self, exchange: Exchange, answer: LocalResponse) -> None:
        """`http-response deny`: the server's answer never reaches the client (its connection
        is closed, body unread) and the client gets `answer`; HAProxy logs `PH--`."""
        conn = exchange.conn
        if conn is not None:
            conn.owner = None
            conn.abort()
        exchange.close_client = True
        self._respond_locally(exchange, answer, "PH--")

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

    def _flush(self, exchange: Exchange, out: list[bytes]) -> bool:
        """Send `out` to the client; False when the exchange ended meanwhile."""
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            exchange.bytes_out += len(data)
            self._send_plain(data)
        return not self.closed and self.exchange is exchange

    def _start_tunnel(self, exchange: Exchange, early: bytes) -> None:
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
        self, exchange: Exchange, termination: str, now: float | None = None
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
                STATUS_CLASSES[status // 100] if 0 < status < 600 else "other"
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
