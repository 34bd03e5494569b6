"""The immutable configuration model: what staplegate understood from an HAProxy config.

Every value is a frozen dataclass or an enum; times are integers in milliseconds unless a
field name says `_s` (seconds). Each element remembers where it was written.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from staplegate.config.diagnostics import SourceLocation
from staplegate.config.values import SocketAddress

DEFAULT_OCSP_MINDELAY_S = 300
DEFAULT_OCSP_MAXDELAY_S = 3600
# staplegate's own knobs: 10,000 certificates on one responder stapled from cold in ~40 s on
# 2 cores with these (bench/ocsp_scale.py); refreshes are spread by jitter far below them.
DEFAULT_OCSP_MAXCONN = 16
DEFAULT_OCSP_RATE_LIMIT = 250
#: HAProxy's default `stats maxconn` (cli_alloc_fe: the CLI frontend's maxconn).
DEFAULT_STATS_MAXCONN = 10
EXTRA_FILE_KINDS = frozenset({"bundle", "sctl", "ocsp", "issuer", "key"})


class CrlWatchMode(enum.Enum):
    """`ocsp-update.crl-watch` (staplegate extension): which certificates' CRLs are watched."""

    ON = "on"
    OFF = "off"
    NO_OCSP_ONLY = "no-ocsp-only"
    """Only certificates with no OCSP URL (the default)."""


class Mode(enum.Enum):
    TCP = "tcp"
    HTTP = "http"


class Balance(enum.Enum):
    ROUNDROBIN = "roundrobin"
    STATIC_RR = "static-rr"
    LEASTCONN = "leastconn"
    SOURCE = "source"
    FIRST = "first"


class TlsVersion(enum.Enum):
    """Protocol versions in HAProxy's spelling, ordered oldest first."""

    SSLV3 = "SSLv3"
    TLSV10 = "TLSv1.0"
    TLSV11 = "TLSv1.1"
    TLSV12 = "TLSv1.2"
    TLSV13 = "TLSv1.3"


class Verify(enum.Enum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


#: `ca-ignore-err all` / `crt-ignore-err all`: every verification error is ignored.
IGNORE_ALL_ERRORS = -1


@dataclass(frozen=True)
class ClientAuth:
    """Client-certificate options of a bind line or crt-list line; None = not written.

    `ca_ignore_err` / `crt_ignore_err` hold OpenSSL X509_V_ERR codes (IGNORE_ALL_ERRORS for
    `all`); HAProxy allows them on bind lines only.
    """

    verify: Verify | None = None
    ca_file: str | None = None
    crl_file: str | None = None
    ca_ignore_err: frozenset[int] = frozenset()
    crt_ignore_err: frozenset[int] = frozenset()


class StatsLevel(enum.IntEnum):
    """A stats socket's access level (`stats socket ... level`); higher includes lower.

    The config writes it (`level user|operator|admin`), the runtime API checks commands against
    it: one type for both, so the level needs no conversion between them.
    """

    USER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> StatsLevel:
        """The level written as `text` (`user`, `operator`, `admin`); KeyError otherwise."""
        return cls[text.upper()]


class ProxyProtocol(enum.Enum):
    NONE = "none"
    V1 = "send-proxy"
    V2 = "send-proxy-v2"


class ProxyKind(enum.Enum):
    FRONTEND = "frontend"
    BACKEND = "backend"
    LISTEN = "listen"


class CertOrigin(enum.Enum):
    """Where a certificate reference was written."""

    BIND = "bind"
    CRT_LIST = "crt-list"
    CRT_STORE = "crt-store"


class AclFetch(enum.Enum):
    """The only sample fetches staplegate evaluates in conditions."""

    SSL_FC_SNI = "ssl_fc_sni"
    REQ_SSL_SNI = "req.ssl_sni"
    SSL_FC = "ssl_fc"
    SSL_C_USED = "ssl_c_used"  # a client certificate was presented (boolean)
    SSL_C_VERIFY = "ssl_c_verify"  # its verification result, an X509_V_ERR code (integer)
    HDR_HOST = "hdr(host)"  # mode http only: the request's Host header, as sent
    PATH = "path"  # mode http only: the request's path, without the query string
    SRC = "src"  # the client's address (the PROXY header's source on accept-proxy binds)
    ALWAYS_TRUE = "always_true"
    ALWAYS_FALSE = "always_false"


class AclMatch(enum.Enum):
    EXACT = "str"
    BEGIN = "beg"
    END = "end"


class LogTargetKind(enum.Enum):
    UNIX = "unix"
    UDP = "udp"
    TCP = "tcp"
    STDOUT = "stdout"
    STDERR = "stderr"
    RING = "ring"
    FD = "fd"


class LogFormat(enum.Enum):
    RFC3164 = "rfc3164"
    RFC5424 = "rfc5424"
    SHORT = "short"
    RAW = "raw"
    TIMED = "timed"
    ISO = "iso"
    PRIORITY = "priority"
    LOCAL = "local"


LOG_FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "auth2",
    "ftp",
    "ntp",
    "audit",
    "alert",
    "cron2",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)
