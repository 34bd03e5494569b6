"""Rules and their conditions: `acl`, `use_backend`, and the `http-request` actions.

Conditions are the subset staplegate evaluates (`if|unless { ssl_fc_sni -i HOST... }` and
the fetches in `CONDITION_HELP`, plus HAProxy's predefined ACLs `TRUE`, `FALSE` and
`LOCALHOST`); anything else is refused, because ignoring a condition would change traffic.
Each `http-request` action is registered in `HTTP_REQUEST_ACTIONS`: the supported ones with
their reader, every other HAProxy action as refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace

from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import (
    AclFetch,
    AclMatch,
    AclTerm,
    Condition,
    HttpAction,
    HttpDelHeader,
    HttpDeny,
    HttpRedirectScheme,
    HttpRequestRule,
    HttpReturn,
    HttpSetHeader,
    HttpUseService,
    UseBackendRule,
)
from staplegate.config.parser.registry import KeywordTable, refused_all, refused_message, supported
from staplegate.config.parser.state import ParserState, ProxyBuilder
from staplegate.config.samples import SampleSyntaxError, parse_header_format

_ACL_FETCHES = {
    "ssl_fc_sni": AclFetch.SSL_FC_SNI,
    "req.ssl_sni": AclFetch.REQ_SSL_SNI,
    "req_ssl_sni": AclFetch.REQ_SSL_SNI,
    "ssl_fc": AclFetch.SSL_FC,
    "ssl_c_used": AclFetch.SSL_C_USED,
    "ssl_c_verify": AclFetch.SSL_C_VERIFY,
    "hdr(host)": AclFetch.HDR_HOST,
    "req.hdr(host)": AclFetch.HDR_HOST,
    "path": AclFetch.PATH,
    "path_beg": AclFetch.PATH,  # HAProxy's derived keyword: `path -m beg`
    "src": AclFetch.SRC,
    "always_true": AclFetch.ALWAYS_TRUE,
    "always_false": AclFetch.ALWAYS_FALSE,
}
_VALUELESS = frozenset(
    (AclFetch.SSL_FC, AclFetch.SSL_C_USED, AclFetch.ALWAYS_TRUE, AclFetch.ALWAYS_FALSE)
)
CONDITION_HELP = (
    "staplegate understands only 'if|unless { ssl_fc_sni -i HOST... }' conditions "
    "(also req.ssl_sni, ssl_fc, ssl_c_used, ssl_c_verify N, src ADDRESS[/MASK], "
    "always_true, always_false, and in mode http hdr(host), path and path_beg; "
    "named ACLs of those forms and the predefined TRUE, FALSE and LOCALHOST)"
)
# HAProxy's predefined ACLs this subset can express (HAProxy's acl.c `default_acl_list`);
# a user's `acl` of the same name wins, as in HAProxy.
PREDEFINED_ACLS: dict[str, AclTerm] = {
    "TRUE": AclTerm(AclFetch.ALWAYS_TRUE),
    "FALSE": AclTerm(AclFetch.ALWAYS_FALSE),
    "LOCALHOST": AclTerm(
        AclFetch.SRC,
        ("127.0.0.1/8", "::1"),
        networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    ),
}

# reads an action's words (condition removed) into the action, or diagnoses and gives None
ActionReader = Callable[[ParserState, list[str], SourceLocation, str], HttpAction | None]


def read_acl(
    parser: ParserState, args: list[str], where: SourceLocation, acls: dict[str, list[AclTerm]]
) -> None:
    if len(args) < 3:
        parser.error(
            where, "acl", "'acl' expects an ACL name and a criterion.", Reason.MISSING_ARGUMENT
        )
        return
    name = args[1]
    term = _acl_term(parser, args[2:], where, f"acl {name}")
    if term is not None:
        acls.setdefault(name, []).append(term)


def _acl_term(
    parser: ParserState, words: list[str], where: SourceLocation, label: str
) -> AclTerm | None:
    fetch_name = words[0]
    fetch = _ACL_FETCHES.get(fetch_name)
    if fetch is None:
        parser.error(
            where,
            label.split()[0],
            f"'{label}' : fetch '{fetch_name}' is not supported: {CONDITION_HELP}; "
            "ignoring the condition would change traffic",
            Reason.UNSUPPORTED,
        )
        return None
    ignore_case = False
    match = AclMatch.BEGIN if fetch_name == "path_beg" else AclMatch.EXACT
    values: list[str] = []
    i = 1
    while i < len(words):
        w = words[i]
        if w == "-i":
            ignore_case = True
        elif w == "-m" and i + 1 < len(words) and fetch_name in ("path_beg", "src"):
            parser.error(
                where,
                label.split()[0],
                f"'{label}' : '-m {words[i + 1]}' cannot be used with '{fetch_name}' "
                f"(use 'path -m …' to choose the match)"
                if fetch_name == "path_beg"
                else f"'{label}' : 'src' matches addresses and networks only (no '-m').",
                Reason.UNSUPPORTED,
            )
            return None
        elif w == "-m" and i + 1 < len(words):
            try:
                match = AclMatch(words[i + 1])
            except ValueError:
                parser.error(
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
            parser.error(
                where,
                label.split()[0],
                f"'{label}' : flag '{w}' is not supported: {CONDITION_HELP}",
                Reason.UNSUPPORTED,
            )
            return None
        else:
            values.append(w)
        i += 1
    if fetch in _VALUELESS:
        if values:
            parser.error(
                where,
                label.split()[0],
                f"'{label}' : '{fetch_name}' takes no value.",
                Reason.SYNTAX,
            )
            return None
    elif fetch is AclFetch.SSL_C_VERIFY:
        if not values or not all(v.isdigit() for v in values) or match is not AclMatch.EXACT:
            parser.error(
                where,
                label.split()[0],
                f"'{label}' : 'ssl_c_verify' needs one or more verify error numbers "
                "(0 means verified).",
                Reason.SYNTAX,
            )
            return None
    elif not values:
        what = {AclFetch.PATH: "path", AclFetch.SRC: "address or network"}.get(fetch, "host name")
        parser.error(
            where,
            label.split()[0],
            f"'{label}' : '{fetch_name}' needs at least one {what} to match.",
            Reason.MISSING_ARGUMENT,
        )
        return None
    elif fetch is AclFetch.SRC:
        networks = []
        for value in values:
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                parser.error(
                    where,
                    label.split()[0],
                    f"'{label}' : '{value}' is not an IPv4 or IPv6 address or network "
                    "('src' matches ADDRESS or ADDRESS/MASK; host names are not resolved).",
                    Reason.SYNTAX,
                )
                return None
        return AclTerm(fetch, tuple(values), match=match, networks=tuple(networks))
    if ignore_case:
        values = [v.lower() for v in values]
    return AclTerm(fetch, tuple(values), ignore_case, match)


def read_condition(
    parser: ParserState,
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
        parser.error(
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
            parser.error(
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
                parser.error(
                    where,
                    label,
                    f"'{label}' : missing closing '}}' in condition.",
                    Reason.SYNTAX,
                )
                return None
            inner = rest[i + 1 : close]
            if not inner:
                parser.error(where, label, f"'{label}' : empty anonymous ACL.", Reason.SYNTAX)
                return None
            term = _acl_term(parser, inner, where, label)
            if term is None:
                return None
            terms.append(replace(term, negated=negated))
            i = close + 1
            continue
        if w in acls:
            named = acls[w]
            if len(named) > 1:
                parser.error(
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
        if w in PREDEFINED_ACLS:
            terms.append(replace(PREDEFINED_ACLS[w], negated=negated))
            i += 1
            continue
        parser.error(
            where,
            label,
            f"'{label}' : unknown or unsupported ACL '{w}' in '{text}': {CONDITION_HELP}",
            Reason.UNSUPPORTED,
        )
        return None
    return Condition(unless, tuple(terms))


def _split_condition(args: list[str]) -> tuple[list[str], list[str]]:
    for index, word in enumerate(args):
        if word in ("if", "unless"):
            return args[:index], args[index:]
    return args, []


def read_use_backend(
    parser: ParserState, args: list[str], where: SourceLocation, proxy: ProxyBuilder
) -> None:
    body, cond_words = _split_condition(args[1:])
    if len(body) != 1:
        parser.error(
            where,
            "use_backend",
            "'use_backend' expects a backend name.",
            Reason.MISSING_ARGUMENT,
        )
        return
    condition = None
    if cond_words:
        condition = read_condition(parser, cond_words, where, "use_backend", proxy.acls)
        if condition is None:
            return
    proxy.use_backends.append(UseBackendRule(where, body[0], condition))


def read_http_request(
    parser: ParserState, args: list[str], where: SourceLocation, acls: dict[str, list[AclTerm]]
) -> HttpRequestRule | None:
    """A supported `http-request` action line: its condition, then its action's words."""
    action_name = args[1]
    kw = f"http-request {action_name}"
    body, cond_words = _split_condition(args[2:])
    condition = None
    if cond_words:
        condition = read_condition(parser, cond_words, where, kw, acls)
        if condition is None:
            return None
    entry = HTTP_REQUEST_ACTIONS.get(action_name)
    # only supported actions come here: the proxy table routes the others elsewhere
    assert entry is not None
    assert entry.handler is not None
    action = entry.handler(parser, body, where, kw)
    if action is None:
        return None
    return HttpRequestRule(where, action, condition)


