"""The immutable configuration model: what staplegate understood from an HAProxy config.

Every value is a frozen dataclass or an enum; times are integers in milliseconds unless a
field name says `_s` (seconds). Each element remembers where it was written.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from staplegate.config.diagnostics import SourceLocation
from staplegate.config.samples import SampleExpression
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
    RANDOM = "random"  # `random[(draws)]`: the least loaded of `draws` weighted random picks


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


@dataclass(frozen=True)
class ErrorFile:
    """`errorfile <code> <file>`: the file answered instead of HAProxy's error `status`."""

    location: SourceLocation
    status: int
    path: str


class UseSrc(enum.Enum):
    """What `source … usesrc` presents to servers (full transparent proxy)."""

    ADDRESS = "address"  # a fixed address (and port)
    CLIENT = "client"  # the client's address and port
    CLIENT_IP = "clientip"  # the client's address, any free port


@dataclass(frozen=True)
class SourceBinding:
    """`source <addr>[:<port>] [usesrc …]`: the address backend connections come from.

    `host` is also the health checks' source; "0.0.0.0"/"::" with port 0 leaves the choice to
    the system. `usesrc` applies to forwarded connections only, never to health checks.
    """

    host: str
    port: int = 0
    usesrc: UseSrc | None = None
    usesrc_host: str | None = None  # with UseSrc.ADDRESS
    usesrc_port: int = 0

    @property
    def per_client(self) -> bool:
        """Whether a connection made for one client must never carry another's requests."""
        return self.usesrc is UseSrc.CLIENT or self.usesrc is UseSrc.CLIENT_IP


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
    """The sample fetches staplegate evaluates in conditions (`config/parser/rules.py` maps
    HAProxy's names and derived keywords such as `path_beg` or `hdr_sub(x)` onto these)."""

    SSL_FC_SNI = "ssl_fc_sni"
    REQ_SSL_SNI = "req.ssl_sni"
    SSL_FC = "ssl_fc"
    SSL_FC_ALPN = "ssl_fc_alpn"  # the protocol the client's TLS handshake agreed on
    SSL_C_USED = "ssl_c_used"  # a client certificate was presented (boolean)
    SSL_C_VERIFY = "ssl_c_verify"  # its verification result, an X509_V_ERR code (integer)
    SSL_C_S_DN = "ssl_c_s_dn"  # the client certificate's subject (or one entry of it)
    SSL_C_I_DN = "ssl_c_i_dn"  # its issuer
    HDR_HOST = "hdr(host)"  # mode http only: the request's Host header, as sent
    PATH = "path"  # mode http only: the request's path, without the query string
    SRC = "src"  # the client's address (the PROXY header's source on accept-proxy binds)
    ALWAYS_TRUE = "always_true"
    ALWAYS_FALSE = "always_false"
    # mode http only, from the request
    HDR = "hdr"  # every comma-separated value of the header named by `arg`
    FHDR = "req.fhdr"  # every full line of the header named by `arg` (commas kept)
    HDR_CNT = "hdr_cnt"  # how many values the header named by `arg` has (integer)
    URL = "url"  # the request target as sent
    URL_IP = "url_ip"  # an absolute-form target's host, when it is an IP address
    URL_PORT = "url_port"  # an absolute-form target's port (80 for http, 443 for https)
    QUERY = "query"  # after the first `?`
    URL_PARAM = "url_param"  # the value of the query parameter named by `arg`
    METHOD = "method"
    BASE = "base"  # Host then path
    # the connection
    DST_PORT = "dst_port"  # the port the client connected to (integer)
    SRC_PORT = "src_port"
    # mode tcp, plain binds with `tcp-request inspect-delay`: the client's first bytes
    REQ_SSL_HELLO_TYPE = "req.ssl_hello_type"  # 1 when they are a TLS ClientHello
    REQ_SSL_ALPN = "req.ssl_alpn"  # the first protocol its ALPN extension offers
    REQ_LEN = "req.len"  # how many bytes were read
    # HAProxy's `HTTP` ACL: the request is HTTP (always in mode http; in mode tcp, the first
    # bytes read hold an HTTP/1.x request line)
    REQ_PROTO_HTTP = "req.proto_http"
    VAR = "var"  # a variable `set-var` stored for this request (`arg`: "txn.name")
    NBSRV = "nbsrv"  # usable servers of the backend named by `arg` (integer)
    # mode http: the request's Basic credentials checked against the `userlist` in `auth`
    HTTP_AUTH = "http_auth"  # valid for some user of the list (boolean)
    HTTP_AUTH_GROUP = "http_auth_group"  # the valid user belongs to one of `values` (groups)
    # mode http, `http-response` / `http-after-response` rules only: the server's answer
    STATUS = "status"  # its status code (integer)
    RES_HDR = "res.hdr"  # every comma-separated value of its header named by `arg`
    RES_HDR_CNT = "res.hdr_cnt"  # how many values that header has (integer)
    ANY_OF = "acl"  # a named ACL written on several lines: true when any line is (`members`)


