"""What staplegate knows about HAProxy's keywords: supported, ignored, refused, unknown.

A keyword HAProxy accepts but staplegate does not implement is either *ignored* (it cannot
change what clients or servers see: process management, logging cosmetics, tuning) and gets
a warning, or *refused* (it would change traffic) and gets an error. Anything else is
unknown, with a difflib suggestion taken from every keyword HAProxy knows in that section.
"""

from __future__ import annotations

import difflib
import enum

from staplegate.config.diagnostics import Reason


class Section(enum.Enum):
    GLOBAL = "global"
    DEFAULTS = "defaults"
    FRONTEND = "frontend"
    BACKEND = "backend"
    LISTEN = "listen"
    CRT_STORE = "crt-store"


PROXY_SECTIONS = frozenset({Section.DEFAULTS, Section.FRONTEND, Section.BACKEND, Section.LISTEN})

# sections HAProxy has whose only uses are keywords staplegate refuses anyway
IGNORED_SECTIONS = frozenset(
    {
        "userlist",
        "peers",
        "resolvers",
        "mailers",
        "program",
        "http-errors",
        "ring",
        "cache",
        "fcgi-app",
        "traces",
        "acme",
    }
)
REFUSED_SECTIONS = frozenset({"log-forward"})

GLOBAL_SUPPORTED = frozenset(
    {
        "ocsp-update.mode",
        "ocsp-update.mindelay",
        "ocsp-update.maxdelay",
        "ocsp-update.httpproxy",
        "ocsp-update.disable",
        "ocsp-update.maxconn",
        "ocsp-update.rate-limit",
        "tune.ssl.ocsp-update.mindelay",
        "tune.ssl.ocsp-update.maxdelay",
        "crt-base",
        "key-base",
        "ca-base",
        "issuers-chain-path",
        "stats socket",
        "stats timeout",
        "stats maxconn",
        "log",
        "log-tag",
        "nbthread",
        "maxconn",
        "pidfile",
        "daemon",
        "user",
        "group",
        "hard-stop-after",
        "ssl-default-bind-ciphers",
        "ssl-default-bind-ciphersuites",
        "ssl-default-bind-options",
        "ssl-default-server-ciphers",
        "ssl-default-server-ciphersuites",
        "ssl-default-server-options",
        "ssl-load-extra-files",
        "ssl-load-extra-del-ext",
        "ssl-skip-self-issued-ca",
        "ssl-dh-param-file",
        "tune.ssl.default-dh-param",
        "tune.http.maxhdr",
        "zero-warning",
        "httpclient.timeout.connect",
        "httpclient.retries",
        "httpclient.resolvers.prefer",
        "httpclient.resolvers.disabled",
        "httpclient.ssl.verify",
        "httpclient.ssl.ca-file",
    }
)

# parsed, stored where useful, but they change nothing staplegate does: warn
GLOBAL_PARSED_BUT_IGNORED: dict[str, str] = {
    "daemon": "staplegate runs in the foreground under its supervisor",
    "user": "start staplegate as the intended user instead",
    "group": "start staplegate with the intended group instead",
    "ssl-skip-self-issued-ca": "each certificate's chain is sent as its file holds it",
    "tune.ssl.default-dh-param": "without ssl-dh-param-file, OpenSSL sizes the DHE group "
    "to the certificate's key",
    "ssl-default-server-ciphersuites": "Python's ssl module cannot restrict TLS 1.3 suites: "
    "server connections offer OpenSSL's defaults, all of them AEAD",
    "httpclient.resolvers.prefer": "OCSP fetches use the system resolver's order",
    "httpclient.resolvers.disabled": "OCSP fetches use the system resolver",
}

