"""Proxy sections (`defaults`, `frontend`, `backend`, `listen`): their registered keywords.

One table serves the four sections; capabilities (a backend has no `bind`, a frontend no
`server`) are checked by the handlers, which warn as HAProxy does. `timeout <name>`,
`option <name>` and `http-request <action>` are families: a keyword of the family that has
no handler of its own is classified (ignored, refused) or reported as unknown.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any

from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import (
    Balance,
    Mode,
    MonitorFail,
    ProxyKind,
    ProxySettings,
    StatsPage,
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
    read_acl,
    read_condition,
    read_http_request,
    read_http_response,
    read_redirect,
    read_use_backend,
)
from staplegate.config.parser.server import merge_server, read_server, read_server_options
from staplegate.config.parser.state import (
    DefaultsBuilder,
    Handler,
    ParserState,
    ProxyBuilder,
    field_change,
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
            parser.error(where, kw, refused_message(f"{kw} if-none"), Reason.UNSUPPORTED)
            return
        else:
            parser.error(where, kw, f"'{kw}' : unexpected argument '{extra[i]}'.", Reason.SYNTAX)
            return
    _set_options(
        parser, forwardfor=not negate, forwardfor_header=header, forwardfor_except=excepted
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


def _option_redispatch(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    negate, _words = _option_words(args)
    _set_options(parser, redispatch=not negate)


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
        parser.set_proxy_settings(replace(settings, log_global=True))
        return
    target = read_log(parser, args, where, allow_global=True)
    if target is not None:
        parser.set_proxy_settings(replace(settings, logs=(*settings.logs, target)))


def _count(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    number = parser.int_arg(head, args[1] if len(args) > 1 else None, where, minimum=0)
    if number is not None:
        parser.set_proxy_settings(replace(parser.proxy_settings, **field_change(head, number)))


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
    if len(args) != 4 or args[2] != "status" or not args[3].isdigit():
        parser.error(
            where,
            "http-check",
            "staplegate understands only 'http-check expect status <code>' and "
            "'http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]...'.",
            Reason.UNSUPPORTED,
        )
        return
    settings = parser.proxy_settings
    parser.set_proxy_settings(
        replace(settings, options=replace(settings.options, httpchk_expect_status=int(args[3])))
    )


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
    parser.note_parsed_but_ignored(where, "errorfile", PROXY)


def _stats_timeout(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    parser.note_parsed_but_ignored(where, "stats timeout", PROXY)


#: the `stats` keywords staplegate serves; `stats admin` needs worker→master actions (later)
STATS_KEYWORDS = (
    "stats enable",
    "stats uri",
    "stats refresh",
    "stats auth",
    "stats realm",
    "stats hide-version",
    "stats show-legends",
    "stats show-node",
    "stats scope",
)


_STATS_ARITY = {
    "stats uri": "1",
    "stats refresh": "1",
    "stats auth": "1",
    "stats scope": "1",
    "stats realm": "+",
    "stats show-node": "?",
}


def _stats(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """One `stats` line; any of them enables the page (HAProxy's rule)."""
    kw = f"stats {args[1]}"
    section = _section(parser)
    if section is not Section.FRONTEND and section is not Section.LISTEN:
        parser.error(
            where,
            kw,
            f"'{kw}' in a '{section.value}' section is not supported by staplegate; write "
            "the 'stats' lines in the 'frontend' or 'listen' section that serves the page",
            Reason.UNSUPPORTED,
        )
        return
    assert parser.proxy is not None
    page = parser.proxy.stats or StatsPage(where)
    value = args[2:]
    # how many arguments: exactly one, none, at least one ("+"), at most one ("?")
    arity = _STATS_ARITY.get(kw, "0")
    count = len(value)
    bad = {"1": count != 1, "0": count != 0, "+": count == 0, "?": count > 1}[arity]
    if bad:
        usage = {"1": "one argument", "0": "no argument", "+": "an argument", "?": "one name"}
        parser.error(where, kw, f"'{kw}' expects {usage[arity]}.", Reason.SYNTAX)
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
    elif kw == "stats scope":
        page = replace(page, scope=(*page.scope, value[0]))
    parser.proxy.stats = page


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


def _stats_admin(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    parser.error(
        where,
        "stats admin",
        "'stats admin' is not supported by staplegate yet: the page is answered by the "
        "workers from the master's data, and actions from the page need a worker-to-master "
        "channel (use the runtime API's 'enable server'/'disable server' meanwhile)",
        Reason.UNSUPPORTED,
    )


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
]

# every keyword a proxy section knows; a keyword with a handler is read, the others classified
_STATS_TABLE: list[Keyword[Handler]] = [supported(name, _stats) for name in STATS_KEYWORDS]
_STATS_TABLE.append(supported("stats admin", _stats_admin))

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
        supported("acl", _acl),
        *_HTTP_REQUEST_RULES,
        *_HTTP_RESPONSE_RULES,
        ignored("errorfile", "staplegate serves its own error responses", _errorfile),
        ignored("stats timeout", "it has no meaning in a proxy section", _stats_timeout),
        ignored("option dontlognull", "staplegate logs every connection", _option_dontlognull),
        ignored("option log-health-checks", "health check changes are always logged"),
        ignored("option http-server-close", "staplegate manages server connections itself"),
        ignored("option http-keep-alive", "staplegate keeps client connections alive per HTTP/1.1"),
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
        ignored("fullconn", "dynamic server limits are not supported"),
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
                "cookie",
                "declare capture",
                "default_backend-fallback",
                "disabled",
                "dispatch",
                "enabled",
                "errorfiles",
                "errorloc",
                "errorloc302",
                "errorloc303",
                "external-check command",
                "external-check path",
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
                "option external-check",
                "option h1-case-adjust-bogus-client",
                "option h1-case-adjust-bogus-server",
                "option http-ignore-probes",
                "option http-no-delay",
                "option http-pretend-keepalive",
                "option http-restrict-req-hdr-names",
                "option httpclose",
                "option ldap-check",
                "option mysql-check",
                "option nbsrv",
                "option originalto",
                "option persist",
                "option pgsql-check",
                "option redis-check",
                "option smtpchk",
                "option spop-check",
                "option ssl-hello-chk",
                "option tcp-check",
                "option transparent",
                "persist",
                "quic-initial",
                "rate-limit",
                "retry-on",
                "server-state-file-name",
                "server-template",
                "source",
                "stats",
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
                "tcp-request inspect-delay",
                "tcp-request session",
                "tcp-response",
                "tcp-response content",
                "tcp-response inspect-delay",
                "timeout http-check",
                "unique-id-format",
                "unique-id-header",
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
        "http-request": _http_request_family,
        "http-response": _http_response_family,
        "http-after-response": _http_response_family,
    },
)