LOG_LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


@dataclass(frozen=True)
class LogTarget:
    """One `log` line: where to send, syslog facility and level filter."""

    location: SourceLocation
    kind: LogTargetKind
    target: str
    address: SocketAddress | None
    facility: str
    level: str | None = None
    min_level: str | None = None
    length: int | None = None
    format: LogFormat = LogFormat.RFC3164


@dataclass(frozen=True)
class StatsSocket:
    """A runtime-API listener (`stats socket`)."""

    location: SourceLocation
    address: SocketAddress
    mode: int | None = None
    level: StatsLevel = StatsLevel.OPERATOR
    expose_fd_listeners: bool = False
    uid: int | None = None
    """Owner given by `user`/`uid` (UNIX sockets), applied when the socket is created."""
    gid: int | None = None
    """Group given by `group`/`gid` (UNIX sockets)."""
    maxconn: int | None = None
    """`maxconn N` on the line: this socket's own cap, under `stats maxconn`."""


@dataclass(frozen=True)
class SslOptions:
    """TLS settings shared by `ssl-default-bind-options`, bind lines and crt-list lines."""

    min_ver: TlsVersion | None = None
    max_ver: TlsVersion | None = None
    disabled: frozenset[TlsVersion] = frozenset()
    no_tls_tickets: bool = False
    prefer_client_ciphers: bool = False


@dataclass(frozen=True)
class HttpClientSettings:
    """`httpclient.*` globals that shape OCSP fetches."""

    timeout_connect_ms: int = 5000
    retries: int = 3
    resolvers_prefer: str | None = None
    resolvers_disabled: bool = False
    ssl_verify: Verify | None = None
    ssl_ca_file: str | None = None


@dataclass(frozen=True)
class GlobalSettings:
    """The `global` section."""

    ocsp_update_mode: bool = False
    ocsp_update_disable: bool = False
    ocsp_update_mindelay_s: int = DEFAULT_OCSP_MINDELAY_S
    ocsp_update_maxdelay_s: int = DEFAULT_OCSP_MAXDELAY_S
    ocsp_update_httpproxy: SocketAddress | None = None
    ocsp_update_maxconn: int = DEFAULT_OCSP_MAXCONN
    """staplegate extension: OCSP requests in flight at once, over every responder."""
    ocsp_update_rate_limit: int = DEFAULT_OCSP_RATE_LIMIT
    """staplegate extension: OCSP requests per second to one responder host at most."""
    ocsp_update_crl_watch: CrlWatchMode = CrlWatchMode.NO_OCSP_ONLY
    """staplegate extension: which certificates' CRL distribution points are watched."""
    ocsp_update_revoked_hook: str | None = None
    """staplegate extension: a shell command run when a served certificate is revoked."""
    ocsp_update_responder_url: str | None = None
    """staplegate extension: the OCSP responder every certificate is asked at (no AIA)."""
    ocsp_update_must_staple_wait_ms: int = 30_000
    """staplegate extension: how long systemd's READY=1 waits for must-staple staples."""
    ocsp_update_shared_store: str | None = None
    """staplegate extension: the fleet's Redis URL (`redis://` or `rediss://`, no password)."""
    ocsp_update_shared_store_password_file: str | None = None
    """staplegate extension: a file holding the Redis password (else $STAPLEGATE_REDIS_PASSWORD)."""
    crt_base: str | None = None
    key_base: str | None = None
    ca_base: str | None = None
    issuers_chain_path: str | None = None
    ssl_load_extra_files: frozenset[str] = EXTRA_FILE_KINDS
    ssl_load_extra_del_ext: bool = False
    ssl_skip_self_issued_ca: bool = False
    ssl_default_bind_ciphers: str | None = None
    ssl_default_bind_ciphersuites: str | None = None
    ssl_default_bind_options: SslOptions = SslOptions()
    ssl_default_server_options: SslOptions = SslOptions()
    ssl_default_server_ciphers: str | None = None
    ssl_default_server_ciphersuites: str | None = None
    ssl_dh_param_file: str | None = None
    tune_ssl_default_dh_param: int | None = None
    tune_http_maxhdr: int = 101
    """Header lines a head may have, its first line included (HAProxy's default 101)."""
    stats_sockets: tuple[StatsSocket, ...] = ()
    stats_maxconn: int = DEFAULT_STATS_MAXCONN
    """`stats maxconn`: runtime-API connections served at once over every socket."""
    stats_timeout_ms: int | None = None
    """`stats timeout`: a silent runtime-API connection is closed after it (None: 10 s)."""
    logs: tuple[LogTarget, ...] = ()
    log_tag: str | None = None
    nbthread: int | None = None
    maxconn: int | None = None
    pidfile: str | None = None
    daemon: bool = False
    user: str | None = None
    group: str | None = None
    hard_stop_after_ms: int | None = None
    zero_warning: bool = False
    httpclient: HttpClientSettings = HttpClientSettings()

    @property
    def ocsp_update_mindelay(self) -> int:
        return self.ocsp_update_mindelay_s

    @property
    def ocsp_update_maxdelay(self) -> int:
        return self.ocsp_update_maxdelay_s

    @property
    def ocsp_update_httpproxy_address(self) -> SocketAddress | None:
        return self.ocsp_update_httpproxy


