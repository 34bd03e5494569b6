"""`server` and `default-server` lines: name, address, then registered options.

Options follow the same registry as bind options: supported ones have a handler, ignored
ones warn, refused ones fail the line, unknown ones name the closest known option.
`merge_server` applies a proxy's `default-server` under each of its servers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

from staplegate.config.crtlist import effective_base, join_base
from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import ProxyProtocol, ServerOptions, Verify
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
from staplegate.config.parser.source import INTERFACE_REFUSED, read_source, with_usesrc
from staplegate.config.parser.state import ParserState, RawServer, field_change
from staplegate.config.values import (
    AddressFamily,
    ValueSyntaxError,
    parse_int,
    parse_socket_address,
)


@dataclass
class _ServerLine:
    """The options of one server line read so far."""

    label: str
    options: ServerOptions = field(default_factory=ServerOptions)
    ok: bool = True


# reads one option and its value (when it takes one) into the line
ServerOption = Callable[[ParserState, _ServerLine, str, str | None, SourceLocation], None]


def read_server(parser: ParserState, args: list[str], where: SourceLocation) -> RawServer | None:
    if len(args) < 3:
        parser.error(
            where,
            "server",
            "'server' expects <name> and <addr>[:<port>] as arguments.",
            Reason.MISSING_ARGUMENT,
        )
        return None
    name = args[1]
    if not parser.valid_name(name, "server", where):
        return None
    try:
        # no port: the request's destination port (HAProxy's rule; see `set-dst-port`)
        address = parse_socket_address(args[2], require_port=False)
    except ValueSyntaxError as exc:
        parser.error(where, "server", f"'server {name}' : {exc.message}")
        return None
    if address.family is AddressFamily.UNIX:
        parser.error(
            where,
            "server",
            refused_message(f"server {name} {args[2]}") + " (UNIX socket servers)",
            Reason.UNSUPPORTED,
        )
        return None
    options = read_server_options(parser, args[3:], where, f"server {name}")
    if options is None:
        return None
    return RawServer(where, name, address, options)


def read_server_options(
    parser: ParserState, args: list[str], where: SourceLocation, label: str
) -> ServerOptions | None:
    line = _ServerLine(label)
    i = 0
    while i < len(args):
        opt = args[i]
        val = args[i + 1] if i + 1 < len(args) else None
        entry = SERVER_OPTIONS.get(opt)
        takes_value = entry is not None and entry.takes_value
        if takes_value and val is None:
            parser.error(
                where, opt, f"'{label}' : '{opt}' expects an argument.", Reason.MISSING_ARGUMENT
            )
            return None
        step = 2 if takes_value else 1
        if entry is None:
            hint = suggest(opt, SERVER_OPTIONS.names())
            suffix = f" Did you mean '{hint}' maybe ?" if hint else ""
            parser.error(
                where,
                opt,
                f"'{label}' unknown keyword '{opt}'.{suffix}",
                Reason.UNKNOWN_KEYWORD,
            )
            return None
        if entry.handler is not None:
            entry.handler(parser, line, opt, val, where)
        elif entry.kind is KeywordClass.IGNORED:
            parser.warn(where, opt, f"'{label}' : " + ignored_message(opt, entry.reason))
        else:
            parser.error(where, opt, f"'{label}' : " + refused_message(opt), Reason.UNSUPPORTED)
            line.ok = False
        i += step
    return line.options if line.ok else None


def merge_server(base: ServerOptions, override: ServerOptions) -> ServerOptions:
    """Field-wise: values written in `override` win over `base`."""
    merged = base
    for item in fields(ServerOptions):
        value = getattr(override, item.name)
        if value is not None:
            merged = replace(merged, **field_change(item.name, value))
    return merged


def _check(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    line.options = replace(line.options, check=opt == "check")


def _inter(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    ms = parser.time_arg(f"{line.label} inter", val, where, label="inter")
    if ms is None:
        line.ok = False
    else:
        line.options = replace(line.options, inter_ms=ms)


_COUNT_BOUNDS = {
    "rise": (1, None),
    "fall": (1, None),
    "weight": (0, 256),
    "maxconn": (0, None),
    "port": (1, 65535),
    "minconn": (0, None),
}
_COUNT_FIELDS = {"port": "check_port"}  # `port N`: where the health checks connect


def _count(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    lo, hi = _COUNT_BOUNDS[opt]
    try:
        number = parse_int(val or "", minimum=lo, maximum=hi)
    except ValueSyntaxError as exc:
        parser.error(where, opt, f"'{line.label}' : '{opt}' : {exc.message}.")
        line.ok = False
    else:
        line.options = replace(line.options, **field_change(_COUNT_FIELDS.get(opt, opt), number))


def _slowstart(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    ms = parser.time_arg(f"{line.label} slowstart", val, where, label="slowstart")
    if ms is None:
        line.ok = False
    else:
        line.options = replace(line.options, slowstart_ms=ms)


def _cookie(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    """`cookie VALUE`: what the backend's persistence cookie says for this server."""
    if not val or any(c in val for c in ';, \t"\\'):
        parser.error(where, opt, f"'{line.label}' : 'cookie' : invalid value '{val}'.")
        line.ok = False
        return
    line.options = replace(line.options, cookie=val)


