"""Proxy sections (`defaults`, `frontend`, `backend`, `listen`): their registered keywords.

One table serves the four sections; capabilities (a backend has no `bind`, a frontend no
`server`) are checked by the handlers, which warn as HAProxy does. `timeout <name>`,
`option <name>` and `http-request <action>` are families: a keyword of the family that has
no handler of its own is classified (ignored, refused) or reported as unknown.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from staplegate.config.crtlist import join_base
from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.errorfile import HANDLED_CODES
from staplegate.config.model import (
    AclTerm,
    Balance,
    CookiePersistence,
    ErrorFile,
    HttpAuth,
    HttpRequestRule,
    Mode,
    MonitorFail,
    ProxyKind,
    ProxySettings,
    StatsPage,
    TcpCheckStep,
    TcpContentRule,
    Timeouts,
)
from staplegate.config.parser.bind import read_bind
from staplegate.config.parser.readers import read_log
from staplegate.config.parser.registry import (
    Keyword,
    KeywordTable,
    Section,
    ignored,
    refused_all,
    refused_message,
    suggest,
    supported,
)
from staplegate.config.parser.rules import (
    HTTP_REQUEST_ACTIONS,
    HTTP_RESPONSE_ACTIONS,
    RESPONSE_ONLY_ACTIONS,
    VARIABLE_ACTIONS,
    read_acl,
    read_condition,
    read_http_request,
    read_http_response,
    read_redirect,
    read_set_var,
    read_use_backend,
)
from staplegate.config.parser.server import merge_server, read_server, read_server_options
from staplegate.config.parser.source import read_source_words
from staplegate.config.parser.state import (
    DefaultsBuilder,
    Handler,
    ParserState,
    ProxyBuilder,
    field_change,
)
from staplegate.config.samples import (
    LogVariable,
    SampleSyntaxError,
    check_context,
    compile_pcre,
    parse_unique_id_format,
)
from staplegate.config.values import ValueSyntaxError, parse_int

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
_BALANCE = {b.value: b for b in Balance}
_REFUSED_BALANCE = frozenset(
    {"uri", "url_param", "hdr", "rdp-cookie", "hash", "hdr(host)", "log-hash", "sticky"}
)


def open_proxy(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`defaults|frontend|backend|listen [<name>] [from <defaults>]`: a new proxy section."""
    head = args[0]
    section = Section(head)
    name_arg: str | None = args[1] if len(args) > 1 and args[1] != "from" else None
    from_name: str | None = None
    rest = args[2:] if name_arg is not None else args[1:]
    if rest[:1] == ["from"]:
        if len(rest) < 2:
            parser.error(where, head, f"'{head}' : 'from' expects a defaults section name.")
        else:
            from_name = rest[1]
        rest = rest[2:]
    if rest:
        parser.error(where, head, f"'{head}' : unexpected argument '{rest[0]}'.", Reason.SYNTAX)
    if name_arg is not None:
        parser.valid_name(name_arg, head, where)
    inherited = parser.last_defaults
    if from_name is not None:
        found = [d for d in parser.defaults if d.name == from_name]
        if not found:
            parser.error(
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
        parser.defaults_builder = DefaultsBuilder(where, name_arg, base)
        return
    if name_arg is None:
        parser.error(where, head, f"'{head}' expects an <id> argument", Reason.MISSING_ARGUMENT)
        name_arg = ""
    parser.proxy = ProxyBuilder(where, ProxyKind(head), name_arg, inherited, ProxySettings())


def _section(parser: ParserState) -> Section:
    section = parser.section
    assert section is not None
    return section


def _mode(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    value = args[1] if len(args) > 1 else None
    if value not in ("tcp", "http"):
        if value in ("health", "log", "spop"):
            parser.error(where, head, refused_message(f"mode {value}"), Reason.UNSUPPORTED)
        else:
            parser.error(where, head, f"unknown proxy mode '{value or ''}'.")
        return
    parser.set_proxy_settings(replace(parser.proxy_settings, mode=Mode(value)))


def _timeout(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    name = args[1] if len(args) > 1 else ""
    if name not in _TIMEOUT_FIELDS:
        if name == "http-check":
            parser.error(
                where,
                "timeout http-check",
                refused_message("timeout http-check"),
                Reason.UNSUPPORTED,
            )
            return
        parser.error(
            where,
            "timeout",
            "'timeout' supports 'client', 'server', 'connect', 'check', 'queue', "
            "'http-keep-alive', 'http-request', 'tunnel', 'tarpit', 'client-fin' and "
            f"'server-fin' (got '{name}')",
            Reason.UNKNOWN_KEYWORD,
        )
        return
    label = f"timeout {name}"
    if len(args) > 3:
        parser.error(where, label, f"'{label}' : unexpected argument '{args[3]}'.", Reason.SYNTAX)
        return
    ms = parser.time_arg(label, args[2] if len(args) > 2 else None, where)
    if ms is None:
        return
    settings = parser.proxy_settings
    timeouts: Timeouts = replace(settings.timeouts, **field_change(_TIMEOUT_FIELDS[name], ms))
    if label in PROXY.reasons():
        parser.note_parsed_but_ignored(where, label, PROXY)
    parser.set_proxy_settings(replace(settings, timeouts=timeouts))


def _option_words(args: list[str]) -> tuple[bool, list[str]]:
    """Whether the line negates (`no option X`), and the words from the option's name on."""
    negate = args[0] == "no"
    return negate, args[2:] if negate else args[1:]


def _option_family(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`option X` or `no option X` that no option handler took (or `no <anything>`)."""
    if args == ["no", "log"]:  # HAProxy: the proxy logs nothing, defaults' `log` lines too
        parser.set_proxy_settings(
            replace(parser.proxy_settings, no_log=True, log_global=False, logs=())
        )
        return
    if args[0] == "no" and (len(args) < 2 or args[1] != "option"):
        parser.classify_rest(_section(parser), PROXY, args, where)
        return
    _negate, words = _option_words(args)
    if not words:
        parser.error(where, "option", "'option' expects an option name.", Reason.MISSING_ARGUMENT)
        return
    parser.classify_rest(_section(parser), PROXY, ["option", *words], where)


def _set_options(parser: ParserState, **changes: Any) -> None:
    settings = parser.proxy_settings
    parser.set_proxy_settings(replace(settings, options=replace(settings.options, **changes)))


def _option_log(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    negate, words = _option_words(args)
    name, extra = words[0], words[1:]
    kw = f"option {name}"
    opts = parser.proxy_settings.options
    if extra and not (name == "httplog" and extra == ["clf"]):
        parser.error(where, kw, f"'{kw}' : unexpected argument '{extra[0]}'.", Reason.SYNTAX)
        return
    if name == "tcplog":
        _set_options(parser, tcplog=not negate, httplog=False if not negate else opts.httplog)
    else:
        _set_options(parser, httplog=not negate, tcplog=False if not negate else opts.tcplog)


def _option_forwardfor(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    negate, words = _option_words(args)
    kw = f"option {words[0]}"
    extra = words[1:]
    header: str | None = None
    excepted = ""
    if_none = False
    i = 0
    while i < len(extra):
        if extra[i] in ("except", "header") and i + 1 < len(extra):
            if extra[i] == "header":
                header = extra[i + 1]
            else:
                excepted = extra[i + 1]
                try:
                    ipaddress.ip_network(excepted, strict=False)
                except ValueError:
                    parser.error(
                        where,
                        kw,
                        f"'{kw}' : 'except' expects an IPv4 or IPv6 network, got '{excepted}'.",
                        Reason.INVALID_VALUE,
                    )
                    return
            i += 2
        elif extra[i] == "if-none":
            if_none = True
            i += 1
        else:
            parser.error(where, kw, f"'{kw}' : unexpected argument '{extra[i]}'.", Reason.SYNTAX)
            return
    _set_options(
        parser,
        forwardfor=not negate,
        forwardfor_header=header,
        forwardfor_except=excepted,
        forwardfor_if_none=if_none,
    )


def _option_httpchk(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    negate, words = _option_words(args)
    extra = words[1:]
    method, uri = "OPTIONS", "/"
    if len(extra) == 1:
        uri = extra[0]
    elif len(extra) >= 2:
        method, uri = extra[0], extra[1]
    _set_options(parser, httpchk=not negate, httpchk_method=method, httpchk_uri=uri)


def mysql_check_steps(user: str | None, *, post_41: bool = True) -> tuple[TcpCheckStep, ...]:
    """HAProxy's `option mysql-check` ruleset: read the server's handshake (an error packet
    fails); with a user, send a Client Authentication packet without password (protocol
    4.1's, or the pre-4.1 one) and COM_QUIT, and read the answer (an error packet fails)."""
    handshake = TcpCheckStep("expect", kind="mysql", pattern="handshake")
    if user is None:
        return (handshake,)
    name = user.encode("utf-8")
    if post_41:  # capabilities PROTOCOL_41|SECURE_CONNECTION, max packet, utf8, 23 zeroes
        payload = b"\x00\x82\x00\x00" + b"\x00\x80\x00\x01" + b"\x21" + bytes(23)
    else:  # capabilities, max packet
        payload = b"\x00\x80" + b"\x00\x00\x01"
    payload += name + b"\x00" + b"\x00"  # the user, an empty password
    login = len(payload).to_bytes(3, "little") + b"\x01" + payload
    quit_command = b"\x01\x00\x00\x00\x01"  # COM_QUIT, sequence 0
    answer = TcpCheckStep("expect", kind="mysql", pattern="authentication")
    return handshake, TcpCheckStep("send", login + quit_command), answer


def _option_mysql_check(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`option mysql-check [user <name> [post-41|pre-41]]` (post-41 is the default)."""
    negate, words = _option_words(args)
    rest = words[1:]
    user: str | None = None
    post_41 = True
    if rest:
        if rest[0] != "user" or len(rest) < 2 or len(rest) > 3:
            parser.error(
                where,
                "option mysql-check",
                "'option mysql-check' only supports 'user <username> [post-41|pre-41]'.",
                Reason.SYNTAX,
            )
            return
        user = rest[1]
        if len(rest) == 3:
            if rest[2] not in ("post-41", "pre-41"):
                parser.error(
                    where,
                    "option mysql-check",
                    f"'option mysql-check' : unknown client version '{rest[2]}' (expects "
                    "'post-41' or 'pre-41').",
                    Reason.SYNTAX,
                )
                return
            post_41 = rest[2] == "post-41"
    steps = None if negate else mysql_check_steps(user, post_41=post_41)
    parser.set_proxy_settings(replace(parser.proxy_settings, tcp_check=steps))


def _option_tcp_check(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`option tcp-check` (its `tcp-check` rules follow; none: a connect check) and
    `option redis-check` (HAProxy's: PING, then +PONG expected)."""
    negate, words = _option_words(args)
    if words[0] == "redis-check":
        steps: tuple[TcpCheckStep, ...] | None = (
            TcpCheckStep("send", b"PING\r\n"),
            TcpCheckStep("expect", b"+PONG", "string", "+PONG"),
        )
    else:
        steps = parser.proxy_settings.tcp_check or ()
    parser.set_proxy_settings(replace(parser.proxy_settings, tcp_check=None if negate else steps))


def _tcp_check(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`tcp-check send STRING | send-binary HEX | expect [!] string|rstring|binary PATTERN
    | comment TEXT | connect` (connect: the first step, without options)."""
    action = args[1] if len(args) > 1 else ""
    kw = f"tcp-check {action}".strip()
    rest = args[2:]
    step: TcpCheckStep | None = None
    if action == "comment" and rest:
        # HAProxy numbers comment and connect lines as steps, and shows a comment in the
        # check line of the step after it: both are kept as markers
        step = TcpCheckStep("comment", pattern=" ".join(rest))
    elif action == "connect" and not rest:
        step = TcpCheckStep("connect")  # the check connects first anyway
    elif action in ("send", "send-binary") and len(rest) == 1:
        if action == "send":  # the lexer already turned `\r\n` into CR LF
            step = TcpCheckStep("send", rest[0].encode("latin-1", "replace"))
        else:
            try:
                step = TcpCheckStep("send", bytes.fromhex(rest[0]))
            except ValueError:
                parser.error(where, kw, f"'{kw}' : '{rest[0]}' is not hexadecimal.")
                return
    elif action == "expect" and rest:
        negate = rest[0] == "!"
        words = rest[1:] if negate else rest
        if len(words) == 2 and words[0] in ("string", "rstring", "binary"):
            kind, pattern = words
            wanted = pattern.encode("latin-1", "replace")
            try:
                if kind == "rstring":
                    re.compile(pattern)
                elif kind == "binary":
                    wanted = bytes.fromhex(pattern)
            except (re.error, ValueError) as error:
                parser.error(where, kw, f"'{kw}' : invalid {kind} '{pattern}': {error}.")
                return
            step = TcpCheckStep("expect", wanted, kind, pattern, negate)
    if step is None:
        parser.error(
            where,
            kw,
            refused_message(kw) + " (staplegate runs 'tcp-check send|send-binary', 'expect [!] "
            "string|rstring|binary', 'connect' without options and 'comment')",
            Reason.UNSUPPORTED,
        )
        return
    settings = parser.proxy_settings
    if settings.tcp_check is None:
        parser.error(
            where,
            kw,
            f"'{kw}' needs 'option tcp-check' written before it in this section.",
            Reason.MISSING_ARGUMENT,
        )
        return
    parser.set_proxy_settings(replace(settings, tcp_check=(*settings.tcp_check, step)))


def _option_external_check(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    negate, _words = _option_words(args)
    parser.set_proxy_settings(replace(parser.proxy_settings, external_check=not negate))


def _external_check(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`external-check command PATH` / `external-check path PATH`."""
    kw = f"{args[0]} {args[1]}"
    if len(args) != 3 or not args[2]:
        parser.error(where, kw, f"'{kw}' expects one argument.", Reason.MISSING_ARGUMENT)
        return
    field_name = "external_check_command" if args[1] == "command" else "external_check_path"
    parser.set_proxy_settings(replace(parser.proxy_settings, **field_change(field_name, args[2])))


def _option_redispatch(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    negate, _words = _option_words(args)
    _set_options(parser, redispatch=not negate)


def _option_http_ignore_probes(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`option http-ignore-probes`: a connection that never sends a byte (a browser's
    pre-connect) is closed at `timeout http-request` without a 408 and without a log line."""
    negate, _words = _option_words(args)
    _set_options(parser, http_ignore_probes=not negate)


def _option_dontlognull(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    negate, words = _option_words(args)
    kw = f"option {words[0]}"
    settings = parser.proxy_settings
    new = replace(settings, options=replace(settings.options, dontlognull=not negate))
    parser.note_parsed_but_ignored(where, kw, PROXY)
    parser.set_proxy_settings(new)


def _log(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    settings = parser.proxy_settings
    if len(args) > 1 and args[1] == "global":
        parser.set_proxy_settings(replace(settings, log_global=True, no_log=False))
        return
    target = read_log(parser, args, where, allow_global=True)
    if target is not None:
        parser.set_proxy_settings(replace(settings, logs=(*settings.logs, target), no_log=False))


def _count(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    number = parser.int_arg(head, args[1] if len(args) > 1 else None, where, minimum=0)
    if number is not None:
        parser.set_proxy_settings(replace(parser.proxy_settings, **field_change(head, number)))


def _source(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`source <addr>[:<port>] [usesrc …]`: the servers' source address (backend side)."""
    if not parser.has_cap(_section(parser), frontend=False, kw="source", where=where):
        return
    try:
        binding = read_source_words(args[1:])
    except ValueSyntaxError as exc:
        parser.error(where, "source", f"'source' : {exc.message}.", Reason.UNSUPPORTED)
        return
    parser.set_proxy_settings(replace(parser.proxy_settings, source=binding))


def _balance(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    if not parser.has_cap(_section(parser), frontend=False, kw="balance", where=where):
        return
    algo = args[1] if len(args) > 1 else None
    if algo is None:
        parser.error(
            where, "balance", "'balance' expects an algorithm name.", Reason.MISSING_ARGUMENT
        )
        return
    if algo in _BALANCE:
        if len(args) > 2:
            parser.error(
                where,
                "balance",
                f"'balance {algo}' : unexpected argument '{args[2]}'.",
                Reason.SYNTAX,
            )
            return
        parser.set_proxy_settings(replace(parser.proxy_settings, balance=_BALANCE[algo]))
        return
    draws = re.fullmatch(r"random\(([0-9]+)\)", algo)
    if draws is not None and len(args) == 2:
        count = int(draws.group(1))
        if not 1 <= count <= 100:
            parser.error(
                where,
                "balance",
                f"'balance random' : draws must be between 1 and 100 (got {count}).",
                Reason.INVALID_VALUE,
            )
            return
        parser.set_proxy_settings(
            replace(parser.proxy_settings, balance=Balance.RANDOM, balance_draws=count)
        )
        return
    base = algo.split("(")[0]
    if base in _REFUSED_BALANCE or algo in _REFUSED_BALANCE:
        parser.error(where, "balance", refused_message(f"balance {algo}"), Reason.UNSUPPORTED)
    else:
        parser.error(
            where, "balance", f"unknown balancing algorithm '{algo}'.", Reason.UNKNOWN_KEYWORD
        )


def _http_check(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`http-check expect status <code>` and `http-check send …` are read; every other form
    (`connect`, `expect string|rstatus|…`, several `send` lines) is refused."""
    if len(args) >= 2 and args[1] == "send":
        _http_check_send(parser, args, where)
        return
    if len(args) < 2 or args[1] != "expect":
        parser.classify_rest(_section(parser), PROXY, args, where)
        return
    negate = len(args) > 2 and args[2] == "!"
    words = args[3:] if negate else args[2:]
    kinds = ("status", "rstatus", "string", "rstring")
    if (
        len(words) != 2
        or words[0] not in kinds
        or (words[0] == "status" and not words[1].isdigit())
    ):
        parser.error(
            where,
            "http-check",
            "staplegate understands 'http-check expect [!] status|rstatus|string|rstring "
            "<pattern>' and 'http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]...'.",
            Reason.UNSUPPORTED,
        )
        return
    kind, pattern = words
    if kind in ("rstatus", "rstring"):
        try:
            compile_pcre(pattern)
        except re.error as error:
            parser.error(where, "http-check", f"'http-check expect' : invalid regex: {error}.")
            return
    settings = parser.proxy_settings
    if kind == "status" and not negate:
        options = replace(settings.options, httpchk_expect_status=int(pattern), httpchk_expect=None)
    else:
        options = replace(
            settings.options, httpchk_expect_status=None, httpchk_expect=(kind, pattern, negate)
        )
    parser.set_proxy_settings(replace(settings, options=options))


def _http_check_send(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """HAProxy 2.2+'s way to write the check request (`option httpchk` with no argument)."""
    kw = "http-check send"
    request: dict[str, str] = {}
    headers: list[tuple[str, str]] = []
    words = args[2:]
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("meth", "uri", "ver") and i + 1 < len(words):
            value = words[i + 1]
            if any(c in value for c in " \r\n") or not value:
                parser.error(where, kw, f"'{kw}' : invalid {word} '{value}'.", Reason.SYNTAX)
                return
            request[word] = value
            i += 2
        elif word == "hdr" and i + 2 < len(words):
            name, value = words[i + 1], words[i + 2]
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or any(
                c in value for c in "\r\n"
            ):
                parser.error(where, kw, f"'{kw}' : invalid header '{name}'.", Reason.SYNTAX)
                return
            headers.append((name, value))
            i += 3
        elif word in ("meth", "uri", "ver", "hdr"):
            parser.error(where, kw, f"'{kw}' : '{word}' expects a value.", Reason.MISSING_ARGUMENT)
            return
        else:
            parser.error(where, kw, refused_message(f"{kw} {word}"), Reason.UNSUPPORTED)
            return
    settings = parser.proxy_settings
    options = settings.options
    options = replace(
        options,
        httpchk_method=request.get("meth", options.httpchk_method),
        httpchk_uri=request.get("uri", options.httpchk_uri),
        httpchk_version=request.get("ver", options.httpchk_version),
        httpchk_headers=tuple(headers),
    )
    parser.set_proxy_settings(replace(settings, options=options))


def _default_backend(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    if not parser.has_cap(_section(parser), frontend=True, kw=head, where=where):
        return
    if len(args) != 2:
        parser.error(where, head, f"'{head}' expects a backend name.", Reason.MISSING_ARGUMENT)
        return
    parser.set_proxy_settings(replace(parser.proxy_settings, default_backend=args[1]))


def _default_server(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    if not parser.has_cap(_section(parser), frontend=False, kw=head, where=where):
        return
    opts = read_server_options(parser, args[1:], where, "default-server")
    if opts is not None:
        settings = parser.proxy_settings
        parser.set_proxy_settings(
            replace(settings, default_server=merge_server(settings.default_server, opts))
        )


def _acl(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    read_acl(parser, args, where, parser.acls)


def _errorfile(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    if len(args) != 3:
        parser.error(
            where,
            "errorfile",
            "'errorfile' expects <code> and <file> as arguments.",
            Reason.MISSING_ARGUMENT,
        )
        return
    try:
        status = parse_int(args[1], minimum=100, maximum=599)
    except ValueSyntaxError as exc:
        parser.error(where, "errorfile", f"'errorfile' : {exc.message}.")
        return
    if status not in HANDLED_CODES:
        parser.warn(
            where,
            "errorfile",
            f"status code '{status}' not handled, error customization will be ignored.",
            Reason.IGNORED,
        )
        return
    path = join_base(parser.global_.default_path, args[2])
    mine = tuple(e for e in parser.proxy_settings.errorfiles if e.status != status)
    parser.set_proxy_settings(
        replace(parser.proxy_settings, errorfiles=(*mine, ErrorFile(where, status, path)))
    )


def _stats_timeout(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    parser.note_parsed_but_ignored(where, "stats timeout", PROXY)


#: the `stats` keywords read by `_stats` (`stats admin`, with its condition, by `_stats_admin`)
STATS_KEYWORDS = (
    "stats enable",
    "stats uri",
    "stats refresh",
    "stats auth",
    "stats realm",
    "stats hide-version",
    "stats show-legends",
    "stats show-node",
    "stats show-desc",
    "stats scope",
)


_STATS_ARITY = {
    "stats uri": "1",
    "stats refresh": "1",
    "stats auth": "1",
    "stats scope": "1",
    "stats realm": "+",
    "stats show-node": "?",
    "stats show-desc": "*",
}


def _in_stats_section(parser: ParserState, kw: str, where: SourceLocation) -> bool:
    """Whether this section may serve a stats page (a frontend or listen); an error if not."""
    section = _section(parser)
    if section is Section.FRONTEND or section is Section.LISTEN:
        return True
    parser.error(
        where,
        kw,
        f"'{kw}' in a '{section.value}' section is not supported by staplegate; write "
        "the 'stats' lines in the 'frontend' or 'listen' section that serves the page",
        Reason.UNSUPPORTED,
    )
    return False


def _stats(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """One `stats` line; any of them enables the page (HAProxy's rule)."""
    kw = f"stats {args[1]}"
    if not _in_stats_section(parser, kw, where):
        return
    assert parser.proxy is not None
    page = parser.proxy.stats or StatsPage(where)
    value = args[2:]
    # how many arguments: exactly one, none, at least one ("+"), at most one ("?")
    arity = _STATS_ARITY.get(kw, "0")
    count = len(value)
    bad = {"1": count != 1, "0": count != 0, "+": count == 0, "?": count > 1, "*": False}[arity]
    if bad:
        usage = {"1": "one argument", "0": "no argument", "+": "an argument", "?": "one name"}
        parser.error(where, kw, f"'{kw}' expects {usage[arity]}.", Reason.SYNTAX)
        return
    if kw in ("stats auth", "stats realm") and page.rules:
        parser.error(where, kw, _STATS_EXCLUSIVE, Reason.CONFLICT)
        return
    if kw == "stats uri":
        page = replace(page, uri=value[0])
    elif kw == "stats refresh":
        ms = parser.time_arg(kw, value[0], where)
        if ms is None:
            return
        page = replace(page, refresh_s=max(1, (ms + 999) // 1000))
    elif kw == "stats auth":
        if ":" not in value[0]:
            parser.error(where, kw, f"'{kw}' expects <user>:<passwd>.", Reason.SYNTAX)
            return
        page = replace(page, auth=(*page.auth, value[0]))
    elif kw == "stats realm":
        page = replace(page, realm=" ".join(value))
    elif kw == "stats hide-version":
        page = replace(page, hide_version=True)
    elif kw == "stats show-legends":
        page = replace(page, show_legends=True)
    elif kw == "stats show-node":
        page = replace(page, node=value[0] if value else "")  # "": the host name
    elif kw == "stats show-desc":
        page = replace(page, description=" ".join(value))  # "": no text of its own
    elif kw == "stats scope":
        page = replace(page, scope=(*page.scope, value[0]))
    parser.proxy.stats = page


_COOKIE_FLAGS = ("indirect", "nocache", "httponly", "secure")


def _cookie(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`cookie NAME insert [indirect] [nocache] [httponly] [secure] [domain D]`."""
    if not parser.has_cap(_section(parser), frontend=False, kw="cookie", where=where):
        return
    if len(args) < 2:
        parser.error(where, "cookie", "'cookie' expects <cookie_name> as argument.")
        return
    name, words = args[1], args[2:]
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        parser.error(where, "cookie", f"'cookie' : invalid cookie name '{name}'.")
        return
    if "insert" not in words:
        mode = next((w for w in words if w in ("rewrite", "prefix")), "")
        parser.error(
            where,
            "cookie",
            refused_message(f"cookie {mode}".strip()) + " (staplegate supports the 'insert' mode)",
            Reason.UNSUPPORTED,
        )
        return
    flags: dict[str, bool] = {}
    domain: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word == "insert":
            pass
        elif word in _COOKIE_FLAGS:
            flags[word] = True
        elif word == "domain" and i + 1 < len(words):
            domain = words[i + 1]
            i += 1
        else:
            parser.error(where, "cookie", refused_message(f"cookie {word}"), Reason.UNSUPPORTED)
            return
        i += 1
    persistence = CookiePersistence(name, domain=domain, **flags)
    parser.set_proxy_settings(replace(parser.proxy_settings, cookie=persistence))


def _inspect_delay(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    kw = "tcp-request inspect-delay"
    if _section(parser) is Section.BACKEND:
        parser.error(
            where,
            kw,
            f"'{kw}' in a 'backend' section is not supported by staplegate: a backend's "
            "'tcp-request content' rules see what the frontend's inspection read; set the "
            "delay in the frontend or listen section",
            Reason.UNSUPPORTED,
        )
        return
    ms = parser.time_arg(kw, args[2] if len(args) > 2 else None, where, label="inspect-delay")
    if ms is not None:
        parser.set_proxy_settings(replace(parser.proxy_settings, inspect_delay_ms=ms))


def _tcp_content(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`tcp-request content accept|reject [if|unless COND]` in a frontend, listen or
    backend (a backend's run when a connection enters it, after the frontend's routing)."""
    kw = "tcp-request content"
    action = args[2] if len(args) > 2 else ""
    if action not in ("accept", "reject"):
        label = f"{kw} {action}".strip()
        parser.error(where, label, refused_message(label), Reason.UNSUPPORTED)
        return
    section = _section(parser)
    if section is Section.DEFAULTS or parser.proxy is None:
        parser.error(
            where,
            kw,
            f"'{kw}' rules in a '{section.value}' section are not supported by staplegate; "
            "write them in each frontend, listen or backend section",
            Reason.UNSUPPORTED,
        )
        return
    condition = None
    if len(args) > 3:
        if args[3] not in ("if", "unless"):
            parser.error(where, kw, f"'{kw} {action}' : unexpected argument '{args[3]}'.")
            return
        condition = read_condition(parser, args[3:], where, kw, parser.proxy.acls)
        if condition is None:
            return
    parser.proxy.tcp_content_rules.append(TcpContentRule(where, action == "accept", condition))


def _unique_id(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    kw = args[0]
    if not parser.has_cap(_section(parser), frontend=True, kw=kw, where=where):
        return
    if len(args) != 2 or not args[1]:
        parser.error(where, kw, f"'{kw}' expects one argument.", Reason.MISSING_ARGUMENT)
        return
    if kw == "unique-id-format":
        try:
            check_context(
                tuple(p for p in parse_unique_id_format(args[1]) if not isinstance(p, LogVariable)),
                response=False,
            )
        except SampleSyntaxError as error:
            parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
            return
        parser.set_proxy_settings(replace(parser.proxy_settings, unique_id_format=args[1]))
    else:
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", args[1]):
            parser.error(where, kw, f"'{kw}' : invalid header name '{args[1]}'.")
            return
        parser.set_proxy_settings(replace(parser.proxy_settings, unique_id_header=args[1]))


def _monitor_uri(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    if not parser.has_cap(_section(parser), frontend=True, kw="monitor-uri", where=where):
        return
    if len(args) != 2 or not args[1]:
        parser.error(where, "monitor-uri", "'monitor-uri' expects an URI.", Reason.MISSING_ARGUMENT)
        return
    parser.set_proxy_settings(replace(parser.proxy_settings, monitor_uri=args[1]))


def _monitor_fail(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    kw = "monitor fail"
    if _section(parser) is Section.DEFAULTS or parser.proxy is None:
        parser.error(
            where,
            kw,
            "'monitor fail' is not allowed in a 'defaults' section (HAProxy neither).",
            Reason.UNSUPPORTED,
        )
        return
    if not parser.has_cap(_section(parser), frontend=True, kw=kw, where=where):
        return
    if len(args) < 4 or args[2] not in ("if", "unless"):
        parser.error(
            where,
            kw,
            "'monitor fail' expects 'if' or 'unless' followed by a condition.",
            Reason.MISSING_ARGUMENT,
        )
        return
    condition = read_condition(parser, args[2:], where, kw, parser.proxy.acls)
    if condition is not None:
        parser.proxy.monitor_fail.append(MonitorFail(where, condition))


#: the realm of `stats http-request auth` without one (HAProxy's STATS_DEFAULT_REALM)
STATS_DEFAULT_REALM = "HAProxy Statistics"
_STATS_RULE_ACTIONS = ("allow", "deny", "auth")


def _stats_http_request(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`stats http-request allow|deny|auth [realm R] [if|unless COND]`: checked in order
    when a request asks for the page; the first that applies decides (allow: serve it)."""
    kw = "stats http-request"
    if not _in_stats_section(parser, kw, where):
        return
    assert parser.proxy is not None
    action = args[2] if len(args) > 2 else ""
    if action not in _STATS_RULE_ACTIONS:
        parser.error(
            where,
            kw,
            f"'{kw}' expects 'allow', 'deny' or 'auth' as an action"
            + (f", not '{action}'." if action else "."),
            Reason.SYNTAX,
        )
        return
    page = parser.proxy.stats or StatsPage(where)
    if page.auth or page.realm is not None:
        parser.error(where, kw, _STATS_EXCLUSIVE, Reason.CONFLICT)
        return
    rule = read_http_request(parser, args[1:], where, parser.proxy.acls)
    if rule is None:
        return
    if isinstance(rule.action, HttpAuth) and args[3:4] != ["realm"]:
        rule = replace(rule, action=HttpAuth(STATS_DEFAULT_REALM))  # not the proxy's name
    parser.proxy.stats = replace(page, rules=(*page.rules, rule))


_STATS_EXCLUSIVE = "stats 'auth'/'realm' and 'http-request' can't be used at the same time."


def _stats_admin(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`stats admin { if | unless } <cond>`: the page's server actions, for the requests
    that meet the condition (HAProxy requires one)."""
    kw = "stats admin"
    if len(args) < 4 or args[2] not in ("if", "unless"):
        parser.error(
            where,
            kw,
            "'stats admin' requires either 'if' or 'unless' followed by a condition.",
            Reason.MISSING_ARGUMENT,
        )
        return
    _stats(parser, ["stats", "admin"], where)  # like any `stats` line, it enables the page
    if parser.proxy is None or parser.proxy.stats is None:
        return  # refused by `_stats` (a backend or defaults section)
    condition = read_condition(parser, args[2:], where, kw, parser.proxy.acls)
    if condition is not None:
        rule = " ".join(args[2:])
        parser.proxy.stats = replace(parser.proxy.stats, admin=condition, admin_rule=rule)


def _not_in_defaults(parser: ParserState, kw: str, where: SourceLocation) -> bool:
    if _section(parser) is not Section.DEFAULTS:
        return True
    parser.error(where, kw, f"'{kw}' not allowed in 'defaults' section.", Reason.SYNTAX)
    return False


def _bind(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    if not _not_in_defaults(parser, "bind", where):
        return
    assert parser.proxy is not None
    if parser.has_cap(_section(parser), frontend=True, kw="bind", where=where):
        bind = read_bind(parser, args, where)
        if bind is not None:
            parser.proxy.binds.append(bind)


def _server(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    if not _not_in_defaults(parser, "server", where):
        return
    assert parser.proxy is not None
    if parser.has_cap(_section(parser), frontend=False, kw="server", where=where):
        server = read_server(parser, args, where)
        if server is not None:
            parser.proxy.servers.append(server)


def _use_backend(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    if not _not_in_defaults(parser, "use_backend", where):
        return
    assert parser.proxy is not None
    if parser.has_cap(_section(parser), frontend=True, kw="use_backend", where=where):
        read_use_backend(parser, args, where, parser.proxy)


def _http_request_rule_with(
    parser: ParserState,
    args: list[str],
    where: SourceLocation,
    reader: Callable[
        [ParserState, list[str], SourceLocation, dict[str, list[AclTerm]]],
        HttpRequestRule | None,
    ],
) -> None:
    if _section(parser) is Section.DEFAULTS:
        parser.error(
            where,
            f"http-request {args[1]}",
            "'http-request' rules in a 'defaults' section are not supported by "
            "staplegate; write them in each proxy",
            Reason.UNSUPPORTED,
        )
        return
    assert parser.proxy is not None
    rule = reader(parser, args, where, parser.proxy.acls)
    if rule is not None:
        parser.proxy.rules.append(rule)


def _http_request_rule(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    if _section(parser) is Section.DEFAULTS:
        parser.error(
            where,
            f"http-request {args[1]}",
            "'http-request' rules in a 'defaults' section are not supported by "
            "staplegate; write them in each proxy",
            Reason.UNSUPPORTED,
        )
        return
    assert parser.proxy is not None
    rule = read_http_request(parser, args, where, parser.proxy.acls)
    if rule is not None:
        parser.proxy.rules.append(rule)


def _redirect(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    if _section(parser) is Section.DEFAULTS:
        parser.error(
            where,
            "redirect",
            "'redirect' rules in a 'defaults' section are not supported by staplegate; "
            "write them in each proxy",
            Reason.UNSUPPORTED,
        )
        return
    assert parser.proxy is not None
    read_redirect(parser, args, where, parser.proxy)


def _http_response_rule(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    kw = f"{args[0]} {args[1]}"
    if _section(parser) is Section.DEFAULTS:
        parser.error(
            where,
            kw,
            f"'{args[0]}' rules in a 'defaults' section are not supported by staplegate; "
            "write them in each proxy",
            Reason.UNSUPPORTED,
        )
        return
    assert parser.proxy is not None
    rule = read_http_response(parser, args, where, parser.proxy.acls)
    if rule is not None:
        target = parser.proxy.response_rules
        if args[0] == "http-after-response":
            target = parser.proxy.after_response_rules
        target.append(rule)


def _http_response_family(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """An `http-response` / `http-after-response` action other than the header ones."""
    kw = f"{args[0]} {args[1]}" if len(args) > 1 else args[0]
    parser.error(where, kw, refused_message(kw), Reason.UNSUPPORTED)


def _http_request_family(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """An `http-request` action staplegate does not implement: refused, or unknown."""
    action = args[1] if len(args) > 1 else ""
    kw = f"http-request {action}" if len(args) > 1 else "http-request"
    base = action.split("(", 1)[0]
    if base in VARIABLE_ACTIONS and "(" in action:
        _http_request_rule_with(parser, args, where, read_set_var)
        return
    if base in HTTP_REQUEST_ACTIONS or action.startswith(("track-sc", "sc-", "lua.")):
        parser.error(where, kw, refused_message(kw), Reason.UNSUPPORTED)
    else:
        hint = suggest(action, HTTP_REQUEST_ACTIONS.names())
        suffix = f"; did you mean '{hint}' maybe ?" if hint else "."
        parser.error(
            where,
            kw,
            f"'http-request' : unknown action '{action}'{suffix}",
            Reason.UNKNOWN_KEYWORD,
        )


# `http-request <action>` for each action the rules module can read
_HTTP_REQUEST_RULES: list[Keyword[Handler]] = [
    supported(f"http-request {action.name}", _http_request_rule)
    for action in HTTP_REQUEST_ACTIONS
    if action.parsed
]

# `http-response|http-after-response set-header|add-header|del-header`
_HTTP_RESPONSE_RULES: list[Keyword[Handler]] = [
    supported(f"{head} {action}", _http_response_rule)
    for head in ("http-response", "http-after-response")
    for action in HTTP_RESPONSE_ACTIONS
    if head == "http-response" or action not in RESPONSE_ONLY_ACTIONS
]

# every keyword a proxy section knows; a keyword with a handler is read, the others classified
_STATS_TABLE: list[Keyword[Handler]] = [supported(name, _stats) for name in STATS_KEYWORDS]
_STATS_TABLE.append(supported("stats admin", _stats_admin))
_STATS_TABLE.append(supported("stats http-request", _stats_http_request))

PROXY: KeywordTable[Handler] = KeywordTable(
    [
        *_STATS_TABLE,
        supported("mode", _mode),
        supported("timeout connect", _timeout),
        supported("timeout client", _timeout),
        supported("timeout server", _timeout),
        supported("timeout http-request", _timeout),
        supported("redirect", _redirect),
        supported("monitor-uri", _monitor_uri),
        supported("unique-id-format", _unique_id),
        supported("unique-id-header", _unique_id),
        supported("cookie", _cookie),
        supported("tcp-request inspect-delay", _inspect_delay),
        supported("tcp-request content", _tcp_content),
        supported("monitor fail", _monitor_fail),
        supported("timeout http-keep-alive", _timeout),
        supported("timeout check", _timeout),
        supported("timeout queue", _timeout),
        supported("timeout tunnel", _timeout),
        supported("option httplog", _option_log),
        supported("option httpslog", _option_log),
        supported("option tcplog", _option_log),
        supported("option forwardfor", _option_forwardfor),
        supported("option httpchk", _option_httpchk),
        supported("option tcp-check", _option_tcp_check),
        supported("option redis-check", _option_tcp_check),
        supported("option mysql-check", _option_mysql_check),
        supported("option external-check", _option_external_check),
        supported("external-check command", _external_check),
        supported("external-check path", _external_check),
        supported("option redispatch", _option_redispatch),
        supported("log", _log),
        supported("maxconn", _count),
        supported("default_backend", _default_backend),
        supported("use_backend", _use_backend),
        supported("balance", _balance),
        supported("server", _server),
        supported("default-server", _default_server),
        supported("bind", _bind),
        supported("retries", _count),
        supported("source", _source),
        supported("acl", _acl),
        *_HTTP_REQUEST_RULES,
        *_HTTP_RESPONSE_RULES,
        supported("errorfile", _errorfile),
        ignored("stats timeout", "it has no meaning in a proxy section", _stats_timeout),
        ignored("option dontlognull", "staplegate logs every connection", _option_dontlognull),
        supported("option http-ignore-probes", _option_http_ignore_probes),
        ignored("option log-health-checks", "health check changes are always logged"),
        ignored("option http-server-close", "staplegate manages server connections itself"),
        ignored("option http-keep-alive", "staplegate keeps client connections alive per HTTP/1.1"),
        ignored(
            "option http-pretend-keepalive",
            "staplegate never tells a server it will close: server connections are kept "
            "alive and pooled, which is what this option asks for",
        ),
        ignored("option http-buffer-request", "it is a buffering tuning"),
        ignored("option logasap", "it only changes when log lines are emitted"),
        ignored("option contstats", "it only changes statistics"),
        ignored("option splice-auto", "it is an I/O tuning"),
        ignored("option splice-request", "it is an I/O tuning"),
        ignored("option splice-response", "it is an I/O tuning"),
        ignored("option tcpka", "it is a socket tuning"),
        ignored("option clitcpka", "it is a socket tuning"),
        ignored("option srvtcpka", "it is a socket tuning"),
        ignored("option nolinger", "it is a socket tuning"),
        ignored("option socket-stats", "it only changes statistics"),
        ignored("option log-separate-errors", "it only changes log levels"),
        ignored("option abortonclose", "aborted requests are always released"),
        ignored("option prefer-last-server", "it is a connection reuse tuning"),
        ignored("option dontlog-normal", "every connection is logged"),
        ignored("option independent-streams", "it only changes how timeouts are refreshed"),
        ignored("log-format", "staplegate writes HAProxy's default formats"),
        ignored("log-tag", "it only labels log lines"),
        ignored("description", "it only labels statistics"),
        ignored("id", "it only numbers statistics"),
        ignored("backlog", "it is a socket tuning"),
        supported("fullconn", _count),
        ignored("hash-balance-factor", "hash balancing is not supported"),
        ignored(
            "http-reuse",
            "it is a connection reuse tuning ('never' is refused, see REFUSED_VALUES)",
            refused_values={
                "never": "staplegate returns idle server connections to a pool shared by "
                "all clients"
            },
        ),
        ignored("email-alert from", "e-mail alerts are not supported"),
        ignored("email-alert to", "e-mail alerts are not supported"),
        ignored("email-alert mailers", "e-mail alerts are not supported"),
        ignored("email-alert level", "e-mail alerts are not supported"),
        ignored("email-alert myhostname", "e-mail alerts are not supported"),
        ignored("grace", "reloads drain until hard-stop-after"),
        ignored("guid", "it only labels the proxy"),
        ignored(
            "timeout tarpit", "it only applies to 'http-request tarpit', which is refused", _timeout
        ),
        ignored(
            "timeout client-fin",
            "a half-closed connection keeps its 'timeout client' (or 'timeout tunnel') deadline",
            _timeout,
        ),
        ignored(
            "timeout server-fin",
            "a half-closed connection keeps its 'timeout server' (or 'timeout tunnel') deadline",
            _timeout,
        ),
        *refused_all(
            [
                "capture",
                "capture request",
                "capture response",
                "compression",
                "declare capture",
                "default_backend-fallback",
                "disabled",
                "dispatch",
                "enabled",
                "errorfiles",
                "errorloc",
                "errorloc302",
                "errorloc303",
                "filter",
                "force-persist",
                "hash-type",
                "http-after-response",
                "http-check",
                "http-error",
                "http-request",
                "http-response",
                "http-send-name-header",
                "ignore-persist",
                "load-server-state-from-file",
                "max-keep-alive-queue",
                "max-session-srv-conns",
                "monitor",
                "option accept-invalid-http-request",
                "option accept-invalid-http-response",
                "option accept-unsafe-violations-in-http-request",
                "option accept-unsafe-violations-in-http-response",
                "option allbackups",
                "option checkcache",
                "option disable-h2-upgrade",
                "option h1-case-adjust-bogus-client",
                "option h1-case-adjust-bogus-server",
                "option http-no-delay",
                "option http-restrict-req-hdr-names",
                "option httpclose",
                "option ldap-check",
                "option nbsrv",
                "option originalto",
                "option persist",
                "option pgsql-check",
                "option smtpchk",
                "option spop-check",
                "option ssl-hello-chk",
                "option transparent",
                "persist",
                "quic-initial",
                "rate-limit",
                "retry-on",
                "server-state-file-name",
                "server-template",
                "stats",
                "stick",
                "stick match",
                "stick on",
                "stick store-request",
                "stick store-response",
                "stick-table",
                "tcp-request",
                "tcp-request connection",
                "tcp-request session",
                "tcp-response",
                "tcp-response content",
                "tcp-response inspect-delay",
                "timeout http-check",
                "use-fcgi-app",
                "use-server",
            ]
        ),
    ],
    families={
        "timeout": _timeout,
        "option": _option_family,
        "no": _option_family,
        "http-check": _http_check,
        "tcp-check": _tcp_check,
        "http-request": _http_request_family,
        "http-response": _http_response_family,
        "http-after-response": _http_response_family,
    },
)
