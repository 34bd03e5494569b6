"""ACLs and `if|unless` conditions: HAProxy's fetches and match methods, compiled once.

A condition is read into `model.Condition`: groups of terms joined by `||` (or `or`), each
group a list of terms that must all hold, a term being an anonymous `{ fetch [flags] values }`
or a named ACL (several `acl` lines of one name are alternatives, an ANY_OF term), either
negated by `!`. Every pattern is compiled here, once per configuration: addresses to
networks, `-m reg` to regular expressions, integer patterns (`gt 0`, `1:5`) to ranges, and
`-f FILE` read through the loader. What staplegate cannot evaluate (a fetch or converter it
does not know, a map lookup) is refused with the line's location: ignoring a condition would
change traffic.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from staplegate.config.crtlist import join_base
from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.maps import MAP_METHODS, REFUSED_MAP_CONVERTERS
from staplegate.config.model import AclFetch, AclMatch, AclTerm, Condition, UserlistRef
from staplegate.config.parser.state import ParserState
from staplegate.config.samples import (
    SampleSyntaxError,
    check_variable_name,
    compile_converter,
    compile_pcre,
)

CONDITION_HELP = (
    "staplegate evaluates the fetches ssl_fc_sni, req.ssl_sni, ssl_fc, ssl_fc_alpn, ssl_c_used, "
    "ssl_c_verify, ssl_c_s_dn, ssl_c_i_dn, src, src_port, dst_port, nbsrv(), always_true, "
    "always_false, in mode tcp req.ssl_hello_type, req.ssl_alpn and req.len "
    "and in mode http hdr(), req.hdr(), req.fhdr(), hdr_cnt(), path, url, url_ip, url_port, "
    "base, query, "
    "url_param(), method (with their _beg/_end/_sub/_reg/_dom/_dir/_len forms), "
    "http_auth(<userlist>), http_auth_group(<userlist>) <group>…, in response rules "
    "status, res.hdr()/shdr() and res.hdr_cnt(), the "
    "converters lower, upper and map/map_str/map_beg/map_sub/map_end/map_reg/map_ip, "
    "the matches -m str|beg|end|sub|reg|dom|dir|len|int|bool|found "
    "and -f FILE, named ACLs and the predefined TRUE, FALSE, HTTP and LOCALHOST"
)


@dataclass(frozen=True)
class _FetchSpec:
    fetch: AclFetch
    match: AclMatch  # HAProxy's default match for the fetch
    arg: str  # "" no argument, "required", "optional"


_BASE_FETCHES: dict[str, _FetchSpec] = {
    "ssl_fc_sni": _FetchSpec(AclFetch.SSL_FC_SNI, AclMatch.EXACT, ""),
    "req.ssl_sni": _FetchSpec(AclFetch.REQ_SSL_SNI, AclMatch.EXACT, ""),
    "req_ssl_sni": _FetchSpec(AclFetch.REQ_SSL_SNI, AclMatch.EXACT, ""),
    "ssl_fc": _FetchSpec(AclFetch.SSL_FC, AclMatch.BOOL, ""),
    "ssl_fc_alpn": _FetchSpec(AclFetch.SSL_FC_ALPN, AclMatch.EXACT, ""),
    "ssl_c_used": _FetchSpec(AclFetch.SSL_C_USED, AclMatch.BOOL, ""),
    "ssl_c_verify": _FetchSpec(AclFetch.SSL_C_VERIFY, AclMatch.INT, ""),
    "ssl_c_s_dn": _FetchSpec(AclFetch.SSL_C_S_DN, AclMatch.EXACT, "optional"),
    "ssl_c_i_dn": _FetchSpec(AclFetch.SSL_C_I_DN, AclMatch.EXACT, "optional"),
    "hdr": _FetchSpec(AclFetch.HDR, AclMatch.EXACT, "required"),
    "req.hdr": _FetchSpec(AclFetch.HDR, AclMatch.EXACT, "required"),
    "req.fhdr": _FetchSpec(AclFetch.FHDR, AclMatch.EXACT, "required"),
    "hdr_cnt": _FetchSpec(AclFetch.HDR_CNT, AclMatch.INT, "required"),
    "req.hdr_cnt": _FetchSpec(AclFetch.HDR_CNT, AclMatch.INT, "required"),
    "path": _FetchSpec(AclFetch.PATH, AclMatch.EXACT, ""),
    "url": _FetchSpec(AclFetch.URL, AclMatch.EXACT, ""),
    "url_ip": _FetchSpec(AclFetch.URL_IP, AclMatch.IP, ""),
    "url_port": _FetchSpec(AclFetch.URL_PORT, AclMatch.INT, ""),
    "base": _FetchSpec(AclFetch.BASE, AclMatch.EXACT, ""),
    "query": _FetchSpec(AclFetch.QUERY, AclMatch.EXACT, ""),
    "url_param": _FetchSpec(AclFetch.URL_PARAM, AclMatch.EXACT, "required"),
    "urlp": _FetchSpec(AclFetch.URL_PARAM, AclMatch.EXACT, "required"),
    "method": _FetchSpec(AclFetch.METHOD, AclMatch.EXACT, ""),
    "src": _FetchSpec(AclFetch.SRC, AclMatch.IP, ""),
    "src_port": _FetchSpec(AclFetch.SRC_PORT, AclMatch.INT, ""),
    "dst_port": _FetchSpec(AclFetch.DST_PORT, AclMatch.INT, ""),
    "nbsrv": _FetchSpec(AclFetch.NBSRV, AclMatch.INT, "required"),
    "var": _FetchSpec(AclFetch.VAR, AclMatch.EXACT, "required"),
    "req.ssl_hello_type": _FetchSpec(AclFetch.REQ_SSL_HELLO_TYPE, AclMatch.INT, ""),
    "req_ssl_hello_type": _FetchSpec(AclFetch.REQ_SSL_HELLO_TYPE, AclMatch.INT, ""),
    "req.ssl_alpn": _FetchSpec(AclFetch.REQ_SSL_ALPN, AclMatch.EXACT, ""),
    "req.len": _FetchSpec(AclFetch.REQ_LEN, AclMatch.INT, ""),
    "req.proto_http": _FetchSpec(AclFetch.REQ_PROTO_HTTP, AclMatch.BOOL, ""),
    "req_proto_http": _FetchSpec(AclFetch.REQ_PROTO_HTTP, AclMatch.BOOL, ""),
    "req_len": _FetchSpec(AclFetch.REQ_LEN, AclMatch.INT, ""),
    "always_true": _FetchSpec(AclFetch.ALWAYS_TRUE, AclMatch.BOOL, ""),
    "always_false": _FetchSpec(AclFetch.ALWAYS_FALSE, AclMatch.BOOL, ""),
    "http_auth": _FetchSpec(AclFetch.HTTP_AUTH, AclMatch.BOOL, "required"),
    "http_auth_group": _FetchSpec(AclFetch.HTTP_AUTH_GROUP, AclMatch.EXACT, "required"),
    "status": _FetchSpec(AclFetch.STATUS, AclMatch.INT, ""),
    "res.hdr": _FetchSpec(AclFetch.RES_HDR, AclMatch.EXACT, "required"),
    "shdr": _FetchSpec(AclFetch.RES_HDR, AclMatch.EXACT, "required"),
    "res.hdr_cnt": _FetchSpec(AclFetch.RES_HDR_CNT, AclMatch.INT, "required"),
    "shdr_cnt": _FetchSpec(AclFetch.RES_HDR_CNT, AclMatch.INT, "required"),
}
# HAProxy's derived keywords: `path_beg` is `path -m beg`; `hdr_beg(x)` is `hdr(x) -m beg`
_SUFFIXES = {
    "_beg": AclMatch.BEGIN,
    "_end": AclMatch.END,
    "_sub": AclMatch.SUB,
    "_reg": AclMatch.REG,
    "_dom": AclMatch.DOM,
    "_dir": AclMatch.DIR,
    "_len": AclMatch.LEN,
}
_DERIVABLE = (
    "path", "url", "base", "hdr", "req.hdr", "urlp", "url_param", "ssl_fc_sni", "shdr",
)  # fmt: skip
_STRING_MATCHES = frozenset(
    (
        AclMatch.EXACT,
        AclMatch.BEGIN,
        AclMatch.END,
        AclMatch.SUB,
        AclMatch.REG,
        AclMatch.DOM,
        AclMatch.DIR,
    )
)
_VALUELESS_MATCHES = frozenset((AclMatch.FOUND, AclMatch.BOOL))
_REQUEST_FETCHES = frozenset(
    (
        AclFetch.HDR_HOST,
        AclFetch.PATH,
        AclFetch.HDR,
        AclFetch.FHDR,
        AclFetch.HDR_CNT,
        AclFetch.URL,
        AclFetch.URL_IP,
        AclFetch.URL_PORT,
        AclFetch.QUERY,
        AclFetch.URL_PARAM,
        AclFetch.METHOD,
        AclFetch.BASE,
        AclFetch.HTTP_AUTH,
        AclFetch.HTTP_AUTH_GROUP,
    )
)
#: what only a response rule can read
_RESPONSE_FETCHES = frozenset((AclFetch.STATUS, AclFetch.RES_HDR, AclFetch.RES_HDR_CNT))
#: the converters a condition's fetch may carry (`hdr(host),lower`)
ACL_CONVERTERS = ("lower", "upper")
_FETCH_WORD = re.compile(r"(?P<name>[a-z0-9_.]+)(?:\((?P<args>[^()]*)\))?(?P<conv>(?:,.*)?)")
_INT_OPERATORS = ("eq", "ge", "gt", "le", "lt")
_INT_RANGE = re.compile(r"(-?[0-9]+)?(:)?(-?[0-9]+)?")

# HAProxy's predefined ACLs this subset can express (HAProxy's acl.c `default_acl_list`);
# a user's `acl` of the same name wins, as in HAProxy.
PREDEFINED_ACLS: dict[str, AclTerm] = {
    "TRUE": AclTerm(AclFetch.ALWAYS_TRUE, match=AclMatch.BOOL),
    "FALSE": AclTerm(AclFetch.ALWAYS_FALSE, match=AclMatch.BOOL),
    "HTTP": AclTerm(AclFetch.REQ_PROTO_HTTP, match=AclMatch.BOOL),
    "LOCALHOST": AclTerm(
        AclFetch.SRC,
        ("127.0.0.1/8", "::1"),
        match=AclMatch.IP,
        networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
    ),
}


def request_fetches(condition: Condition | None) -> list[str]:
    """The fetches of `condition` that look at the HTTP request (they need `mode http`)."""
    if condition is None:
        return []
    return sorted({t.fetch.value for t in condition.all_terms() if t.fetch in _REQUEST_FETCHES})


def looks_past_host(condition: Condition | None) -> bool:
    """True when `condition` reads more of a request than its Host, or something that
    changes while a connection lives (`nbsrv`): then routing is decided per request."""
    if condition is None:
        return False
    return any(
        (t.fetch in _REQUEST_FETCHES and t.fetch is not AclFetch.HDR_HOST)
        or t.fetch is AclFetch.NBSRV
        for t in condition.all_terms()
    )


def backends_counted(condition: Condition | None) -> list[str]:
    """The backends whose usable servers `condition` counts (`nbsrv(NAME)`)."""
    if condition is None:
        return []
    return sorted({t.arg or "" for t in condition.all_terms() if t.fetch is AclFetch.NBSRV})


def read_acl(
    parser: ParserState, args: list[str], where: SourceLocation, acls: dict[str, list[AclTerm]]
) -> None:
    """`acl NAME fetch [flags] [values]`; lines of one name are alternatives (OR)."""
    if len(args) < 3:
        parser.error(
            where, "acl", "'acl' expects an ACL name and a criterion.", Reason.MISSING_ARGUMENT
        )
        return
    name = args[1]
    term = acl_term(parser, args[2:], where, f"acl {name}")
    if term is not None:
        acls.setdefault(name, []).append(term)


class _TermError(Exception):
    """One problem in a term; the message is the diagnostic's text after the label."""

    def __init__(self, message: str, reason: Reason = Reason.SYNTAX) -> None:
        super().__init__(message)
        self.reason = reason


