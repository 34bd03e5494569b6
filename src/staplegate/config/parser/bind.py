"""`bind` lines: addresses, then options, each option registered with its handler or class.

A bind option either takes the next word as its value or stands alone (`takes_value`); an
ignored option warns, a refused one fails the line, an unknown one names the closest known
option. Client-certificate options follow HAProxy's semantics (docs/reference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from staplegate.config.crtlist import TLS_VERSIONS, effective_base, join_base
from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import (
    Bind,
    CertSource,
    CertSourceKind,
    ClientAuth,
    SslOptions,
    Verify,
)
from staplegate.config.parser.readers import read_ssl_options
from staplegate.config.parser.registry import (
    KeywordClass,
    KeywordTable,
    ignored,
    ignored_message,
    refused_all,
    refused_message,
    suggest,
    supported,
)
from staplegate.config.parser.state import ParserState, field_change
from staplegate.config.values import (
    AddressFamily,
    SocketAddress,
    ValueSyntaxError,
    parse_socket_address,
)
from staplegate.config.x509errors import parse_ignore_errors


@dataclass
class _BindLine:
    """One bind line being read: what its options have set so far."""

    label: str
    bind: Bind
    sources: list[CertSource] = field(default_factory=list)
    ssl_options: SslOptions = field(default_factory=SslOptions)
    client_auth: ClientAuth = field(default_factory=ClientAuth)
    ok: bool = True


# reads one option (and its value); False abandons the whole line at once
BindOption = Callable[[ParserState, _BindLine, str, str | None, SourceLocation], bool]


def read_bind(parser: ParserState, args: list[str], where: SourceLocation) -> Bind | None:
    if len(args) < 2:
        parser.error(
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
            parser.error(where, "bind", f"'{label}' : {exc.message}")
            return None
        if address.family is AddressFamily.UNIX:
            parser.error(
                where,
                "bind",
                refused_message(f"bind {part}") + " (UNIX socket listeners)",
                Reason.UNSUPPORTED,
            )
            return None
        addresses.append(address)
    line = _BindLine(label, Bind(where, text, tuple(addresses)))
    i = 2
    while i < len(args):
        opt = args[i]
        val = args[i + 1] if i + 1 < len(args) else None
        entry = BIND_OPTIONS.get(opt)
        takes_value = entry is not None and entry.takes_value
        if takes_value and val is None:
            what = {
                "crt": "missing certificate location",
                "crt-list": "missing certificate location",
                "alpn": "missing the comma-delimited ALPN protocol suite",
            }.get(opt, "missing value")
            parser.error(where, opt, f"'{label}' : '{opt}' : {what}", Reason.MISSING_ARGUMENT)
            return None
        step = 2 if takes_value else 1
        if opt == "ocsp-update":  # a crt-list / crt-store keyword, not a bind option
            parser.error(
                where,
                opt,
                f"'{label}' unknown keyword 'ocsp-update'. It is only valid in a crt-list "
                "line or on a crt-store 'load' line.",
                Reason.UNKNOWN_KEYWORD,
            )
            line.ok = False
            step = 2 if val in ("on", "off") else 1
        elif entry is None:
            hint = suggest(opt, BIND_OPTIONS.names())
            suffix = f" Did you mean '{hint}' maybe ?" if hint else ""
            parser.error(
                where,
                opt,
                f"'{label}' unknown keyword '{opt}'.{suffix}",
                Reason.UNKNOWN_KEYWORD,
            )
            return None
        elif entry.handler is not None:
            if not entry.handler(parser, line, opt, val, where):
                return None
        elif entry.kind is KeywordClass.IGNORED:
            parser.warn(where, opt, f"'{label}' : " + ignored_message(opt, entry.reason))
        else:
            parser.error(where, opt, f"'{label}' : " + refused_message(opt), Reason.UNSUPPORTED)
            line.ok = False
        i += step
    if not line.ok:
        return None
    if line.sources and not line.bind.ssl:
        parser.warn(
            where,
            "bind",
            f"'{label}' : certificates are configured but 'ssl' is not set: the listener "
            "will accept plain TCP/HTTP. Add 'ssl' to terminate TLS.",
            Reason.CONFLICT,
        )
    return replace(
        line.bind,
        cert_sources=tuple(line.sources),
        ssl_options=line.ssl_options,
        client_auth=line.client_auth,
    )


def _ssl(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    line.bind = replace(line.bind, ssl=True)
    return True


def _certificates(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    assert val is not None
    if opt == "crt" and val.startswith("@"):
        line.sources.append(CertSource(where, opt, val, val, CertSourceKind.STORE))
    elif opt == "crt":
        line.sources.append(
            CertSource(
                where,
                opt,
                val,
                join_base(
                    effective_base(parser.global_.default_path, parser.global_.crt_base), val
                ),
            )
        )
    else:
        # a crt-list's own path ignores crt-base (HAProxy), not default-path
        path = join_base(parser.global_.default_path, val)
        line.sources.append(CertSource(where, opt, val, path, CertSourceKind.CRT_LIST))
    return True


def _alpn(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    assert val is not None
    line.bind = replace(line.bind, alpn=tuple(val.split(",")))
    return True


def _version_bound(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    version = TLS_VERSIONS.get(val or "")
    if version is None:
        parser.error(
            where,
            opt,
            f"'{line.label}' : '{opt}' : expects 'SSLv3', 'TLSv1.0', "
            "'TLSv1.1', 'TLSv1.2' or 'TLSv1.3'",
        )
        line.ok = False
    elif opt == "ssl-min-ver":
        line.ssl_options = replace(line.ssl_options, min_ver=version)
    else:
        line.ssl_options = replace(line.ssl_options, max_ver=version)
    return True


def _cipher_list(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    line.bind = replace(line.bind, **field_change(opt, val))
    return True


def _strict_sni(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    line.bind = replace(line.bind, strict_sni=True)
    return True


def _accept_proxy(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    line.bind = replace(line.bind, accept_proxy=True)
    return True


def _tls_flag(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    parsed = read_ssl_options(parser, [opt], where, "bind")
    if parsed is not None:
        options = line.ssl_options
        line.ssl_options = replace(
            options,
            disabled=options.disabled | parsed.disabled,
            no_tls_tickets=options.no_tls_tickets or parsed.no_tls_tickets,
            prefer_client_ciphers=options.prefer_client_ciphers or parsed.prefer_client_ciphers,
        )
    return True


def _client_auth(
    parser: ParserState, line: _BindLine, opt: str, val: str | None, where: SourceLocation
) -> bool:
    assert val is not None
    updated = _client_auth_option(parser, opt, val, line.client_auth, where, line.label)
    if updated is None:
        return False
    line.client_auth = updated
    return True


def _client_auth_option(
    parser: ParserState, opt: str, val: str, auth: ClientAuth, where: SourceLocation, label: str
) -> ClientAuth | None:
    """One client-certificate option of a bind line (HAProxy's semantics, see docs)."""
    if opt == "verify":
        try:
            return replace(auth, verify=Verify(val))
        except ValueError:
            parser.error(
                where, opt, f"'{label}' : 'verify' : expects 'none', 'optional' or 'required'."
            )
            return None
    if opt == "ca-file":
        return replace(
            auth,
            ca_file=join_base(
                effective_base(parser.global_.default_path, parser.global_.ca_base), val
            ),
        )
    if opt == "crl-file":
        return replace(
            auth,
            crl_file=join_base(
                effective_base(parser.global_.default_path, parser.global_.ca_base), val
            ),
        )
    codes = parse_ignore_errors(val)
    if isinstance(codes, str):
        parser.error(where, opt, f"'{label}' : '{opt}' : {codes}.")
        return None
    if opt == "ca-ignore-err":
        return replace(auth, ca_ignore_err=codes)
    return replace(auth, crt_ignore_err=codes)


# every option a bind line knows
BIND_OPTIONS: KeywordTable[BindOption] = KeywordTable(
    [
        supported("ssl", _ssl),
        supported("crt", _certificates, takes_value=True),
        supported("crt-list", _certificates, takes_value=True),
        supported("alpn", _alpn, takes_value=True),
        supported("ssl-min-ver", _version_bound, takes_value=True),
        supported("ssl-max-ver", _version_bound, takes_value=True),
        supported("ciphers", _cipher_list, takes_value=True),
        supported("ciphersuites", _cipher_list, takes_value=True),
        supported("strict-sni", _strict_sni),
        supported("accept-proxy", _accept_proxy),
        supported("no-sslv3", _tls_flag),
        supported("no-tlsv10", _tls_flag),
        supported("no-tlsv11", _tls_flag),
        supported("no-tlsv12", _tls_flag),
        supported("no-tlsv13", _tls_flag),
        supported("no-tls-tickets", _tls_flag),
        supported("prefer-client-ciphers", _tls_flag),
        supported("verify", _client_auth, takes_value=True),
        supported("ca-file", _client_auth, takes_value=True),
        supported("crl-file", _client_auth, takes_value=True),
        supported("ca-ignore-err", _client_auth, takes_value=True),
        supported("crt-ignore-err", _client_auth, takes_value=True),
        ignored("name", "it only labels statistics", takes_value=True),
        ignored("id", "it only numbers statistics", takes_value=True),
        ignored("backlog", "it is a socket tuning", takes_value=True),
        ignored("defer-accept", "it is a socket tuning"),
        ignored("tcp-ut", "it is a socket tuning", takes_value=True),
        ignored("nice", "it is a scheduling tuning", takes_value=True),
        ignored("thread", "workers are processes", takes_value=True),
        ignored("shards", "workers are processes", takes_value=True),
        ignored("process", "workers are processes", takes_value=True),
        ignored("level", "it only applies to runtime API sockets", takes_value=True),
        ignored("severity-output", "it only applies to runtime API sockets", takes_value=True),
        *refused_all(
            [
                "allow-0rtt",
                "expose-fd",
                "force-sslv3",
                "force-tlsv10",
                "force-tlsv11",
                "force-tlsv12",
                "force-tlsv13",
                "generate-certificates",
                "nbconn",
                "no-alpn",
                "no-ca-names",
                "no-ssl",
                "no-strict-sni",
                "quic-force-retry",
                "ssl-default-bind-curves",
                "tfo",
                "transparent",
                "v4v6",
                "v6only",
            ]
        ),
        *refused_all(
            [
                "ca-sign-file",
                "ca-sign-pass",
                "ca-verify-file",
                "client-sigalgs",
                "curves",
                "default-crt",
                "ecdhe",
                "gid",
                "group",
                "guid-prefix",
                "idle-ping",
                "interface",
                "ktls",
                "label",
                "maxconn",
                "mode",
                "mss",
                "namespace",
                "npn",
                "proto",
                "quic-cc-algo",
                "sigalgs",
                "tls-ticket-keys",
                "uid",
                "user",
            ],
            takes_value=True,
        ),
    ]
)