class AclMatch(enum.Enum):
    """HAProxy's pattern matching methods (`-m`)."""

    EXACT = "str"
    BEGIN = "beg"
    END = "end"
    SUB = "sub"
    REG = "reg"
    DOM = "dom"  # a whole dot/slash-delimited word
    DIR = "dir"  # a whole slash-delimited word
    FOUND = "found"  # the fetch returned something
    LEN = "len"  # the length of the value, against integer patterns
    INT = "int"  # the value as an integer, against integer patterns
    BOOL = "bool"  # the value is non-zero (booleans: true)
    IP = "ip"  # addresses and networks (`networks`)


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
    ssl_server_verify: Verify | None = None  # `ssl-server-verify`: servers without `verify`
    external_check: bool = False  # `external-check`: proxies may run check commands
    default_path: str | None = None  # `default-path`: where relative file paths start
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


_BOOLEAN_FETCHES = frozenset(
    (
        AclFetch.SSL_FC,
        AclFetch.SSL_C_USED,
        AclFetch.ALWAYS_TRUE,
        AclFetch.ALWAYS_FALSE,
        AclFetch.HTTP_AUTH,
    )
)


class PasswordScheme(enum.Enum):
    """How a `userlist` password is written: in clear (`insecure-password`) or as one of
    the crypt(3) hashes staplegate verifies (`password`)."""

    INSECURE = "insecure-password"
    MD5_CRYPT = "$1$"
    BCRYPT = "$2"  # $2a$, $2b$, $2y$
    SHA256_CRYPT = "$5$"
    SHA512_CRYPT = "$6$"


@dataclass(frozen=True, eq=False)
class UserlistUser:
    """One `user` line; `secret` is the hash (or the clear password) and is never logged
    nor shown (its repr hides it)."""

    name: str
    scheme: PasswordScheme | None  # None: a user without password never authenticates
    secret: str = field(repr=False)
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, eq=False)
class Userlist:
    """A `userlist` section: its users and, per group, the users in it (both from
    `group … users …` and `user … groups …`). Compared by identity: the data plane's
    verification cache keys on the list of one generation."""

    location: SourceLocation
    name: str
    users: Mapping[str, UserlistUser]
    groups: frozenset[str] = frozenset()  # every `group` line's name

    def in_group(self, user: str, groups: tuple[str, ...]) -> bool:
        entry = self.users.get(user)
        return entry is not None and not entry.groups.isdisjoint(groups)


@dataclass(frozen=True, eq=False)
class UserlistRef:
    """A condition's reference to a `userlist` by name. HAProxy resolves it once the whole
    configuration is read (a list may be declared after its use), so `lists` is the
    parser's table of lists, complete when parsing ends and never changed after."""

    name: str
    lists: Mapping[str, Userlist] = field(repr=False)

    @property
    def userlist(self) -> Userlist | None:
        return self.lists.get(self.name)