def acl_term(
    parser: ParserState, words: list[str], where: SourceLocation, label: str
) -> AclTerm | None:
    """One criterion (`fetch [flags] [--] [values]`), compiled; None after a diagnostic."""
    try:
        term = _compile_term(parser, words, label)
    except _TermError as error:
        parser.error(where, label.split()[0], f"'{label}' : {error}", error.reason)
        return None
    if term.auth is not None:  # checked once the whole configuration is read
        parser.userlist_refs.append((where, words[0].split("(")[0], term.auth, term.values))
    return term


_MAP_CONVERTER_NAMES = frozenset(MAP_METHODS) | REFUSED_MAP_CONVERTERS


def split_converters(text: str) -> tuple[str, ...]:
    """`,lower,map_str(FILE,DEFAULT)` → ("lower", "map_str(FILE,DEFAULT)"): commas inside
    a converter's parentheses are its arguments'."""
    out: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "," and depth == 0:
            if current:
                out.append("".join(current))
            current = []
            continue
        depth += char == "("
        depth -= char == ")"
        current.append(char)
    if current:
        out.append("".join(current))
    return tuple(out)


def _resolve_fetch(word: str) -> tuple[_FetchSpec, AclMatch | None, str | None, tuple[str, ...]]:
    """HAProxy's fetch word → (spec, derived match, argument, converters)."""
    parsed = _FETCH_WORD.fullmatch(word)
    if parsed is None:
        raise _TermError(
            f"fetch '{word}' is not supported: {CONDITION_HELP}; "
            "ignoring the condition would change traffic",
            Reason.UNSUPPORTED,
        )
    name, raw_args = parsed.group("name"), parsed.group("args")
    spec = _BASE_FETCHES.get(name)
    derived: AclMatch | None = None
    if spec is None:
        for suffix, match in _SUFFIXES.items():
            base = name.removesuffix(suffix)
            if base != name and base in _DERIVABLE:
                spec, derived = _BASE_FETCHES[base], match
                break
    if spec is None:
        shown = word if raw_args is None else f"{name}({raw_args})"
        raise _TermError(
            f"fetch '{shown}' is not supported: {CONDITION_HELP}; "
            "ignoring the condition would change traffic",
            Reason.UNSUPPORTED,
        )
    arg = raw_args if raw_args else None
    if spec.arg == "required" and arg is None:
        raise _TermError(f"fetch '{name}' needs an argument, as in '{name}(x-name)'.")
    if spec.arg == "" and raw_args is not None:
        raise _TermError(f"fetch '{name}' takes no argument.")
    converters = split_converters(parsed.group("conv"))
    for converter in converters:
        if converter.split("(", 1)[0] in _MAP_CONVERTER_NAMES:
            try:
                compile_converter(converter)  # reads the map file now
            except SampleSyntaxError as error:
                raise _TermError(str(error), Reason.UNSUPPORTED) from None
            continue
        if converter not in ACL_CONVERTERS:
            raise _TermError(
                f"converter '{converter}' is not supported in conditions "
                f"(staplegate has: {', '.join(ACL_CONVERTERS)} and the map lookups); "
                "ignoring the condition would change traffic",
                Reason.UNSUPPORTED,
            )
    return spec, derived, arg, converters


