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

#: fetch -> (what its argument is, returns binary); the argument: "" none, "dn" a client
#: certificate DN entry, "name" a header or query parameter name, "uuid" the UUID version
SAMPLE_FETCHES: dict[str, tuple[str, bool]] = {
    "src": ("", False),
    "src_port": ("", False),
    "dst_port": ("", False),
    "ssl_fc": ("", False),
    "ssl_fc_sni": ("", False),
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
    "query": ("", False),
    "base": ("", False),
    "hdr": ("name", False),
    "req.hdr": ("name", False),
    "req.fhdr": ("name", False),
    "url_param": ("name", False),
    "urlp": ("name", False),
    "uuid": ("uuid", False),
    # response rules only: the server's answer
    "status": ("", False),
    "res.hdr": ("name", False),
    "res.fhdr": ("name", False),
    "res.ver": ("", False),
}
#: the fetches that read the HTTP request (they need `mode http`, and a request rule)
REQUEST_SAMPLE_FETCHES = frozenset(
    ("method", "path", "url", "query", "base", "hdr", "req.hdr", "req.fhdr", "url_param", "urlp")
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


CONVERTERS = frozenset({"hex", "base64", "lower", "upper"})
_TEXT_CONVERTERS = frozenset({"hex", "base64"})  # turn binary into text
_EXPRESSION = re.compile(r"%(\{\+Q\})?\[([^\]]*)\]")
_FETCH = re.compile(
    r"(?P<fetch>[a-z0-9_.]+)(?:\((?P<args>[^()]*)\))?(?P<converters>(?:,[a-z0-9_]+)*)"
)
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
    elif arg_kind == "uuid" and args not in ((), ("4",)):
        raise SampleSyntaxError("'uuid' : only version 4 is supported")
    converters = tuple(c for c in match.group("converters").split(",") if c)
    for converter in converters:
        if converter not in CONVERTERS:
            known = ", ".join(sorted(CONVERTERS))
            raise SampleSyntaxError(f"converter '{converter}' is not supported (known: {known})")
    if binary and (not converters or converters[0] not in _TEXT_CONVERTERS):
        raise SampleSyntaxError(
            f"sample fetch '{fetch}' is binary: write '%[{fetch},hex]' or '%[{fetch},base64]'"
        )
    return SampleExpression(fetch, args, converters, quote)


def _check_dn_args(fetch: str, args: tuple[str, ...]) -> None:
    if len(args) > 3 or not _DN_ENTRY.fullmatch(args[0]):
        raise SampleSyntaxError(f"'{fetch}' expects ([<entry>[,<occ>[,<format>]]])")
    if len(args) > 1 and not re.fullmatch(r"-?[1-9][0-9]{0,2}", args[1]):
        raise SampleSyntaxError(f"'{fetch}' : occurrence '{args[1]}' is not a non-zero number")
    if len(args) > 2 and args[2] != "rfc2253":
        raise SampleSyntaxError(f"'{fetch}' : format '{args[2]}' is not supported (rfc2253)")


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