@dataclass(frozen=True)
class AclTerm:
    """`ssl_fc_sni -i a b` style test: true when the fetched value matches any value.

    Patterns are compiled when the configuration is read, never per request: `src` keeps its
    values as `networks`, `-m reg` as `regexes`, integer matches as inclusive `ranges`
    (None: unbounded). `arg` is the fetch's argument (a header or parameter name, lower case
    for headers; a DN entry). A named ACL declared on several lines is one ANY_OF term.
    """

    fetch: AclFetch
    values: tuple[str, ...] = ()
    ignore_case: bool = False
    match: AclMatch = AclMatch.EXACT
    negated: bool = False
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    arg: str | None = None
    occurrence: int | None = None  # `hdr(name,occ)`: only that occurrence (-1: the last)
    regexes: tuple[re.Pattern[str], ...] = ()
    ranges: tuple[tuple[int | None, int | None], ...] = ()
    members: tuple[AclTerm, ...] = ()
    converters: tuple[str, ...] = ()  # `lower`/`upper` applied to the fetched value
    auth: UserlistRef | None = None  # `http_auth(L)`, `http_auth_group(L)`: the list L

    def __post_init__(self) -> None:
        # a term built with the default match keeps the meaning it had before `-m` existed
        if self.match is AclMatch.EXACT and not self.values and self.fetch in _BOOLEAN_FETCHES:
            object.__setattr__(self, "match", AclMatch.BOOL)
        if self.match is AclMatch.EXACT and self.fetch is AclFetch.SRC and self.networks:
            object.__setattr__(self, "match", AclMatch.IP)


@dataclass(frozen=True)
class Condition:
    """`if|unless` followed by terms that must all be true (AND); `||` (or `or`) starts
    another group of terms in `alternatives`: the condition holds when any group does."""

    unless: bool
    terms: tuple[AclTerm, ...]
    alternatives: tuple[tuple[AclTerm, ...], ...] = ()

    @property
    def groups(self) -> tuple[tuple[AclTerm, ...], ...]:
        """Every AND group, the first one being `terms`."""
        return (self.terms, *self.alternatives)

    def all_terms(self) -> tuple[AclTerm, ...]:
        """Every term, named ACLs' lines included (for checks on which fetches are used)."""
        found: list[AclTerm] = []
        pending = [t for group in self.groups for t in group]
        while pending:
            term = pending.pop()
            found.append(term)
            pending.extend(term.members)
        return tuple(found)


@dataclass(frozen=True)
class HttpReturn:
    status: int
    content_type: str | None = None
    body: str | None = None
    file: str | None = None
    log_format: bool = False  # `lf-string`: `body` holds `%[…]` evaluated per request


@dataclass(frozen=True)
class HttpDeny:
    status: int = 403


@dataclass(frozen=True)
class HttpSetStatus:
    """`http-response set-status N [reason R]`: the status line the client sees (the body
    and its framing stay the server's)."""

    status: int
    reason: str | None = None


@dataclass(frozen=True)
class HttpAuth:
    """`http-request auth [realm R]`: 401 asking for Basic credentials (`realm` already
    defaulted to the proxy's name, or to the stats realm for `stats http-request`)."""

    realm: str


@dataclass(frozen=True)
class HttpAllow:
    """`stats http-request allow`: stop evaluating the rules and serve the page."""


@dataclass(frozen=True)
class HttpRedirectScheme:
    scheme: str
    code: int = 302
    drop_query: bool = False
    append_slash: bool = False


@dataclass(frozen=True)
class MonitorFail:
    """One `monitor fail if|unless COND` line."""

    location: SourceLocation
    condition: Condition


@dataclass(frozen=True)
class HttpSetVar:
    """`http-request set-var(NAME) EXPR` (`expression`), `set-var-fmt(NAME) FMT` (`value`),
    `unset-var(NAME)` (`unset`): a variable of this request, read back by `var(NAME)`."""

    name: str  # with its scope: "txn.path_match"
    expression: SampleExpression | None = None
    value: str = ""
    unset: bool = False