def _compile_term(parser: ParserState, words: list[str], label: str) -> AclTerm:
    fetch_name = words[0]
    spec, derived, arg, converters = _resolve_fetch(fetch_name)
    fetch = spec.fetch
    occurrence: int | None = None
    auth: UserlistRef | None = None
    if arg is not None and fetch in (
        AclFetch.HDR,
        AclFetch.FHDR,
        AclFetch.HDR_CNT,
        AclFetch.RES_HDR,
        AclFetch.RES_HDR_CNT,
    ):
        name, _, occ = arg.partition(",")
        arg = name.strip().lower()
        if occ:
            counted = fetch is AclFetch.HDR_CNT or fetch is AclFetch.RES_HDR_CNT
            if counted or not re.fullmatch(r"-?[0-9]+", occ.strip()):
                raise _TermError(f"'{fetch_name}' : occurrence '{occ}' is not a number.")
            occurrence = int(occ)
        if fetch is AclFetch.HDR and arg == "host" and occurrence is None:
            fetch, arg = AclFetch.HDR_HOST, None
    elif fetch is AclFetch.HTTP_AUTH or fetch is AclFetch.HTTP_AUTH_GROUP:
        if converters:
            raise _TermError(f"'{fetch_name}' takes no converter.", Reason.UNSUPPORTED)
        if len(words) > 1 and words[1].startswith("-") and words[1] != "--":
            raise _TermError(
                f"'{fetch_name}' : flag '{words[1]}' is not supported (HAProxy's "
                "'http_auth' is a boolean and 'http_auth_group' matches group names).",
                Reason.UNSUPPORTED,
            )
        auth = UserlistRef(arg or "", parser.userlists)
    elif fetch is AclFetch.VAR:
        try:
            check_variable_name("var", (arg or "",))
        except SampleSyntaxError as error:
            raise _TermError(str(error)) from None
    elif arg is not None and fetch in (AclFetch.SSL_C_S_DN, AclFetch.SSL_C_I_DN):
        entry, _, occ = arg.partition(",")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9.]*", entry) or (
            occ and not re.fullmatch(r"-?[1-9][0-9]{0,2}", occ)
        ):
            raise _TermError(f"'{fetch_name}' expects ([<entry>[,<occ>]]).")
        arg, occurrence = entry, int(occ) if occ else None
    match = derived or spec.match
    ignore_case = False
    values: list[str] = []
    i = 1
    while i < len(words):
        word = words[i]
        if word == "--":
            values.extend(words[i + 1 :])
            break
        if values or not word.startswith("-") or word == "-":
            values.append(word)
        elif word == "-i":
            ignore_case = True
        elif word in ("-n", "-u"):  # no DNS resolution; unique id: nothing to do here
            pass
        elif word in ("-m", "-f"):
            if i + 1 >= len(words):
                raise _TermError(f"'{word}' expects an argument.", Reason.MISSING_ARGUMENT)
            value = words[i + 1]
            i += 1
            if word == "-f":
                values.extend(_pattern_file(parser, value))
            elif derived is not None:
                raise _TermError(
                    f"'-m {value}' cannot be used with '{fetch_name}' "
                    f"(use '{fetch_name.split('_')[0]} -m …' to choose the match)",
                    Reason.UNSUPPORTED,
                )
            elif fetch is AclFetch.SRC:
                raise _TermError(
                    "'src' matches addresses and networks only (no '-m').", Reason.UNSUPPORTED
                )
            else:
                try:
                    match = AclMatch(value)
                except ValueError:
                    raise _TermError(
                        f"match method '-m {value}' is not supported: {CONDITION_HELP}",
                        Reason.UNSUPPORTED,
                    ) from None
        else:
            raise _TermError(
                f"flag '{word}' is not supported: {CONDITION_HELP}", Reason.UNSUPPORTED
            )
        i += 1
    term = AclTerm(
        fetch,
        ignore_case=ignore_case,
        match=match,
        arg=arg,
        occurrence=occurrence,
        converters=converters,
        auth=auth,
    )
    return _with_patterns(term, fetch_name, values)