GLOBAL_IGNORED: dict[str, str] = {
    "chroot": "staplegate does not chroot",
    "uid": "start staplegate as the intended user instead",
    "gid": "start staplegate with the intended group instead",
    "log-send-hostname": "syslog headers carry the host name staplegate chooses",
    "node": "it only labels statistics",
    "description": "it only labels statistics",
    "master-worker": "staplegate always runs a master and workers",
    "ulimit-n": "set file descriptor limits in the service manager",
    "fd-hard-limit": "set file descriptor limits in the service manager",
    "cpu-map": "workers are not pinned to CPUs",
    "cpu-policy": "workers are not pinned to CPUs",
    "thread-groups": "workers are processes",
    "numa-cpu-mapping": "workers are not pinned to CPUs",
    "set-dumpable": "it only affects core dumps",
    "insecure-fork-wanted": "it only affects Lua and external checks",
    "strict-limits": "it only affects startup limits",
    "mworker-max-reloads": "reloads are not counted",
    "quiet": "it only affects startup output",
    "busy-polling": "it is an event-loop tuning",
    "noepoll": "it is an event-loop tuning",
    "nopoll": "it is an event-loop tuning",
    "nosplice": "it is an I/O tuning",
    "nogetaddrinfo": "it is a resolver tuning",
    "noreuseport": "it is a socket tuning",
    "maxpipes": "it is an I/O tuning",
    "maxzlibmem": "compression is not supported",
    "spread-checks": "health checks are spread by staplegate's own rules",
    "server-state-base": "server state is not persisted",
    "server-state-file": "server state is not persisted",
    "ssl-mode-async": "it is an engine tuning",
    "localpeer": "peers are not supported",
    "profiling.tasks": "it is a debugging aid",
    "profiling.memory": "it is a debugging aid",
    "expose-experimental-directives": "no experimental directive is supported",
    "close-spread-time": "connections close when their drain deadline expires",
    "grace": "reloads drain until hard-stop-after",
    "httpclient.resolvers.id": "OCSP fetches use the system resolver",
    "unix-bind": "UNIX listeners are not supported",
    "cluster-secret": "QUIC is not supported",
    "pp2-never-send-local": "it only affects PROXY v2 health checks",
    "h1-accept-payload-with-any-method": "it only relaxes request parsing",
}

GLOBAL_REFUSED = frozenset(
    {
        "nbproc",
        "setenv",
        "presetenv",
        "unsetenv",
        "resetenv",
        "default-path",
        "lua-load",
        "lua-load-per-thread",
        "lua-prepend-path",
        "maxconnrate",
        "maxsessrate",
        "maxsslconn",
        "maxsslrate",
        "maxcomprate",
        "maxcompcpuusage",
        "ssl-engine",
        "ssl-provider",
        "ssl-provider-path",
        "ssl-propquery",
        "ssl-server-verify",
        "ssl-security-level",
        "ssl-default-bind-curves",
        "ssl-default-bind-sigalgs",
        "ssl-default-bind-client-sigalgs",
        "ssl-default-server-curves",
        "external-check",
        "h1-case-adjust",
        "h1-case-adjust-file",
        "h2-workaround-bogus-websocket-clients",
        "set-var",
        "set-var-fmt",
        "wurfl-data-file",
        "deviceatlas-json-file",
        "51degrees-data-file",
        "httpclient.ssl.verify-hostname",
        "tune.ssl.ocsp-update.mode",
        "stats bind-process",
    }
)

PROXY_SUPPORTED = frozenset(
    {
        "mode",
        "timeout connect",
        "timeout client",
        "timeout server",
        "timeout http-request",
        "timeout http-keep-alive",
        "timeout check",
        "timeout queue",
        "timeout tunnel",
        "timeout client-fin",
        "timeout server-fin",
        "timeout tarpit",
        "option httplog",
        "option httpslog",
        "option tcplog",
        "option forwardfor",
        "option httpchk",
        "option redispatch",
        "option dontlognull",
        "log",
        "maxconn",
        "default_backend",
        "use_backend",
        "http-request return",
        "http-request deny",
        "http-request redirect",
        "http-request set-header",
        "http-request add-header",
        "http-request del-header",
        "balance",
        "server",
        "default-server",
        "bind",
        "retries",
        "acl",
    }
)

