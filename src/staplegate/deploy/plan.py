"""The serve plan: what the data plane serves (binds, backends, routes), from a generation.

Built in the master before workers fork, so every worker shares the same `SSL.Context`
objects (and so the same session-ticket keys). Everything that the data plane cannot do yet
is refused here with a message naming the file:line, instead of being silently skipped.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO, TypeVar

from cryptography import x509

from staplegate.config.diagnostics import Diagnostic, Reason, Severity, SourceLocation
from staplegate.config.errorfile import ErrorFileError, parse_error_file
from staplegate.config.model import (
    IGNORE_ALL_ERRORS,
    Backend,
    Bind,
    CertificateReference,
    Condition,
    ErrorFile,
    Frontend,
    GlobalSettings,
    HttpMonitor,
    HttpRequestRule,
    HttpReturn,
    HttpUseService,
    Mode,
    ProxyOptions,
    ProxyProtocol,
    Server,
    SslOptions,
    TcpContentRule,
    TlsVersion,
    Verify,
)
from staplegate.config.parser.conditions import (
    backends_counted,
    looks_past_host,
    request_fetches,
)
from staplegate.config.samples import parse_unique_id_format
from staplegate.config.values import AddressFamily, SocketAddress
from staplegate.deploy.generation import Generation, load_generation
from staplegate.proxy.backends import (
    BackendPool,
    BackendServer,
    ExternalCheck,
    HttpCheck,
    SendProxy,
    ServerTls,
)
from staplegate.proxy.balance import Algorithm
from staplegate.proxy.http_message import LocalResponse, reason_phrase
from staplegate.proxy.http_pool import HttpBackendSettings, HttpSettings
from staplegate.proxy.http_rules import (
    CompiledRule,
    MustStapleGate,
    ServiceSnapshot,
    StatsService,
)
from staplegate.proxy.records import ProxyTimeouts
from staplegate.tls.contexts import (
    IGNORE_ALL,
    NO_CLIENT_VERIFICATION,
    CertificateBinding,
    ClientVerification,
    ClientVerify,
    TlsBind,
    TlsBindSettings,
    TlsSetupError,
    build_tls_bind,
    load_client_ca,
    load_crls,
)

_T = TypeVar("_T")
DEFAULT_MAXCONN = 4096  # HAProxy derives it from ulimit; this is a sane fixed default


@dataclass(frozen=True)
class BindPlan:
    """One bind line: where to listen and how to terminate TLS (None: a plain bind)."""

    frontend: str
    bind: Bind
    addresses: tuple[SocketAddress, ...]
    tls: TlsBind | None


@dataclass(frozen=True)
class RouteRule:
    backend: str
    condition: Condition | None


@dataclass(frozen=True)
class FrontendPlan:
    name: str
    binds: tuple[BindPlan, ...]
    default_backend: str | None
    rules: tuple[RouteRule, ...]
    timeouts: ProxyTimeouts
    maxconn: int
    mode: Mode = Mode.TCP
    http: HttpSettings | None = None  # mode http (backends filled in by the worker)
    tcplog: bool = False
    # `tcp-request inspect-delay` and `tcp-request content` (mode tcp, plain binds)
    inspect_delay_s: float | None = None
    content_rules: tuple[TcpContentRule, ...] = ()
    # the backends a dynamic `use_backend %[…]` may name (those of the frontend's mode)
    dynamic_backends: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BackendPlan:
    name: str
    servers: tuple[BackendServer, ...]
    timeouts: ProxyTimeouts
    retries: int
    algorithm: Algorithm = Algorithm.ROUNDROBIN
    draws: int = 2  # `balance random(N)`
    fullconn: int = 0  # `fullconn` (or HAProxy's default from the frontends' maxconn)
    redispatch: bool = False
    queue_timeout_s: float | None = None
    http: HttpBackendSettings = field(default_factory=lambda: HttpBackendSettings(""))
    # `tcp-request content` of a mode-tcp backend: checked when a connection enters it
    content_rules: tuple[TcpContentRule, ...] = ()

    def pool(self) -> BackendPool:
        """A fresh pool: one per worker (balancing state is per process, as in HAProxy) and
        the master's, which holds the servers' health and admin states."""
        return BackendPool(
            self.name,
            self.servers,
            algorithm=self.algorithm,
            draws=self.draws,
            fullconn=self.fullconn,
            redispatch=self.redispatch,
            queue_timeout_s=self.queue_timeout_s,
        )


@dataclass(frozen=True)
class ServePlan:
    frontends: tuple[FrontendPlan, ...]
    backends: tuple[BackendPlan, ...]
    #: what `http-request use-service prometheus-exporter` rules answer; None: no rule uses it
    exporter: ServiceSnapshot | None = None
    #: each `stats`-enabled frontend's page, by frontend name (the master renders them)
    stats_pages: Mapping[str, StatsService] = field(default_factory=dict)
    #: the must-staple certificates `monitor-uri` answers 503 for while unstapled
    must_staple: MustStapleGate = field(default_factory=MustStapleGate)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _refuse(where: SourceLocation, keyword: str, message: str) -> Diagnostic:
    return Diagnostic(Severity.ERROR, where.file, where.line, keyword, message, Reason.UNSUPPORTED)


def _warn(where: SourceLocation, keyword: str, message: str) -> Diagnostic:
    return Diagnostic(
        Severity.WARNING, where.file, where.line, keyword, message, Reason.UNSUPPORTED
    )


class _ClientFiles:
    """`ca-file`/`crl-file` contents read once per plan, by path; an error is a message."""

    def __init__(self) -> None:
        self._cas: dict[str, tuple[x509.Certificate, ...] | str] = {}
        self._crls: dict[str, tuple[x509.CertificateRevocationList, ...] | str] = {}

    def cas(self, path: str) -> tuple[x509.Certificate, ...] | str:
        if path not in self._cas:
            self._cas[path] = _read(load_client_ca, path, "CA file")
        return self._cas[path]

    def crls(self, path: str) -> tuple[x509.CertificateRevocationList, ...] | str:
        if path not in self._crls:
            self._crls[path] = _read(load_crls, path, "CRL file")
        return self._crls[path]


def _read(loader: Callable[[str], _T], path: str, what: str) -> _T | str:
    try:
        return loader(path)
    except OSError as error:
        return f"unable to load {what} '{path}' ({error.strerror or error})"
    except ValueError as error:
        return f"unable to load {what} '{path}' ({error})"


def _client_verification(
    ref: CertificateReference,
    bind: Bind,
    files: _ClientFiles,
    problems: list[Diagnostic],
) -> ClientVerification | None:
    """HAProxy's rule: a crt-list line's verify/ca-file/crl-file win over the bind's."""
    auth = bind.client_auth
    verify = ref.verify or auth.verify or Verify.NONE
    ca_file = ref.ca_file or auth.ca_file
    crl_file = ref.crl_file or auth.crl_file
    on_line = ref.crt_list is not None and (
        ref.verify is not None or ref.ca_file is not None or ref.crl_file is not None
    )
    where = ref.location if on_line else bind.location
    label = f"crt-list line for '{ref.name}'" if on_line else f"'{bind.name}'"
    if verify is Verify.NONE:
        unused = [
            word
            for word, value in (
                ("ca-file", ca_file),
                ("crl-file", crl_file),
                ("ca-ignore-err", auth.ca_ignore_err),
                ("crt-ignore-err", auth.crt_ignore_err),
            )
            if value
        ]
        if unused:
            problems.append(
                _warn(
                    where,
                    unused[0],
                    f"{label} : {', '.join(repr(w) for w in unused)} ignored: no client "
                    "certificate is asked for without 'verify optional' or 'verify required' "
                    "(HAProxy ignores them too)",
                )
            )
        return NO_CLIENT_VERIFICATION
    if ca_file is None:
        problems.append(
            _refuse(where, "verify", f"{label} : verify is enabled but no CA file specified.")
        )
        return None
    cas = files.cas(ca_file)
    crls = files.crls(crl_file) if crl_file is not None else ()
    for loaded, word in ((cas, "ca-file"), (crls, "crl-file")):
        if isinstance(loaded, str):
            problems.append(_refuse(where, word, f"{label} : {loaded}."))
            return None
    assert not isinstance(cas, str)
    assert not isinstance(crls, str)
    return ClientVerification(
        verify=ClientVerify(verify.value),
        ca_certificates=cas,
        crls=crls,
        ca_ignore=frozenset(
            IGNORE_ALL if c == IGNORE_ALL_ERRORS else c for c in auth.ca_ignore_err
        ),
        crt_ignore=frozenset(
            IGNORE_ALL if c == IGNORE_ALL_ERRORS else c for c in auth.crt_ignore_err
        ),
        where=f"{where.file}:{where.line}",
    )