def _pattern_file(parser: ParserState, path: str) -> list[str]:
    """HAProxy's pattern file: one pattern per line, blank lines and `#` comments skipped."""
    try:
        text = parser.read_pattern_file(join_base(parser.global_.default_path, path))
    except OSError as exc:
        raise _TermError(
            f"failed to open pattern file <{path}> : {exc.strerror or exc}.", Reason.IO
        ) from None
    patterns = []
    for line in text.splitlines():
        pattern = line.strip()
        if pattern and not pattern.startswith("#"):
            patterns.append(pattern)
    return patterns


def _with_patterns(term: AclTerm, fetch_name: str, values: list[str]) -> AclTerm:
    """Check the values against the match method and compile them into the term."""
    match = term.match
    if match in _VALUELESS_MATCHES:
        if values:
            raise _TermError(f"'{fetch_name}' takes no value.")
        return term
    if not values:
        what = {
            AclMatch.IP: "address or network",
            AclMatch.INT: "number",
            AclMatch.LEN: "length",
        }.get(match, "path" if term.fetch is AclFetch.PATH else "value")
        if term.fetch in (AclFetch.SSL_FC_SNI, AclFetch.REQ_SSL_SNI, AclFetch.HDR_HOST):
            what = "host name"
        if term.fetch is AclFetch.SSL_C_VERIFY:
            raise _TermError(
                "'ssl_c_verify' needs one or more verify error numbers (0 means verified)."
            )
        raise _TermError(
            f"'{fetch_name}' needs at least one {what} to match.", Reason.MISSING_ARGUMENT
        )
    if match is AclMatch.IP:
        networks = []
        for value in values:
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                raise _TermError(
                    f"'{value}' is not an IPv4 or IPv6 address or network "
                    "('src' matches ADDRESS or ADDRESS/MASK; host names are not resolved)."
                ) from None
        return replace(term, values=tuple(values), networks=tuple(networks))
    if match in (AclMatch.INT, AclMatch.LEN):
        if term.fetch is AclFetch.SSL_C_VERIFY and not all(v.isdigit() for v in values):
            raise _TermError(
                "'ssl_c_verify' needs one or more verify error numbers (0 means verified)."
            )
        return replace(term, values=tuple(values), ranges=_int_ranges(fetch_name, values))
    if term.ignore_case:
        values = [v.lower() for v in values]
    if match is AclMatch.REG:
        flags = re.IGNORECASE if term.ignore_case else 0
        regexes = []
        for value in values:
            try:
                regexes.append(compile_pcre(value, flags))
            except re.error as error:
                raise _TermError(f"regex '{value}' is invalid: {error}.") from None
        return replace(term, values=tuple(values), regexes=tuple(regexes))
    return replace(term, values=tuple(values))


