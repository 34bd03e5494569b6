"""Turn a loaded generation into what the data plane runs: TLS binds, backends, routing.

Built in the master before workers fork, so every worker shares the same `SSL.Context`
objects (and so the same session-ticket keys). Everything that the data plane cannot do yet
is refused here with a message naming the file:line, instead of being silently skipped.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from staplegate.config.diagnostics import Diagnostic, Reason, Severity, SourceLocation
from staplegate.config.model import (
    AclFetch,
    AclMatch,
    AclTerm,
    Backend,
    Bind,
    CertificateReference,
    Condition,
    Frontend,
    Mode,
)
from staplegate.config.values import AddressFamily, SocketAddress
from staplegate.generation import Generation
from staplegate.proxy.backends import BackendPool, BackendServer
from staplegate.proxy.tcp import ConnectionInfo, ProxyTimeouts
from staplegate.tls.contexts import (
    CertificateBinding,
    TlsBind,
    TlsBindSettings,
    TlsSetupError,
    TlsVersion,
    build_tls_bind,
)

DEFAULT_MAXCONN = 4096  # HAProxy derives it from ulimit; this is a sane fixed default


@dataclass(frozen=True)
class BindPlan:
    """One bind line: where to listen and how to terminate TLS."""

    frontend: str
    bind: Bind
    addresses: tuple[SocketAddress, ...]
    tls: TlsBind


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


@dataclass(frozen=True)
class BackendPlan:
    name: str
    servers: tuple[BackendServer, ...]
    timeouts: ProxyTimeouts
    retries: int


@dataclass(frozen=True)
class ServePlan:
    frontends: tuple[FrontendPlan, ...]
    backends: tuple[BackendPlan, ...]


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _tls_version(value: object) -> TlsVersion | None:
    if value is None:
        return None
    return TlsVersion(getattr(value, "value", value))


def condition_holds(condition: Condition | None, info: ConnectionInfo) -> bool:
    """Evaluate `if|unless { ssl_fc_sni -i … }` on a connection (all terms must hold)."""
    if condition is None:
        return True
    result = all(_term_holds(term, info) for term in condition.terms)
    return not result if condition.unless else result


def _term_holds(term: AclTerm, info: ConnectionInfo) -> bool:
    if term.fetch is AclFetch.SSL_FC:
        value = True
    else:
        sni = info.server_name or ""
        subject = sni.lower() if term.ignore_case else sni
        wanted = [v.lower() if term.ignore_case else v for v in term.values]
        if term.match is AclMatch.BEGIN:
            value = any(subject.startswith(w) for w in wanted)
        elif term.match is AclMatch.END:
            value = any(subject.endswith(w) for w in wanted)
        else:
            value = subject in wanted
    return not value if term.negated else value


def make_router(
    plan: FrontendPlan, pools: dict[str, BackendPool]
) -> Callable[[ConnectionInfo], BackendPool | None]:
    """`use_backend` rules in order, then `default_backend`; None when nothing applies."""
    rules = tuple((pools[r.backend], r.condition) for r in plan.rules)
    default = pools.get(plan.default_backend) if plan.default_backend else None

    def route(info: ConnectionInfo) -> BackendPool | None:
        for pool, condition in rules:
            if condition_holds(condition, info):
                return pool
        return default

    return route


def _refuse(where: SourceLocation, keyword: str, message: str) -> Diagnostic:
    return Diagnostic(Severity.ERROR, where.file, where.line, keyword, message, Reason.UNSUPPORTED)


def _warn(where: SourceLocation, keyword: str, message: str) -> Diagnostic:
    return Diagnostic(
        Severity.WARNING, where.file, where.line, keyword, message, Reason.UNSUPPORTED
    )


def _bindings(
    references: Sequence[CertificateReference], generation: Generation
) -> list[CertificateBinding]:
    by_name = {e.name: e.certificate for e in generation.certificates}
    bindings = []
    for ref in references:
        cert = by_name.get(ref.name)
        if cert is None:
            continue
        bindings.append(
            CertificateBinding(
                certificate=cert,
                sni_filters=ref.sni_filters,
                alpn=ref.alpn,
                min_version=_tls_version(ref.ssl_min_ver),
                max_version=_tls_version(ref.ssl_max_ver),
                ciphers=ref.ciphers,
                ciphersuites=ref.ciphersuites,
            )
        )
    return bindings


def _frontend_plan(
    frontend: Frontend, generation: Generation, problems: list[Diagnostic], gen_number: int
) -> FrontendPlan | None:
    config = generation.config
    defaults = config.global_
    if frontend.mode is Mode.HTTP:
        if frontend.http_request_rules or frontend.settings.options.forwardfor:
            problems.append(
                _refuse(
                    frontend.location,
                    "mode",
                    f"frontend '{frontend.name}' uses HTTP rules (http-request, option "
                    "forwardfor) and staplegate does not run 'mode http' yet; use 'mode tcp'",
                )
            )
            return None
        problems.append(
            _warn(
                frontend.location,
                "mode",
                f"frontend '{frontend.name}' is 'mode http': staplegate forwards it as a TCP "
                "stream for now (no HTTP logs or rules)",
            )
        )
    binds = []
    refs = config.certificate_references()
    for bind in frontend.binds:
        if not bind.ssl:
            problems.append(
                _refuse(
                    bind.location,
                    "bind",
                    f"'{bind.name}' in frontend '{frontend.name}' has no 'ssl': staplegate "
                    "only terminates TLS so far",
                )
            )
            continue
        mine = [r for r in refs if r.frontend == frontend.name and r.bind_location == bind.location]
        settings = TlsBindSettings(
            alpn=bind.alpn,
            min_version=_tls_version(bind.ssl_options.min_ver) or TlsVersion.TLSV12,
            max_version=_tls_version(bind.ssl_options.max_ver),
            ciphers=bind.ciphers or defaults.ssl_default_bind_ciphers,
            ciphersuites=bind.ciphersuites or defaults.ssl_default_bind_ciphersuites,
            no_tls_tickets=bind.ssl_options.no_tls_tickets,
            prefer_client_ciphers=bind.ssl_options.prefer_client_ciphers,
            strict_sni=bind.strict_sni,
        )
        try:
            tls = build_tls_bind(
                f"{bind.name} (frontend {frontend.name})",
                _bindings(mine, generation),
                settings,
                generation=gen_number,
            )
        except TlsSetupError as error:
            problems.append(_refuse(bind.location, "bind", str(error)))
            continue
        for address in bind.addresses:
            if address.family is AddressFamily.UNIX:
                problems.append(
                    _refuse(bind.location, "bind", "UNIX socket binds are not supported yet")
                )
        binds.append(BindPlan(frontend.name, bind, bind.addresses, tls))
    timeouts = frontend.timeouts
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
    )


def _backend_plan(backend: Backend, problems: list[Diagnostic]) -> BackendPlan:
    servers = []
    for server in backend.servers:
        if server.ssl or server.send_proxy.value != "none":
            problems.append(
                _refuse(
                    server.location,
                    "server",
                    f"server '{backend.name}/{server.name}': 'ssl' and 'send-proxy' to servers "
                    "are not supported yet",
                )
            )
        if server.disabled:
            continue
        servers.append(
            BackendServer(
                name=server.name,
                host=server.address.host,
                port=server.address.port,
                check=server.check,
                inter_s=server.inter_ms / 1000.0,
                rise=server.rise,
                fall=server.fall,
            )
        )
    timeouts = backend.timeouts
    return BackendPlan(
        name=backend.name,
        servers=tuple(servers),
        timeouts=ProxyTimeouts(
            connect_s=_seconds(timeouts.connect),
            client_s=_seconds(timeouts.client),
            server_s=_seconds(timeouts.server),
            tunnel_s=_seconds(timeouts.tunnel),
        ),
        retries=backend.settings.retries if backend.settings.retries is not None else 3,
    )


def build_plan(generation: Generation, *, number: int) -> tuple[ServePlan | None, list[Diagnostic]]:
    """The data-plane plan for `generation`, or None with the reasons it cannot run."""
    problems: list[Diagnostic] = []
    frontends = []
    for frontend in generation.config.frontends:
        plan = _frontend_plan(frontend, generation, problems, number)
        if plan is not None:
            frontends.append(plan)
    backends = tuple(_backend_plan(b, problems) for b in generation.config.backends)
    if not any(f.binds for f in frontends):
        problems.append(
            Diagnostic(
                Severity.ERROR,
                "",
                0,
                "frontend",
                "no TLS bind to listen on",
                Reason.MISSING_REFERENCE,
            )
        )
    if any(p.severity is Severity.ERROR for p in problems):
        return None, problems
    return ServePlan(frontends=tuple(frontends), backends=backends), problems


def open_listening_socket(address: SocketAddress, *, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening socket; the master owns it for the life of the process."""
    host = address.host
    family = socket.AF_INET6 if address.family is AddressFamily.IPV6 else socket.AF_INET
    if host in ("", "*"):
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, address.port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