def _bindings(
    references: Sequence[CertificateReference],
    generation: Generation,
    bind: Bind,
    files: _ClientFiles,
    problems: list[Diagnostic],
) -> list[CertificateBinding] | None:
    by_name = {e.name: e.certificate for e in generation.certificates}
    bindings = []
    ok = True
    for ref in references:
        client = _client_verification(ref, bind, files, problems)
        if client is None:
            ok = False
            continue
        cert = by_name.get(ref.name)
        if cert is None:
            continue
        bindings.append(
            CertificateBinding(
                certificate=cert,
                sni_filters=ref.sni_filters,
                alpn=ref.alpn,
                min_version=ref.ssl_min_ver,
                max_version=ref.ssl_max_ver,
                ciphers=ref.ciphers,
                ciphersuites=ref.ciphersuites,
                client=client,
            )
        )
    return bindings if ok else None


def _frontend_plan(
    frontend: Frontend,
    generation: Generation,
    problems: list[Diagnostic],
    gen_number: int,
    exporter: ServiceSnapshot,
    gate: MustStapleGate | None = None,
) -> FrontendPlan | None:
    config = generation.config
    defaults = config.global_
    http_mode = frontend.mode is Mode.HTTP
    known = {b.name for b in config.backends}
    for location, kw, condition in _conditions(frontend):
        for name in backends_counted(condition):
            if name not in known:
                problems.append(
                    _refuse(
                        location,
                        kw,
                        f"frontend '{frontend.name}': 'nbsrv({name})' names no backend "
                        f"(unable to find backend '{name}').",
                    )
                )
    if not http_mode:
        for rule in frontend.use_backends:
            for fetch in request_fetches(rule.condition):
                problems.append(
                    _refuse(
                        rule.location,
                        "use_backend",
                        f"frontend '{frontend.name}' is 'mode tcp': '{fetch}' needs 'mode http'",
                    )
                )
        if frontend.http_request_rules:
            problems.append(
                _warn(
                    frontend.location,
                    "http-request",
                    f"frontend '{frontend.name}' is 'mode tcp': its 'http-request' rules are "
                    "ignored, as HAProxy ignores them",
                )
            )
        if frontend.settings.monitor_uri is not None:
            problems.append(
                _warn(
                    frontend.location,
                    "monitor-uri",
                    f"'monitor-uri' ignored for frontend '{frontend.name}' as it requires "
                    "HTTP mode.",
                )
            )
        if frontend.stats is not None:
            problems.append(
                _refuse(
                    frontend.stats.location,
                    "stats enable",
                    f"frontend '{frontend.name}' is 'mode tcp': the stats page needs 'mode http'",
                )
            )
    binds = []
    client_files = _ClientFiles()
    refs = config.certificate_references()
    for bind in frontend.binds:
        for address in bind.addresses:
            if address.family is AddressFamily.UNIX:
                problems.append(
                    _refuse(bind.location, "bind", "UNIX socket binds are not supported yet")
                )
        if not bind.ssl:  # plain TCP/HTTP: forwarded like any other, without TLS
            binds.append(BindPlan(frontend.name, bind, bind.addresses, None))
            continue
        mine = [r for r in refs if r.frontend == frontend.name and r.bind_location == bind.location]
        alpn = bind.alpn
        if http_mode:
            alpn = _http1_alpn(alpn, bind.location, frontend.name, problems)
            mine = [
                r if r.alpn is None else _replace_alpn(r, frontend.name, problems) for r in mine
            ]
        # HAProxy: a bind's own ssl options override `ssl-default-bind-options`, flags add up
        own, base = bind.ssl_options, defaults.ssl_default_bind_options
        settings = TlsBindSettings(
            alpn=alpn,
            min_version=own.min_ver or base.min_ver or TlsVersion.TLSV12,
            max_version=own.max_ver or base.max_ver,
            disabled=own.disabled | base.disabled,
            ciphers=bind.ciphers or defaults.ssl_default_bind_ciphers,
            ciphersuites=bind.ciphersuites or defaults.ssl_default_bind_ciphersuites,
            no_tls_tickets=own.no_tls_tickets or base.no_tls_tickets,
            prefer_client_ciphers=own.prefer_client_ciphers or base.prefer_client_ciphers,
            strict_sni=bind.strict_sni,
            dh_param_file=defaults.ssl_dh_param_file,
        )
        bindings = _bindings(mine, generation, bind, client_files, problems)
        if bindings is None:
            continue
        try:
            tls = build_tls_bind(
                f"{bind.name} (frontend {frontend.name})",
                bindings,
                settings,
                generation=gen_number,
            )
        except TlsSetupError as error:
            problems.append(_refuse(bind.location, "bind", str(error)))
            continue
        binds.append(BindPlan(frontend.name, bind, bind.addresses, tls))
    timeouts = frontend.timeouts
    options = frontend.settings.options
    http = None
    if http_mode:
        http = HttpSettings(
            rules=_compile_rules(
                _monitor(frontend) + frontend.http_request_rules, problems, exporter, gate
            ),
            response_rules=_compile_rules(frontend.http_response_rules, problems, exporter),
            unique_id=parse_unique_id_format(frontend.settings.unique_id_format or ""),
            unique_id_header=(frontend.settings.unique_id_header or "").encode("latin-1") or None,
            after_response_rules=_compile_rules(
                frontend.http_after_response_rules, problems, exporter
            ),
            forwardfor_header=_forwardfor(options.forwardfor, options.forwardfor_header),
            forwardfor_except=_forwardfor_except(options),
            forwardfor_if_none=bool(options.forwardfor and options.forwardfor_if_none),
            httplog=bool(options.httplog) and not frontend.settings.no_log,
            request_timeout_s=_seconds(timeouts.http_request),
            keep_alive_timeout_s=_seconds(timeouts.http_keep_alive),
            client_timeout_s=_seconds(timeouts.client),
            max_headers=defaults.tune_http_maxhdr,
            route_per_request=any(
                looks_past_host(r.condition) or "%[" in r.backend for r in frontend.use_backends
            ),
            stats=_stats_service(frontend),
            content_rules=tuple(frontend.tcp_content_rules),
            ignore_probes=bool(options.http_ignore_probes),
            errorfiles=_errorfiles(frontend.settings.errorfiles, problems),
        )
    return FrontendPlan(
        name=frontend.name,
        binds=tuple(binds),
        default_backend=frontend.default_backend,
        rules=tuple(RouteRule(r.backend, r.condition) for r in frontend.use_backends),
        timeouts=ProxyTimeouts(
            connect_s=_seconds(timeouts.connect),
            client_s=_seconds(timeouts.client),
            server_s=_seconds(timeouts.server),
            tunnel_s=_seconds(timeouts.tunnel),
        ),
        maxconn=frontend.maxconn or defaults.maxconn or DEFAULT_MAXCONN,
        mode=frontend.mode,
        http=http,
        tcplog=bool(options.tcplog) and not http_mode and not frontend.settings.no_log,
        inspect_delay_s=_inspect_delay(frontend, binds, problems),
        dynamic_backends=frozenset(
            b.name for b in config.backends if b.mode is frontend.mode or not http_mode
        )
        if any("%[" in r.backend for r in frontend.use_backends)
        else frozenset(),
        content_rules=frontend.tcp_content_rules if not http_mode else (),
    )


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _http1_alpn(
    alpn: tuple[str, ...] | None,
    where: SourceLocation,
    frontend: str,
    problems: list[Diagnostic],
) -> tuple[str, ...] | None:
    """Mode http speaks HTTP/1.1 only: never let ALPN agree on h2 (no silent breakage)."""
    if alpn is None:
        return None
    kept = tuple(p for p in alpn if p not in ("h2", "h2c"))
    if kept != alpn:
        problems.append(
            _warn(
                where,
                "alpn",
                f"frontend '{frontend}': staplegate serves HTTP/1.1 only in 'mode http'; "
                f"ALPN offers {','.join(kept) or 'nothing'} instead of {','.join(alpn)}",
            )
        )
    return kept or ("http/1.1",)