def _http_set_header(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    if len(body) != 2:
        parser.error(where, kw, f"'{kw}' expects exactly 2 arguments.", Reason.MISSING_ARGUMENT)
        return None
    try:
        parse_header_format(body[1])
    except SampleSyntaxError as error:
        parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
        return None
    return HttpSetHeader(body[0], body[1], add=kw == "http-request add-header")


def _http_del_header(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    if len(body) == 3 and body[1] == "-m" and body[2] == "str":
        body = body[:1]
    if len(body) != 1:
        parser.error(
            where,
            kw,
            f"'{kw}' expects exactly 1 argument (a header name).",
            Reason.MISSING_ARGUMENT,
        )
        return None
    return HttpDelHeader(body[0])


def _http_return(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    status = 200
    content_type: str | None = None
    payload: str | None = None
    file: str | None = None
    i = 0
    while i < len(body):
        opt = body[i]
        val = body[i + 1] if i + 1 < len(body) else None
        if opt in ("status", "content-type", "string", "file") and val is None:
            parser.error(
                where, kw, f"'{kw}' : '{opt}' expects an argument.", Reason.MISSING_ARGUMENT
            )
            return None
        if opt == "status":
            parsed = parser.status_arg(val, where, kw, 200, 599)
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
            parser.error(where, kw, refused_message(f"{kw} {opt}"), Reason.UNSUPPORTED)
            return None
        else:
            parser.error(where, kw, f"'{kw}' : unexpected argument '{opt}'.", Reason.SYNTAX)
            return None
        i += 2
    if payload is not None and file is not None:
        parser.error(
            where, kw, f"'{kw}' : 'string' and 'file' are mutually exclusive.", Reason.CONFLICT
        )
        return None
    return HttpReturn(status, content_type, payload, file)


def _http_deny(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    if not body:
        return HttpDeny()
    if body[0] == "deny_status" and len(body) == 2:
        status = parser.status_arg(body[1], where, kw, 200, 599)
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
        parser.error(where, kw, refused_message(f"{kw} {body[0]}"), Reason.UNSUPPORTED)
        return None
    parser.error(where, kw, f"'{kw}' : unexpected argument '{body[0]}'.", Reason.SYNTAX)
    return None


def _http_redirect(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    if len(body) < 2 or body[0] not in ("scheme", "location", "prefix"):
        parser.error(
            where,
            kw,
            f"'{kw}' expects 'scheme', 'location' or 'prefix' followed by a value.",
            Reason.MISSING_ARGUMENT,
        )
        return None
    if body[0] != "scheme":
        parser.error(where, kw, refused_message(f"{kw} {body[0]}"), Reason.UNSUPPORTED)
        return None
    scheme = body[1]
    if scheme not in ("http", "https"):
        parser.error(
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
            parsed = parser.status_arg(rest[1], where, kw, 301, 308)
            if parsed is None:
                return None
            code = parsed
            rest = rest[2:]
        else:
            parser.error(where, kw, refused_message(f"{kw} {rest[0]}"), Reason.UNSUPPORTED)
            return None
    return HttpRedirectScheme(scheme, code)


#: the services `http-request use-service` can name (HAProxy's built-in promex exporter)
USE_SERVICES = ("prometheus-exporter",)


def _http_use_service(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    if len(body) != 1:
        parser.error(where, kw, f"'{kw}' expects a service name.", Reason.MISSING_ARGUMENT)
        return None
    if body[0] not in USE_SERVICES:
        parser.error(
            where,
            kw,
            f"'{kw}' : unknown service '{body[0]}' (staplegate has: {', '.join(USE_SERVICES)}).",
            Reason.UNSUPPORTED,
        )
        return None
    return HttpUseService(body[0])


# every action HAProxy's `http-request` knows; only the ones with a reader are supported
HTTP_REQUEST_ACTIONS: KeywordTable[ActionReader] = KeywordTable(
    [
        supported("return", _http_return),
        supported("deny", _http_deny),
        supported("redirect", _http_redirect),
        supported("set-header", _http_set_header),
        supported("add-header", _http_set_header),
        supported("del-header", _http_del_header),
        supported("use-service", _http_use_service),
        *refused_all(
            [
                "add-acl",
                "allow",
                "auth",
                "cache-use",
                "capture",
                "del-acl",
                "del-map",
                "disable-l7-retry",
                "do-resolve",
                "early-hint",
                "lua",
                "normalize-uri",
                "reject",
                "replace-header",
                "replace-value",
                "sc-inc-gpc",
                "sc-inc-gpc0",
                "sc-inc-gpc1",
                "sc-set-gpt",
                "sc-set-gpt0",
                "send-spoe-group",
                "set-bandwidth-limit",
                "set-dst",
                "set-dst-port",
                "set-fc-mark",
                "set-fc-tos",
                "set-log-level",
                "set-map",
                "set-mark",
                "set-method",
                "set-nice",
                "set-path",
                "set-pathq",
                "set-priority-class",
                "set-priority-offset",
                "set-query",
                "set-src",
                "set-src-port",
                "set-timeout",
                "set-tos",
                "set-uri",
                "set-var",
                "set-var-fmt",
                "silent-drop",
                "strict-mode",
                "tarpit",
                "track-sc0",
                "track-sc1",
                "track-sc2",
                "unset-var",
                "wait-for-body",
                "wait-for-handshake",
            ]
        ),
    ]
)
