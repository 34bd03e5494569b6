"""HTTP/1.1 messages, sans-IO: what requests and responses share.

The request side is `http_request.py`, the response side `http_response.py`; both parse
with httptools (llhttp, the parser of Node.js) and use what is here: the size limits, the
errors named with the status HAProxy answers (400 malformed, 431 head too large, 413 body
too large, 502 for a bad server response), the body framing (bodies come out de-chunked;
`body_chunk` re-frames them for the other side, so a chunked message stays chunked), the
header-line patterns, and the answers staplegate makes itself (`LocalResponse`).
Why httptools over h11: 655k vs 47k request heads parsed per second on this machine
(`bench/README.md`), and the proxy's per-request budget is a few tens of microseconds.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

MAX_HEAD_BYTES: Final = 15 * 1024  # HAProxy: tune.bufsize 16384 minus tune.maxrewrite 1024
# HAProxy's `tune.http.maxhdr` default: at most this many lines in a head counting the
# request/status line, so 100 header fields (more: 400 for a request, 502 for a response)
MAX_HEADERS: Final = 101
# what a client may send after an upgrade request before the server's answer (the stream
# stops reading the client meanwhile, so only what was already decrypted arrives)
MAX_HELD_BEFORE_101: Final = 1 << 20

HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
)
FRAMING_NAMES: Final = frozenset({b"content-length", b"transfer-encoding"})


class HttpErrorReason(enum.Enum):
    MALFORMED = 400
    HEAD_TOO_LARGE = 431
    BODY_TOO_LARGE = 413
    BAD_RESPONSE = 502


class HttpError(Exception):
    """The peer sent something we cannot forward; `status` is the answer HAProxy gives."""

    def __init__(self, reason: HttpErrorReason, detail: str) -> None:
        super().__init__(f"{reason.name.lower().replace('_', ' ')}: {detail}")
        self.reason = reason
        self.status = reason.value


#: h11's limit (10^20 bytes is more than any body): a longer value, leading zeros and all, is
#: one a server that parses into 64 bits may wrap, so it is refused rather than forwarded.
CONTENT_LENGTH_MAX_DIGITS: Final = 20


def content_length(value: bytes, reason: HttpErrorReason) -> int:
    """A Content-Length llhttp accepted, refused when it has more digits than h11 allows."""
    digits = value.strip(b" \t")
    if len(digits) > CONTENT_LENGTH_MAX_DIGITS:
        raise HttpError(reason, f"a Content-Length of {len(digits)} digits")
    return int(digits)


class BodyKind(enum.Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"  # responses only: no length, no chunking


class End:
    """The message is complete."""

    __slots__ = ()


END: Final = End()


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header `name` (lowercase), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def check_header_count(lines: int, max_headers: int, reason: HttpErrorReason) -> None:
    """HAProxy's `tune.http.maxhdr`: `lines` header fields plus the first line."""
    if lines + 1 > max_headers:
        raise HttpError(reason, f"more than {max_headers - 1} header fields")


# The fast readers (`http_request`, `http_response`) take llhttp's word that a head is well
# formed (strict CRLF, no folding, valid tokens) and then read the few headers they act on
# from the head's bytes with these, in C, instead of one Python callback per header. Each
# pattern starts at the CRLF that ends the line before, so it only ever matches at the
# start of a header line.
HEADER_LINE: Final = re.compile(rb"\r\n([^:\r\n]+):[ \t]*([^\r]*)")
HOP_LINE: Final = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-connection|te|trailer|upgrade)[ \t]*:[^\r]*",
    re.IGNORECASE,
)
_LINE_BREAK: Final = re.compile(rb"[\r\n\x00]")


def head_start(data: bytes, start: int) -> int:
    """Skip the empty lines llhttp allows before a message."""
    while data[start] in (10, 13):
        start += 1
    return start


def has_line_break(value: bytes) -> bool:
    """CR, LF or NUL: bytes that must never be inside a header line we send."""
    return _LINE_BREAK.search(value) is not None


def body_chunk(kind: BodyKind, data: bytes) -> bytes:
    """Frame de-chunked body bytes for the other side."""
    if kind is BodyKind.CHUNKED:
        return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
    return data


def body_end(kind: BodyKind) -> bytes:
    return b"0\r\n\r\n" if kind is BodyKind.CHUNKED else b""


@dataclass(frozen=True)
class LocalResponse:
    """An answer staplegate makes itself (errors, `http-request return|deny|redirect`)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    close: bool = True
    # one of HAProxy's own messages (errors, monitor answers): an `errorfile` for its
    # status replaces it
    builtin: bool = False

    def encode(self, *, version: str = "1.1") -> bytes:
        lines = [f"HTTP/{version} {self.status} {self.reason}\r\n"]
        lines.append(f"content-length: {len(self.body)}\r\n")
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        if self.close:
            lines.append("connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1") + self.body


REASONS: Final = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Time-out",
    410: "Gone",
    413: "Payload Too Large",
    421: "Misdirected Request",
    425: "Too Early",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
}

_ERROR_TEXT: Final = {
    400: "Your browser sent an invalid request.",
    403: "Request forbidden by administrative rules.",
    404: "The resource could not be found.",
    408: "Your browser didn't send a complete request in time.",
    413: "The request entity exceeds the maximum allowed size.",
    431: "The request header fields are too large.",
    500: "An internal server error occurred.",
    501: "The server does not implement this method.",
    502: "The server returned an invalid or incomplete response.",
    503: "No server is available to handle this request.",
    504: "The server didn't respond in time.",
}


def reason_phrase(status: int) -> str:
    return REASONS.get(status, "Unknown")


def error_response(status: int, *, close: bool = True) -> LocalResponse:
    """HAProxy's built-in error page for `status`."""
    reason = reason_phrase(status)
    text = _ERROR_TEXT.get(status, reason)
    body = f"<html><body><h1>{status} {reason}</h1>\n{text}\n</body></html>\n".encode()
    return LocalResponse(
        status,
        reason,
        (("cache-control", "no-cache"), ("content-type", "text/html")),
        body,
        close=close,
        builtin=True,
    )
