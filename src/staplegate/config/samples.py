"""The `%[fetch(args),converter…]` expressions staplegate evaluates in header values.

HAProxy's log-format strings are a language of their own; staplegate understands the part
people write in `http-request set-header`: literal text, `%%`, and `%[…]` / `%{+Q}[…]`
with the fetches of `SAMPLE_FETCHES` and the converters of `CONVERTERS`. Anything else is
refused when the configuration is parsed (a header that silently lost its value would change
what the server trusts), so evaluation (`proxy/http_rules.py`) never meets an unknown name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from staplegate.config.maps import (
    MAP_METHODS,
    REFUSED_MAP_CONVERTERS,
    MapError,
    MapTable,
    load_map,
)

#: fetch -> (what its argument is, returns binary); the argument: "" none, "dn" a client
#: certificate DN entry, "name" a header or query parameter name, "uuid" the UUID version
SAMPLE_FETCHES: dict[str, tuple[str, bool]] = {
    "src": ("", False),
    "src_port": ("", False),
    "dst_port": ("", False),
    "ssl_fc": ("", False),
    "ssl_fc_sni": ("", False),
    "ssl_fc_alpn": ("", False),
    "req.ssl_sni": ("", False),  # mode tcp: the ClientHello's SNI read by inspection
    "req_ssl_sni": ("", False),
    "ssl_c_used": ("", False),
    "ssl_c_verify": ("", False),
    "ssl_c_s_dn": ("dn", False),
    "ssl_c_i_dn": ("dn", False),
    "ssl_c_serial": ("", True),
    "ssl_c_der": ("", True),
    "ssl_c_sha1": ("", True),
    "ssl_c_notbefore": ("", False),
    "ssl_c_notafter": ("", False),
    # mode http: the request as it is when the rule runs
    "method": ("", False),
    "path": ("", False),
    "url": ("", False),
    "pathq": ("", False),
    "url_ip": ("", False),  # the absolute URL's host when it is an IP address
    "url_port": ("", False),
    "query": ("", False),
    "base": ("", False),
    "hdr": ("name", False),
    "req.hdr": ("name", False),
    "req.fhdr": ("name", False),
    "url_param": ("name", False),
    "urlp": ("name", False),
    "uuid": ("uuid", False),
    "var": ("var", False),
    # response rules only: the server's answer
    "status": ("", False),
    "res.hdr": ("name", False),
    "res.fhdr": ("name", False),
    "res.ver": ("", False),
}
#: the fetches that read the HTTP request (they need `mode http`, and a request rule)
REQUEST_SAMPLE_FETCHES = frozenset(
    (
        "method",
        "path",
        "pathq",
        "url",
        "url_ip",
        "url_port",
        "query",
        "base",
        "hdr",
        "req.hdr",
        "req.fhdr",
        "url_param",
        "urlp",
    )
)
#: the fetches that read the response (only `http-response` rules see one)
RESPONSE_SAMPLE_FETCHES = frozenset(("status", "res.hdr", "res.fhdr", "res.ver"))


def check_context(segments: tuple[Segment, ...], *, response: bool) -> None:
    """Refuse what the rule cannot see, as HAProxy does: a request rule has no response yet,
    and a response rule no longer has the request."""
    for segment in segments:
        if isinstance(segment, str):
            continue
        if response and segment.fetch in REQUEST_SAMPLE_FETCHES:
            raise SampleSyntaxError(
                f"sample fetch '{segment.fetch}' reads the request, which a response rule "
                "does not see (HAProxy refuses it too)"
            )
        if not response and segment.fetch in RESPONSE_SAMPLE_FETCHES:
            raise SampleSyntaxError(
                f"sample fetch '{segment.fetch}' reads the response, which a request rule "
                "does not have yet"
            )


CONVERTERS = frozenset({"hex", "base64", "lower", "upper", "field", "regsub", *MAP_METHODS})
_TEXT_CONVERTERS = frozenset({"hex", "base64"})  # turn binary into text
_EXPRESSION = re.compile(r"%(\{\+Q\})?\[([^\]]*)\]")
_FETCH = re.compile(
    r"(?P<fetch>[a-z0-9_.]+)(?:\((?P<args>[^()]*)\))?"
    r"(?P<converters>(?:,[a-z0-9_]+(?:\([^()]*\))?)*)"
)
_CONVERTER = re.compile(r",([a-z0-9_]+)(?:\(([^()]*)\))?")
_DN_ENTRY = re.compile(r"[A-Za-z][A-Za-z0-9.]*")


class SampleSyntaxError(ValueError):
    """A header value staplegate cannot evaluate; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class SampleExpression:
    """One `%[…]`: a fetch, its arguments, converters in order, and `%{+Q}` quoting."""

    fetch: str
    args: tuple[str, ...] = ()
    converters: tuple[str, ...] = ()
    quote: bool = False