def _int_ranges(fetch_name: str, values: list[str]) -> tuple[tuple[int | None, int | None], ...]:
    """HAProxy's integer patterns: `N`, `N:M`, `:M`, `N:`, and `eq|ge|gt|le|lt N`."""
    ranges: list[tuple[int | None, int | None]] = []
    operator: str | None = None
    for value in values:
        if value in _INT_OPERATORS:
            operator = value
            continue
        parsed = _INT_RANGE.fullmatch(value)
        if parsed is None or value in ("", ":"):
            raise _TermError(f"'{fetch_name}' : '{value}' is not an integer or a range.")
        low_text, colon, high_text = parsed.groups()
        low = int(low_text) if low_text is not None else None
        high = int(high_text) if high_text is not None else None
        if colon is None:
            number = low
            assert number is not None
            bounds = {
                None: (number, number),
                "eq": (number, number),
                "ge": (number, None),
                "gt": (number + 1, None),
                "le": (None, number),
                "lt": (None, number - 1),
            }[operator]
            ranges.append(bounds)
        elif operator is not None:
            raise _TermError(f"'{fetch_name}' : '{operator}' cannot precede a range.")
        else:
            ranges.append((low, high))
    if not ranges:
        raise _TermError(f"'{fetch_name}' : '{values[-1]}' expects a number after it.")
    return tuple(ranges)