def _replace_alpn(
    reference: CertificateReference, frontend: str, problems: list[Diagnostic]
) -> CertificateReference:
    alpn = _http1_alpn(reference.alpn, reference.location, frontend, problems)
    return replace(reference, alpn=alpn)


def _inspect_delay(
    frontend: Frontend, binds: list[BindPlan], problems: list[Diagnostic]
) -> float | None:
    """`tcp-request inspect-delay` where staplegate can honour it: a mode-tcp frontend on
    plain binds (its rules read the client's first bytes, a TLS ClientHello among them)."""
    delay_ms = frontend.settings.inspect_delay_ms
    rules = frontend.tcp_content_rules
    if frontend.mode is Mode.HTTP:
        return None  # each request is read whole before its rules: nothing to wait for
    if (rules or delay_ms) and any(b.tls is not None for b in binds):
        problems.append(
            _refuse(
                (rules[0].location if rules else frontend.location),
                "tcp-request content",
                f"frontend '{frontend.name}' terminates TLS: staplegate inspects the first "
                "bytes (a ClientHello) on plain binds only; route a TLS bind with ssl_fc_sni",
            )
        )
        return None
    return delay_ms / 1000.0 if delay_ms else None


def _external_check(
    backend: Backend, problems: list[Diagnostic], defaults: GlobalSettings, proxy_id: int
) -> ExternalCheck | None:
    """`option external-check` with its command, allowed by the global `external-check`."""
    settings = backend.settings
    if not settings.external_check:
        return None
    command = settings.external_check_command
    if not defaults.external_check or command is None:
        problems.append(
            _refuse(
                backend.location,
                "option external-check",
                f"backend '{backend.name}': 'option external-check' needs "
                + (
                    "the global 'external-check' keyword (commands run only when allowed)"
                    if not defaults.external_check
                    else "'external-check command PATH'"
                ),
            )
        )
        return None
    return ExternalCheck(
        command, settings.external_check_path or "", backend.name, proxy_id=proxy_id
    )