@dataclass(frozen=True)
class HttpSetTarget:
    """`http-request set-path|set-pathq|set-query|set-uri FMT`: rewrites that part of the
    request target (later rules and routing see the new one)."""

    part: str  # "path", "pathq", "query" or "uri"
    value: str  # a log-format string (literal text and `%[…]`)


@dataclass(frozen=True)
class HttpSetDst:
    """`http-request set-dst EXPR` / `set-dst-port EXPR`: where a server line without an
    address (`0.0.0.0`) or without a port connects for this request."""

    port: bool  # set-dst-port
    expression: SampleExpression


@dataclass(frozen=True)
class HttpReplace:
    """`replace-header|replace-value NAME REGEX FMT` and `replace-path|replace-pathq|
    replace-uri REGEX FMT`: where REGEX is found, the whole value (each header line, each
    comma-separated value, or that part of the target) becomes FMT, its `\\1`…`\\9` taken
    from the match (HAProxy's rule)."""

    part: str  # "header", "value", "path", "pathq" or "uri"
    name: str | None  # the header's, for "header" and "value"
    regex: re.Pattern[str]
    replacement: str  # a log-format string, expanded before the back-references


@dataclass(frozen=True)
class HttpMonitor:
    """`monitor-uri` (and the frontend's `monitor fail` conditions), run before the rules:
    a request for `uri` is answered 200, or 503 when a `monitor fail` condition holds."""

    uri: str
    fail: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class HttpRedirect:
    """`redirect location|prefix VALUE` (`http-request redirect` or the `redirect` keyword):
    `location` is the whole Location (a log-format string: `%[…]` allowed); `prefix` comes
    before the request's path and query (a prefix of `/` keeps the path alone)."""

    kind: str  # "location" or "prefix"
    value: str
    code: int = 302
    drop_query: bool = False
    append_slash: bool = False


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
    HttpSetVar
    | HttpRedirect
    | HttpMonitor
    | HttpSetTarget
    | HttpReplace
    | HttpSetDst
    | HttpReturn
    | HttpDeny
    | HttpSetStatus
    | HttpAuth
    | HttpAllow
    | HttpRedirectScheme
    | HttpSetHeader
    | HttpDelHeader
    | HttpUseService
)


@dataclass(frozen=True)
class HttpRequestRule:
    """One rule (`http-request`, `redirect`, and the header rules of `http-response` and
    `http-after-response`): where, what, and when."""

    location: SourceLocation
    action: HttpAction
    condition: Condition | None = None


@dataclass(frozen=True)
class TcpContentRule:
    """`tcp-request content accept|reject [if|unless COND]`."""

    location: SourceLocation
    accept: bool
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
    check_port: int | None = None  # `port N`: the health checks' port
    cookie: str | None = None  # `cookie VALUE`: this server's persistence cookie
    minconn: int | None = None  # `minconn N`: the dynamic limit's floor (with maxconn)
    slowstart_ms: int | None = None  # `slowstart T`: ramp after coming back up
    source: SourceBinding | None = None  # `source …`: overrides the backend's `source`


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
    verify: Verify | None = None  # None: `ssl-server-verify` (default required)
    ca_file: str | None = None
    sni: str | None = None
    check_port: int | None = None
    cookie: str | None = None
    minconn: int | None = None
    slowstart_ms: int | None = None
    source: SourceBinding | None = None


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
    # `option forwardfor except NET`: no header for clients in it ("" = written without)
    forwardfor_except: str | None = None
    forwardfor_if_none: bool | None = None  # `if-none`: keep a header the client sent
    httpchk: bool | None = None
    httpchk_method: str | None = None
    httpchk_uri: str | None = None
    httpchk_expect_status: int | None = None  # `http-check expect status N`
    # `http-check expect [!] rstatus|string|rstring PATTERN` (and a negated status)
    httpchk_expect: tuple[str, str, bool] | None = None
    httpchk_version: str | None = None  # `http-check send ver V` (else HTTP/1.0)
    httpchk_headers: tuple[tuple[str, str], ...] | None = None  # `http-check send hdr N V`
    redispatch: bool | None = None
    dontlognull: bool | None = None
    http_ignore_probes: bool | None = None  # no 408 and no log for a connection that sent nothing