def read_condition(
    parser: ParserState,
    words: list[str],
    where: SourceLocation,
    label: str,
    acls: dict[str, list[AclTerm]],
    *,
    response: bool = False,
) -> Condition | None:
    """Parse `if|unless …` words (first word is if/unless); None after a diagnostic.

    Only a `response` rule's condition may read the server's answer (`status`, `res.hdr`),
    as in HAProxy."""
    condition = _read_condition(parser, words, where, label, acls)
    if condition is None or response:
        return condition
    seen = sorted({t.fetch.value for t in condition.all_terms() if t.fetch in _RESPONSE_FETCHES})
    if seen:
        parser.error(
            where,
            label,
            f"'{label}' : fetch '{seen[0]}' reads the server's response, which this rule "
            "does not see (HAProxy refuses it too).",
            Reason.UNSUPPORTED,
        )
        return None
    return condition


def _read_condition(
    parser: ParserState,
    words: list[str],
    where: SourceLocation,
    label: str,
    acls: dict[str, list[AclTerm]],
) -> Condition | None:
    unless = words[0] == "unless"
    rest = words[1:]
    text = " ".join(words)
    if not rest:
        parser.error(
            where,
            label,
            f"'{label}' : missing condition after '{words[0]}'.",
            Reason.MISSING_ARGUMENT,
        )
        return None
    groups: list[list[AclTerm]] = [[]]
    i = 0
    while i < len(rest):
        w = rest[i]
        negated = False
        if w in ("||", "or", "OR"):
            if not groups[-1]:
                break
            groups.append([])
            i += 1
            continue
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
            term = acl_term(parser, inner, where, label)
            if term is None:
                return None
            groups[-1].append(replace(term, negated=negated))
            i = close + 1
            continue
        if w in acls:
            named = acls[w]
            if len(named) == 1:
                groups[-1].append(replace(named[0], negated=negated))
            else:
                groups[-1].append(AclTerm(AclFetch.ANY_OF, members=tuple(named), negated=negated))
            i += 1
            continue
        if w in PREDEFINED_ACLS:
            groups[-1].append(replace(PREDEFINED_ACLS[w], negated=negated))
            i += 1
            continue
        parser.error(
            where,
            label,
            f"'{label}' : unknown or unsupported ACL '{w}' in '{text}': {CONDITION_HELP}",
            Reason.UNSUPPORTED,
        )
        return None
    if not all(groups):
        parser.error(
            where,
            label,
            f"'{label}' : '{text}' has an empty alternative (around '||' or '!').",
            Reason.SYNTAX,
        )
        return None
    first, *others = groups
    return Condition(unless, tuple(first), tuple(tuple(g) for g in others))
