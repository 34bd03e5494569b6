"""Argument readers shared by several section families: log targets and TLS options.

`log` lines are read the same way in `global` and in proxies; `ssl-default-*-options`
and a bind's version flags share the TLS option reader.
"""

from __future__ import annotations

from dataclasses import replace

from staplegate.config.crtlist import TLS_VERSIONS
from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import (
    LOG_FACILITIES,
    LOG_LEVELS,
    LogFormat,
    LogTarget,
    LogTargetKind,
    SslOptions,
    TlsVersion,
)
from staplegate.config.parser.registry import ignored_message, refused_message
from staplegate.config.parser.state import ParserState
from staplegate.config.values import (
    AddressFamily,
    SocketAddress,
    ValueSyntaxError,
    parse_socket_address,
)


def read_log(
    parser: ParserState, args: list[str], where: SourceLocation, *, allow_global: bool
) -> LogTarget | None:
    if len(args) < 2:
        parser.error(
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
            parser.error(where, "log", f"'log' : '{opt}' expects an argument.")
            return None
        if opt == "len":
            length = parser.int_arg("log len", rest[1], where, minimum=80)
            if length is None:
                return None
        elif opt == "format":
            try:
                fmt = LogFormat(rest[1])
            except ValueError:
                parser.error(where, "log", f"unknown log format '{rest[1]}'")
                return None
        else:
            parser.warn(where, "log", ignored_message(f"log {opt}", "every log line is sent"))
        rest = rest[2:]
    if not rest:
        parser.error(where, "log", "'log' expects <facility> as argument.", Reason.MISSING_ARGUMENT)
        return None
    facility = rest[0]
    if facility not in LOG_FACILITIES:
        parser.error(where, "log", f"unknown log facility '{facility}'")
        return None
    levels = rest[1:3]
    for lvl in levels:
        if lvl not in LOG_LEVELS:
            parser.error(where, "log", f"unknown optional log level '{lvl}'")
            return None
    if len(rest) > 3:
        parser.error(where, "log", f"'log' : unexpected argument '{rest[3]}'.", Reason.SYNTAX)
        return None
    kind, address = read_log_target(parser, target, where)
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


def read_log_target(
    parser: ParserState, target: str, where: SourceLocation
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
        parser.error(where, "log", f"'log' : {exc.message}")
        return None, None
    if address.port == 0:
        address = replace(address, port=514)
    return kind, address


def read_ssl_options(
    parser: ParserState, args: list[str], where: SourceLocation, kw: str
) -> SslOptions | None:
    options = SslOptions()
    i = 0
    while i < len(args):
        opt = args[i]
        if opt in ("ssl-min-ver", "ssl-max-ver"):
            version = TLS_VERSIONS.get(args[i + 1]) if i + 1 < len(args) else None
            if version is None:
                parser.error(
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
            parser.error(where, kw, refused_message(f"{kw} {opt}"), Reason.UNSUPPORTED)
            return None
        else:
            parser.error(
                where,
                kw,
                f"'{kw}' : unknown or unsupported option '{opt}'.",
                Reason.UNKNOWN_KEYWORD,
            )
            return None
        i += 1
    return options