@dataclass(frozen=True)
class Timeouts:
    """`timeout …` values in milliseconds; None means "not set" (HAProxy: infinite)."""

    connect: int | None = None
    client: int | None = None
    server: int | None = None
    http_request: int | None = None
    http_keep_alive: int | None = None
    check: int | None = None
    queue: int | None = None
    tunnel: int | None = None
    client_fin: int | None = None
    server_fin: int | None = None
    tarpit: int | None = None


@dataclass(frozen=True)
class AclTerm:
    """`ssl_fc_sni -i a b` style test: true when the fetched value matches any value.

    `src` keeps its values parsed as `networks` (an address is a /32 or /128 network).
    """

    fetch: AclFetch
    values: tuple[str, ...] = ()
    ignore_case: bool = False
    match: AclMatch = AclMatch.EXACT
    negated: bool = False
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True)
class Condition:
    """`if|unless` followed by terms that must all be true (AND)."""

    unless: bool
    terms: tuple[AclTerm, ...]


@dataclass(frozen=True)
class HttpReturn:
    status: int
    content_type: str | None = None
    body: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class HttpDeny:
    status: int = 403


@dataclass(frozen=True)
class HttpRedirectScheme:
    scheme: str
    code: int = 302


@dataclass(frozen=True)
class HttpSetHeader:
    name: str
    value: str
    add: bool = False


@dataclass(frozen=True)
class HttpDelHeader:
    name: str


@dataclass(frozen=True)
class HttpUseService:
    """`http-request use-service <name>`: answer from a built-in service (a final action)."""

    service: str  # only "prometheus-exporter"


HttpAction = (
    HttpReturn | HttpDeny | HttpRedirectScheme | HttpSetHeader | HttpDelHeader | HttpUseService
)


@dataclass(frozen=True)
class HttpRequestRule:
    location: SourceLocation
    action: HttpAction
    condition: Condition | None = None


@dataclass(frozen=True)
class UseBackendRule:
    location: SourceLocation
    backend: str
    condition: Condition | None = None


@dataclass(frozen=True)
class ServerOptions:
    """Options of a `server` or `default-server` line; None means "not written"."""

    check: bool | None = None
    inter_ms: int | None = None
    rise: int | None = None
    fall: int | None = None
    weight: int | None = None
    backup: bool | None = None
    disabled: bool | None = None
    maxconn: int | None = None
    send_proxy: ProxyProtocol | None = None
    ssl: bool | None = None
    verify: Verify | None = None
    ca_file: str | None = None
    sni: str | None = None