def _backup(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    line.options = replace(line.options, backup=opt == "backup")


def _disabled(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    line.options = replace(line.options, disabled=opt == "disabled")


def _send_proxy(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    if opt.startswith("no-"):
        line.options = replace(line.options, send_proxy=ProxyProtocol.NONE)
    else:
        line.options = replace(line.options, send_proxy=ProxyProtocol(opt))


def _ssl(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    line.options = replace(line.options, ssl=opt == "ssl")


def _verify(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    if val not in ("none", "required"):
        parser.error(where, opt, f"'{line.label}' : 'verify' : expects 'none' or 'required'.")
        line.ok = False
    else:
        line.options = replace(line.options, verify=Verify(val))


def _ca_file(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    assert val is not None
    line.options = replace(
        line.options,
        ca_file=join_base(effective_base(parser.global_.default_path, parser.global_.ca_base), val),
    )


def _sni(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    line.options = replace(line.options, sni=val)


def _source(
    parser: ParserState, line: _ServerLine, opt: str, val: str | None, where: SourceLocation
) -> None:
    """`source <addr>[:<port>]`, and the `usesrc` / `interface` words that may follow it."""
    try:
        if opt == "source":
            binding = read_source(val or "")
        elif line.options.source is None:
            raise ValueSyntaxError(f"'{opt}' is only valid after 'source'")
        elif opt == "usesrc":
            binding = with_usesrc(line.options.source, val or "")
        else:
            raise ValueSyntaxError(INTERFACE_REFUSED)
    except ValueSyntaxError as exc:
        parser.error(where, opt, f"'{line.label}' : '{opt}' : {exc.message}.", Reason.UNSUPPORTED)
        line.ok = False
        return
    line.options = replace(line.options, source=binding)


# every option a server (or default-server) line knows
SERVER_OPTIONS: KeywordTable[ServerOption] = KeywordTable(
    [
        supported("check", _check),
        supported("no-check", _check),
        supported("inter", _inter, takes_value=True),
        supported("rise", _count, takes_value=True),
        supported("fall", _count, takes_value=True),
        supported("weight", _count, takes_value=True),
        supported("port", _count, takes_value=True),
        supported("minconn", _count, takes_value=True),
        supported("slowstart", _slowstart, takes_value=True),
        ignored(
            "maxqueue",
            "staplegate never queues a request for one particular server (requests wait in the "
            "backend's queue for the first free server; a persistent one whose server is full "
            "is balanced), so the limit always holds",
            takes_value=True,
        ),
        supported("cookie", _cookie, takes_value=True),
        supported("backup", _backup),
        supported("no-backup", _backup),
        supported("disabled", _disabled),
        supported("enabled", _disabled),
        supported("maxconn", _count, takes_value=True),
        supported("send-proxy", _send_proxy),
        supported("send-proxy-v2", _send_proxy),
        supported("no-send-proxy", _send_proxy),
        supported("no-send-proxy-v2", _send_proxy),
        supported("ssl", _ssl),
        supported("no-ssl", _ssl),
        supported("verify", _verify, takes_value=True),
        supported("ca-file", _ca_file, takes_value=True),
        supported("sni", _sni, takes_value=True),
        supported("source", _source, takes_value=True),
        supported("usesrc", _source, takes_value=True),
        supported("interface", _source, takes_value=True),
        ignored("fastinter", "health checks use 'inter'", takes_value=True),
        ignored("downinter", "health checks use 'inter'", takes_value=True),
        ignored("id", "it only numbers statistics", takes_value=True),
        ignored("pool-max-conn", "it is a connection reuse tuning", takes_value=True),
        ignored("pool-purge-delay", "it is a connection reuse tuning", takes_value=True),
        ignored("pool-low-conn", "it is a connection reuse tuning", takes_value=True),
        ignored("pool-conn-name", "it is a connection reuse tuning", takes_value=True),
        ignored("tfo", "it is a socket tuning"),
        ignored("check-sni", "TLS health checks are not supported", takes_value=True),
        ignored("init-addr", "addresses are resolved once at startup", takes_value=True),
        ignored("log-proto", "it only applies to log servers", takes_value=True),
        ignored("guid", "it only labels the server", takes_value=True),
        *refused_all(
            [
                "agent-check",
                "allow-0rtt",
                "check-reuse-pool",
                "check-send-proxy",
                "check-ssl",
                "check-via-socks4",
                "force-sslv3",
                "force-tlsv10",
                "force-tlsv11",
                "force-tlsv12",
                "force-tlsv13",
                "no-agent-check",
                "no-sslv3",
                "no-tls-tickets",
                "no-tlsv10",
                "no-tlsv11",
                "no-tlsv12",
                "no-tlsv13",
                "no-verifyhost",
                "non-stick",
                "send-proxy-v2-ssl",
                "send-proxy-v2-ssl-cn",
                "strict-maxconn",
                "verifyhost",
            ]
        ),
        *refused_all(
            [
                "addr",
                "agent-addr",
                "agent-inter",
                "agent-port",
                "agent-send",
                "alpn",
                "check-alpn",
                "check-proto",
                "ciphers",
                "ciphersuites",
                "crl-file",
                "crt",
                "curves",
                "error-limit",
                "hash-key",
                "mark",
                "max-reuse",
                "namespace",
                "npn",
                "observe",
                "on-error",
                "on-marked-down",
                "on-marked-up",
                "proto",
                "proxy-v2-options",
                "redir",
                "resolve-net",
                "resolve-opts",
                "resolve-prefer",
                "resolvers",
                "set-proxy-v2-tlv-fmt",
                "shard",
                "sigalgs",
                "socks4",
                "ssl-max-ver",
                "ssl-min-ver",
                "tcp-ut",
                "tos",
                "track",
                "ws",
            ],
            takes_value=True,
        ),
    ]
)