def _default_fullconn(backend: str, frontends: Sequence[Frontend], defaults: GlobalSettings) -> int:
    """HAProxy's `fullconn` when none is written: 10 % of the maxconn of the frontends whose
    `default_backend` or `use_backend` can send traffic to `backend` (at least 1)."""
    total = 0
    for frontend in frontends:
        if frontend.default_backend == backend or any(
            r.backend == backend for r in frontend.use_backends
        ):
            total += frontend.maxconn or defaults.maxconn or DEFAULT_MAXCONN
    return max(1, total // 10)


def _conditions(frontend: Frontend) -> list[tuple[SourceLocation, str, Condition | None]]:
    """Every condition written in a frontend, with where and under which keyword."""
    found: list[tuple[SourceLocation, str, Condition | None]] = [
        (r.location, "use_backend", r.condition) for r in frontend.use_backends
    ]
    found += [(r.location, "http-request", r.condition) for r in frontend.http_request_rules]
    found += [(m.location, "monitor fail", m.condition) for m in frontend.monitor_fail]
    found += [(r.location, "tcp-request content", r.condition) for r in frontend.tcp_content_rules]
    return found


def _monitor(frontend: Frontend) -> tuple[HttpRequestRule, ...]:
    """`monitor-uri`, answered before any `http-request` rule (as in HAProxy)."""
    uri = frontend.settings.monitor_uri
    if uri is None:
        return ()
    return (
        HttpRequestRule(
            frontend.location, HttpMonitor(uri, tuple(m.condition for m in frontend.monitor_fail))
        ),
    )


def _forwardfor(enabled: bool | None, name: str | None) -> bytes | None:
    if not enabled:
        return None
    return (name or "X-Forwarded-For").encode("latin-1")


def _forwardfor_except(
    options: ProxyOptions,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`option forwardfor except NET` (checked by the parser)."""
    if not options.forwardfor or not options.forwardfor_except:
        return ()
    return (ipaddress.ip_network(options.forwardfor_except, strict=False),)


def _stats_service(frontend: Frontend) -> StatsService | None:
    page = frontend.stats
    if page is None:
        return None
    rules = tuple(CompiledRule(rule.action, rule.condition) for rule in page.rules)
    return StatsService(frontend.name, page.uri, page.auth, page.realm, page.admin, rules)


def _destination_server_refusal(backend: Backend, server: Server) -> str | None:
    """Why a server without an address (`0.0.0.0`) or a port cannot run here, or None.

    Its address comes from each request (`set-dst`, else the address the client connected
    to), so it needs mode http; a health check needs a port to connect to."""
    label = f"server '{backend.name}/{server.name}'"
    if backend.mode is not Mode.HTTP:
        return (
            f"{label}: a server without an address or a port takes the request's "
            "destination (set-dst); staplegate does that in 'mode http' only (in mode tcp it "
            "would connect back to the frontend)"
        )
    if server.check and server.check_port is None and server.address.port == 0:
        return f"{label}: 'check' needs a port: write 'port N' on the server line"
    return None


def _errorfiles(
    errorfiles: Sequence[ErrorFile], problems: list[Diagnostic]
) -> dict[int, LocalResponse]:
    """Each `errorfile` read and parsed, as the answer for its status."""
    pages = {}
    for errorfile in errorfiles:
        try:
            page = parse_error_file(Path(errorfile.path).read_bytes())
        except OSError as error:
            reason = f"cannot read {errorfile.path}: {error.strerror}"
        except ErrorFileError as error:
            reason = f"{errorfile.path} is no HTTP response staplegate can send: {error}"
        else:
            pages[errorfile.status] = LocalResponse(
                page.status,
                page.reason or reason_phrase(page.status),
                page.headers,
                page.body,
                # without a Content-Length, HAProxy's answer ends with the connection
                close=not page.delimited,
            )
            continue
        problems.append(_refuse(errorfile.location, "errorfile", f"'errorfile' : {reason}"))
    return pages


def _compile_rules(
    rules: Sequence[HttpRequestRule],
    problems: list[Diagnostic],
    exporter: ServiceSnapshot,
    gate: MustStapleGate | None = None,
) -> tuple[CompiledRule, ...]:
    compiled = []
    for rule in rules:
        body = None
        action = rule.action
        if isinstance(action, HttpReturn) and action.file is not None:
            try:
                body = Path(action.file).read_bytes()
            except OSError as error:
                problems.append(
                    _refuse(
                        rule.location,
                        "http-request",
                        f"cannot read 'http-request return' file {action.file}: "
                        f"{error.strerror}; fix the path or use 'string'",
                    )
                )
                continue
        service = exporter if isinstance(action, HttpUseService) else None
        monitor = gate if isinstance(action, HttpMonitor) else None
        compiled.append(CompiledRule(action, rule.condition, body, service, monitor))
    return tuple(compiled)


def _server_versions(options: SslOptions) -> tuple[TlsVersion | None, TlsVersion | None]:
    """`ssl-default-server-options` as a min/max pair, holes closed as HAProxy does (the
    `no-tlsvXX` flags narrow the range); None keeps the library's default."""
    order = list(TlsVersion)
    rank = {version: index for index, version in enumerate(order)}
    low = rank[options.min_ver] if options.min_ver else None
    high = rank[options.max_ver] if options.max_ver else None
    if not options.disabled:
        return (
            order[low] if low is not None else None,
            order[high] if high is not None else None,
        )
    if low is None:  # HAProxy's and Python's default minimum for server connections
        low = rank[TlsVersion.TLSV12]
    allowed = [
        v
        for v in order
        if v not in options.disabled
        and (low is None or rank[v] >= low)
        and (high is None or rank[v] <= high)
    ]
    if not allowed:  # an empty range: every handshake fails, as it would in HAProxy
        return order[-1], order[0]
    return allowed[0], allowed[-1]


def _server_tls(server: Server, defaults: GlobalSettings) -> ServerTls | None:
    if not server.ssl:
        return None
    sni = server.sni
    from_client = False
    if sni is not None:
        if sni.startswith("str(") and sni.endswith(")"):
            sni = sni[4:-1]
        elif sni in ("ssl_fc_sni", "req.ssl_sni"):
            sni, from_client = None, True
    low, high = _server_versions(defaults.ssl_default_server_options)
    return ServerTls(
        verify=(server.verify or defaults.ssl_server_verify or Verify.REQUIRED) is Verify.REQUIRED,
        ca_file=server.ca_file,
        sni=sni,
        sni_from_client=from_client,
        ciphers=defaults.ssl_default_server_ciphers,
        min_version=low,
        max_version=high,
    )


def _backend_plan(
    backend: Backend,
    problems: list[Diagnostic],
    defaults: GlobalSettings,
    exporter: ServiceSnapshot,
    fullconn: int = 0,
    proxy_id: int = 0,
) -> BackendPlan:
    servers = []
    options = backend.settings.options
    timeouts = backend.timeouts
    httpchk = None
    if options.httpchk:
        httpchk = HttpCheck(
            method=options.httpchk_method or "OPTIONS",
            uri=options.httpchk_uri or "/",
            expect_status=options.httpchk_expect_status,
            expect=options.httpchk_expect,
            version=options.httpchk_version or "HTTP/1.0",
            headers=options.httpchk_headers or (),
        )
    external = _external_check(backend, problems, defaults, proxy_id)
    for index, server in enumerate(backend.servers, start=1):
        if server.disabled:
            continue
        if server.address.port == 0 or server.address.host in ("0.0.0.0", "::"):
            refusal = _destination_server_refusal(backend, server)
            if refusal is not None:
                problems.append(_refuse(server.location, "server", refusal))
                continue
        if server.sni is not None and not (
            (server.sni.startswith("str(") and server.sni.endswith(")"))
            or server.sni in ("ssl_fc_sni", "req.ssl_sni")
        ):
            problems.append(
                _refuse(
                    server.location,
                    "server",
                    f"server '{backend.name}/{server.name}': 'sni {server.sni}' is not "
                    "supported; use 'sni str(NAME)' or 'sni ssl_fc_sni'",
                )
            )
        servers.append(
            BackendServer(
                name=server.name,
                host=server.address.host,
                port=server.address.port,
                check=server.check,
                inter_s=server.inter_ms / 1000.0,
                rise=server.rise,
                fall=server.fall,
                weight=server.weight,
                backup=server.backup,
                maxconn=server.maxconn,
                send_proxy=SendProxy(server.send_proxy.value)
                if server.send_proxy is not ProxyProtocol.NONE
                else SendProxy.NONE,
                tls=_server_tls(server, defaults),
                httpchk=httpchk,
                check_timeout_s=_seconds(timeouts.check),
                check_port=server.check_port,
                cookie=server.cookie,
                minconn=server.minconn,
                slowstart_s=(server.slowstart_ms or 0) / 1000.0,
                tcp_check=backend.settings.tcp_check if httpchk is None else None,
                external_check=replace(external, server_id=index) if external is not None else None,
                source=server.source or backend.settings.source,
            )
        )
    retries = backend.settings.retries if backend.settings.retries is not None else 3
    content_rules = backend.tcp_content_rules
    if content_rules and backend.mode is Mode.HTTP:
        problems.append(
            _refuse(
                content_rules[0].location,
                "tcp-request content",
                f"backend '{backend.name}' is 'mode http': staplegate evaluates "
                "'tcp-request content' rules in 'mode tcp' only (write them as "
                "'http-request' rules)",
            )
        )
        content_rules = ()
    return BackendPlan(
        name=backend.name,
        content_rules=content_rules,
        servers=tuple(servers),
        timeouts=ProxyTimeouts(
            connect_s=_seconds(timeouts.connect),
            client_s=_seconds(timeouts.client),
            server_s=_seconds(timeouts.server),
            tunnel_s=_seconds(timeouts.tunnel),
        ),
        retries=retries,
        algorithm=Algorithm(backend.balance.value),
        draws=backend.settings.balance_draws or 2,
        fullconn=backend.settings.fullconn or fullconn,
        redispatch=bool(options.redispatch),
        queue_timeout_s=_seconds(
            timeouts.queue if timeouts.queue is not None else timeouts.connect
        ),
        http=HttpBackendSettings(
            name=backend.name,
            rules=_compile_rules(backend.http_request_rules, problems, exporter)
            if backend.mode is Mode.HTTP
            else (),
            response_rules=_compile_rules(backend.http_response_rules, problems, exporter),
            cookie=backend.settings.cookie if backend.mode is Mode.HTTP else None,
            after_response_rules=_compile_rules(
                backend.http_after_response_rules, problems, exporter
            ),
            forwardfor_header=_forwardfor(options.forwardfor, options.forwardfor_header),
            forwardfor_except=_forwardfor_except(options),
            forwardfor_if_none=bool(options.forwardfor and options.forwardfor_if_none),
            connect_timeout_s=_seconds(timeouts.connect),
            server_timeout_s=_seconds(timeouts.server),
            retries=retries,
            tunnel_timeout_s=_seconds(timeouts.tunnel),
            errorfiles=_errorfiles(backend.settings.errorfiles, problems)
            if backend.mode is Mode.HTTP
            else {},
        ),
    )


def build_plan(
    generation: Generation, *, number: int, require_listener: bool = True
) -> tuple[ServePlan | None, list[Diagnostic]]:
    """The data-plane plan for `generation`, or None with the reasons it cannot run.

    `staplegate -c` and start-up both judge a configuration by this function. The one
    difference is HAProxy's: `-c` accepts a configuration without any listener (Debian's
    stock file has none) with a warning (`require_listener=False`), start-up refuses it.
    """
    problems: list[Diagnostic] = []
    frontends = []
    exporter = ServiceSnapshot()
    gate = MustStapleGate(
        tuple(
            entry.certificate.cert_id.der
            for entry in generation.loaded()
            if entry.certificate is not None
            and entry.certificate.must_staple
            and entry.certificate.cert_id is not None
        )
    )
    for frontend in generation.config.frontends:
        plan = _frontend_plan(frontend, generation, problems, number, exporter, gate)
        if plan is not None:
            frontends.append(plan)
    backends = tuple(
        _backend_plan(
            b,
            problems,
            generation.config.global_,
            exporter,
            _default_fullconn(b.name, generation.config.frontends, generation.config.global_),
            proxy_id=number,
        )
        for number, b in enumerate(generation.config.backends, start=1)
    )
    if not any(f.binds for f in frontends) and not any(
        p.severity is Severity.ERROR for p in problems
    ):
        problems.append(
            Diagnostic(
                Severity.ERROR if require_listener else Severity.WARNING,
                "",
                0,
                "frontend",
                "no bind to listen on",
                Reason.MISSING_REFERENCE,
            )
        )
    if any(p.severity is Severity.ERROR for p in problems):
        return None, problems
    rules = [r for f in frontends if f.http is not None for r in f.http.rules]
    rules += [r for b in backends for r in b.http.rules]
    used = any(rule.service is exporter for rule in rules)
    pages = {f.name: f.http.stats for f in frontends if f.http is not None and f.http.stats}
    serve = ServePlan(tuple(frontends), backends, exporter if used else None, pages, gate)
    return serve, problems


def validate(
    paths: Sequence[str],
    *,
    now: dt.datetime,
    err: TextIO,
    startup: bool,
    loaded: Callable[[Generation], None] | None = None,
) -> tuple[Generation | None, ServePlan | None]:
    """The one judgement `-c` (`startup=False`) and start-up make of a configuration.

    Parse, load certificates, then build what the data plane would run (TLS contexts with
    their CA and CRL files, plain binds, routes). Every diagnostic goes to `err`;
    the plan is None when anything is fatal. As in HAProxy, only a configuration without
    any listener is valid for `-c` and refused at start-up. `loaded` is called with a
    generation free of errors before its TLS contexts are built (start-up verifies the
    stored staples meanwhile: updater/precheck.py).
    """
    generation = load_generation(paths, now=now, err=err)
    if generation is None or not generation.ok:
        return generation, None
    if loaded is not None:
        loaded(generation)
    plan, problems = build_plan(generation, number=1, require_listener=startup)
    for problem in problems:
        print(problem, file=err)
    return generation, plan