@dataclass(frozen=True)
class Server:
    """A backend server with defaults applied."""

    location: SourceLocation
    name: str
    address: SocketAddress
    check: bool = False
    inter_ms: int = 2000
    rise: int = 2
    fall: int = 3
    weight: int = 1
    backup: bool = False
    disabled: bool = False
    maxconn: int | None = None
    send_proxy: ProxyProtocol = ProxyProtocol.NONE
    ssl: bool = False
    verify: Verify = Verify.REQUIRED
    ca_file: str | None = None
    sni: str | None = None


@dataclass(frozen=True)
class CrtListEntry:
    """One line of a crt-list file."""

    location: SourceLocation
    crt: str
    crt_path: str
    sni_filters: tuple[str, ...] = ()
    alpn: tuple[str, ...] | None = None
    ocsp_update: bool | None = None
    ocsp_responder: str | None = None
    """staplegate extension: this certificate's OCSP responder instead of its AIA."""
    key: str | None = None
    ocsp: str | None = None
    issuer: str | None = None
    sctl: str | None = None
    ssl_min_ver: TlsVersion | None = None
    ssl_max_ver: TlsVersion | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    verify: Verify | None = None
    ca_file: str | None = None
    crl_file: str | None = None

    @property
    def uses_store_keywords(self) -> bool:
        """HAProxy 3.0+: a line naming any certificate-store keyword."""
        return self.ocsp_update is not None or any(
            v is not None for v in (self.key, self.ocsp, self.issuer, self.sctl)
        )

    @property
    def names_files(self) -> bool:
        """A line naming key/ocsp/issuer/sctl turns sidecar discovery off (HAProxy 3.0+)."""
        return any(v is not None for v in (self.key, self.ocsp, self.issuer, self.sctl))


@dataclass(frozen=True)
class CrtList:
    """A crt-list file referenced from a bind line."""

    path: str
    entries: tuple[CrtListEntry, ...]


@dataclass(frozen=True)
class CrtStoreLoad:
    """`load crt F …` inside a crt-store section; paths as written and resolved."""

    location: SourceLocation
    store: str | None
    crt: str
    crt_path: str
    key_path: str | None = None
    ocsp_path: str | None = None
    issuer_path: str | None = None
    sctl_path: str | None = None
    ocsp_update: bool | None = None
    alias: str | None = None
    ocsp_responder: str | None = None
    """staplegate extension: this certificate's OCSP responder instead of its AIA."""

    @property
    def name(self) -> str:
        """The store name bind lines use: `@store/alias-or-crt`."""
        short = self.alias if self.alias is not None else self.crt
        if self.store is None:
            return f"@/{short}" if self.alias is not None else self.crt_path
        return f"@{self.store}/{short}"


@dataclass(frozen=True)
class CrtStore:
    location: SourceLocation
    name: str | None
    crt_base: str | None
    key_base: str | None
    loads: tuple[CrtStoreLoad, ...]


class CertSourceKind(enum.Enum):
    """What a bind line's `crt`/`crt-list` argument turned out to be."""

    FILE = "file"
    DIRECTORY = "directory"
    CRT_LIST = "crt-list"
    STORE = "store"


@dataclass(frozen=True)
class CertSource:
    """One `crt X` or `crt-list X` argument of a bind line, before and after resolution."""

    location: SourceLocation
    keyword: str
    written: str
    path: str
    kind: CertSourceKind = CertSourceKind.FILE
    directory_files: tuple[str, ...] = ()
    crt_list: CrtList | None = None


@dataclass(frozen=True)
class Bind:
    """A `bind` line."""

    location: SourceLocation
    text: str
    addresses: tuple[SocketAddress, ...]
    ssl: bool = False
    cert_sources: tuple[CertSource, ...] = ()
    alpn: tuple[str, ...] | None = None
    ssl_options: SslOptions = SslOptions()
    ciphers: str | None = None
    ciphersuites: str | None = None
    strict_sni: bool = False
    accept_proxy: bool = False
    client_auth: ClientAuth = ClientAuth()

    @property
    def name(self) -> str:
        """HAProxy's label for the line in messages: `bind <first argument>`."""
        return f"bind {self.text}"


@dataclass(frozen=True)
class ProxyOptions:
    """`option …` flags; None means "not written here" so defaults can fill it."""

    httplog: bool | None = None
    tcplog: bool | None = None
    forwardfor: bool | None = None
    forwardfor_header: str | None = None
    httpchk: bool | None = None
    httpchk_method: str | None = None
    httpchk_uri: str | None = None
    httpchk_expect_status: int | None = None  # `http-check expect status N`
    redispatch: bool | None = None
    dontlognull: bool | None = None