@dataclass(frozen=True)
class CookiePersistence:
    """`cookie NAME insert [indirect] [nocache] [httponly] [secure] [domain D]`: a client
    keeps its server through a cookie staplegate inserts (HAProxy's insert mode)."""

    name: str
    indirect: bool = False
    nocache: bool = False
    httponly: bool = False
    secure: bool = False
    domain: str | None = None


@dataclass(frozen=True)
class TcpCheckStep:
    """One `tcp-check` rule: `send` (bytes out) or `expect` (`negate`d or not, `kind`
    string, rstring or binary, against `pattern`; or `mysql`: one MySQL packet that is not
    an error packet, `option mysql-check`'s, `pattern` naming which)."""

    action: str  # "send", "expect", or HAProxy's numbered markers "connect" and "comment"
    data: bytes = b""  # send: what to write; expect string/binary: what to find
    kind: str = ""  # expect: "string", "rstring", "binary" or "mysql"
    pattern: str = ""  # expect: as written (rstring: the regular expression); comment: its text
    negate: bool = False


@dataclass(frozen=True)
class ProxySettings:
    """What a `defaults` section can carry and a proxy inherits (None = not set)."""

    mode: Mode | None = None
    timeouts: Timeouts = Timeouts()
    options: ProxyOptions = ProxyOptions()
    log_global: bool | None = None
    no_log: bool | None = None  # `no log`: this proxy logs nothing (no httplog/tcplog lines)
    logs: tuple[LogTarget, ...] = ()
    maxconn: int | None = None
    balance: Balance | None = None
    balance_draws: int | None = None  # `balance random(N)` (HAProxy's default: 2)
    fullconn: int | None = None  # `fullconn`: the load at which `minconn` servers reach maxconn
    tcp_check: tuple[TcpCheckStep, ...] | None = None  # `option tcp-check` and its rules
    external_check: bool | None = None  # `option external-check`
    external_check_command: str | None = None  # `external-check command PATH`
    external_check_path: str | None = None  # `external-check path PATH` (the command's PATH)
    retries: int | None = None
    default_backend: str | None = None
    default_server: ServerOptions = ServerOptions()
    monitor_uri: str | None = None  # `monitor-uri`: answered 200 (503 on `monitor fail`)
    cookie: CookiePersistence | None = None  # `cookie NAME insert …`
    inspect_delay_ms: int | None = None  # `tcp-request inspect-delay`
    unique_id_format: str | None = None  # `unique-id-format` (log-format)
    unique_id_header: str | None = None  # `unique-id-header`: sent to servers
    source: SourceBinding | None = None  # `source …`: where server connections come from
    errorfiles: tuple[ErrorFile, ...] = ()  # `errorfile`: at most one per status


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
    description: str | None = None  # `stats show-desc [text]`; "" without text
    scope: tuple[str, ...] = ()
    admin: Condition | None = None  # `stats admin if|unless <cond>`: server actions allowed
    admin_rule: str | None = None  # that condition as written (`-c -V` shows it)
    # `stats http-request allow|deny|auth` (HAProxy: not with `stats auth`/`stats realm`)
    rules: tuple[HttpRequestRule, ...] = ()


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
    monitor_fail: tuple[MonitorFail, ...] = ()  # `monitor fail if|unless …` (any fails)
    # `http-response` / `http-after-response` header rules (set-header, add-header, del-header)
    http_response_rules: tuple[HttpRequestRule, ...] = ()
    http_after_response_rules: tuple[HttpRequestRule, ...] = ()
    tcp_content_rules: tuple[TcpContentRule, ...] = ()

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
    http_response_rules: tuple[HttpRequestRule, ...] = ()
    http_after_response_rules: tuple[HttpRequestRule, ...] = ()
    # a `backend` section's own `tcp-request content` rules (a listen's are its frontend's)
    tcp_content_rules: tuple[TcpContentRule, ...] = ()

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