Segment = str | SampleExpression


def _expression(text: str, quote: bool) -> SampleExpression:
    match = _FETCH.fullmatch(text)
    if match is None:
        raise SampleSyntaxError(f"cannot parse the sample expression '%[{text}]'")
    fetch = match.group("fetch")
    if fetch not in SAMPLE_FETCHES:
        known = ", ".join(sorted(SAMPLE_FETCHES))
        raise SampleSyntaxError(f"sample fetch '{fetch}' is not supported (known: {known})")
    arg_kind, binary = SAMPLE_FETCHES[fetch]
    raw_args = match.group("args")
    args = tuple(raw_args.split(",")) if raw_args else ()
    if args and not arg_kind:
        raise SampleSyntaxError(f"sample fetch '{fetch}' takes no argument")
    if arg_kind == "dn" and args:
        _check_dn_args(fetch, args)
    elif arg_kind == "name":
        if not args or not args[0].strip() or len(args) > 2:
            raise SampleSyntaxError(f"sample fetch '{fetch}' expects a name, as in '{fetch}(x)'")
        if len(args) == 2 and not re.fullmatch(r"-?[0-9]+", args[1]):
            raise SampleSyntaxError(f"'{fetch}' : occurrence '{args[1]}' is not a number")
    elif arg_kind == "var":
        check_variable_name(fetch, args)
    elif arg_kind == "uuid" and args not in ((), ("4",)):
        raise SampleSyntaxError("'uuid' : only version 4 is supported")
    converters = tuple(m.group(0)[1:] for m in _CONVERTER.finditer(match.group("converters")))
    for converter in converters:
        compile_converter(converter)  # refuses what it cannot run, now
    if binary and (not converters or converters[0] not in _TEXT_CONVERTERS):
        raise SampleSyntaxError(
            f"sample fetch '{fetch}' is binary: write '%[{fetch},hex]' or '%[{fetch},base64]'"
        )
    return SampleExpression(fetch, args, converters, quote)


#: the variable scopes staplegate keeps (one request's); `sess` and `proc` are refused
VARIABLE_SCOPES = ("txn", "req", "res")
_VARIABLE = re.compile(r"(txn|req|res|sess|proc)\.[A-Za-z0-9_.]+")


def check_variable_name(fetch: str, args: tuple[str, ...]) -> None:
    """`var(txn.name)`: a scope staplegate keeps, and a name."""
    if len(args) != 1 or not _VARIABLE.fullmatch(args[0]):
        raise SampleSyntaxError(f"'{fetch}' expects a variable such as 'txn.name'")
    if args[0].split(".", 1)[0] not in VARIABLE_SCOPES:
        raise SampleSyntaxError(
            f"variable '{args[0]}' : staplegate keeps variables for one request "
            f"({', '.join(VARIABLE_SCOPES)} scopes), not 'sess' or 'proc'"
        )


def parse_sample_expression(text: str) -> SampleExpression:
    """A bare sample expression (`set-var`'s): `fetch[(args)][,converter…]`."""
    return _expression(text.strip(), False)