PROXY_IGNORED: dict[str, str] = {
    "errorfile": "staplegate serves its own error responses",
    "stats timeout": "it has no meaning in a proxy section",
    "option dontlognull": "staplegate logs every connection",
    "option log-health-checks": "health check changes are always logged",
    "option http-server-close": "staplegate manages server connections itself",
    "option http-keep-alive": "staplegate keeps client connections alive per HTTP/1.1",
    "option http-buffer-request": "it is a buffering tuning",
    "option logasap": "it only changes when log lines are emitted",
    "option contstats": "it only changes statistics",
    "option splice-auto": "it is an I/O tuning",
    "option splice-request": "it is an I/O tuning",
    "option splice-response": "it is an I/O tuning",
    "option tcpka": "it is a socket tuning",
    "option clitcpka": "it is a socket tuning",
    "option srvtcpka": "it is a socket tuning",
    "option nolinger": "it is a socket tuning",
    "option socket-stats": "it only changes statistics",
    "option log-separate-errors": "it only changes log levels",
    "option abortonclose": "aborted requests are always released",
    "option prefer-last-server": "it is a connection reuse tuning",
    "option dontlog-normal": "every connection is logged",
    "option independent-streams": "it only changes how timeouts are refreshed",
    "log-format": "staplegate writes HAProxy's default formats",
    "log-tag": "it only labels log lines",
    "description": "it only labels statistics",
    "id": "it only numbers statistics",
    "backlog": "it is a socket tuning",
    "fullconn": "dynamic server limits are not supported",
    "hash-balance-factor": "hash balancing is not supported",
    "http-reuse": "it is a connection reuse tuning ('never' is refused, see REFUSED_VALUES)",
    "email-alert from": "e-mail alerts are not supported",
    "email-alert to": "e-mail alerts are not supported",
    "email-alert mailers": "e-mail alerts are not supported",
    "email-alert level": "e-mail alerts are not supported",
    "email-alert myhostname": "e-mail alerts are not supported",
    "grace": "reloads drain until hard-stop-after",
    "guid": "it only labels the proxy",
    "timeout tarpit": "it only applies to 'http-request tarpit', which is refused",
    "timeout client-fin": "a half-closed connection keeps its 'timeout client' (or "
    "'timeout tunnel') deadline",
    "timeout server-fin": "a half-closed connection keeps its 'timeout server' (or "
    "'timeout tunnel') deadline",
}

# values of an otherwise ignored keyword that would change traffic or security: refused
REFUSED_VALUES: dict[str, dict[str, str]] = {
    "http-reuse": {
        "never": "staplegate returns idle server connections to a pool shared by all clients",
    },
}

