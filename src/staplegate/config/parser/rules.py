"""Rules: `use_backend` and the `http-request` actions, with their conditions.

Conditions and `acl` lines are read by `conditions.py` (re-exported here); anything staplegate
cannot evaluate is refused there, because ignoring a condition would change traffic.
Each `http-request` action is registered in `HTTP_REQUEST_ACTIONS`: the supported ones with
their reader, every other HAProxy action as refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from staplegate.config.crtlist import join_base
from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import (
    AclTerm,
    HttpAction,
    HttpAllow,
    HttpAuth,
    HttpDelHeader,
    HttpDeny,
    HttpRedirect,
    HttpRedirectScheme,
    HttpReplace,
    HttpRequestRule,
    HttpReturn,
    HttpSetDst,
    HttpSetHeader,
    HttpSetStatus,
    HttpSetTarget,
    HttpSetVar,
    HttpUseService,
    UseBackendRule,
)
from staplegate.config.parser.conditions import (
    CONDITION_HELP,
    PREDEFINED_ACLS,
    read_acl,
    read_condition,
    request_fetches,
)
from staplegate.config.parser.registry import KeywordTable, refused_all, refused_message, supported
from staplegate.config.parser.state import ParserState, ProxyBuilder
from staplegate.config.samples import (
    SampleSyntaxError,
    check_context,
    check_variable_name,
    compile_pcre,
    parse_header_format,
    parse_sample_expression,
)

# reads an action's words (condition removed) into the action, or diagnoses and gives None
ActionReader = Callable[[ParserState, list[str], SourceLocation, str], HttpAction | None]

__all__ = ["CONDITION_HELP", "PREDEFINED_ACLS", "read_acl", "read_condition"]


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


_RESPONSE_UNTOUCHABLE = frozenset(
    (
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    )
)


def _is_response_rule(kw: str) -> bool:
    return kw.startswith(("http-response", "http-after-response"))


def _checked_name(parser: ParserState, name: str, where: SourceLocation, kw: str) -> bool:
    """A response rule may not touch framing or hop-by-hop headers (staplegate frames the
    response itself; a rule there would desynchronise the client)."""
    if _is_response_rule(kw) and name.lower() in _RESPONSE_UNTOUCHABLE:
        parser.error(
            where,
            kw,
            f"'{kw}' : '{name}' is a framing or hop-by-hop header, which staplegate writes "
            "itself; a rule cannot change it.",
            Reason.UNSUPPORTED,
        )
        return False
    return True


def _http_set_header(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    if len(body) != 2:
        parser.error(where, kw, f"'{kw}' expects exactly 2 arguments.", Reason.MISSING_ARGUMENT)
        return None
    if not _checked_name(parser, body[0], where, kw):
        return None
    try:
        check_context(parse_header_format(body[1]), response=_is_response_rule(kw))
    except SampleSyntaxError as error:
        parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
        return None
    return HttpSetHeader(body[0], body[1], add=kw.endswith(" add-header"))


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
    if not _checked_name(parser, body[0], where, kw):
        return None
    return HttpDelHeader(body[0])


def _http_replace(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    """`replace-header|replace-value NAME REGEX FMT`, `replace-path|replace-pathq|
    replace-uri REGEX FMT`."""
    part = kw.rsplit("replace-", 1)[1]
    named = part in ("header", "value")
    wanted = 3 if named else 2
    if len(body) != wanted:
        parser.error(
            where, kw, f"'{kw}' expects exactly {wanted} arguments.", Reason.MISSING_ARGUMENT
        )
        return None
    name = body[0] if named else None
    if name is not None and not _checked_name(parser, name, where, kw):
        return None
    pattern, fmt = body[-2], body[-1]
    try:
        regex = compile_pcre(pattern)
    except re.error as error:
        parser.error(where, kw, f"'{kw}' : regex '{pattern}' is invalid: {error}.")
        return None
    try:
        check_context(parse_header_format(fmt), response=_is_response_rule(kw))
    except SampleSyntaxError as error:
        parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
        return None
    return HttpReplace(part, name, regex, fmt)


def _http_set_dst(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    """`set-dst EXPR` / `set-dst-port EXPR`: a sample expression (`url_ip`, `hdr(x)`)."""
    if len(body) != 1:
        parser.error(where, kw, f"'{kw}' expects exactly 1 argument.", Reason.MISSING_ARGUMENT)
        return None
    try:
        expression = parse_sample_expression(body[0])
        check_context((expression,), response=False)
    except SampleSyntaxError as error:
        parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
        return None
    return HttpSetDst(kw.endswith("-port"), expression)


def _http_set_target(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    if len(body) != 1:
        parser.error(where, kw, f"'{kw}' expects exactly 1 argument.", Reason.MISSING_ARGUMENT)
        return None
    try:
        check_context(parse_header_format(body[0]), response=False)
    except SampleSyntaxError as error:
        parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
        return None
    return HttpSetTarget(kw.rsplit("set-", 1)[1], body[0])


#: `http-request set-var(NAME) EXPR`, `set-var-fmt(NAME) FMT`, `unset-var(NAME)`
VARIABLE_ACTIONS = ("set-var", "set-var-fmt", "unset-var")


def read_set_var(
    parser: ParserState, args: list[str], where: SourceLocation, acls: dict[str, list[AclTerm]]
) -> HttpRequestRule | None:
    """A variable action line; the variable lives as long as the request (txn/req)."""
    action = args[1]
    base, _, rest = action.partition("(")
    kw = f"http-request {base}"
    name = rest[:-1] if rest.endswith(")") else ""
    name = name.split(",", 1)[0]  # HAProxy's set-var conditions (ifexists…) are refused below
    body, cond_words = _split_condition(args[2:])
    try:
        check_variable_name(base, (name,))
        if "," in rest:
            raise SampleSyntaxError(f"'{base}' : conditions after the name are not supported")
        if base == "unset-var":
            if body:
                raise SampleSyntaxError("'unset-var' takes no value")
            result = HttpSetVar(name, unset=True)
        elif len(body) != 1:
            raise SampleSyntaxError(f"'{base}({name})' expects exactly one expression")
        elif base == "set-var":
            expression = parse_sample_expression(body[0])
            check_context((expression,), response=False)
            result = HttpSetVar(name, expression=expression)
        else:
            check_context(parse_header_format(body[0]), response=False)
            result = HttpSetVar(name, value=body[0])
    except SampleSyntaxError as error:
        parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
        return None
    condition = None
    if cond_words:
        condition = read_condition(parser, cond_words, where, kw, acls)
        if condition is None:
            return None
    return HttpRequestRule(where, result, condition)


def _http_set_status(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    """`set-status N [reason TEXT]`. Statuses whose responses carry no body (1xx, 204,
    304) are refused: the server's body and framing are forwarded unchanged."""
    if not body:
        parser.error(where, kw, f"'{kw}' expects a status code.", Reason.MISSING_ARGUMENT)
        return None
    status = parser.status_arg(body[0], where, kw, 200, 599)
    if status is None:
        return None
    if status in (204, 304):
        parser.error(
            where,
            kw,
            f"'{kw}' : status {status} has no body, but the server's body would still be "
            "forwarded; staplegate refuses it",
            Reason.UNSUPPORTED,
        )
        return None
    reason = None
    if len(body) == 3 and body[1] == "reason":
        reason = body[2]
        if "\r" in reason or "\n" in reason:
            parser.error(where, kw, f"'{kw}' : the reason has a line break.", Reason.SYNTAX)
            return None
    elif len(body) != 1:
        parser.error(where, kw, f"'{kw}' : unexpected argument '{body[1]}'.", Reason.SYNTAX)
        return None
    return HttpSetStatus(status, reason)


