"""Turn lexed configuration lines into a parsed (not yet cross-checked) configuration.

Theory of operation: `ConfigParser.feed()` is called once per file, in order, like HAProxy's
`-f` list; each file starts outside any section. Lines are dispatched on the section and the
(possibly two-word) keyword. Supported keywords update immutable settings with
`dataclasses.replace`; the rest are classified by `keywords` into warnings (ignored) and
errors (refused or unknown). Nothing is raised: every problem becomes a diagnostic and
parsing continues, so one run reports them all. `finish()` returns a `ParsedConfig`; the
semantic pass (`semantic.py`) merges defaults and checks references.
"""

from __future__ import annotations

import grp
import pwd
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from staplegate.config import keywords
from staplegate.config.crtlist import TLS_VERSIONS, join_base, ocsp_update_error, parse_ocsp_update
from staplegate.config.diagnostics import (
    Diagnostic,
    DiagnosticSink,
    Reason,
    SourceLocation,
)
from staplegate.config.keywords import KeywordClass, Section
from staplegate.config.lexer import lex
from staplegate.config.model import (
    EXTRA_FILE_KINDS,
    LOG_FACILITIES,
    LOG_LEVELS,
    AclFetch,
    AclMatch,
    AclTerm,
    Balance,
    Bind,
    CertSource,
    CertSourceKind,
    Condition,
    CrtStore,
    CrtStoreLoad,
    Defaults,
    GlobalSettings,
    HttpAction,
    HttpDelHeader,
    HttpDeny,
    HttpRedirectScheme,
    HttpRequestRule,
    HttpReturn,
    HttpSetHeader,
    LogFormat,
    LogTarget,
    LogTargetKind,
    Mode,
    ProxyKind,
    ProxyProtocol,
    ProxySettings,
    ServerOptions,
    SslOptions,
    StatsLevel,
    StatsSocket,
    Timeouts,
    TlsVersion,
    UseBackendRule,
    Verify,
)
from staplegate.config.values import (
    AddressFamily,
    SocketAddress,
    TimeError,
    TimeParseFailure,
    ValueSyntaxError,
    c_atoi,
    parse_int,
    parse_socket_address,
    parse_time,
)

_NAME_OK = re.compile(r"[A-Za-z0-9_.:-]+")
# what `proxy/httprules.expand` fills in ('%%[' would be ambiguous once '%%' is '%')
_HEADER_SAMPLE = re.compile(r"%\[(?:src|src_port|ssl_fc_sni|ssl_fc)\]")
_TWO_WORD = frozenset(
    {
        "stats",
        "timeout",
        "option",
        "http-request",
        "http-response",
        "http-after-response",
        "tcp-request",
        "tcp-response",
        "email-alert",
        "capture",
        "stick",
        "monitor",
        "external-check",
    }
)
_TIMEOUT_FIELDS = {
    "connect": "connect",
    "client": "client",
    "server": "server",
    "http-request": "http_request",
    "http-keep-alive": "http_keep_alive",
    "check": "check",
    "queue": "queue",
    "tunnel": "tunnel",
    "client-fin": "client_fin",
    "server-fin": "server_fin",
    "tarpit": "tarpit",
}
_HTTP_REQUEST_ACTIONS = frozenset(
    {
        "allow",
        "deny",
        "tarpit",
        "auth",
        "redirect",
        "return",
        "reject",
        "set-header",
        "add-header",
        "del-header",
        "replace-header",
        "replace-value",
        "set-var",
        "set-var-fmt",
        "unset-var",
        "set-path",
        "set-pathq",
        "set-query",
        "set-uri",
        "set-method",
        "set-log-level",
        "set-nice",
        "set-tos",
        "set-mark",
        "set-src",
        "set-dst",
        "set-src-port",
        "set-dst-port",
        "add-acl",
        "del-acl",
        "set-map",
        "del-map",
        "capture",
        "track-sc0",
        "track-sc1",
        "track-sc2",
        "sc-inc-gpc",
        "sc-inc-gpc0",
        "sc-inc-gpc1",
        "sc-set-gpt",
        "sc-set-gpt0",
        "early-hint",
        "use-service",
        "wait-for-body",
        "wait-for-handshake",
        "normalize-uri",
        "set-timeout",
        "do-resolve",
        "cache-use",
        "disable-l7-retry",
        "silent-drop",
        "send-spoe-group",
        "set-bandwidth-limit",
        "set-priority-class",
        "set-priority-offset",
        "strict-mode",
        "lua",
        "set-fc-mark",
        "set-fc-tos",
    }
)
_SUPPORTED_HTTP_ACTIONS = frozenset(
    {"return", "deny", "redirect", "set-header", "add-header", "del-header"}
)
_BALANCE = {b.value: b for b in Balance}
_REFUSED_BALANCE = frozenset(
    {"uri", "url_param", "hdr", "random", "rdp-cookie", "hash", "hdr(host)", "log-hash", "sticky"}
)
_ACL_FETCHES = {
    "ssl_fc_sni": AclFetch.SSL_FC_SNI,
    "req.ssl_sni": AclFetch.REQ_SSL_SNI,
    "req_ssl_sni": AclFetch.REQ_SSL_SNI,
    "ssl_fc": AclFetch.SSL_FC,
    "hdr(host)": AclFetch.HDR_HOST,
    "req.hdr(host)": AclFetch.HDR_HOST,
}
CONDITION_HELP = (
    "staplegate understands only 'if|unless { ssl_fc_sni -i HOST... }' conditions "
    "(also req.ssl_sni, ssl_fc, hdr(host) in mode http, and named ACLs of those forms)"
)


@dataclass(frozen=True)
class RawServer:
    """A `server` line before `default-server` values are applied."""

    location: SourceLocation
    name: str
    address: SocketAddress
    options: ServerOptions


@dataclass(frozen=True)
class RawProxy:
    """A frontend/backend/listen section as written, with the defaults it inherits."""

    location: SourceLocation
    kind: ProxyKind
    name: str
    defaults: Defaults | None
    settings: ProxySettings
    binds: tuple[Bind, ...] = ()
    use_backends: tuple[UseBackendRule, ...] = ()
    http_request_rules: tuple[HttpRequestRule, ...] = ()
    servers: tuple[RawServer, ...] = ()


@dataclass(frozen=True)
class ParsedConfig:
    """Everything the files said, in order, plus the diagnostics so far."""

    global_: GlobalSettings
    defaults: tuple[Defaults, ...]
    proxies: tuple[RawProxy, ...]
    crt_stores: tuple[CrtStore, ...]
    files: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...] = field(default=())


@dataclass
class _ProxyBuilder:
    location: SourceLocation
    kind: ProxyKind
    name: str
    defaults: Defaults | None
    settings: ProxySettings
    binds: list[Bind] = field(default_factory=list)
    use_backends: list[UseBackendRule] = field(default_factory=list)
    rules: list[HttpRequestRule] = field(default_factory=list)
    servers: list[RawServer] = field(default_factory=list)
    acls: dict[str, list[AclTerm]] = field(default_factory=dict)

    def build(self) -> RawProxy:
        return RawProxy(
            self.location,
            self.kind,
            self.name,
            self.defaults,
            self.settings,
            tuple(self.binds),
            tuple(self.use_backends),
            tuple(self.rules),
            tuple(self.servers),
        )


@dataclass
class _DefaultsBuilder:
    location: SourceLocation
    name: str | None
    settings: ProxySettings
    acls: dict[str, list[AclTerm]] = field(default_factory=dict)


@dataclass
class _StoreBuilder:
    location: SourceLocation
    name: str | None
    crt_base: str | None = None
    key_base: str | None = None
    loads: list[CrtStoreLoad] = field(default_factory=list)