PROXY_REFUSED = frozenset(
    {
        "option httpclose",
        "option allbackups",
        "option persist",
        "option tcp-check",
        "option ssl-hello-chk",
        "option mysql-check",
        "option pgsql-check",
        "option redis-check",
        "option smtpchk",
        "option ldap-check",
        "option spop-check",
        "option external-check",
        "option originalto",
        "option transparent",
        "option http-pretend-keepalive",
        "option http-no-delay",
        "option http-ignore-probes",
        "option accept-invalid-http-request",
        "option accept-invalid-http-response",
        "option accept-unsafe-violations-in-http-request",
        "option accept-unsafe-violations-in-http-response",
        "option h1-case-adjust-bogus-client",
        "option h1-case-adjust-bogus-server",
        "option checkcache",
        "option disable-h2-upgrade",
        "option http-restrict-req-hdr-names",
        "option nbsrv",
        "capture",
        "capture request",
        "capture response",
        "compression",
        "cookie",
        "dispatch",
        "errorloc",
        "errorloc302",
        "errorloc303",
        "errorfiles",
        "filter",
        "force-persist",
        "ignore-persist",
        "hash-type",
        "http-after-response",
        "http-check",
        "http-error",
        "http-request",
        "http-response",
        "monitor",
        "monitor-uri",
        "monitor fail",
        "persist",
        "rate-limit",
        "redirect",
        "server-template",
        "source",
        "stats",
        "stats enable",
        "stats uri",
        "stats auth",
        "stats realm",
        "stats refresh",
        "stats admin",
        "stats hide-version",
        "stats show-legends",
        "stats scope",
        "stick",
        "stick match",
        "stick on",
        "stick store-request",
        "stick store-response",
        "stick-table",
        "tcp-check",
        "tcp-request",
        "tcp-request connection",
        "tcp-request content",
        "tcp-request session",
        "tcp-request inspect-delay",
        "tcp-response",
        "tcp-response content",
        "tcp-response inspect-delay",
        "unique-id-format",
        "unique-id-header",
        "use-server",
        "use-fcgi-app",
        "declare capture",
        "disabled",
        "enabled",
        "external-check command",
        "external-check path",
        "load-server-state-from-file",
        "server-state-file-name",
        "max-keep-alive-queue",
        "max-session-srv-conns",
        "retry-on",
        "http-send-name-header",
        "timeout http-check",
        "default_backend-fallback",
        "quic-initial",
    }
)

CRT_STORE_SUPPORTED = frozenset({"crt-base", "key-base", "load"})

BIND_SUPPORTED = frozenset(
    {
        "ssl",
        "crt",
        "crt-list",
        "alpn",
        "ssl-min-ver",
        "ssl-max-ver",
        "ciphers",
        "ciphersuites",
        "strict-sni",
        "accept-proxy",
        "no-sslv3",
        "no-tlsv10",
        "no-tlsv11",
        "no-tlsv12",
        "no-tlsv13",
        "no-tls-tickets",
        "prefer-client-ciphers",
        "verify",
        "ca-file",
        "crl-file",
        "ca-ignore-err",
        "crt-ignore-err",
    }
)
BIND_IGNORED: dict[str, str] = {
    "name": "it only labels statistics",
    "id": "it only numbers statistics",
    "backlog": "it is a socket tuning",
    "defer-accept": "it is a socket tuning",
    "tcp-ut": "it is a socket tuning",
    "nice": "it is a scheduling tuning",
    "thread": "workers are processes",
    "shards": "workers are processes",
    "process": "workers are processes",
    "level": "it only applies to runtime API sockets",
    "severity-output": "it only applies to runtime API sockets",
}
# bind keywords that take one argument (so the argument is skipped with the keyword)
BIND_ARGUMENT_KEYWORDS = frozenset(
    {
        "crt",
        "crt-list",
        "alpn",
        "ssl-min-ver",
        "ssl-max-ver",
        "ciphers",
        "ciphersuites",
        "verify",
        "name",
        "id",
        "backlog",
        "tcp-ut",
        "nice",
        "thread",
        "shards",
        "process",
        "level",
        "severity-output",
        "ca-file",
        "ca-verify-file",
        "crl-file",
        "curves",
        "ecdhe",
        "sigalgs",
        "client-sigalgs",
        "npn",
        "interface",
        "namespace",
        "maxconn",
        "mss",
        "mode",
        "user",
        "group",
        "uid",
        "gid",
        "proto",
        "ca-sign-file",
        "ca-sign-pass",
        "crt-ignore-err",
        "ca-ignore-err",
        "default-crt",
        "tls-ticket-keys",
        "quic-cc-algo",
        "label",
        "guid-prefix",
        "idle-ping",
        "ktls",
    }
)
BIND_REFUSED = frozenset(
    {
        "ca-verify-file",
        "curves",
        "ecdhe",
        "sigalgs",
        "client-sigalgs",
        "npn",
        "interface",
        "namespace",
        "maxconn",
        "mss",
        "mode",
        "user",
        "group",
        "uid",
        "gid",
        "proto",
        "transparent",
        "v4v6",
        "v6only",
        "tfo",
        "allow-0rtt",
        "generate-certificates",
        "ca-sign-file",
        "ca-sign-pass",
        "no-ca-names",
        "force-sslv3",
        "force-tlsv10",
        "force-tlsv11",
        "force-tlsv12",
        "force-tlsv13",
        "expose-fd",
        "default-crt",
        "tls-ticket-keys",
        "quic-force-retry",
        "quic-cc-algo",
        "ssl-default-bind-curves",
        "ktls",
        "idle-ping",
        "label",
        "guid-prefix",
        "nbconn",
        "no-alpn",
        "no-strict-sni",
        "no-ssl",
    }
)

