"""One frontend in one worker: its client connections, `maxconn`, deadlines and connection log.

`FrontendRuntime` is what the connections of a frontend share: the staple table, backend
choice, timeouts, the mode-http runtime, counters, the deadline wheel, and the accounting
that pauses accepting at `maxconn` (its `acceptors`, `accept.Acceptor`) and resumes it when
a connection ends. `BindSocket` is one listening socket of a `bind` line with its frontend
and TLS set-up (none on a plain bind). The frontend sees its connections through
`FrontendConnection` and its acceptors through `FrontendAcceptor` (types only), so this
module imports neither.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from staplegate.proxy.backends import BackendPool
from staplegate.proxy.deadlines import DeadlineWheel
from staplegate.proxy.http_pool import HttpFrontend
from staplegate.proxy.http_stream import HttpStream
from staplegate.proxy.records import (
    BackendRouter,
    ConnectionInfo,
    ConnectionPhase,
    ConnectionRecord,
    FrontendStats,
    ProxyTimeouts,
    Termination,
)
from staplegate.tls.contexts import TlsBind
from staplegate.tls.endpoint import TlsEndpoint
from staplegate.tls.staples import StapleLookup

log = logging.getLogger("staplegate.proxy")

DEFAULT_BUFFER_LIMIT: Final = 256 * 1024
# How soon a connection still open after its handshake gives back its handshake buffers
# (`FrontendRuntime._shed_handshake_buffers`).
SHED_AFTER_S: Final = 0.5
_CLOSED: Final = ConnectionPhase.CLOSED  # a global: Python 3.11's enum attribute lookup is slow


class FrontendConnection(Protocol):
    """What a frontend does with its client connections (`connection.FrontendConnection`)."""

    phase: ConnectionPhase
    endpoint: TlsEndpoint | None
    transport: asyncio.Transport | None
    http: HttpStream | None

    def unpark(self) -> None: ...

    def abort(self, termination: Termination) -> None: ...

    def end_http(self, *, aborted: bool) -> None: ...

    def record(self) -> ConnectionRecord: ...


class FrontendAcceptor(Protocol):
    """What a frontend does with the acceptors serving it (`accept.Acceptor`)."""

    @property
    def watching(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


@dataclass(frozen=True)
class BindSocket:
    """A listening socket (inherited, non-blocking) with its frontend and bind's TLS set-up.

    `tls` None: a plain bind (no `ssl`), whose connections start forwarding at once.
    """

    sock: socket.socket
    frontend: FrontendRuntime
    tls: TlsBind | None
    accept_proxy: bool = False
    backlog: int = 1024  # what the loop's server passes to listen() again (the master's default)
    label: str = ""  # a plain bind's name for logs (a TLS bind's is `tls.name`)

    @property
    def name(self) -> str:
        return self.tls.name if self.tls is not None else self.label


class FrontendRuntime:
    """One frontend of a worker: its staple table, backend choice, timeouts and maxconn."""

    def __init__(
        self,
        *,
        name: str,
        staples: StapleLookup,
        backend_router: BackendRouter,
        timeouts: ProxyTimeouts,
        maxconn: int,
        log: Callable[[ConnectionRecord], None] | None = None,
        retries: int = 3,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        http: HttpFrontend | None = None,
        only_backend: BackendPool | None = None,
        inspect_delay_s: float | None = None,
        content_check: Callable[[ConnectionInfo], bool] | None = None,
        backend_checks: Mapping[str, Callable[[ConnectionInfo], bool]] | None = None,
    ) -> None:
        if maxconn < 1:
            raise ValueError(f"frontend {name}: maxconn must be at least 1")
        self.name = name
        self.staples = staples
        self.backend_router = backend_router
        self.timeouts = timeouts
        self.maxconn = maxconn
        self.log = log
        self.retries = retries
        self.buffer_limit = buffer_limit
        self.http = http
        # What `backend_router` answers for every connection (no use_backend rule): then
        # mode tcp skips building a ConnectionInfo and asking the router.
        self.only_backend = only_backend
        # `tcp-request inspect-delay` / `tcp-request content` (mode tcp, plain binds)
        self.inspect_delay_s = inspect_delay_s
        self.content_check = content_check
        # the backends' own `tcp-request content` rules, by backend name (mode tcp)
        self.backend_checks = backend_checks or {}
        self.stopping = False
        self.stats = FrontendStats()
        self.connections: set[FrontendConnection] = set()
        self.acceptors: list[FrontendAcceptor] = []
        self.parked: collections.deque[FrontendConnection] = collections.deque()
        self._accepting_paused = False
        self._idle: asyncio.Event | None = None
        # handshakes done since the last buffer shedding, still open (a dict as an ordered
        # set: a close takes its connection out, so a closed one is not kept alive meanwhile)
        self._handshaken: dict[FrontendConnection, None] = {}
        self._shedding_due = False  # a sweep is scheduled
        self._wheel: DeadlineWheel | None = None

    @property
    def deadlines(self) -> DeadlineWheel:
        """The wheel holding this frontend's connection deadlines (made on first use)."""
        wheel = self._wheel
        if wheel is None:
            wheel = self._wheel = DeadlineWheel(asyncio.get_running_loop())
        return wheel

    @property
    def full(self) -> bool:
        return len(self.connections) >= self.maxconn

    @property
    def accepting(self) -> bool:
        return any(a.watching for a in self.acceptors)

    def connection_opened(self, connection: FrontendConnection) -> None:
        connections = self.connections
        connections.add(connection)
        stats = self.stats
        stats.accepted += 1
        active = stats.active = len(connections)
        if active > stats.max_active:
            stats.max_active = active
        if self._idle is not None:
            self._idle.clear()
        if active >= self.maxconn and not self._accepting_paused:
            self._accepting_paused = True
            self.stats.accept_pauses += 1
            for acceptor in self.acceptors:
                acceptor.pause()

    def connection_closed(self, connection: FrontendConnection) -> None:
        connections = self.connections
        connections.discard(connection)
        self._handshaken.pop(connection, None)
        self.stats.active = len(connections)
        parked = self.parked
        while parked and not self.full:  # accepted past maxconn in a burst: their turn now
            parked.popleft().unpark()
        if self._accepting_paused and not self.full:
            self._accepting_paused = False
            for acceptor in self.acceptors:
                acceptor.resume()
        if not self.connections and self._idle is not None:
            self._idle.set()
        if self.log is not None:  # the record is built only when something logs it
            try:
                self.log(connection.record())
            except Exception:
                log.exception("frontend %s: the connection log callable failed", self.name)

    def handshake_done(self, connection: FrontendConnection) -> None:
        self._handshaken[connection] = None
        if not self._shedding_due:
            self._shedding_due = True
            asyncio.get_running_loop().call_later(SHED_AFTER_S, self._shed_handshake_buffers)

    def _shed_handshake_buffers(self) -> None:
        """Free the handshake's BIO buffers of the connections still open since the last run.

        Once per `SHED_AFTER_S` for a batch, not per handshake: most connections are short
        and free everything when they close; an idle one keeps ~5 KB less (the idle-RSS test
        in bench/tls_bench.py).
        """
        self._shedding_due = False
        handshaken, self._handshaken = self._handshaken, {}
        for connection in handshaken:
            endpoint = connection.endpoint
            if connection.phase is not _CLOSED and endpoint is not None:
                endpoint.shed_handshake_buffers()

    async def wait_idle(self) -> None:
        """Return once no connection is left."""
        if self._idle is None:
            self._idle = asyncio.Event()
        if not self.connections:
            self._idle.set()
        await self._idle.wait()

    def abort_all(self) -> None:
        self.drop_parked()
        for connection in list(self.connections):
            connection.abort(Termination.STOPPED)

    def drop_parked(self) -> None:
        """Close the connections accepted past maxconn that never started (like a backlog)."""
        while self.parked:
            connection = self.parked.popleft()
            connection.phase = _CLOSED
            if connection.transport is not None:
                connection.transport.abort()