class ConfigParser:
    """Feeds files in order and accumulates a ParsedConfig; see the module docstring."""

    def __init__(self, *, env: Mapping[str, str]) -> None:
        self._env = env
        self._sink = DiagnosticSink()
        self._global = GlobalSettings()
        self._defaults: list[Defaults] = []
        self._last_defaults: Defaults | None = None
        self._proxies: list[RawProxy] = []
        self._stores: list[CrtStore] = []
        self._files: list[str] = []
        self._section: Section | None = None
        self._ignored_section = False
        self._proxy: _ProxyBuilder | None = None
        self._defaults_builder: _DefaultsBuilder | None = None
        self._store: _StoreBuilder | None = None
        self._seen_global_once: set[str] = set()

    # ---------------------------------------------------------------- driving
    def feed(self, text: str, *, file: str) -> None:
        """Parse one file; sections never continue across files (HAProxy's rule)."""
        self._files.append(file)
        result = lex(text, file=file, env=self._env)
        self._sink.extend(result.diagnostics)
        for line in result.lines:
            self._line(list(line.args), SourceLocation(file, line.number))
        self._close_section()

    def finish(self) -> ParsedConfig:
        self._close_section()
        return ParsedConfig(
            self._global,
            tuple(self._defaults),
            tuple(self._proxies),
            tuple(self._stores),
            tuple(self._files),
            self._sink.snapshot(),
        )

    def _close_section(self) -> None:
        if self._proxy is not None:
            self._proxies.append(self._proxy.build())
            self._proxy = None
        if self._defaults_builder is not None:
            b = self._defaults_builder
            defaults = Defaults(b.location, b.name, b.settings)
            self._defaults.append(defaults)
            self._last_defaults = defaults
            self._defaults_builder = None
        if self._store is not None:
            s = self._store
            self._stores.append(
                CrtStore(s.location, s.name, s.crt_base, s.key_base, tuple(s.loads))
            )
            self._store = None
        self._section = None
        self._ignored_section = False

    # ---------------------------------------------------------------- helpers
    def _error(
        self, where: SourceLocation, kw: str, msg: str, reason: Reason = Reason.INVALID_VALUE
    ) -> None:
        self._sink.error(where, kw, msg, reason)

    def _warn(
        self, where: SourceLocation, kw: str, msg: str, reason: Reason = Reason.IGNORED
    ) -> None:
        self._sink.warning(where, kw, msg, reason)

    def _line(self, args: list[str], where: SourceLocation) -> None:
        head = args[0]
        if head in ("global", "defaults", "frontend", "backend", "listen", "crt-store"):
            self._close_section()
            self._open_section(head, args, where)
            return
        if head in keywords.IGNORED_SECTIONS or head in keywords.REFUSED_SECTIONS:
            self._close_section()
            if head in keywords.REFUSED_SECTIONS:
                self._error(
                    where,
                    head,
                    f"'{head}' sections are not supported by staplegate and would change traffic",
                    Reason.UNSUPPORTED,
                )
            else:
                self._warn(
                    where,
                    head,
                    f"'{head}' section is ignored: staplegate supports none of the keywords "
                    "that could use it",
                )
            self._ignored_section = True
            return
        if head.startswith("."):
            self._error(
                where,
                head,
                f"'{head}' directives (conditional blocks and messages) are not supported by "
                "staplegate",
                Reason.UNSUPPORTED,
            )
            return
        if self._ignored_section:
            return
        if self._section is None:
            self._error(
                where, head, f"unknown keyword '{head}' out of section.", Reason.UNKNOWN_KEYWORD
            )
            return
        if self._section is Section.GLOBAL:
            self._global_line(args, where)
        elif self._section is Section.CRT_STORE:
            self._store_line(args, where)
        else:
            self._proxy_line(args, where)

    def _keyword(self, args: Sequence[str]) -> str:
        if args[0] == "no" and len(args) > 2 and args[1] == "option":
            return f"option {args[2]}"
        if args[0] in _TWO_WORD and len(args) > 1:
            return f"{args[0]} {args[1]}"
        return args[0]

    def _classify_rest(self, section: Section, args: list[str], where: SourceLocation) -> None:
        """A keyword no handler took: ignored, refused or unknown."""
        kw = self._keyword(args)
        cls = keywords.classify(section, kw)
        if cls is KeywordClass.UNKNOWN and kw != args[0]:
            first = keywords.classify(section, args[0])
            if first is not KeywordClass.UNKNOWN:
                kw, cls = args[0], first
        if section is Section.GLOBAL and cls is KeywordClass.UNKNOWN and kw.startswith("tune."):
            self._warn(
                where,
                kw,
                keywords.ignored_message(kw, "performance tunings do not change traffic"),
            )
            return
        if cls is KeywordClass.IGNORED:
            self._warn(where, kw, keywords.ignored_message(kw, keywords.ignore_reason(section, kw)))
        elif cls is KeywordClass.REFUSED or cls is KeywordClass.SUPPORTED:
            self._error(where, kw, keywords.refused_message(kw), Reason.UNSUPPORTED)
        else:
            name = args[0] if args[0] not in _TWO_WORD else kw
            if args[0] == "option" and len(args) > 1:
                self._error(where, kw, f"unknown option '{args[1]}'.", Reason.UNKNOWN_KEYWORD)
                return
            self._error(
                where, name, keywords.unknown_message(name, section), Reason.UNKNOWN_KEYWORD
            )

    # ---------------------------------------------------------------- sections
    def _open_section(self, head: str, args: list[str], where: SourceLocation) -> None:
        section = Section(head)
        self._section = section
        if section is Section.GLOBAL:
            return
        if section is Section.CRT_STORE:
            name = args[1] if len(args) > 1 else None
            if name is not None and not self._valid_name(name, head, where):
                name = None
            if name is not None and any(s.name == name for s in self._stores):
                first = next(s for s in self._stores if s.name == name)
                self._error(
                    where,
                    head,
                    f"crt-store '{name}' has the same name as another crt-store declared at "
                    f"{first.location}.",
                    Reason.DUPLICATE,
                )
            self._store = _StoreBuilder(where, name)
            return
        name_arg: str | None = args[1] if len(args) > 1 and args[1] != "from" else None
        from_name: str | None = None
        rest = args[2:] if name_arg is not None else args[1:]
        if rest[:1] == ["from"]:
            if len(rest) < 2:
                self._error(where, head, f"'{head}' : 'from' expects a defaults section name.")
            else:
                from_name = rest[1]
            rest = rest[2:]
        if rest:
            self._error(where, head, f"'{head}' : unexpected argument '{rest[0]}'.", Reason.SYNTAX)
        if name_arg is not None:
            self._valid_name(name_arg, head, where)
        inherited = self._last_defaults
        if from_name is not None:
            found = [d for d in self._defaults if d.name == from_name]
            if not found:
                self._error(
                    where,
                    head,
                    f"{head} '{name_arg or ''}': unable to find defaults section '{from_name}'.",
                    Reason.MISSING_REFERENCE,
                )
                inherited = None
            else:
                inherited = found[-1]
        if section is Section.DEFAULTS:
            base = inherited.settings if (inherited is not None and from_name) else ProxySettings()
            self._defaults_builder = _DefaultsBuilder(where, name_arg, base)
            return
        if name_arg is None:
            self._error(where, head, f"'{head}' expects an <id> argument", Reason.MISSING_ARGUMENT)
            name_arg = ""
        self._proxy = _ProxyBuilder(where, ProxyKind(head), name_arg, inherited, ProxySettings())

    def _valid_name(self, name: str, head: str, where: SourceLocation) -> bool:
        if _NAME_OK.fullmatch(name):
            return True
        bad = next(c for c in name if not _NAME_OK.fullmatch(c))
        self._error(
            where,
            head,
            f"character '{bad}' is not permitted in '{head}' name '{name}'.",
            Reason.SYNTAX,
        )
        return False

    # ---------------------------------------------------------------- global
    def _global_line(self, args: list[str], where: SourceLocation) -> None:
        kw = self._keyword(args)
        head = args[0]
        g = self._global
        value = args[1] if len(args) > 1 else None
        if head in ("ocsp-update.mode", "ocsp-update.disable"):
            flag = parse_ocsp_update(value)
            if flag is None or len(args) > 2:
                self._warn(where, head, f"'{head}' : expecting <on|off>", Reason.INVALID_VALUE)
                return
            if head == "ocsp-update.mode":
                self._global = replace(g, ocsp_update_mode=flag)
            else:
                self._global = replace(g, ocsp_update_disable=flag)
        elif head in (
            "ocsp-update.mindelay",
            "ocsp-update.maxdelay",
            "tune.ssl.ocsp-update.mindelay",
            "tune.ssl.ocsp-update.maxdelay",
        ):
            self._ocsp_delay(head, value, where)
        elif head == "ocsp-update.httpproxy":
            if value is None:
                self._error(
                    where,
                    head,
                    f"'{head}' expects an address argument.",
                    Reason.MISSING_ARGUMENT,
                )
                return
            if len(args) > 2:
                self._error(where, head, f"'{head}' cannot handle unexpected argument '{args[2]}'.")
                return
            try:
                address = parse_socket_address(value)
            except ValueSyntaxError as exc:
                self._error(
                    where,
                    head,
                    f"ocsp-update: Failed to parse destination address in '{value}': {exc.message}",
                )
                return
            if address.family is AddressFamily.UNIX:
                self._error(
                    where, head, f"ocsp-update: Failed to parse destination address in '{value}'"
                )
                return
            self._global = replace(g, ocsp_update_httpproxy=address)
        elif head in ("ocsp-update.maxconn", "ocsp-update.rate-limit"):
            # staplegate's own: HAProxy fetches one response at a time and has no knob
            number = self._int_arg(head, value, where, minimum=1, maximum=100_000)
            if number is not None and head == "ocsp-update.maxconn":
                self._global = replace(g, ocsp_update_maxconn=number)
            elif number is not None:
                self._global = replace(g, ocsp_update_rate_limit=number)
        elif head in ("crt-base", "key-base", "ca-base"):
            if value is None or len(args) > 2:
                self._error(
                    where,
                    head,
                    f"'{head}' expects a directory path as an argument.",
                    Reason.MISSING_ARGUMENT,
                )
                return
            attr = head.replace("-", "_")
            if getattr(g, attr) is not None:
                self._warn(
                    where, head, f"'{head}' already specified. Continuing.", Reason.DUPLICATE
                )
                return
            self._global = replace(g, **_kw(attr, value))
        elif head in ("issuers-chain-path", "ssl-dh-param-file", "pidfile", "log-tag"):
            if value is None or len(args) > 2:
                self._error(where, head, f"'{head}' expects one argument.", Reason.MISSING_ARGUMENT)
                return
            attr = head.replace("-", "_")
            self._global = replace(g, **_kw(attr, value))
        elif kw == "stats socket":
            self._stats_socket(args, where)
        elif head == "log":
            target = self._log(args, where, allow_global=False)
            if target is not None:
                self._global = replace(g, logs=(*g.logs, target))
        elif head in ("nbthread", "maxconn"):
            number = self._int_arg(head, value, where, minimum=1)
            if number is not None:
                self._global = replace(g, **_kw(head, number))
        elif head in ("daemon", "user", "group"):
            if head == "daemon":
                self._global = replace(g, daemon=True)
            elif value is None:
                self._error(where, head, f"'{head}' expects a name.", Reason.MISSING_ARGUMENT)
                return
            else:
                self._global = replace(g, **_kw(head, value))
            self._warn(
                where,
                head,
                keywords.parsed_ignored_message(head, keywords.GLOBAL_PARSED_BUT_IGNORED[head]),
            )
        elif head == "hard-stop-after":
            ms = self._time_arg(head, value, where)
            if ms is not None:
                self._global = replace(g, hard_stop_after_ms=ms)
        elif head in (
            "ssl-default-bind-ciphers",
            "ssl-default-bind-ciphersuites",
            "ssl-default-server-ciphers",
            "ssl-default-server-ciphersuites",
        ):
            if value is None:
                self._error(
                    where,
                    head,
                    f"'{head}' expects a cipher suite as an argument.",
                    Reason.MISSING_ARGUMENT,
                )
                return
            self._global = replace(g, **_kw(head.replace("-", "_"), value))
        elif head in ("ssl-default-bind-options", "ssl-default-server-options"):
            options = self._ssl_options(args[1:], where, head)
            if head == "ssl-default-bind-options" and options is not None:
                self._global = replace(g, ssl_default_bind_options=options)
        elif head == "ssl-load-extra-files":
            self._extra_files(args, where)
        elif head in ("ssl-load-extra-del-ext", "ssl-skip-self-issued-ca", "zero-warning"):
            self._global = replace(g, **_kw(head.replace("-", "_"), True))
        elif head == "tune.ssl.default-dh-param":
            number = self._int_arg(head, value, where, minimum=1024)
            if number is not None:
                self._global = replace(g, tune_ssl_default_dh_param=number)
        elif head.startswith("httpclient.") and head in keywords.GLOBAL_SUPPORTED:
            self._httpclient(head, value, where)
        elif kw == "stats timeout":
            self._warn(where, kw, keywords.parsed_ignored_message(kw, keywords.GLOBAL_IGNORED[kw]))
        else:
            self._classify_rest(Section.GLOBAL, args, where)

    def _ocsp_delay(self, kw: str, value: str | None, where: SourceLocation) -> None:
        if value is None:
            self._error(where, kw, f"'{kw}' expects an integer argument.", Reason.MISSING_ARGUMENT)
            return
        number, exact = c_atoi(value)
        if number < 0:
            self._error(where, kw, f"'{kw}' expects a positive numeric value.")
            return
        g = self._global
        if kw.endswith("mindelay"):
            if number > g.ocsp_update_maxdelay_s:
                self._error(
                    where, kw, f"'{kw}' can not be higher than tune.ssl.ocsp-update.maxdelay."
                )
                return
            self._global = replace(g, ocsp_update_mindelay_s=number)
        else:
            if number < g.ocsp_update_mindelay_s:
                self._error(
                    where, kw, f"'{kw}' can not be lower than tune.ssl.ocsp-update.mindelay."
                )
                return
            self._global = replace(g, ocsp_update_maxdelay_s=number)
        if not exact:
            self._warn(
                where,
                kw,
                f"'{kw}' value '{value}' is read as {number} seconds (HAProxy reads this "
                "keyword with atoi, which ignores units and anything after the number); "
                "write a plain number of seconds",
                Reason.QUIRK,
            )

    def _httpclient(self, kw: str, value: str | None, where: SourceLocation) -> None:
        if value is None:
            self._error(where, kw, f"'{kw}' expects an argument.", Reason.MISSING_ARGUMENT)
            return
        hc = self._global.httpclient
        if kw == "httpclient.timeout.connect":
            ms = self._time_arg(kw, value, where)
            if ms is not None:
                hc = replace(hc, timeout_connect_ms=ms)
        elif kw == "httpclient.retries":
            number = self._int_arg(kw, value, where, minimum=0)
            if number is not None:
                hc = replace(hc, retries=number)
        elif kw == "httpclient.resolvers.prefer":
            if value not in ("ipv4", "ipv6"):
                self._error(where, kw, f"'{kw}' : expects 'ipv4' or 'ipv6'.")
                return
            hc = replace(hc, resolvers_prefer=value)
        elif kw == "httpclient.resolvers.disabled":
            flag = parse_ocsp_update(value)
            if flag is None:
                self._error(where, kw, f"'{kw}' : expects 'on' or 'off'.")
                return
            hc = replace(hc, resolvers_disabled=flag)
        elif kw == "httpclient.ssl.verify":
            if value not in ("none", "required"):
                self._error(where, kw, f"'{kw}' : expects 'none' or 'required'.")
                return
            hc = replace(hc, ssl_verify=Verify(value))
        else:
            hc = replace(hc, ssl_ca_file=value)
        self._global = replace(self._global, httpclient=hc)

    def _extra_files(self, args: list[str], where: SourceLocation) -> None:
        kinds: set[str] = set()
        if len(args) < 2:
            self._error(
                where,
                args[0],
                "'ssl-load-extra-files' expects at least one argument.",
                Reason.MISSING_ARGUMENT,
            )
            return
        for value in args[1:]:
            if value == "all":
                kinds |= EXTRA_FILE_KINDS
            elif value == "none":
                kinds = set()
            elif value in EXTRA_FILE_KINDS:
                kinds.add(value)
            else:
                self._error(
                    where,
                    args[0],
                    f"ssl-load-extra-files: unknown argument '{value}', allowed values are "
                    "'none', 'all', 'bundle', 'sctl', 'ocsp', 'issuer' and 'key'.",
                )
                return
        self._global = replace(self._global, ssl_load_extra_files=frozenset(kinds))

    def _stats_socket(self, args: list[str], where: SourceLocation) -> None:
        kw = "stats socket"
        if len(args) < 3:
            self._error(
                where,
                kw,
                "'stats socket' expects an address (UNIX path or ipv4@addr:port).",
                Reason.MISSING_ARGUMENT,
            )
            return
        try:
            address = parse_socket_address(args[2])
        except ValueSyntaxError as exc:
            self._error(where, kw, f"'stats socket' : {exc.message}")
            return
        mode: int | None = None
        uid: int | None = None
        gid: int | None = None
        level = StatsLevel.OPERATOR
        expose = False
        i = 3
        while i < len(args):
            opt = args[i]
            val = args[i + 1] if i + 1 < len(args) else None
            if opt == "mode":
                if val is None or not re.fullmatch(r"[0-7]{1,4}", val):
                    self._error(where, kw, "'stats socket' : 'mode' expects an octal mode.")
                    return
                mode = int(val, 8)
                i += 2
            elif opt == "level":
                if val not in ("user", "operator", "admin"):
                    self._error(
                        where,
                        kw,
                        "'stats socket' : 'level' only supports 'user', 'operator', and 'admin'",
                    )
                    return
                level = StatsLevel(val)
                i += 2
            elif opt == "expose-fd":
                if val != "listeners":
                    self._error(where, kw, "'stats socket' : 'expose-fd' only supports 'listeners'")
                    return
                expose = True
                i += 2
            elif opt in ("user", "group", "uid", "gid"):
                owner = _socket_owner(opt, val)
                if isinstance(owner, str):
                    self._error(where, kw, f"'stats socket' : {owner}")
                    return
                if opt in ("user", "uid"):
                    uid = owner
                else:
                    gid = owner
                i += 2
            elif opt in ("name", "process", "thread", "maxconn"):
                if val is None:
                    self._error(where, kw, f"'stats socket' : '{opt}' expects an argument.")
                    return
                self._warn(
                    where,
                    kw,
                    keywords.ignored_message(
                        f"stats socket {opt}",
                        "one runtime socket serves every worker and has no connection limit",
                    ),
                )
                i += 2
            elif opt in ("severity-output", "accept-netscaler-cip"):
                i += 2
                self._warn(
                    where,
                    kw,
                    keywords.ignored_message(f"stats socket {opt}", "it only changes output style"),
                )
            else:
                self._error(
                    where, kw, f"'stats socket' unknown keyword '{opt}'.", Reason.UNKNOWN_KEYWORD
                )
                return
        if (uid is not None or gid is not None) and address.family is not AddressFamily.UNIX:
            self._warn(
                where,
                kw,
                "'stats socket' : 'user'/'group' apply to UNIX sockets only; ignored here.",
            )
            uid = gid = None
        socket = StatsSocket(where, address, mode, level, expose, uid=uid, gid=gid)
        self._global = replace(self._global, stats_sockets=(*self._global.stats_sockets, socket))

    def _log(
        self, args: list[str], where: SourceLocation, *, allow_global: bool
    ) -> LogTarget | None:
        if len(args) < 2:
            self._error(
                where,
                "log",
                "'log' expects either <address[:port]> and <facility> or 'global' as arguments.",
                Reason.MISSING_ARGUMENT,
            )
            return None
        target = args[1]
        rest = args[2:]
        length: int | None = None
        fmt = LogFormat.RFC3164
        while rest and rest[0] in ("len", "format", "sample", "profile"):
            opt = rest[0]
            if len(rest) < 2:
                self._error(where, "log", f"'log' : '{opt}' expects an argument.")
                return None
            if opt == "len":
                length = self._int_arg("log len", rest[1], where, minimum=80)
                if length is None:
                    return None
            elif opt == "format":
                try:
                    fmt = LogFormat(rest[1])
                except ValueError:
                    self._error(where, "log", f"unknown log format '{rest[1]}'")
                    return None
            else:
                self._warn(
                    where, "log", keywords.ignored_message(f"log {opt}", "every log line is sent")
                )
            rest = rest[2:]
        if not rest:
            self._error(
                where, "log", "'log' expects <facility> as argument.", Reason.MISSING_ARGUMENT
            )
            return None
        facility = rest[0]
        if facility not in LOG_FACILITIES:
            self._error(where, "log", f"unknown log facility '{facility}'")
            return None
        levels = rest[1:3]
        for lvl in levels:
            if lvl not in LOG_LEVELS:
                self._error(where, "log", f"unknown optional log level '{lvl}'")
                return None
        if len(rest) > 3:
            self._error(where, "log", f"'log' : unexpected argument '{rest[3]}'.", Reason.SYNTAX)
            return None
        kind, address = self._log_target(target, where)
        if kind is None:
            return None
        return LogTarget(
            where,
            kind,
            target,
            address,
            facility,
            levels[0] if levels else None,
            levels[1] if len(levels) > 1 else None,
            length,
            fmt,
        )

    def _log_target(
        self, target: str, where: SourceLocation
    ) -> tuple[LogTargetKind | None, SocketAddress | None]:
        if target in ("stdout", "stderr"):
            return LogTargetKind(target), None
        for prefix, kind in (("ring@", LogTargetKind.RING), ("fd@", LogTargetKind.FD)):
            if target.startswith(prefix):
                return kind, None
        kind = LogTargetKind.UDP
        text = target
        for prefix, forced in (
            ("udp@", LogTargetKind.UDP),
            ("udp4@", LogTargetKind.UDP),
            ("udp6@", LogTargetKind.UDP),
            ("tcp@", LogTargetKind.TCP),
            ("tcp4@", LogTargetKind.TCP),
            ("tcp6@", LogTargetKind.TCP),
        ):
            if target.startswith(prefix):
                kind, text = forced, target[len(prefix) :]
                break
        if text.startswith("/") or text.startswith("unix@"):
            path = text.removeprefix("unix@")
            return LogTargetKind.UNIX, SocketAddress(AddressFamily.UNIX, path, 0)
        try:
            address = parse_socket_address(text, require_port=False)
        except ValueSyntaxError as exc:
            self._error(where, "log", f"'log' : {exc.message}")
            return None, None
        if address.port == 0:
            address = replace(address, port=514)
        return kind, address

    # ---------------------------------------------------------------- value helpers
    def _int_arg(
        self,
        kw: str,
        value: str | None,
        where: SourceLocation,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        if value is None:
            self._error(where, kw, f"'{kw}' expects an integer argument.", Reason.MISSING_ARGUMENT)
            return None
        try:
            return parse_int(value, minimum=minimum, maximum=maximum)
        except ValueSyntaxError as exc:
            self._error(where, kw, f"'{kw}' expects an integer argument ({exc.message}).")
            return None

    def _time_arg(
        self, kw: str, value: str | None, where: SourceLocation, *, label: str | None = None
    ) -> int | None:
        label = label or kw
        if value is None:
            self._error(
                where,
                kw,
                f"'{label}' expects an integer value (in milliseconds)",
                Reason.MISSING_ARGUMENT,
            )
            return None
        result = parse_time(value)
        if isinstance(result, TimeParseFailure):
            if result.error is TimeError.OVERFLOW:
                msg = (
                    f"timer overflow in argument '{value}' to '{label}' (maximum value is "
                    "2147483647 ms or ~24.8 days)"
                )
            elif result.error is TimeError.UNDERFLOW:
                msg = (
                    f"timer underflow in argument '{value}' to '{label}' (minimum non-null "
                    "value is 1 ms)"
                )
            else:
                msg = f"unexpected character '{result.character}' in '{label}'"
            self._error(where, kw, msg)
            return None
        return result

    def _ssl_options(self, args: list[str], where: SourceLocation, kw: str) -> SslOptions | None:
        options = SslOptions()
        i = 0
        while i < len(args):
            opt = args[i]
            if opt in ("ssl-min-ver", "ssl-max-ver"):
                version = TLS_VERSIONS.get(args[i + 1]) if i + 1 < len(args) else None
                if version is None:
                    self._error(
                        where,
                        kw,
                        f"'{kw}' : '{opt}' expects 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2' "
                        "or 'TLSv1.3'",
                    )
                    return None
                if opt == "ssl-min-ver":
                    options = replace(options, min_ver=version)
                else:
                    options = replace(options, max_ver=version)
                i += 2
                continue
            disabled = {
                "no-sslv3": TlsVersion.SSLV3,
                "no-tlsv10": TlsVersion.TLSV10,
                "no-tlsv11": TlsVersion.TLSV11,
                "no-tlsv12": TlsVersion.TLSV12,
                "no-tlsv13": TlsVersion.TLSV13,
            }
            if opt in disabled:
                options = replace(options, disabled=options.disabled | {disabled[opt]})
            elif opt == "no-tls-tickets":
                options = replace(options, no_tls_tickets=True)
            elif opt == "prefer-client-ciphers":
                options = replace(options, prefer_client_ciphers=True)
            elif opt in (
                "force-sslv3",
                "force-tlsv10",
                "force-tlsv11",
                "force-tlsv12",
                "force-tlsv13",
                "allow-0rtt",
                "no-ca-names",
                "ssl-default-bind-curves",
            ):
                self._error(where, kw, keywords.refused_message(f"{kw} {opt}"), Reason.UNSUPPORTED)
                return None
            else:
                self._error(
                    where,
                    kw,
                    f"'{kw}' : unknown or unsupported option '{opt}'.",
                    Reason.UNKNOWN_KEYWORD,
                )
                return None
            i += 1
        return options

    # ---------------------------------------------------------------- crt-store
    def _store_line(self, args: list[str], where: SourceLocation) -> None:
        store = self._store
        assert store is not None
        head = args[0]
        if head in ("crt-base", "key-base"):
            if len(args) != 2:
                self._error(
                    where,
                    head,
                    f"'{head}' expects a directory path as an argument.",
                    Reason.MISSING_ARGUMENT,
                )
                return
            if store.loads:
                self._error(
                    where,
                    head,
                    f"'{head}' must be set before the first 'load' line of the crt-store "
                    "section (it only applies to the lines after it); move it up.",
                    Reason.SYNTAX,
                )
                return
            if head == "crt-base":
                store.crt_base = args[1]
            else:
                store.key_base = args[1]
            return
        if head != "load":
            self._classify_rest(Section.CRT_STORE, args, where)
            return
        values: dict[str, str] = {}
        i = 1
        allowed = ("crt", "key", "ocsp", "issuer", "sctl", "ocsp-update", "alias")
        while i < len(args):
            opt = args[i]
            if opt not in allowed:
                hint = keywords.suggest(opt, set(allowed))
                suffix = f" Did you mean '{hint}' maybe ?" if hint else ""
                if opt in ("acme", "domains"):
                    self._error(
                        where, "load", keywords.refused_message(f"load {opt}"), Reason.UNSUPPORTED
                    )
                else:
                    self._error(
                        where,
                        "load",
                        f"'load' : unknown keyword '{opt}'.{suffix}",
                        Reason.UNKNOWN_KEYWORD,
                    )
                return
            if i + 1 >= len(args):
                self._error(
                    where, "load", f"'load' : '{opt}' expects an argument.", Reason.MISSING_ARGUMENT
                )
                return
            values[opt] = args[i + 1]
            i += 2
        if "crt" not in values:
            self._error(where, "load", "'load' : 'crt' is mandatory.", Reason.MISSING_ARGUMENT)
            return
        ocsp_update: bool | None = None
        if "ocsp-update" in values:
            ocsp_update = parse_ocsp_update(values["ocsp-update"])
            if ocsp_update is None:
                self._error(where, "ocsp-update", ocsp_update_error(values["ocsp-update"]))
                return
        crt_base = store.crt_base if store.crt_base is not None else self._global.crt_base
        key_base = store.key_base if store.key_base is not None else self._global.key_base
        load = CrtStoreLoad(
            location=where,
            store=store.name,
            crt=values["crt"],
            crt_path=join_base(crt_base, values["crt"]),
            key_path=join_base(key_base, values["key"]) if "key" in values else None,
            ocsp_path=join_base(crt_base, values["ocsp"]) if "ocsp" in values else None,
            issuer_path=join_base(crt_base, values["issuer"]) if "issuer" in values else None,
            sctl_path=join_base(crt_base, values["sctl"]) if "sctl" in values else None,
            ocsp_update=ocsp_update,
            alias=values.get("alias"),
        )
        clash = [other for other in self._all_loads() if other.name == load.name]
        if clash:
            self._error(
                where,
                "load",
                f"Cannot create a new certificate store entry '{load.name}', this name is "
                f"already used at {clash[0].location}.",
                Reason.DUPLICATE,
            )
            return
        store.loads.append(load)

    def _all_loads(self) -> list[CrtStoreLoad]:
        loads = [load for s in self._stores for load in s.loads]
        if self._store is not None:
            loads.extend(self._store.loads)
        return loads

    # ---------------------------------------------------------------- proxies
    def _proxy_line(self, args: list[str], where: SourceLocation) -> None:
        section = self._section
        assert section is not None
        in_defaults = section is Section.DEFAULTS
        settings = (
            self._defaults_builder.settings
            if self._defaults_builder is not None
            else self._proxy.settings
            if self._proxy is not None
            else ProxySettings()
        )
        acls = (
            self._defaults_builder.acls
            if self._defaults_builder is not None
            else self._proxy.acls
            if self._proxy is not None
            else {}
        )
        kw = self._keyword(args)
        head = args[0]
        value = args[1] if len(args) > 1 else None
        new_settings: ProxySettings | None = None
        if head == "mode":
            if value not in ("tcp", "http"):
                if value in ("health", "log", "spop"):
                    self._error(
                        where, head, keywords.refused_message(f"mode {value}"), Reason.UNSUPPORTED
                    )
                else:
                    self._error(where, head, f"unknown proxy mode '{value or ''}'.")
                return
            new_settings = replace(settings, mode=Mode(value))
        elif head == "timeout":
            new_settings = self._timeout(args, where, settings)
        elif head == "option" or (head == "no" and value == "option"):
            new_settings = self._option(args, where, settings, section)
        elif head == "log":
            if value == "global":
                new_settings = replace(settings, log_global=True)
            else:
                target = self._log(args, where, allow_global=True)
                if target is not None:
                    new_settings = replace(settings, logs=(*settings.logs, target))
        elif kw == "no log":
            new_settings = replace(settings, log_global=False, logs=())
        elif head == "maxconn":
            number = self._int_arg(head, value, where, minimum=0)
            if number is not None:
                new_settings = replace(settings, maxconn=number)
        elif head == "retries":
            number = self._int_arg(head, value, where, minimum=0)
            if number is not None:
                new_settings = replace(settings, retries=number)
        elif head == "balance":
            new_settings = self._balance(args, where, settings, section)
        elif head == "http-check" and value == "expect":
            if len(args) != 4 or args[2] != "status" or not args[3].isdigit():
                self._error(
                    where,
                    kw,
                    "staplegate understands only 'http-check expect status <code>'.",
                    Reason.UNSUPPORTED,
                )
                return
            new_settings = replace(
                settings, options=replace(settings.options, httpchk_expect_status=int(args[3]))
            )
        elif head == "default_backend":
            if not self._has_cap(section, frontend=True, kw=head, where=where):
                return
            if value is None or len(args) > 2:
                self._error(
                    where, head, f"'{head}' expects a backend name.", Reason.MISSING_ARGUMENT
                )
                return
            new_settings = replace(settings, default_backend=value)
        elif head == "default-server":
            if not self._has_cap(section, frontend=False, kw=head, where=where):
                return
            opts = self._server_options(args[1:], where, "default-server")
            if opts is not None:
                new_settings = replace(
                    settings, default_server=_merge_server(settings.default_server, opts)
                )
        elif head == "acl":
            self._acl(args, where, acls)
        elif head == "errorfile":
            if len(args) != 3:
                self._error(
                    where,
                    head,
                    "'errorfile' expects <code> and <file> as arguments.",
                    Reason.MISSING_ARGUMENT,
                )
                return
            self._warn(
                where, head, keywords.parsed_ignored_message(head, keywords.PROXY_IGNORED[head])
            )
        elif kw == "stats timeout":
            self._warn(where, kw, keywords.parsed_ignored_message(kw, keywords.PROXY_IGNORED[kw]))
        elif head in ("bind", "server", "use_backend") or (
            head == "http-request" and value in _SUPPORTED_HTTP_ACTIONS
        ):
            if in_defaults and head != "http-request":
                self._error(
                    where, head, f"'{head}' not allowed in 'defaults' section.", Reason.SYNTAX
                )
                return
            if in_defaults:
                self._error(
                    where,
                    kw,
                    "'http-request' rules in a 'defaults' section are not supported by "
                    "staplegate; write them in each proxy",
                    Reason.UNSUPPORTED,
                )
                return
            proxy = self._proxy
            assert proxy is not None
            if head == "bind":
                if self._has_cap(section, frontend=True, kw=head, where=where):
                    bind = self._bind(args, where)
                    if bind is not None:
                        proxy.binds.append(bind)
            elif head == "server":
                if self._has_cap(section, frontend=False, kw=head, where=where):
                    server = self._server(args, where)
                    if server is not None:
                        proxy.servers.append(server)
            elif head == "use_backend":
                if self._has_cap(section, frontend=True, kw=head, where=where):
                    self._use_backend(args, where, proxy)
            else:
                rule = self._http_request(args, where, proxy.acls)
                if rule is not None:
                    proxy.rules.append(rule)
        elif head == "http-request":
            action = value or ""
            base = action.split("(", 1)[0]
            if base in _HTTP_REQUEST_ACTIONS or action.startswith(("track-sc", "sc-", "lua.")):
                self._error(where, kw, keywords.refused_message(kw), Reason.UNSUPPORTED)
            else:
                hint = keywords.suggest(action, _HTTP_REQUEST_ACTIONS)
                suffix = f"; did you mean '{hint}' maybe ?" if hint else "."
                self._error(
                    where,
                    kw,
                    f"'http-request' : unknown action '{action}'{suffix}",
                    Reason.UNKNOWN_KEYWORD,
                )
        else:
            self._classify_rest(section, args, where)
        if new_settings is not None:
            if self._defaults_builder is not None:
                self._defaults_builder.settings = new_settings
            elif self._proxy is not None:
                self._proxy.settings = new_settings

    def _has_cap(self, section: Section, *, frontend: bool, kw: str, where: SourceLocation) -> bool:
        if section in (Section.LISTEN, Section.DEFAULTS):
            return True
        if frontend and section is Section.BACKEND:
            missing = "frontend"
        elif not frontend and section is Section.FRONTEND:
            missing = "backend"
        else:
            return True
        name = self._proxy.name if self._proxy is not None else ""
        self._warn(
            where,
            kw,
            f"'{kw}' ignored because {section.value} '{name}' has no {missing} capability.",
            Reason.IGNORED,
        )
        return False

    def _timeout(
        self, args: list[str], where: SourceLocation, settings: ProxySettings
    ) -> ProxySettings | None:
        name = args[1] if len(args) > 1 else ""
        if name not in _TIMEOUT_FIELDS:
            if name == "http-check":
                self._error(
                    where,
                    "timeout http-check",
                    keywords.refused_message("timeout http-check"),
                    Reason.UNSUPPORTED,
                )
                return None
            self._error(
                where,
                "timeout",
                "'timeout' supports 'client', 'server', 'connect', 'check', 'queue', "
                "'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and "
                f"'server-fin' (got '{name}')",
                Reason.UNKNOWN_KEYWORD,
            )
            return None
        label = f"timeout {name}"
        if len(args) > 3:
            self._error(
                where, label, f"'{label}' : unexpected argument '{args[3]}'.", Reason.SYNTAX
            )
            return None
        ms = self._time_arg(label, args[2] if len(args) > 2 else None, where)
        if ms is None:
            return None
        timeouts: Timeouts = replace(settings.timeouts, **_kw(_TIMEOUT_FIELDS[name], ms))
        return replace(settings, timeouts=timeouts)

    def _option(
        self, args: list[str], where: SourceLocation, settings: ProxySettings, section: Section
    ) -> ProxySettings | None:
        negate = args[0] == "no"
        words = args[2:] if negate else args[1:]
        if not words:
            self._error(
                where, "option", "'option' expects an option name.", Reason.MISSING_ARGUMENT
            )
            return None
        name = words[0]
        extra = words[1:]
        kw = f"option {name}"
        opts = settings.options
        if name in ("httplog", "httpslog", "tcplog"):
            if extra and not (name == "httplog" and extra == ["clf"]):
                self._error(where, kw, f"'{kw}' : unexpected argument '{extra[0]}'.", Reason.SYNTAX)
                return None
            if name == "tcplog":
                opts = replace(
                    opts, tcplog=not negate, httplog=False if not negate else opts.httplog
                )
            else:
                opts = replace(
                    opts, httplog=not negate, tcplog=False if not negate else opts.tcplog
                )
        elif name == "forwardfor":
            header: str | None = None
            i = 0
            while i < len(extra):
                if extra[i] in ("except", "header") and i + 1 < len(extra):
                    if extra[i] == "header":
                        header = extra[i + 1]
                    else:
                        self._error(
                            where, kw, keywords.refused_message(f"{kw} except"), Reason.UNSUPPORTED
                        )
                        return None
                    i += 2
                elif extra[i] == "if-none":
                    self._error(
                        where, kw, keywords.refused_message(f"{kw} if-none"), Reason.UNSUPPORTED
                    )
                    return None
                else:
                    self._error(
                        where, kw, f"'{kw}' : unexpected argument '{extra[i]}'.", Reason.SYNTAX
                    )
                    return None
            opts = replace(opts, forwardfor=not negate, forwardfor_header=header)
        elif name == "httpchk":
            method, uri = "OPTIONS", "/"
            if len(extra) == 1:
                uri = extra[0]
            elif len(extra) >= 2:
                method, uri = extra[0], extra[1]
            opts = replace(opts, httpchk=not negate, httpchk_method=method, httpchk_uri=uri)
        elif name == "redispatch":
            opts = replace(opts, redispatch=not negate)
        elif name == "dontlognull":
            opts = replace(opts, dontlognull=not negate)
            self._warn(where, kw, keywords.parsed_ignored_message(kw, keywords.PROXY_IGNORED[kw]))
        else:
            self._classify_rest(section, ["option", *words], where)
            return None
        return replace(settings, options=opts)

    def _balance(
        self, args: list[str], where: SourceLocation, settings: ProxySettings, section: Section
    ) -> ProxySettings | None:
        if not self._has_cap(section, frontend=False, kw="balance", where=where):
            return None
        algo = args[1] if len(args) > 1 else None
        if algo is None:
            self._error(
                where, "balance", "'balance' expects an algorithm name.", Reason.MISSING_ARGUMENT
            )
            return None
        if algo in _BALANCE:
            if len(args) > 2:
                self._error(
                    where,
                    "balance",
                    f"'balance {algo}' : unexpected argument '{args[2]}'.",
                    Reason.SYNTAX,
                )
                return None
            return replace(settings, balance=_BALANCE[algo])
        base = algo.split("(")[0]
        if base in _REFUSED_BALANCE or algo in _REFUSED_BALANCE:
            self._error(
                where, "balance", keywords.refused_message(f"balance {algo}"), Reason.UNSUPPORTED
            )
        else:
            self._error(
                where, "balance", f"unknown balancing algorithm '{algo}'.", Reason.UNKNOWN_KEYWORD
            )
        return None

    # ---------------------------------------------------------------- bind
    def _bind(self, args: list[str], where: SourceLocation) -> Bind | None:
        if len(args) < 2:
            self._error(
                where,
                "bind",
                "'bind' expects [addr1]:port1[-end1]{,[addr]:port[-end]}... as arguments.",
                Reason.MISSING_ARGUMENT,
            )
            return None
        text = args[1]
        label = f"bind {text}"
        addresses: list[SocketAddress] = []
        for part in text.split(","):
            try:
                address = parse_socket_address(part)
            except ValueSyntaxError as exc:
                self._error(where, "bind", f"'{label}' : {exc.message}")
                return None
            if address.family is AddressFamily.UNIX:
                self._error(
                    where,
                    "bind",
                    keywords.refused_message(f"bind {part}") + " (UNIX socket listeners)",
                    Reason.UNSUPPORTED,
                )
                return None
            addresses.append(address)
        bind = Bind(where, text, tuple(addresses))
        sources: list[CertSource] = []
        ssl_options = SslOptions()
        ok = True
        i = 2
        while i < len(args):
            opt = args[i]
            val = args[i + 1] if i + 1 < len(args) else None
            takes_value = opt in keywords.BIND_ARGUMENT_KEYWORDS
            if takes_value and val is None:
                what = {
                    "crt": "missing certificate location",
                    "crt-list": "missing certificate location",
                    "alpn": "missing the comma-delimited ALPN protocol suite",
                }.get(opt, "missing value")
                self._error(where, opt, f"'{label}' : '{opt}' : {what}", Reason.MISSING_ARGUMENT)
                return None
            step = 2 if takes_value else 1
            if opt == "ssl":
                bind = replace(bind, ssl=True)
            elif opt in ("crt", "crt-list"):
                assert val is not None
                if opt == "crt" and val.startswith("@"):
                    sources.append(CertSource(where, opt, val, val, CertSourceKind.STORE))
                elif opt == "crt":
                    sources.append(
                        CertSource(where, opt, val, join_base(self._global.crt_base, val))
                    )
                else:
                    sources.append(CertSource(where, opt, val, val, CertSourceKind.CRT_LIST))
            elif opt == "alpn":
                assert val is not None
                bind = replace(bind, alpn=tuple(val.split(",")))
            elif opt in ("ssl-min-ver", "ssl-max-ver"):
                version = TLS_VERSIONS.get(val or "")
                if version is None:
                    self._error(
                        where,
                        opt,
                        f"'{label}' : '{opt}' : expects 'SSLv3', 'TLSv1.0', "
                        "'TLSv1.1', 'TLSv1.2' or 'TLSv1.3'",
                    )
                    ok = False
                elif opt == "ssl-min-ver":
                    ssl_options = replace(ssl_options, min_ver=version)
                else:
                    ssl_options = replace(ssl_options, max_ver=version)
            elif opt in ("ciphers", "ciphersuites"):
                bind = replace(bind, **_kw(opt, val))
            elif opt == "strict-sni":
                bind = replace(bind, strict_sni=True)
            elif opt == "accept-proxy":
                bind = replace(bind, accept_proxy=True)
            elif opt in (
                "no-sslv3",
                "no-tlsv10",
                "no-tlsv11",
                "no-tlsv12",
                "no-tlsv13",
                "no-tls-tickets",
                "prefer-client-ciphers",
            ):
                parsed = self._ssl_options([opt], where, "bind")
                if parsed is not None:
                    ssl_options = replace(
                        ssl_options,
                        disabled=ssl_options.disabled | parsed.disabled,
                        no_tls_tickets=ssl_options.no_tls_tickets or parsed.no_tls_tickets,
                        prefer_client_ciphers=ssl_options.prefer_client_ciphers
                        or parsed.prefer_client_ciphers,
                    )
            elif opt == "verify":
                if val != "none":
                    self._error(
                        where,
                        opt,
                        f"'{label}' : "
                        + keywords.refused_message(f"verify {val}")
                        + " (client certificate authentication)",
                        Reason.UNSUPPORTED,
                    )
                    ok = False
            elif opt == "ocsp-update":
                self._error(
                    where,
                    opt,
                    f"'{label}' unknown keyword 'ocsp-update'. It is only valid in a crt-list "
                    "line or on a crt-store 'load' line.",
                    Reason.UNKNOWN_KEYWORD,
                )
                ok = False
                step = 2 if val in ("on", "off") else 1
            elif opt in keywords.BIND_IGNORED:
                self._warn(
                    where,
                    opt,
                    f"'{label}' : " + keywords.ignored_message(opt, keywords.BIND_IGNORED[opt]),
                )
            elif opt in keywords.BIND_REFUSED:
                self._error(
                    where, opt, f"'{label}' : " + keywords.refused_message(opt), Reason.UNSUPPORTED
                )
                ok = False
            else:
                known = keywords.BIND_SUPPORTED | keywords.BIND_REFUSED | set(keywords.BIND_IGNORED)
                hint = keywords.suggest(opt, known)
                suffix = f" Did you mean '{hint}' maybe ?" if hint else ""
                self._error(
                    where,
                    opt,
                    f"'{label}' unknown keyword '{opt}'.{suffix}",
                    Reason.UNKNOWN_KEYWORD,
                )
                return None
            i += step
        if not ok:
            return None
        if sources and not bind.ssl:
            self._warn(
                where,
                "bind",
                f"'{label}' : certificates are configured but 'ssl' is not set: the listener "
                "will accept plain TCP/HTTP. Add 'ssl' to terminate TLS.",
                Reason.CONFLICT,
            )
        return replace(bind, cert_sources=tuple(sources), ssl_options=ssl_options)

    # ---------------------------------------------------------------- server
    def _server(self, args: list[str], where: SourceLocation) -> RawServer | None:
        if len(args) < 3:
            self._error(
                where,
                "server",
                "'server' expects <name> and <addr>[:<port>] as arguments.",
                Reason.MISSING_ARGUMENT,
            )
            return None
        name = args[1]
        if not self._valid_name(name, "server", where):
            return None
        try:
            address = parse_socket_address(args[2])
        except ValueSyntaxError as exc:
            self._error(where, "server", f"'server {name}' : {exc.message}")
            return None
        if address.family is AddressFamily.UNIX:
            self._error(
                where,
                "server",
                keywords.refused_message(f"server {name} {args[2]}") + " (UNIX socket servers)",
                Reason.UNSUPPORTED,
            )
            return None
        options = self._server_options(args[3:], where, f"server {name}")
        if options is None:
            return None
        return RawServer(where, name, address, options)

    def _server_options(
        self, args: list[str], where: SourceLocation, label: str
    ) -> ServerOptions | None:
        opts = ServerOptions()
        ok = True
        i = 0
        while i < len(args):
            opt = args[i]
            val = args[i + 1] if i + 1 < len(args) else None
            takes_value = opt in keywords.SERVER_ARGUMENT_KEYWORDS
            if takes_value and val is None:
                self._error(
                    where, opt, f"'{label}' : '{opt}' expects an argument.", Reason.MISSING_ARGUMENT
                )
                return None
            step = 2 if takes_value else 1
            if opt in ("check", "no-check"):
                opts = replace(opts, check=opt == "check")
            elif opt == "inter":
                ms = self._time_arg(f"{label} inter", val, where, label="inter")
                if ms is None:
                    ok = False
                else:
                    opts = replace(opts, inter_ms=ms)
            elif opt in ("rise", "fall", "weight", "maxconn"):
                lo, hi = {
                    "rise": (1, None),
                    "fall": (1, None),
                    "weight": (0, 256),
                    "maxconn": (0, None),
                }[opt]
                try:
                    number = parse_int(val or "", minimum=lo, maximum=hi)
                except ValueSyntaxError as exc:
                    self._error(where, opt, f"'{label}' : '{opt}' : {exc.message}.")
                    ok = False
                else:
                    opts = replace(opts, **_kw(opt, number))
            elif opt in ("backup", "no-backup"):
                opts = replace(opts, backup=opt == "backup")
            elif opt in ("disabled", "enabled"):
                opts = replace(opts, disabled=opt == "disabled")
            elif opt in ("send-proxy", "send-proxy-v2"):
                opts = replace(opts, send_proxy=ProxyProtocol(opt))
            elif opt in ("no-send-proxy", "no-send-proxy-v2"):
                opts = replace(opts, send_proxy=ProxyProtocol.NONE)
            elif opt in ("ssl", "no-ssl"):
                opts = replace(opts, ssl=opt == "ssl")
            elif opt == "verify":
                if val not in ("none", "required"):
                    self._error(where, opt, f"'{label}' : 'verify' : expects 'none' or 'required'.")
                    ok = False
                else:
                    opts = replace(opts, verify=Verify(val))
            elif opt == "ca-file":
                assert val is not None
                opts = replace(opts, ca_file=join_base(self._global.ca_base, val))
            elif opt == "sni":
                opts = replace(opts, sni=val)
            elif opt in keywords.SERVER_IGNORED:
                self._warn(
                    where,
                    opt,
                    f"'{label}' : " + keywords.ignored_message(opt, keywords.SERVER_IGNORED[opt]),
                )
            elif opt in keywords.SERVER_REFUSED:
                self._error(
                    where, opt, f"'{label}' : " + keywords.refused_message(opt), Reason.UNSUPPORTED
                )
                ok = False
            else:
                known = (
                    keywords.SERVER_SUPPORTED
                    | keywords.SERVER_REFUSED
                    | set(keywords.SERVER_IGNORED)
                )
                hint = keywords.suggest(opt, known)
                suffix = f" Did you mean '{hint}' maybe ?" if hint else ""
                self._error(
                    where,
                    opt,
                    f"'{label}' unknown keyword '{opt}'.{suffix}",
                    Reason.UNKNOWN_KEYWORD,
                )
                return None
            i += step
        return opts if ok else None

    # ---------------------------------------------------------------- rules
    def _acl(self, args: list[str], where: SourceLocation, acls: dict[str, list[AclTerm]]) -> None:
        if len(args) < 3:
            self._error(
                where, "acl", "'acl' expects an ACL name and a criterion.", Reason.MISSING_ARGUMENT
            )
            return
        name = args[1]
        term = self._acl_term(args[2:], where, f"acl {name}")
        if term is not None:
            acls.setdefault(name, []).append(term)

    def _acl_term(self, words: list[str], where: SourceLocation, label: str) -> AclTerm | None:
        fetch_name = words[0]
        fetch = _ACL_FETCHES.get(fetch_name)
        if fetch is None:
            self._error(
                where,
                label.split()[0],
                f"'{label}' : fetch '{fetch_name}' is not supported: {CONDITION_HELP}; "
                "ignoring the condition would change traffic",
                Reason.UNSUPPORTED,
            )
            return None
        ignore_case = False
        match = AclMatch.EXACT
        values: list[str] = []
        i = 1
        while i < len(words):
            w = words[i]
            if w == "-i":
                ignore_case = True
            elif w == "-m" and i + 1 < len(words):
                try:
                    match = AclMatch(words[i + 1])
                except ValueError:
                    self._error(
                        where,
                        label.split()[0],
                        f"'{label}' : match method "
                        f"'-m {words[i + 1]}' is not supported: {CONDITION_HELP}",
                        Reason.UNSUPPORTED,
                    )
                    return None
                i += 1
            elif w == "--":
                values.extend(words[i + 1 :])
                break
            elif w.startswith("-") and not values:
                self._error(
                    where,
                    label.split()[0],
                    f"'{label}' : flag '{w}' is not supported: {CONDITION_HELP}",
                    Reason.UNSUPPORTED,
                )
                return None
            else:
                values.append(w)
            i += 1
        if fetch is AclFetch.SSL_FC:
            if values:
                self._error(
                    where, label.split()[0], f"'{label}' : 'ssl_fc' takes no value.", Reason.SYNTAX
                )
                return None
        elif not values:
            self._error(
                where,
                label.split()[0],
                f"'{label}' : '{fetch_name}' needs at least one host name to match.",
                Reason.MISSING_ARGUMENT,
            )
            return None
        if ignore_case:
            values = [v.lower() for v in values]
        return AclTerm(fetch, tuple(values), ignore_case, match)

    def _condition(
        self,
        words: list[str],
        where: SourceLocation,
        label: str,
        acls: dict[str, list[AclTerm]],
    ) -> Condition | None:
        """Parse `if|unless …` words (first word is if/unless)."""
        unless = words[0] == "unless"
        rest = words[1:]
        terms: list[AclTerm] = []
        text = " ".join(words)
        if not rest:
            self._error(
                where,
                label,
                f"'{label}' : missing condition after '{words[0]}'.",
                Reason.MISSING_ARGUMENT,
            )
            return None
        i = 0
        while i < len(rest):
            w = rest[i]
            negated = False
            if w in ("||", "or", "OR"):
                self._error(
                    where,
                    label,
                    f"'{label}' : '{text}' uses '||' : {CONDITION_HELP}; "
                    "write one rule per alternative",
                    Reason.UNSUPPORTED,
                )
                return None
            if w == "!":
                negated = True
                i += 1
                if i >= len(rest):
                    break
                w = rest[i]
            elif w.startswith("!"):
                negated = True
                w = w[1:]
            if w == "{":
                try:
                    close = rest.index("}", i)
                except ValueError:
                    self._error(
                        where,
                        label,
                        f"'{label}' : missing closing '}}' in condition.",
                        Reason.SYNTAX,
                    )
                    return None
                inner = rest[i + 1 : close]
                if not inner:
                    self._error(where, label, f"'{label}' : empty anonymous ACL.", Reason.SYNTAX)
                    return None
                term = self._acl_term(inner, where, label)
                if term is None:
                    return None
                terms.append(replace(term, negated=negated))
                i = close + 1
                continue
            if w in acls:
                named = acls[w]
                if len(named) > 1:
                    self._error(
                        where,
                        label,
                        f"'{label}' : ACL '{w}' is declared on several "
                        f"lines (an OR) : {CONDITION_HELP}",
                        Reason.UNSUPPORTED,
                    )
                    return None
                terms.append(replace(named[0], negated=negated))
                i += 1
                continue
            self._error(
                where,
                label,
                f"'{label}' : unknown or unsupported ACL '{w}' in '{text}': {CONDITION_HELP}",
                Reason.UNSUPPORTED,
            )
            return None
        return Condition(unless, tuple(terms))

    def _split_condition(self, args: list[str]) -> tuple[list[str], list[str]]:
        for index, word in enumerate(args):
            if word in ("if", "unless"):
                return args[:index], args[index:]
        return args, []

    def _use_backend(self, args: list[str], where: SourceLocation, proxy: _ProxyBuilder) -> None:
        body, cond_words = self._split_condition(args[1:])
        if len(body) != 1:
            self._error(
                where,
                "use_backend",
                "'use_backend' expects a backend name.",
                Reason.MISSING_ARGUMENT,
            )
            return
        condition = None
        if cond_words:
            condition = self._condition(cond_words, where, "use_backend", proxy.acls)
            if condition is None:
                return
        proxy.use_backends.append(UseBackendRule(where, body[0], condition))

    def _http_request(
        self, args: list[str], where: SourceLocation, acls: dict[str, list[AclTerm]]
    ) -> HttpRequestRule | None:
        action_name = args[1]
        kw = f"http-request {action_name}"
        body, cond_words = self._split_condition(args[2:])
        condition = None
        if cond_words:
            condition = self._condition(cond_words, where, kw, acls)
            if condition is None:
                return None
        action: HttpAction | None
        if action_name == "return":
            action = self._http_return(body, where, kw)
        elif action_name == "deny":
            action = self._http_deny(body, where, kw)
        elif action_name == "redirect":
            action = self._http_redirect(body, where, kw)
        elif action_name in ("set-header", "add-header"):
            if len(body) != 2:
                self._error(
                    where, kw, f"'{kw}' expects exactly 2 arguments.", Reason.MISSING_ARGUMENT
                )
                return None
            if "%" in _HEADER_SAMPLE.sub("", body[1].replace("%%", "")) or "%%[" in body[1]:
                self._error(
                    where,
                    kw,
                    f"'{kw}' : staplegate supports only the log-format expressions "
                    "%[src], %[src_port], %[ssl_fc_sni], %[ssl_fc] in header values",
                    Reason.UNSUPPORTED,
                )
                return None
            action = HttpSetHeader(
                body[0], body[1].replace("%%", "%"), add=action_name == "add-header"
            )
        else:
            if len(body) == 3 and body[1] == "-m" and body[2] == "str":
                body = body[:1]
            if len(body) != 1:
                self._error(
                    where,
                    kw,
                    f"'{kw}' expects exactly 1 argument (a header name).",
                    Reason.MISSING_ARGUMENT,
                )
                return None
            action = HttpDelHeader(body[0])
        if action is None:
            return None
        return HttpRequestRule(where, action, condition)

    def _status(
        self, value: str | None, where: SourceLocation, kw: str, lo: int, hi: int
    ) -> int | None:
        try:
            status = parse_int(value or "", minimum=lo, maximum=hi)
        except ValueSyntaxError:
            self._error(
                where,
                kw,
                f"'{kw}' : status code must be an integer between {lo} and "
                f"{hi} (got '{value or ''}').",
            )
            return None
        return status

    def _http_return(self, body: list[str], where: SourceLocation, kw: str) -> HttpReturn | None:
        status = 200
        content_type: str | None = None
        payload: str | None = None
        file: str | None = None
        i = 0
        while i < len(body):
            opt = body[i]
            val = body[i + 1] if i + 1 < len(body) else None
            if opt in ("status", "content-type", "string", "file") and val is None:
                self._error(
                    where, kw, f"'{kw}' : '{opt}' expects an argument.", Reason.MISSING_ARGUMENT
                )
                return None
            if opt == "status":
                parsed = self._status(val, where, kw, 200, 599)
                if parsed is None:
                    return None
                status = parsed
            elif opt == "content-type":
                content_type = val
            elif opt == "string":
                payload = val
            elif opt == "file":
                file = val
            elif opt in (
                "lf-string",
                "lf-file",
                "errorfile",
                "errorfiles",
                "hdr",
                "default-errorfiles",
            ):
                self._error(where, kw, keywords.refused_message(f"{kw} {opt}"), Reason.UNSUPPORTED)
                return None
            else:
                self._error(where, kw, f"'{kw}' : unexpected argument '{opt}'.", Reason.SYNTAX)
                return None
            i += 2
        if payload is not None and file is not None:
            self._error(
                where, kw, f"'{kw}' : 'string' and 'file' are mutually exclusive.", Reason.CONFLICT
            )
            return None
        return HttpReturn(status, content_type, payload, file)

    def _http_deny(self, body: list[str], where: SourceLocation, kw: str) -> HttpDeny | None:
        if not body:
            return HttpDeny()
        if body[0] == "deny_status" and len(body) == 2:
            status = self._status(body[1], where, kw, 200, 599)
            return HttpDeny(status) if status is not None else None
        if body[0] in (
            "content-type",
            "string",
            "file",
            "lf-string",
            "lf-file",
            "hdr",
            "errorfile",
            "errorfiles",
            "default-errorfiles",
        ):
            self._error(where, kw, keywords.refused_message(f"{kw} {body[0]}"), Reason.UNSUPPORTED)
            return None
        self._error(where, kw, f"'{kw}' : unexpected argument '{body[0]}'.", Reason.SYNTAX)
        return None

    def _http_redirect(
        self, body: list[str], where: SourceLocation, kw: str
    ) -> HttpRedirectScheme | None:
        if len(body) < 2 or body[0] not in ("scheme", "location", "prefix"):
            self._error(
                where,
                kw,
                f"'{kw}' expects 'scheme', 'location' or 'prefix' followed by a value.",
                Reason.MISSING_ARGUMENT,
            )
            return None
        if body[0] != "scheme":
            self._error(where, kw, keywords.refused_message(f"{kw} {body[0]}"), Reason.UNSUPPORTED)
            return None
        scheme = body[1]
        if scheme not in ("http", "https"):
            self._error(
                where,
                kw,
                f"'{kw}' : scheme '{scheme}' is not supported (use http or https).",
                Reason.UNSUPPORTED,
            )
            return None
        code = 302
        rest = body[2:]
        while rest:
            if rest[0] == "code" and len(rest) >= 2:
                parsed = self._status(rest[1], where, kw, 301, 308)
                if parsed is None:
                    return None
                code = parsed
                rest = rest[2:]
            else:
                self._error(
                    where, kw, keywords.refused_message(f"{kw} {rest[0]}"), Reason.UNSUPPORTED
                )
                return None
        return HttpRedirectScheme(scheme, code)


def _kw(name: str, value: object) -> dict[str, Any]:
    """A one-field `replace()` change set for a field chosen at run time."""
    return {name: value}


def _merge_server(base: ServerOptions, override: ServerOptions) -> ServerOptions:
    """Field-wise: values written in `override` win over `base`."""
    merged = base
    for item in fields(ServerOptions):
        value = getattr(override, item.name)
        if value is not None:
            merged = replace(merged, **_kw(item.name, value))
    return merged


def parse_texts(texts: Sequence[tuple[str, str]], *, env: Mapping[str, str]) -> ParsedConfig:
    """Parse (file name, text) pairs in order; the pure entry point used by tests."""
    parser = ConfigParser(env=env)
    for file, text in texts:
        parser.feed(text, file=file)
    return parser.finish()


def _socket_owner(option: str, value: str | None) -> int | str:
    """The uid/gid that `user|uid|group|gid VALUE` names, or the error message."""
    if value is None:
        return f"'{option}' expects an argument."
    if option in ("uid", "gid"):
        if not value.isdigit():
            return f"'{option}' expects a numeric id, got '{value}'."
        return int(value)
    try:
        if option == "user":
            return pwd.getpwnam(value).pw_uid
        return grp.getgrnam(value).gr_gid
    except KeyError:
        kind = "user" if option == "user" else "group"
        return f"unknown {kind} name '{value}'."