SERVER_SUPPORTED = frozenset(
    {
        "check",
        "no-check",
        "inter",
        "rise",
        "fall",
        "weight",
        "backup",
        "no-backup",
        "disabled",
        "enabled",
        "maxconn",
        "send-proxy",
        "send-proxy-v2",
        "no-send-proxy",
        "no-send-proxy-v2",
        "ssl",
        "no-ssl",
        "verify",
        "ca-file",
        "sni",
    }
)
SERVER_IGNORED: dict[str, str] = {
    "fastinter": "health checks use 'inter'",
    "downinter": "health checks use 'inter'",
    "id": "it only numbers statistics",
    "pool-max-conn": "it is a connection reuse tuning",
    "pool-purge-delay": "it is a connection reuse tuning",
    "pool-low-conn": "it is a connection reuse tuning",
    "pool-conn-name": "it is a connection reuse tuning",
    "tfo": "it is a socket tuning",
    "check-sni": "TLS health checks are not supported",
    "init-addr": "addresses are resolved once at startup",
    "log-proto": "it only applies to log servers",
    "guid": "it only labels the server",
}
SERVER_ARGUMENT_KEYWORDS = frozenset(
    {
        "inter",
        "rise",
        "fall",
        "weight",
        "maxconn",
        "verify",
        "ca-file",
        "sni",
        "fastinter",
        "downinter",
        "id",
        "pool-max-conn",
        "pool-purge-delay",
        "pool-low-conn",
        "pool-conn-name",
        "check-sni",
        "init-addr",
        "log-proto",
        "guid",
        "port",
        "addr",
        "cookie",
        "resolvers",
        "resolve-prefer",
        "resolve-opts",
        "resolve-net",
        "observe",
        "on-error",
        "on-marked-down",
        "on-marked-up",
        "error-limit",
        "slowstart",
        "track",
        "agent-port",
        "agent-inter",
        "agent-addr",
        "agent-send",
        "maxqueue",
        "minconn",
        "alpn",
        "npn",
        "proto",
        "redir",
        "source",
        "namespace",
        "ws",
        "crt",
        "ciphers",
        "ciphersuites",
        "ssl-min-ver",
        "ssl-max-ver",
        "check-alpn",
        "check-proto",
        "curves",
        "sigalgs",
        "crl-file",
        "max-reuse",
        "proxy-v2-options",
        "set-proxy-v2-tlv-fmt",
        "shard",
        "usesrc",
        "hash-key",
        "tcp-ut",
        "socks4",
        "mark",
        "tos",
    }
)
SERVER_REFUSED = frozenset(
    SERVER_ARGUMENT_KEYWORDS - SERVER_SUPPORTED - frozenset(SERVER_IGNORED)
    | {
        "agent-check",
        "check-ssl",
        "check-send-proxy",
        "check-via-socks4",
        "force-sslv3",
        "force-tlsv10",
        "force-tlsv11",
        "force-tlsv12",
        "force-tlsv13",
        "no-sslv3",
        "no-tlsv10",
        "no-tlsv11",
        "no-tlsv12",
        "no-tlsv13",
        "no-tls-tickets",
        "allow-0rtt",
        "non-stick",
        "no-agent-check",
        "send-proxy-v2-ssl",
        "send-proxy-v2-ssl-cn",
        "check-reuse-pool",
        "no-verifyhost",
        "verifyhost",
        "strict-maxconn",
    }
)

