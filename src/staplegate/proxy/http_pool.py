"""`mode http` server side: a frontend's settings, its idle server connections, counters.

`HttpFrontend` is one frontend's mode-http runtime in a worker: its settings (and each
backend's), its counters, and the keep-alive connections to servers that no stream uses
right now, keyed by (backend, server, SNI) and closed after `idle_server_timeout_s` by one
sweep timer. `ServerConnection` is one connection to a server; while a stream owns it,
everything it reads goes to that stream (`ServerConnectionOwner`, `http_stream.HttpStream`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

from staplegate.clock import Clock, SystemClock
from staplegate.config.model import CookiePersistence, TcpContentRule
from staplegate.config.samples import LogVariable, SampleExpression
from staplegate.proxy.http_message import MAX_HEAD_BYTES, MAX_HEADERS, LocalResponse
from staplegate.proxy.http_response import ResponseEvent, ResponseReader
from staplegate.proxy.http_rules import CompiledRule, StatsService
from staplegate.proxy.records import HttpStats

log = logging.getLogger("staplegate.http")

IDLE_SERVER_TIMEOUT_S: Final = 5.0  # HAProxy's pool-purge-delay default


@dataclass(frozen=True)
class HttpBackendSettings:
    """What a backend adds in mode http."""

    name: str
    rules: tuple[CompiledRule, ...] = ()
    response_rules: tuple[CompiledRule, ...] = ()  # `http-response` header rules
    after_response_rules: tuple[CompiledRule, ...] = ()  # `http-after-response`
    forwardfor_header: bytes | None = None
    forwardfor_except: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    forwardfor_if_none: bool = False  # only when the request has no such header
    connect_timeout_s: float | None = None
    server_timeout_s: float | None = None
    retries: int = 3
    tunnel_timeout_s: float | None = None  # HAProxy's `timeout tunnel`: a backend keyword
    cookie: CookiePersistence | None = None  # `cookie NAME insert …`
    errorfiles: Mapping[int, LocalResponse] = field(default_factory=dict)  # by status
    # something to do on each response head (rules, a persistence cookie): one test per
    # response on the data plane, set from the fields above
    has_response_rules: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        busy = bool(self.response_rules or self.after_response_rules or self.cookie)
        object.__setattr__(self, "has_response_rules", busy)


@dataclass(frozen=True)
class HttpSettings:
    """A mode-http frontend's settings (timeouts in seconds, None = not set)."""

    rules: tuple[CompiledRule, ...] = ()
    response_rules: tuple[CompiledRule, ...] = ()  # `http-response` header rules
    after_response_rules: tuple[CompiledRule, ...] = ()  # `http-after-response`
    # `unique-id-format` and `unique-id-header`: each request gets the header (both set)
    unique_id: tuple[str | SampleExpression | LogVariable, ...] = ()
    unique_id_header: bytes | None = None
    forwardfor_header: bytes | None = None
    forwardfor_except: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    forwardfor_if_none: bool = False  # only when the request has no such header
    httplog: bool = False
    request_timeout_s: float | None = None
    keep_alive_timeout_s: float | None = None
    client_timeout_s: float | None = None
    max_head_bytes: int = MAX_HEAD_BYTES
    max_body_bytes: int | None = None
    max_headers: int = MAX_HEADERS  # `tune.http.maxhdr`
    # a `use_backend` rule looks at more than Host (path, method, headers): route every request
    route_per_request: bool = False
    backends: Mapping[str, HttpBackendSettings] = field(default_factory=dict)
    stats: StatsService | None = None  # `stats enable`: answered after the rules
    ignore_probes: bool = False  # `option http-ignore-probes`
    # `tcp-request content accept|reject`: checked for each request before the rules
    content_rules: tuple[TcpContentRule, ...] = ()
    # `errorfile`: the answer instead of HAProxy's own message, by status (a backend's
    # own errorfile for that status wins once the request has one)
    errorfiles: Mapping[int, LocalResponse] = field(default_factory=dict)


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
        # `nbsrv(backend)` in conditions: the worker's pools answer (None outside a worker)
        self.usable_servers: Callable[[str], int] | None = None
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


class ServerConnectionOwner(Protocol):
    """What a server connection calls on the stream that owns it (`http_stream.HttpStream`)."""

    def server_data(
        self, conn: ServerConnection, data: bytes, eof_events: list[ResponseEvent] | None = None
    ) -> None: ...

    def server_eof(self, conn: ServerConnection) -> None: ...

    def pause_client(self) -> None: ...

    def server_writable(self) -> None: ...


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
        owner: ServerConnectionOwner | None = None,
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
