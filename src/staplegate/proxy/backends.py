"""A backend's servers, their up/down state, the choice of a server and the wait for one.

Health follows HAProxy's rule: a server goes DOWN after `fall` consecutive failed checks and
back UP after `rise` consecutive successes. Servers start UP (HAProxy's default
`init-state up`), so traffic flows before the first check completes. The state lives here,
pure; `proxy.health.HealthChecker` performs the checks and reports results.

Choice (`pick`): the usable primaries, else the first usable `backup` server (HAProxy uses
one backup unless `option allbackups`), minus those at their `maxconn`; the `balance`
algorithm (`proxy.balance`) orders what is left. `take` adds HAProxy's queue: when every
candidate is full the caller waits (FIFO, bounded by `timeout queue`) for a `release`.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from staplegate.config.model import SourceBinding, TcpCheckStep, TlsVersion
from staplegate.config.samples import compile_pcre
from staplegate.proxy.balance import Algorithm, Balancer

log = logging.getLogger("staplegate.proxy")


class ServerState(enum.Enum):
    UP = "UP"
    DOWN = "DOWN"


class AdminState(enum.Enum):
    """What the operator asked for (`set server B/S state ...`); orthogonal to health."""

    READY = "ready"
    DRAIN = "drain"  # no new connections; existing ones finish
    MAINT = "maint"  # out of service


class SendProxy(enum.Enum):
    """`send-proxy` / `send-proxy-v2` on a server line."""

    NONE = "none"
    V1 = "send-proxy"
    V2 = "send-proxy-v2"


@dataclass(frozen=True)
class ServerTls:
    """`ssl [verify none|required] [ca-file F] [sni str(NAME)]` on a server line."""

    verify: bool = True
    ca_file: str | None = None
    sni: str | None = None  # a fixed name; None sends the client's SNI when there was one
    sni_from_client: bool = False
    ciphers: str | None = None  # `ssl-default-server-ciphers` (TLS 1.2 and below)
    min_version: TlsVersion | None = None  # from `ssl-default-server-options`
    max_version: TlsVersion | None = None


@dataclass(frozen=True)
class HttpCheck:
    """`option httpchk [METH URI]` or `http-check send meth|uri|ver|hdr …`, with
    `http-check expect status N` (else any 2xx/3xx)."""

    method: str = "OPTIONS"
    uri: str = "/"
    expect_status: int | None = None
    host: str | None = None
    version: str = "HTTP/1.0"  # `http-check send ver`
    headers: tuple[tuple[str, str], ...] = ()  # `http-check send hdr NAME VALUE`
    # `http-check expect [!] status|rstatus|string|rstring P`: (kind, pattern, negate)
    expect: tuple[str, str, bool] | None = None

    @property
    def reads_body(self) -> bool:
        return self.expect is not None and self.expect[0] in ("string", "rstring")

    def judge(self, status: int, body: bytes) -> bool:
        """The expect rule on a response (the default: `accepts`)."""
        if self.expect is None:
            return self.accepts(status)
        kind, pattern, negate = self.expect
        if kind == "status":
            found = str(status) == pattern
        elif kind == "rstatus":
            found = compile_pcre(pattern).search(str(status)) is not None
        elif kind == "string":
            found = pattern.encode("latin-1", "replace") in body
        else:
            found = compile_pcre(pattern).search(body.decode("latin-1")) is not None
        return found != negate

    def accepts(self, status: int) -> bool:
        if self.expect_status is not None:
            return status == self.expect_status
        return 200 <= status < 400


@dataclass(frozen=True)
class ExternalCheck:
    """`option external-check`: a command run per check, HAProxy's way (arguments proxy
    address and port, server address and port; a cleared environment with the
    HAPROXY_* variables and PATH); exit status 0 means up."""

    command: str
    path: str = ""
    proxy_name: str = ""
    proxy_id: int = 0
    proxy_address: str = "NOT_USED"
    proxy_port: str = "NOT_USED"
    server_id: int = 0


@dataclass(frozen=True)
class BackendServer:
    """One `server` line: address, check, balancing and connection settings (seconds)."""

    name: str
    host: str
    port: int
    check: bool = False
    inter_s: float = 2.0
    rise: int = 2
    fall: int = 3
    weight: int = 1
    backup: bool = False
    maxconn: int | None = None
    send_proxy: SendProxy = SendProxy.NONE
    tls: ServerTls | None = None
    httpchk: HttpCheck | None = None
    check_timeout_s: float | None = None
    check_port: int | None = None  # `port N`: checks go there instead of `port`
    cookie: str | None = None  # `cookie VALUE`: the persistence cookie naming this server
    minconn: int | None = None  # with maxconn: HAProxy's dynamic limit (see `BackendPool`)
    slowstart_s: float = 0.0  # `slowstart`: the ramp after the server comes back up
    tcp_check: tuple[TcpCheckStep, ...] | None = None  # `option tcp-check` rules
    external_check: ExternalCheck | None = None  # `option external-check`
    source: SourceBinding | None = None  # `source …`: the server's or its backend's
    # a connection opened for one client never carries another client's requests: the PROXY
    # header or the transparent source address (`usesrc client[ip]`) names that client
    private_connections: bool = field(init=False, default=False)
    # `0.0.0.0` (or `::`) or no port: each request's destination fills them in (`set-dst`,
    # `set-dst-port`, else the address the client connected to); mode http only
    dynamic: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        dynamic = self.host in ("0.0.0.0", "::") or self.port == 0
        object.__setattr__(self, "dynamic", dynamic)
        object.__setattr__(
            self,
            "private_connections",
            self.send_proxy is not SendProxy.NONE
            or (self.source is not None and self.source.per_client)
            or dynamic,  # a connection goes to one request's destination
        )
        if self.rise < 1 or self.fall < 1:
            raise ValueError(f"server {self.name}: rise and fall must be at least 1")
        if self.inter_s <= 0:
            raise ValueError(f"server {self.name}: inter must be positive")
        if self.weight < 0 or self.weight > 256:
            raise ValueError(f"server {self.name}: weight must be between 0 and 256")
        if self.maxconn is not None and self.maxconn < 1:
            raise ValueError(f"server {self.name}: maxconn must be at least 1")

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StateChange:
    """A server crossed the rise/fall threshold."""

    server: BackendServer
    state: ServerState
    checks_in_a_row: int


# enum members as module constants for `take_now` (Python 3.11's slow enum lookups)
_UP = ServerState.UP
_READY = AdminState.READY


class _Health:
    __slots__ = (
        "active",
        "admin",
        "avoid_until",
        "failures",
        "observed_failures",
        "served",
        "state",
        "successes",
        "up_since",
    )

    def __init__(self) -> None:
        self.state = ServerState.UP
        self.admin = AdminState.READY
        self.successes = 0
        self.failures = 0
        self.active = 0
        self.served = 0
        self.observed_failures = 0
        self.avoid_until = 0.0
        self.up_since = 0.0  # when it came back up (`slowstart`); 0: up from the start

    @property
    def usable(self) -> bool:
        if self.avoid_until and time.monotonic() < self.avoid_until:
            return False
        return self.state is ServerState.UP and self.admin is AdminState.READY


class QueueTimeout(Exception):
    """`timeout queue` passed before a server had a free slot (HAProxy's 503, `sQ`)."""


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[BackendServer | None]
    client_ip: str | None
    exclude: Collection[str]


class BackendPool:
    """A backend's servers; all methods run on one event loop (no locking)."""

    def __init__(
        self,
        name: str,
        servers: Sequence[BackendServer],
        *,
        algorithm: Algorithm = Algorithm.ROUNDROBIN,
        redispatch: bool = True,
        queue_timeout_s: float | None = None,
        draws: int = 2,
        fullconn: int = 0,
    ) -> None:
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"backend {name}: duplicate server names")
        self.name = name
        self.servers = tuple(servers)
        self.redispatch = redispatch
        self.queue_timeout_s = queue_timeout_s
        # `fullconn`: at this many connections on the backend, `minconn` servers take their
        # whole `maxconn`; below it their limit grows with the load (per worker)
        self.fullconn = fullconn
        self._rng = random.Random()  # `slowstart`'s draws
        self._health = {s.name: _Health() for s in self.servers}
        # what `_usable` walks for every request: primaries in order, with their health
        self._primaries = tuple(
            (s, self._health[s.name]) for s in self.servers if not s.backup and s.weight > 0
        )
        self._only = self._primaries[0] if len(self.servers) == 1 and self._primaries else None
        self._balancer = Balancer(
            algorithm, self.servers, lambda n: self._health[n].active, draws=draws
        )
        self._queue: collections.deque[_Waiter] = collections.deque()
        self.queued_total = 0

    @property
    def algorithm(self) -> Algorithm:
        return self._balancer.algorithm

    def state(self, server: BackendServer) -> ServerState:
        return self._health[server.name].state

    def admin_state(self, server: BackendServer) -> AdminState:
        return self._health[server.name].admin

    def up_servers(self) -> tuple[BackendServer, ...]:
        return tuple(s for s in self.servers if self._health[s.name].usable)

    def usable_count(self) -> int:
        """HAProxy's `nbsrv`: the usable active servers, else the usable backups."""
        health = self._health
        active = sum(1 for s, h in self._primaries if h.usable)
        if active:
            return active
        return sum(1 for s in self.servers if s.backup and health[s.name].usable)

    def active(self, server: BackendServer) -> int:
        """Connections (tcp) or requests (http) this worker has on the server now."""
        return self._health[server.name].active

    def served(self, server: BackendServer) -> int:
        return self._health[server.name].served

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def set_state(self, name: str, state: ServerState) -> None:
        """Adopt a health state decided elsewhere (the master runs the checks)."""
        health = self._health[name]
        if state is ServerState.UP and health.state is ServerState.DOWN:
            health.up_since = time.monotonic()  # `slowstart` ramps from here
        health.state = state
        health.avoid_until = 0.0
        self._wake()

    def set_admin(self, name: str, admin: AdminState) -> None:
        self._health[name].admin = admin
        self._wake()

    def states(self) -> dict[str, tuple[ServerState, AdminState]]:
        return {name: (h.state, h.admin) for name, h in self._health.items()}

    def _usable(self, exclude: Collection[str]) -> list[BackendServer]:
        health = self._health
        if exclude:
            primaries = [s for s, h in self._primaries if h.usable and s.name not in exclude]
        else:
            primaries = [s for s, h in self._primaries if h.usable]
        if primaries:
            return primaries
        for server in self.servers:
            if server.backup and health[server.name].usable and server.name not in exclude:
                return [server]
        return []

    def _free(self, server: BackendServer) -> bool:
        limit = server.maxconn
        if limit is None:
            return True
        if server.minconn is not None:
            limit = self.dynamic_maxconn(server)
        return self._health[server.name].active < limit

    def dynamic_maxconn(self, server: BackendServer) -> int:
        """HAProxy's `srv_dynamic_maxconn`: max(minconn, maxconn × backend load / fullconn),
        and maxconn itself once the backend has `fullconn` connections."""
        maxconn = server.maxconn or 0
        minconn = server.minconn
        if minconn is None or minconn >= maxconn:
            return maxconn
        load = sum(h.active for h in self._health.values())
        if load >= self.fullconn:
            return maxconn
        return max(minconn, load * maxconn // self.fullconn, 1)

    def pick(
        self, client_ip: str | None = None, exclude: Collection[str] = ()
    ) -> BackendServer | None:
        """The balancing algorithm's choice among usable servers with a free slot, or None."""
        if self._only is not None and not exclude:  # one server, no backup: nothing to choose
            server, health = self._only
            if health.usable and (
                server.maxconn is None
                or health.active
                < (server.maxconn if server.minconn is None else self.dynamic_maxconn(server))
            ):
                return server
            if health.usable:
                return None
        usable = self._usable(exclude)
        if self._balancer.algorithm is Algorithm.SOURCE and usable:
            # stickiness: the hash ranges over every usable server, full ones included
            chosen = self._balancer.choose(usable, client_ip)
            return chosen if chosen is not None and self._free(chosen) else None
        free = self._free
        candidates = [s for s in usable if free(s)]
        chosen = self._balancer.choose(candidates, client_ip)
        if chosen is not None and chosen.slowstart_s and len(candidates) > 1:
            return self._slow_start(chosen, candidates, client_ip)
        return chosen

    def _slow_start(
        self, chosen: BackendServer, candidates: list[BackendServer], client_ip: str | None
    ) -> BackendServer | None:
        """HAProxy's `slowstart`: a server back up for a fraction f of its slowstart period
        takes about f of its share (it is passed over with probability 1 − f)."""
        up_since = self._health[chosen.name].up_since
        if not up_since:
            return chosen  # up since the start: HAProxy does not ramp then either
        elapsed = (time.monotonic() - up_since) / chosen.slowstart_s
        if elapsed >= 1.0 or self._rng.random() < elapsed:
            return chosen
        return self._balancer.choose([s for s in candidates if s is not chosen], client_ip)

    def observe(self, server: BackendServer, *, ok: bool) -> bool:
        """Passive check on traffic (HAProxy's `observe layer4`, for `check` servers only).

        `fall` connection failures in a row take the server out of this worker's choice for
        `rise` check intervals, or until the master's checks report again; True when that
        happens now.
        """
        health = self._health[server.name]
        if ok:
            health.observed_failures = 0
            return False
        if not server.check:
            return False
        health.observed_failures += 1
        if health.observed_failures < server.fall or health.avoid_until > time.monotonic():
            return False
        health.observed_failures = 0
        health.avoid_until = time.monotonic() + server.inter_s * server.rise
        return True

    def connect_failed(self, server: BackendServer) -> None:
        """A connection to `server` failed on traffic: `observe` it, and log as HAProxy does
        when that takes the server out."""
        if self.observe(server, ok=False):
            log.warning(
                "Server %s/%s is DOWN, reason: Layer4 connection problem (observed on "
                "traffic). %d active servers left.",
                self.name,
                server.name,
                len(self.up_servers()),
            )

    def acquire(self, server: BackendServer) -> None:
        health = self._health[server.name]
        health.active += 1
        health.served += 1

    def release(self, server: BackendServer) -> None:
        health = self._health[server.name]
        if health.active > 0:
            health.active -= 1
        if self._queue:
            self._wake()

    def take_by_cookie(self, value: str) -> BackendServer | None:
        """Cookie persistence: the usable server whose `cookie` is `value`, acquired, if it
        has a free slot; None sends the request to the balancing algorithm (which then
        inserts a new cookie)."""
        for server in self.servers:
            if server.cookie == value:
                health = self._health[server.name]
                if health.usable and self._free(server) and not self._queue:
                    self.acquire(server)
                    return server
                return None
        return None

    def take_now(self, client_ip: str | None = None) -> BackendServer | None:
        """`take` when it would not wait: a server with a free slot, acquired, or None.

        None says nothing more; `take` then queues or reports that no server is usable. Lets
        the data plane skip a coroutine in the usual case.
        """
        if self._queue:
            return None  # those waiting come first
        only = self._only
        if only is not None:  # one server, no backup: `pick` and `acquire` inline (per request)
            first, health = only
            if (
                not health.avoid_until
                and health.state is _UP
                and health.admin is _READY
                and first.minconn is None  # `minconn`'s dynamic limit: `pick` computes it
                and (first.maxconn is None or health.active < first.maxconn)
            ):
                health.active += 1
                health.served += 1
                return first
        server = self.pick(client_ip)
        if server is not None:
            self.acquire(server)
        return server

    async def take(
        self,
        client_ip: str | None = None,
        exclude: Collection[str] = (),
        *,
        timeout_s: float | None = None,
    ) -> BackendServer | None:
        """`pick` and `acquire`; when every candidate is full, wait in the queue.

        None means no usable server at all (503); `QueueTimeout` means the wait passed
        `timeout_s` (default: the pool's `timeout queue`).
        """
        if not self._queue:
            server = self.pick(client_ip, exclude)
            if server is not None:
                self.acquire(server)
                return server
        if not self._usable(exclude):
            return None
        waiter = _Waiter(asyncio.get_running_loop().create_future(), client_ip, exclude)
        self._queue.append(waiter)
        self.queued_total += 1
        wait = self.queue_timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), wait)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                granted = waiter.future.result()  # granted just as the timer fired
                if granted is not None:
                    self.release(granted)
            raise QueueTimeout(f"backend {self.name}: no free server slot in time") from None
        finally:
            if not waiter.future.done():
                waiter.future.cancel()
            if waiter in self._queue:
                self._queue.remove(waiter)

    def _wake(self) -> None:
        """Hand freed slots to the oldest waiters; waiters with nothing usable get None."""
        while self._queue:
            waiter = self._queue[0]
            if waiter.future.done():
                self._queue.popleft()
                continue
            if not self._usable(waiter.exclude):
                self._queue.popleft()
                waiter.future.set_result(None)
                continue
            server = self.pick(waiter.client_ip, waiter.exclude)
            if server is None:
                return
            self._queue.popleft()
            self.acquire(server)
            waiter.future.set_result(server)

    def report(self, server: BackendServer, ok: bool) -> StateChange | None:
        """Record one check result; returns the change when the server goes up or down."""
        health = self._health[server.name]
        if ok:
            health.failures = 0
            health.successes += 1
            if health.state is ServerState.DOWN and health.successes >= server.rise:
                health.state = ServerState.UP
                return StateChange(server, ServerState.UP, health.successes)
        else:
            health.successes = 0
            health.failures += 1
            if health.state is ServerState.UP and health.failures >= server.fall:
                health.state = ServerState.DOWN
                return StateChange(server, ServerState.DOWN, health.failures)
        return None