CRTLIST_SUPPORTED = frozenset(
    {
        "alpn",
        "ocsp-update",
        "ocsp",
        "issuer",
        "key",
        "sctl",
        "ssl-min-ver",
        "ssl-max-ver",
        "ciphers",
        "ciphersuites",
        "verify",
        "ca-file",
        "crl-file",
    }
)
CRTLIST_REFUSED = frozenset(
    {
        "crt",
        "npn",
        "ca-verify-file",
        "curves",
        "ecdhe",
        "sigalgs",
        "client-sigalgs",
        "no-ca-names",
        "allow-0rtt",
        "ca-sign-file",
    }
)
CRTLIST_FLAG_KEYWORDS = frozenset({"no-ca-names", "allow-0rtt"})


class KeywordClass(enum.Enum):
    SUPPORTED = "supported"
    IGNORED = "ignored"
    REFUSED = "refused"
    UNKNOWN = "unknown"


def _section_tables(
    section: Section,
) -> tuple[frozenset[str], dict[str, str], frozenset[str]]:
    if section is Section.GLOBAL:
        return GLOBAL_SUPPORTED, GLOBAL_IGNORED, GLOBAL_REFUSED
    if section is Section.CRT_STORE:
        return CRT_STORE_SUPPORTED, {}, frozenset()
    return PROXY_SUPPORTED, PROXY_IGNORED, PROXY_REFUSED


def classify(section: Section, keyword: str) -> KeywordClass:
    """Classify a (possibly two-word) keyword for `section`."""
    supported, ignored, refused = _section_tables(section)
    if keyword in ignored:
        return KeywordClass.IGNORED
    if keyword in supported:
        return KeywordClass.SUPPORTED
    if keyword in refused:
        return KeywordClass.REFUSED
    return KeywordClass.UNKNOWN


def ignore_reason(section: Section, keyword: str) -> str:
    _, ignored, _ = _section_tables(section)
    return ignored.get(keyword, "it does not change traffic")


def suggest(keyword: str, candidates: frozenset[str] | set[str]) -> str | None:
    """The closest known keyword, if one is close enough to be a likely typo."""
    matches = difflib.get_close_matches(keyword, sorted(candidates), n=1, cutoff=0.7)
    return matches[0] if matches else None


def all_keywords(section: Section) -> frozenset[str]:
    supported, ignored, refused = _section_tables(section)
    return frozenset(supported) | frozenset(ignored) | refused


def refused_message(keyword: str) -> str:
    return (
        f"'{keyword}' is a HAProxy keyword that staplegate does not support "
        "and it would change traffic"
    )


def ignored_message(keyword: str, reason: str) -> str:
    return (
        f"'{keyword}' is a HAProxy keyword that staplegate does not support "
        f"and it is ignored ({reason})"
    )


def parsed_ignored_message(keyword: str, reason: str) -> str:
    return f"'{keyword}' is accepted but ignored by staplegate ({reason})"


def unknown_message(keyword: str, section: Section) -> str:
    hint = suggest(keyword, all_keywords(section))
    suffix = f"; did you mean '{hint}' maybe ?" if hint else "."
    return f"unknown keyword '{keyword}' in '{section.value}' section{suffix}"


__all__ = [
    "IGNORED_SECTIONS",
    "PROXY_SECTIONS",
    "REFUSED_SECTIONS",
    "KeywordClass",
    "Reason",
    "Section",
    "classify",
    "ignore_reason",
    "suggest",
]