def _http_response_deny(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    """`http-response deny [deny_status N]`: HAProxy's default is 502, not 403."""
    action = _http_deny(parser, body, where, kw)
    if isinstance(action, HttpDeny) and not body:
        return HttpDeny(502)
    return action


#: the `http-response` and `http-after-response` actions staplegate runs
HTTP_RESPONSE_ACTIONS: dict[str, ActionReader] = {
    "set-header": _http_set_header,
    "add-header": _http_set_header,
    "del-header": _http_del_header,
    "set-status": _http_set_status,
    "deny": _http_response_deny,
    "replace-header": _http_replace,
    "replace-value": _http_replace,
}
#: what `http-after-response` does not take (HAProxy has no deny there)
RESPONSE_ONLY_ACTIONS = frozenset({"deny"})


def read_http_response(
    parser: ParserState, args: list[str], where: SourceLocation, acls: dict[str, list[AclTerm]]
) -> HttpRequestRule | None:
    """An `http-response|http-after-response set-header|add-header|del-header` line."""
    kw = f"{args[0]} {args[1]}"
    body, cond_words = _split_condition(args[2:])
    condition = None
    if cond_words:
        condition = read_condition(parser, cond_words, where, kw, acls, response=True)
        if condition is None:
            return None
        needed = request_fetches(condition)
        if needed:
            parser.error(
                where,
                kw,
                f"'{kw}' : fetch '{needed[0]}' reads the request, which a response rule does "
                "not see (HAProxy refuses it too).",
                Reason.UNSUPPORTED,
            )
            return None
    action = HTTP_RESPONSE_ACTIONS[args[1]](parser, body, where, kw)
    if action is None:
        return None
    return HttpRequestRule(where, action, condition)


def _http_return(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    status = 200
    content_type: str | None = None
    payload: str | None = None
    file: str | None = None
    log_format = False
    i = 0
    while i < len(body):
        opt = body[i]
        val = body[i + 1] if i + 1 < len(body) else None
        if opt in ("status", "content-type", "string", "lf-string", "file") and val is None:
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
        elif opt in ("string", "lf-string"):
            if opt == "lf-string":
                try:
                    check_context(parse_header_format(val or ""), response=False)
                except SampleSyntaxError as error:
                    parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
                    return None
                log_format = True
            payload = val
        elif opt == "file":
            file = join_base(parser.global_.default_path, val or "")
        elif opt in (
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
    if content_type is None and (payload or file is not None):
        parser.error(  # HAProxy's words: a body without a type is refused
            where,
            kw,
            f"'{kw}' : a content type must be defined when non-empty payload is configured.",
            Reason.MISSING_ARGUMENT,
        )
        return None
    return HttpReturn(status, content_type, payload, file, log_format)


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


_REDIRECT_CODES = (301, 302, 303, 307, 308)


def _http_redirect(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    """`scheme|location|prefix VALUE [code N] [drop-query] [append-slash]` (HAProxy's
    redirect rule, shared by `http-request redirect` and the `redirect` keyword)."""
    if len(body) < 2 or body[0] not in ("scheme", "location", "prefix"):
        parser.error(
            where,
            kw,
            f"'{kw}' expects 'scheme', 'location' or 'prefix' followed by a value.",
            Reason.MISSING_ARGUMENT,
        )
        return None
    kind, value = body[0], body[1]
    if kind == "scheme" and value not in ("http", "https"):
        parser.error(
            where,
            kw,
            f"'{kw}' : scheme '{value}' is not supported (use http or https).",
            Reason.UNSUPPORTED,
        )
        return None
    if kind != "scheme":
        try:
            check_context(parse_header_format(value), response=False)
        except SampleSyntaxError as error:
            parser.error(where, kw, f"'{kw}' : {error}", Reason.UNSUPPORTED)
            return None
    code = 302
    drop_query = append_slash = False
    rest = body[2:]
    while rest:
        if rest[0] == "code" and len(rest) >= 2:
            parsed = parser.status_arg(rest[1], where, kw, 301, 308)
            if parsed is None:
                return None
            if parsed not in _REDIRECT_CODES:
                parser.error(
                    where,
                    kw,
                    f"'{kw}' : unsupported HTTP code '{parsed}' (301, 302, 303, 307 or 308).",
                    Reason.INVALID_VALUE,
                )
                return None
            code = parsed
            rest = rest[2:]
        elif rest[0] == "drop-query":
            drop_query = True
            rest = rest[1:]
        elif rest[0] == "append-slash":
            append_slash = True
            rest = rest[1:]
        elif rest[0] == "ignore-empty":  # only empty log-format locations differ: refuse
            parser.error(where, kw, refused_message(f"{kw} {rest[0]}"), Reason.UNSUPPORTED)
            return None
        else:
            parser.error(where, kw, refused_message(f"{kw} {rest[0]}"), Reason.UNSUPPORTED)
            return None
    if kind == "scheme":
        return HttpRedirectScheme(value, code, drop_query, append_slash)
    return HttpRedirect(kind, value, code, drop_query, append_slash)


def read_redirect(
    parser: ParserState, args: list[str], where: SourceLocation, proxy: ProxyBuilder
) -> None:
    """The `redirect` keyword: HAProxy runs these after the `http-request` rules."""
    body, cond_words = _split_condition(args[1:])
    condition = None
    if cond_words:
        condition = read_condition(parser, cond_words, where, "redirect", proxy.acls)
        if condition is None:
            return
    action = _http_redirect(parser, body, where, "redirect")
    if action is not None:
        proxy.redirect_rules.append(HttpRequestRule(where, action, condition))


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


def _http_auth(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    """`auth [realm <realm>]`: HAProxy's default realm is the proxy's name (the stats
    page's rules get theirs from `proxies._stats_http_request`)."""
    if not body:
        name = parser.proxy.name if parser.proxy is not None else ""
        return HttpAuth(name)
    if body[0] == "realm" and len(body) == 2:
        return HttpAuth(body[1])
    if body[0] == "realm":
        parser.error(where, kw, f"'{kw}' : missing realm value.", Reason.MISSING_ARGUMENT)
        return None
    parser.error(where, kw, f"'{kw}' : expects 'realm' for 'auth', got '{body[0]}'.")
    return None


def _http_allow(
    parser: ParserState, body: list[str], where: SourceLocation, kw: str
) -> HttpAction | None:
    if body:
        parser.error(where, kw, f"'{kw}' : unexpected argument '{body[0]}'.", Reason.SYNTAX)
        return None
    return HttpAllow()


# every action HAProxy's `http-request` knows; only the ones with a reader are supported
HTTP_REQUEST_ACTIONS: KeywordTable[ActionReader] = KeywordTable(
    [
        supported("return", _http_return),
        supported("deny", _http_deny),
        supported("auth", _http_auth),
        supported("allow", _http_allow),
        supported("redirect", _http_redirect),
        supported("set-header", _http_set_header),
        supported("add-header", _http_set_header),
        supported("del-header", _http_del_header),
        supported("use-service", _http_use_service),
        supported("set-path", _http_set_target),
        supported("set-pathq", _http_set_target),
        supported("set-query", _http_set_target),
        supported("set-uri", _http_set_target),
        supported("replace-header", _http_replace),
        supported("set-dst", _http_set_dst),
        supported("set-dst-port", _http_set_dst),
        supported("replace-value", _http_replace),
        supported("replace-path", _http_replace),
        supported("replace-pathq", _http_replace),
        supported("replace-uri", _http_replace),
        *refused_all(
            [
                "add-acl",
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
                "sc-inc-gpc",
                "sc-inc-gpc0",
                "sc-inc-gpc1",
                "sc-set-gpt",
                "sc-set-gpt0",
                "send-spoe-group",
                "set-bandwidth-limit",
                "set-fc-mark",
                "set-fc-tos",
                "set-log-level",
                "set-map",
                "set-mark",
                "set-method",
                "set-nice",
                "set-priority-class",
                "set-priority-offset",
                "set-src",
                "set-src-port",
                "set-timeout",
                "set-tos",
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
