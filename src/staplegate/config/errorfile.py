"""`errorfile <code> <file>`: read an operator's raw HTTP response file into its parts.

HAProxy sends such a file instead of the error it would generate itself (503 when no server
is usable, 403 from `deny`, 400 on a bad request …). The file holds a whole HTTP/1.x
response: a status line, headers, an empty line, the body. It is read once per generation;
a file that is not such a response is a configuration error, so a typo never reaches a
client as a garbled answer. Framing and hop-by-hop headers are the proxy's business: they
are dropped here and written by the proxy for each answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: the codes HAProxy lets `errorfile` replace (others: a warning, and nothing changes)
HANDLED_CODES = frozenset(
    {200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504}
)
#: HAProxy's limit: a response must fit in one buffer (`tune.bufsize`, 16 KiB by default)
MAX_BYTES = 16384

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: ([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FRAMING = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
    }
)


class ErrorFileError(ValueError):
    """The file is no HTTP response staplegate can send."""


@dataclass(frozen=True)
class ErrorPage:
    """An errorfile's response, framing headers removed."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    delimited: bool  # the file gave a Content-Length (else the body ends with the connection)


def parse_error_file(data: bytes) -> ErrorPage:
    """The response in `data` (a whole file); ErrorFileError says what is wrong."""
    if not data:
        raise ErrorFileError("the file is empty; it must hold a whole HTTP response")
    if len(data) > MAX_BYTES:
        raise ErrorFileError(f"{len(data)} bytes is more than the {MAX_BYTES} bytes allowed")
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = data.partition(b"\n\n")
    if not separator:
        raise ErrorFileError("no empty line ends the headers")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise ErrorFileError("the first line is no 'HTTP/1.x NNN reason' status line")
    status = int(status_line.group(1))
    reason = (status_line.group(2) or b"").decode("latin-1").strip()
    headers: list[tuple[str, str]] = []
    length: int | None = None
    for number, line in enumerate(lines[1:], start=2):
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise ErrorFileError(f"line {number} is no 'Name: value' header")
        text = value.strip().decode("latin-1")
        lowered = name.decode("ascii").lower()
        if lowered == "transfer-encoding":
            raise ErrorFileError("a chunked body is not supported; give the body as it is")
        if lowered == "content-length":
            if not text.isdigit():
                raise ErrorFileError(f"invalid Content-Length '{text}'")
            length = int(text)
            if length > len(body):
                raise ErrorFileError(
                    f"Content-Length {length} is longer than the {len(body)}-byte body"
                )
        if lowered not in _FRAMING:
            headers.append((lowered, text))
    if length is not None:
        body = body[:length]
    return ErrorPage(status, reason, tuple(headers), body, delimited=length is not None)
