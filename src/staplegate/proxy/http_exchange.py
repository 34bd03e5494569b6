"""`mode http`: one exchange (a request and its response), and how a stream ends one.

`HttpStream` (http_stream.py) moves the bytes; its base here, `ExchangeLifecycle`, holds the
stream's state and everything that ends an exchange other than a forwarded response: local
answers (rules, errors), failures, `timeout http-request|http-keep-alive|client|server|
tunnel` (`_deadline`), closing, and the httplog line. `ClientSide` is what a stream needs
from its client connection (`connection.ClientConnection`): a type only, so the calls on
the hot path stay direct.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import replace
from typing import Final, Protocol

from staplegate.observe.accesslog import HttpLogRecord, LogCounters
from staplegate.proxy.backends import BackendPool, BackendServer
from staplegate.proxy.http_message import END, End, HttpError, LocalResponse, error_response
from staplegate.proxy.http_pool import HttpBackendSettings, HttpFrontend, ServerConnection
from staplegate.proxy.http_request import RequestEvent, RequestHead, RequestReader
from staplegate.proxy.http_response import ResponseHead, ResponseReader
from staplegate.proxy.http_rules import RequestFacts, StatsService, apply_after_response_rules
from staplegate.proxy.records import ConnectionInfo, FrontendStats, HttpStats
from staplegate.tls.endpoint import SessionInfo

STATUS_CLASSES: Final = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")


def count_status(stats: HttpStats, status: int) -> None:
    stats.responses_by_class[STATUS_CLASSES[status // 100] if 0 < status < 600 else "other"] += 1


# a route: the pool (None: no backend), its settings, the X-Forwarded-For line to add (b"": none;
# None: the configured name is one the head looks up, so it goes through the header list)
Route = tuple[BackendPool | None, HttpBackendSettings | None, bytes | None]


class StreamFrontend(Protocol):
    """What a stream reads of its frontend (`frontend.FrontendRuntime`)."""

    @property
    def name(self) -> str: ...

    @property
    def stats(self) -> FrontendStats: ...

    @property
    def stopping(self) -> bool: ...


class ClientSide(Protocol):
    """What an HTTP stream needs from its client connection (`connection.ClientConnection`).

    A type, not a wrapper: the stream calls the connection's own methods.
    """

    @property
    def client_address(self) -> tuple[str, int]: ...

    @property
    def frontend_address(self) -> tuple[str, int]: ...

    @property
    def server_name(self) -> str | None: ...

    @property
    def session(self) -> SessionInfo | None: ...

    @property
    def client_write_paused(self) -> bool: ...

    @property
    def frontend(self) -> StreamFrontend: ...

    def connection_info(
        self,
        host: str | None = None,
        target: bytes | None = None,
        head: RequestHead | None = None,
    ) -> ConnectionInfo: ...

    def route(self, info: ConnectionInfo) -> BackendPool | None: ...

    def send_plain(self, data: bytes | memoryview) -> None:
        """Encrypt `data` and send it to the client."""

    def pause_client_reading(self) -> None: ...

    def resume_client_reading(self) -> None: ...

    def end_http(self, *, aborted: bool) -> None: ...


class Exchange:
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
    direct = False  # the persistence cookie chose the server (no new cookie to insert)
    form: bytearray | None = None  # a `stats admin` POST: its body, as it is read
    stats: StatsService | None = None  # ...and the page it was posted to

    def __init__(self, head: RequestHead, started: float, received_at: object) -> None:
        self.head = head
        self.started = started
        self.received_at = received_at
        self.head_at = started
        self.server_activity = started
        self.close_client = not head.keep_alive


class ExchangeLifecycle:
    """A stream's state, and the ends of its exchanges (see the module docstring).

    The base of `http_stream.HttpStream`: one object, so every call stays a plain method
    call; only `_finish_exchange` (the end of a forwarded response) lives there.
    """

    def __init__(self, client_side: ClientSide, http: HttpFrontend) -> None:
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
        self.exchange: Exchange | None = None
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
        self._routes: dict[str | None, Route] = {}  # by Host, for this connection
        self._client_ip = client_side.client_address[0]
        self._client_ip_bytes = self._client_ip.encode()
        self._send_plain = client_side.send_plain
        self._httplog = self.settings.httplog
        settings = self.settings
        # the frontend has `http-response` rules (a backend's are checked per response)
        self._response_rules = bool(settings.response_rules or settings.after_response_rules)
        self._keep_alive_s = (
            settings.keep_alive_timeout_s or settings.request_timeout_s or settings.client_timeout_s
        )
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._arm()

    def _send(self, exchange: Exchange, data: bytes) -> None:
        if data:
            exchange.bytes_out += len(data)
            self.client_side.send_plain(data)

    def _release(self, exchange: Exchange) -> None:
        if exchange.slot_held and exchange.pool is not None and exchange.server is not None:
            exchange.slot_held = False
            exchange.pool.release(exchange.server)

    # -- local answers and failures ------------------------------------------------------

    def _facts(self, head: RequestHead) -> RequestFacts:
        side = self.client_side
        session = side.session
        client_certificate = session.client_certificate if session is not None else None
        return RequestFacts(  # no session: a plain bind (`ssl_fc` false)
            side.client_address,
            side.server_name,
            session is not None,
            head.host,
            client_certificate,
            head.target,
            head,
            side.frontend_address,
            self.http.usable_servers,
            alpn=session.alpn.decode("latin-1") if session is not None and session.alpn else None,
        )

    def _respond_locally(self, exchange: Exchange, answer: LocalResponse, code: str) -> None:
        self._drop_request_body(exchange)
        backend = exchange.backend
        if answer.builtin:
            answer = self._errorfile(backend, answer)
        after = self.settings.after_response_rules
        if after or (backend is not None and backend.after_response_rules):
            rules = (*(backend.after_response_rules if backend is not None else ()), *after)
            answer = apply_after_response_rules(rules, answer, self._facts(exchange.head))
        close = answer.close or not exchange.request_done or exchange.close_client
        if close and not answer.close:
            answer = LocalResponse(answer.status, answer.reason, answer.headers, answer.body)
        exchange.close_client = close
        exchange.status = answer.status
        exchange.response_at = self.loop.time()
        self._send(exchange, answer.encode(version="1.1"))
        self._finish_exchange(exchange, code)

    def _drop_request_body(self, exchange: Exchange) -> None:
        while self.events and not exchange.request_done:
            event = self.events.popleft()
            if isinstance(event, End):
                exchange.request_done = True
            elif isinstance(event, RequestHead):
                self.events.appendleft(event)
                break

    def _errorfile(
        self, backend: HttpBackendSettings | None, answer: LocalResponse
    ) -> LocalResponse:
        """HAProxy's message `answer`, or the `errorfile` for its status: the backend's
        (once the request has one), else the frontend's."""
        page = None
        if backend is not None and backend.errorfiles:
            page = backend.errorfiles.get(answer.status)
        if page is None and self.settings.errorfiles:
            page = self.settings.errorfiles.get(answer.status)
        if page is None:
            return answer
        if answer.close and not page.close:
            return replace(page, close=True)
        return page

    def _fail(self, exchange: Exchange, status: int, code: str) -> None:
        if self.closed or self.exchange is not exchange:
            return
        self._respond_locally(exchange, error_response(status), code)

    def _server_failed(self, exchange: Exchange, code: str) -> None:
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

    def _client_timed_out(self, exchange: Exchange) -> None:
        """`timeout client` mid-exchange: 408 if nothing was answered yet, as HAProxy's
        `cD--` (the server connection, holding part of a request or response, is closed)."""
        if exchange.response is not None or exchange.bytes_out:
            self._abort_exchange("cD--", status=exchange.status)
            return
        _stop_server_side(exchange)
        exchange.close_client = True
        self._respond_locally(exchange, error_response(408), "cD--")

    def _bad_request(self, error: HttpError | None, *, status: int | None = None) -> None:
        code = status if status is not None else (error.status if error else 400)
        head = RequestHead("", b"", "1.1", [], keep_alive=False)
        exchange = self.exchange
        if exchange is not None:  # a pipelined request broke while another was served
            self._abort_exchange("PR--", status=exchange.status)
            return
        exchange = Exchange(head, self._first_byte or self.loop.time(), self.http.clock.now())
        exchange.close_client = True
        exchange.request_done = True
        self.exchange = exchange
        exchange.status = code
        # HAProxy's own page even with an `errorfile` for the code: HAProxy 2.6's HTTP/1
        # parser answers these before a stream exists, without the proxy's errorfiles
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
        _stop_server_side(exchange)
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
            _stop_server_side(exchange)
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
            probe = self._first_byte is None and not self.reader.in_head and not self.served
            if probe and self.settings.ignore_probes:
                self._end(aborted=False)  # a probe (pre-connect): no 408, no log line
                return
            self._bad_request(None, status=408)
        elif kind in ("keep-alive", "tunnel"):
            self._end(aborted=False)
        elif kind == "client" and self.exchange is not None:
            self._client_timed_out(self.exchange)
        elif self.exchange is not None:
            self._server_failed(self.exchange, "sH--" if self.exchange.response is None else "sD--")

    # -- logging -------------------------------------------------------------------------

    def _log(self, exchange: Exchange, termination: str, *, bad: bool = False) -> None:
        count_status(self.http.stats, exchange.status)
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
            tls=side.session is not None,  # no session: a plain bind
            backend=pool.name if pool else side.frontend.name,
            server=exchange.server.name if exchange.server else None,  # chosen: tried
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
            counters=LogCounters(
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

    def _finish_exchange(
        self, exchange: Exchange, termination: str, now: float | None = None
    ) -> None:
        """The exchange is over: log it, then the next request (`HttpStream`)."""
        raise NotImplementedError


def _stop_server_side(exchange: Exchange) -> None:
    """Cancel the exchange's server task (unless it is the caller) and abort its connection."""
    if exchange.task is not None and exchange.task is not asyncio.current_task():
        exchange.task.cancel()
    if exchange.conn is not None:
        exchange.conn.owner = None
        exchange.conn.abort()
