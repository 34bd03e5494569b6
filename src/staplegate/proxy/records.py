"""The data types the proxy's modules share: what a connection is, how it ended, its counters.

`connection.ClientConnection` fills them in, `frontend.FrontendRuntime` keeps the counters,
the HTTP stream routes with `ConnectionInfo`, and the access log (`observe.accesslog`) and
the runtime API read `ConnectionRecord`, `FrontendStats` and `HttpStats`. Plain data, no
behaviour: a module that only needs these imports nothing else of the proxy.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from dataclasses import dataclass

from staplegate.proxy.backends import BackendPool
from staplegate.proxy.http_request import RequestHead
from staplegate.tls.clientcert import ClientCertificate
from staplegate.tls.endpoint import SessionInfo
from staplegate.tls.staples import StapleStats


class Termination(enum.Enum):
    """HAProxy's two-character session termination state (tcplog `%ts`)."""

    NORMAL = "--"
    CLIENT_ABORT = "CD"  # the client closed or reset during data
    SERVER_ABORT = "SD"  # the server reset during data
    CLIENT_TIMEOUT = "cD"
    SERVER_TIMEOUT = "sD"
    CLIENT_TIMEOUT_HANDSHAKE = "cR"  # timeout client before the handshake completed
    CLIENT_ABORT_HANDSHAKE = "CR"  # client closed, sent garbage, or the handshake failed
    PROXY_REFUSED = "PR"  # strict-sni refusal, or no backend for the connection
    SERVER_CONNECT_FAILED = "SC"
    SERVER_CONNECT_TIMEOUT = "sC"
    STOPPED = "KD"  # killed by a hard stop
    QUEUE_TIMEOUT = "sQ"  # `timeout queue` passed waiting for a server slot


class ConnectionPhase(enum.Enum):
    """Where a client connection is (`connection.ClientConnection.phase`)."""

    PROXY_HEADER = "proxy-header"
    HELLO = "hello"
    HANDSHAKE = "handshake"
    CONNECTING = "connecting"
    FORWARDING = "forwarding"
    HTTP = "http"
    CLOSED = "closed"


@dataclass(frozen=True)
class ProxyTimeouts:
    """`timeout connect|client|server|tunnel` in seconds; None means no timeout."""

    connect_s: float | None = None
    client_s: float | None = None
    server_s: float | None = None
    tunnel_s: float | None = None


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What a backend router may look at (use_backend rules on SNI, ALPN, source)."""

    frontend: str
    client_address: tuple[str, int]
    server_name: str | None
    alpn: bytes | None
    host: str | None = None  # mode http: the request's Host header
    client_certificate: ClientCertificate | None = None  # binds that ask for one
    tls: bool = True  # `ssl_fc`: False on a plain bind
    target: bytes | None = None  # mode http: the request line's target (`path` fetches)
    head: RequestHead | None = None  # mode http: the request (method and header fetches)
    frontend_address: tuple[str, int] | None = None  # `dst_port`


BackendRouter = Callable[[ConnectionInfo], BackendPool | None]


@dataclass(frozen=True)
class ConnectionRecord:
    """Everything the connection log needs, handed to the frontend's `log` callable once."""

    frontend: str
    bind: str
    client_address: tuple[str, int]
    server_name: str | None
    certificate: str | None
    tls: SessionInfo | None
    tls_error: str | None
    backend: str | None
    server: str | None
    bytes_from_client: int
    bytes_to_client: int
    termination: Termination
    duration_s: float
    connect_s: float | None
    queue_s: float | None = None
    tls_bind: bool = True  # the bind has `ssl` (HAProxy's `~` after the frontend's name)


class FrontendStats:
    """Counters for one frontend in one worker (metrics and `show stat` read them)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.active = 0
        self.max_active = 0
        self.handshakes = 0
        self.resumed = 0
        self.handshake_failures = 0
        self.hello_errors = 0
        self.strict_sni_refusals = 0
        self.backend_connect_failures = 0
        self.no_backend = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.accept_pauses = 0
        self.staples = StapleStats()


class HttpStats:
    """Counters for one mode-http frontend in one worker."""

    def __init__(self) -> None:
        self.requests = 0
        self.responses_by_class: collections.Counter[str] = collections.Counter()
        self.server_connects = 0
        self.server_reuses = 0