def _check_dn_args(fetch: str, args: tuple[str, ...]) -> None:
    if len(args) > 3 or not _DN_ENTRY.fullmatch(args[0]):
        raise SampleSyntaxError(f"'{fetch}' expects ([<entry>[,<occ>[,<format>]]])")
    if len(args) > 1 and not re.fullmatch(r"-?[1-9][0-9]{0,2}", args[1]):
        raise SampleSyntaxError(f"'{fetch}' : occurrence '{args[1]}' is not a non-zero number")
    if len(args) > 2 and args[2] != "rfc2253":
        raise SampleSyntaxError(f"'{fetch}' : format '{args[2]}' is not supported (rfc2253)")


_INLINE_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


def compile_pcre(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """A HAProxy (PCRE) regular expression in Python's `re`. PCRE takes `(?i)` anywhere,
    Python only at the start: such global flags are moved there. Raises `re.error`."""
    try:
        return re.compile(pattern, flags)
    except re.error as error:
        if "global flags not at the start" not in str(error):
            raise
    found = "".join(sorted(set("".join(_INLINE_FLAGS.findall(pattern)))))
    return re.compile(f"(?{found})" + _INLINE_FLAGS.sub("", pattern), flags)


@dataclass(frozen=True, slots=True)
class Converter:
    """A converter ready to run: `field` uses index and delimiters, `regsub` the rest."""

    name: str
    index: int = 0
    delimiters: str = ""
    regex: re.Pattern[str] | None = None
    replacement: str = ""
    count: int = 1
    table: MapTable | None = None  # `map_*`: the file, read when the configuration was
    default: str | None = None  # `map_*(FILE,DEFAULT)`: the value when no line matches


@lru_cache(maxsize=512)
def compile_converter(spec: str) -> Converter:
    """A converter written `name` or `name(args)`, checked once: its name and its arguments
    made ready (`field(N,DELIMS)`: the index and the delimiters; `regsub(RE,SUBST[,g|i])`:
    the compiled expression, the replacement, and how many to replace)."""
    name, _, rest = spec.partition("(")
    args = rest[:-1].split(",") if rest else []
    if name in MAP_METHODS:
        return _map_converter(name, rest[:-1] if rest else "")
    if name in REFUSED_MAP_CONVERTERS:
        raise SampleSyntaxError(
            f"converter '{name}' is not supported (map converters staplegate runs: "
            f"{', '.join(sorted(MAP_METHODS))})"
        )
    if name not in CONVERTERS:
        known = ", ".join(sorted(CONVERTERS))
        raise SampleSyntaxError(f"converter '{name}' is not supported (known: {known})")
    if name == "field":
        if len(args) != 2 or not re.fullmatch(r"-?[1-9][0-9]*", args[0]) or not args[1]:
            raise SampleSyntaxError("'field' expects (<index>,<delimiters>), index not 0")
        return Converter(name, index=int(args[0]), delimiters=args[1])
    if name == "regsub":
        if len(args) not in (2, 3) or (len(args) == 3 and not set(args[2]) <= {"g", "i"}):
            raise SampleSyntaxError("'regsub' expects (<regex>,<subst>[,<flags g|i>])")
        flags = re.IGNORECASE if len(args) == 3 and "i" in args[2] else 0
        try:
            regex = compile_pcre(args[0], flags)
        except re.error as error:
            raise SampleSyntaxError(f"'regsub' : regex '{args[0]}' is invalid: {error}") from None
        count = 0 if len(args) == 3 and "g" in args[2] else 1
        # HAProxy's \1..\9 back-references are Python's too
        return Converter(name, regex=regex, replacement=args[1], count=count)
    if args:
        raise SampleSyntaxError(f"converter '{name}' takes no argument")
    return Converter(name)


def _map_converter(name: str, inside: str) -> Converter:
    """`map_*(FILE[,DEFAULT])`: the file is read now, once per configuration reading."""
    path, comma, default = inside.partition(",")
    if not path:
        raise SampleSyntaxError(f"'{name}' expects (<map file>[,<default value>])")
    if path.startswith("opt@"):
        raise SampleSyntaxError(f"'{name}' : 'opt@' (HAProxy 3.x) is not supported")
    try:
        table = load_map(path, MAP_METHODS[name])
    except MapError as error:
        raise SampleSyntaxError(f"'{name}' : {error}") from None
    return Converter(name, table=table, default=default if comma else None)


def forget_compiled() -> None:
    """Drop what earlier readings compiled: a new reading of the configuration (reload)
    reads its map files again."""
    compile_converter.cache_clear()
    parse_header_format.cache_clear()


@lru_cache(maxsize=256)
def parse_header_format(text: str) -> tuple[Segment, ...]:
    """Split a header value into literal text and expressions; raises SampleSyntaxError."""
    segments: list[Segment] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "%":
            literal.append(char)
            i += 1
            continue
        if text.startswith("%%", i):
            literal.append("%")
            i += 2
            continue
        match = _EXPRESSION.match(text, i)
        if match is None:
            word = text[i : i + 3]
            raise SampleSyntaxError(
                f"log-format variable '{word}…' is not supported in header values; "
                "use '%[fetch]' or write '%%' for a literal '%'"
            )
        if literal:
            segments.append("".join(literal))
            literal = []
        segments.append(_expression(match.group(2), match.group(1) is not None))
        i = match.end()
    if literal:
        segments.append("".join(literal))
    return tuple(segments)


@dataclass(frozen=True, slots=True)
class LogVariable:
    """One `%ci`-style log-format variable; `hexa` after `%{+X}o` (HAProxy's hex output)."""

    name: str
    hexa: bool = False


#: the log-format variables `unique-id-format` may use: client and frontend address and
#: port, the request's date (seconds), the process's request counter and its pid
UNIQUE_ID_VARIABLES = ("ci", "cp", "fi", "fp", "Ts", "rt", "pid")
_LOG_VARIABLE = re.compile(r"%(?:\{([^}]*)\})?([A-Za-z]+)")


def parse_unique_id_format(text: str) -> tuple[str | SampleExpression | LogVariable, ...]:
    """`unique-id-format`: literal text, `%%`, `%[…]`, the variables of
    `UNIQUE_ID_VARIABLES`, and `%{+X}o` (what follows in hexadecimal, as HAProxy writes)."""
    parts: list[str | SampleExpression | LogVariable] = []
    hexa = False
    i = 0
    literal: list[str] = []
    while i < len(text):
        if text[i] != "%":
            literal.append(text[i])
            i += 1
            continue
        if text.startswith("%%", i):
            literal.append("%")
            i += 2
            continue
        if literal:
            parts.append("".join(literal))
            literal = []
        expression = _EXPRESSION.match(text, i)
        if expression is not None:
            parts.append(_expression(expression.group(2), expression.group(1) is not None))
            i = expression.end()
            continue
        variable = _LOG_VARIABLE.match(text, i)
        if variable is None:
            raise SampleSyntaxError(f"cannot parse the log-format at '{text[i : i + 8]}'")
        options, name = variable.group(1), variable.group(2)
        if name == "o":  # global options: `%{+X}o` turns hexadecimal on
            hexa = "+X" in (options or "") or (hexa and "-X" not in (options or ""))
        elif name not in UNIQUE_ID_VARIABLES:
            known = ", ".join(f"%{v}" for v in UNIQUE_ID_VARIABLES)
            raise SampleSyntaxError(
                f"log-format variable '%{name}' is not supported here (known: {known}, %[…])"
            )
        else:
            parts.append(LogVariable(name, hexa or "+X" in (options or "")))
        i = variable.end()
    if literal:
        parts.append("".join(literal))
    return tuple(parts)