@dataclass(frozen=True)
class ProxySettings:
    """What a `defaults` section can carry and a proxy inherits (None = not set)."""

    mode: Mode | None = None
    timeouts: Timeouts = Timeouts()
    options: ProxyOptions = ProxyOptions()
    log_global: bool | None = None
    logs: tuple[LogTarget, ...] = ()
    maxconn: int | None = None
    balance: Balance | None = None
    retries: int | None = None
    default_backend: str | None = None
    default_server: ServerOptions = ServerOptions()


@dataclass(frozen=True)
class Defaults:
    location: SourceLocation
    name: str | None
    settings: ProxySettings


@dataclass(frozen=True)
class StatsPage:
    """A proxy's `stats` lines (HAProxy: any of them enables the page)."""

    location: SourceLocation
    uri: str = "/haproxy?stats"
    refresh_s: int | None = None
    auth: tuple[str, ...] = ()  # `user:password` pairs; empty: no authentication
    realm: str | None = None
    hide_version: bool = False
    show_legends: bool = False
    node: str | None = None
    scope: tuple[str, ...] = ()


@dataclass(frozen=True)
class Frontend:
    """A frontend, or the frontend half of a `listen` section; defaults already applied."""

    location: SourceLocation
    name: str
    kind: ProxyKind
    mode: Mode
    settings: ProxySettings
    binds: tuple[Bind, ...]
    default_backend: str | None
    use_backends: tuple[UseBackendRule, ...] = ()
    http_request_rules: tuple[HttpRequestRule, ...] = ()
    stats: StatsPage | None = None

    @property
    def timeouts(self) -> Timeouts:
        return self.settings.timeouts

    @property
    def maxconn(self) -> int | None:
        return self.settings.maxconn


@dataclass(frozen=True)
class Backend:
    """A backend, or the backend half of a `listen` section; defaults already applied."""

    location: SourceLocation
    name: str
    kind: ProxyKind
    mode: Mode
    settings: ProxySettings
    balance: Balance
    servers: tuple[Server, ...]
    http_request_rules: tuple[HttpRequestRule, ...] = ()

    @property
    def timeouts(self) -> Timeouts:
        return self.settings.timeouts


@dataclass(frozen=True)
class CertificateReference:
    """One place a certificate is used: a bind `crt`, a crt-list line or a crt-store load."""

    name: str
    crt_path: Path
    key_path: Path | None
    ocsp_path: Path | None
    issuer_path: Path | None
    sctl_path: Path | None
    ocsp_update: bool | None
    effective_ocsp_update: bool
    origin: CertOrigin
    discover_sidecars: bool
    location: SourceLocation
    frontend: str | None = None
    bind: str | None = None
    bind_location: SourceLocation | None = None
    crt_list: str | None = None
    alpn: tuple[str, ...] | None = None
    sni_filters: tuple[str, ...] = ()
    ssl_min_ver: TlsVersion | None = None
    ssl_max_ver: TlsVersion | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    verify: Verify | None = None
    ca_file: str | None = None
    crl_file: str | None = None
    ocsp_responder: str | None = None
    """The responder asked instead of the AIA (`ocsp-responder`, `ocsp-update.responder-url`)."""

    @property
    def file(self) -> str:
        return self.location.file

    @property
    def line(self) -> int:
        return self.location.line


@dataclass(frozen=True)
class Config:
    """A configuration that passed every check."""

    global_: GlobalSettings
    defaults: tuple[Defaults, ...]
    frontends: tuple[Frontend, ...]
    backends: tuple[Backend, ...]
    crt_stores: tuple[CrtStore, ...]
    files: tuple[str, ...] = ()
    references: tuple[CertificateReference, ...] = field(default=())

    @property
    def listens(self) -> tuple[str, ...]:
        """Names of `listen` sections (each appears in both frontends and backends)."""
        return tuple(f.name for f in self.frontends if f.kind is ProxyKind.LISTEN)

    def frontend(self, name: str) -> Frontend:
        for item in self.frontends:
            if item.name == name:
                return item
        raise KeyError(name)

    def backend(self, name: str) -> Backend:
        for item in self.backends:
            if item.name == name:
                return item
        raise KeyError(name)

    def certificate_references(self) -> tuple[CertificateReference, ...]:
        """Every certificate use in configuration order (crt-store loads where defined)."""
        return self.references
