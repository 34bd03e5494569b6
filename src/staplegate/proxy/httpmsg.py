"""HTTP/1.1 messages, sans-IO: parse requests and responses with httptools, write heads back.

httptools (llhttp, the parser of Node.js) does the byte-level work; this module turns its
callbacks into events (`RequestHead`/`ResponseHead`, body bytes, `END`), enforces the size
limits and names each failure with the status HAProxy answers (400 malformed, 431 head too
large, 413 body too large, 502 for a bad server response). Bodies come out de-chunked;
`body_chunk` re-frames them for the other side, so a chunked message stays chunked.
Why httptools over h11: 655k vs 47k request heads parsed per second on this machine
(`bench/README.md`), and the proxy's per-request budget is a few tens of microseconds.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import httptools

MAX_HEAD_BYTES: Final = 15 * 1024  # HAProxy: tune.bufsize 16384 minus tune.maxrewrite 1024

HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
)
_RESPONSE_SPECIAL: Final = HOP_BY_HOP | {b"content-length", b"transfer-encoding"}
_REQUEST_SPECIAL_NAMES: Final = _RESPONSE_SPECIAL | {b"host"}


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


class BodyKind(enum.Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"  # responses only: no length, no chunking


# Enum members as module constants for the hot paths: on Python 3.11 `BodyKind.NONE` goes
# through EnumType.__getattr__'s slow attribute hook (~0.13 µs a lookup, 10x a global).
_NO_BODY: Final = BodyKind.NONE
_LENGTH: Final = BodyKind.LENGTH
_CHUNKED: Final = BodyKind.CHUNKED
_UNTIL_CLOSE: Final = BodyKind.UNTIL_CLOSE


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


# The fast readers take llhttp's word that a head is well formed (strict CRLF, no folding,
# valid tokens) and then read the few headers they act on from the head's bytes with these,
# in C, instead of one Python callback per header. Each pattern starts at the CRLF that ends
# the line before, so it only ever matches at the start of a header line.
_HEADER_LINE: Final = re.compile(rb"\r\n([^:\r\n]+):[ \t]*([^\r]*)")
_REQUEST_SPECIAL_LINE: Final = re.compile(
    rb"\r\n(host|content-length|transfer-encoding|connection|keep-alive|proxy-connection|te"
    rb"|trailer|upgrade)[ \t]*:[ \t]*([^\r]*)",
    re.IGNORECASE,
)
_FRAMING: Final = re.compile(
    rb"\r\n(content-length|transfer-encoding)[ \t]*:[ \t]*([^\r]*)", re.IGNORECASE
)
_HOP_LINE: Final = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-connection|te|trailer|upgrade)[ \t]*:[^\r]*",
    re.IGNORECASE,
)
_HOP_LINE_BUT_UPGRADE: Final = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-connection|te|trailer)[ \t]*:[^\r]*", re.IGNORECASE
)
_new = object.__new__  # the fast readers fill a head's slots without a Python __init__ call


def _head_start(data: bytes, start: int) -> int:
    """Skip the empty lines llhttp allows before a message."""
    while data[start] in (10, 13):
        start += 1
    return start


_HOST_LINE: Final = re.compile(rb"\r\nhost[ \t]*:[ \t]*([^\r]*)", re.IGNORECASE)


def target_authority(target: bytes) -> bytes | None:
    """The authority of an absolute-form target (`http://u@a.test:8080/x` gives `a.test:8080`,
    userinfo cut as HAProxy's `http_get_authority` does); None for any other form or an empty
    authority. A server takes the host from there, not from `Host` (RFC 9112, 3.2.2)."""
    scheme_end = target.find(b"://")
    if scheme_end <= 0 or target[:1] == b"/":
        return None
    rest = target[scheme_end + 3 :]
    for stop in (b"/", b"?", b"#"):
        cut = rest.find(stop)
        if cut >= 0:
            rest = rest[:cut]
    authority = rest[rest.rfind(b"@") + 1 :]
    return authority or None


def request_host(target: bytes, hosts: list[bytes]) -> bytes | None:
    """The host routing and rules see: the absolute-form target's authority, else `Host`.

    HAProxy's H1 parser (h1.c): several Host headers must agree (case aside) and the
    duplicates are dropped; a Host that differs from the absolute-form target's authority is
    refused. Both answer 400, because a front end and a server that pick different hosts
    route, filter and cache on different names (Host confusion).
    """
    host = hosts[0] if hosts else None
    if host is not None:
        lowered = host.lower()
        for other in hosts[1:]:
            if other.lower() != lowered:
                raise HttpError(HttpErrorReason.MALFORMED, "Host headers that differ")
    authority = target_authority(target) if target[:1] != b"/" else None
    if authority is None:
        return host
    if host is not None and host.lower() != authority.lower():
        raise HttpError(HttpErrorReason.MALFORMED, "Host differs from the target's authority")
    return authority


def _settle_host(head: RequestHead, hosts: list[bytes]) -> None:
    """The fast reader's `request_host`: set the head's host, cut repeated Host lines."""
    host = request_host(head.target, hosts)
    head.host = None if host is None else host.decode("latin-1")
    if len(hosts) > 1 and head._raw is not None:
        raw = head._raw
        first = _HOST_LINE.search(raw)
        assert first is not None
        raw = raw[: first.end()] + _HOST_LINE.sub(b"", raw[first.end() :])
        head._raw = raw
        if head.plain is not None:
            head.plain = raw


def _one_host(target: bytes, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The callback reader's `request_host` check: `headers` with repeated Host fields cut."""
    hosts = [value for name, value in headers if name.lower() == b"host"]
    if len(hosts) < 2 and target[:1] == b"/":
        return headers
    request_host(target, hosts)  # raises when they disagree
    if len(hosts) < 2:
        return headers
    first = next(i for i, (name, _) in enumerate(headers) if name.lower() == b"host")
    rest = [(name, value) for name, value in headers[first + 1 :] if name.lower() != b"host"]
    return headers[: first + 1] + rest


class RequestHead:
    """A request line and headers; rules edit `headers` before it is sent on.

    A head from `RequestReader` keeps its bytes and is forwarded as it came (hop-by-hop
    lines cut out); reading `headers` turns it into a list, which is then what is sent.
    Whoever changes the list calls `headers_changed` (Host, Upgrade and the hop-by-hop
    headers are looked up once per head, not once per use). `extra` is added after the last
    header (X-Forwarded-For).
    """

    __slots__ = (
        "_headers",
        "_hop",
        "_raw",
        "body",
        "content_length",
        "extra",
        "host",
        "keep_alive",
        "method",
        "plain",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        *,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self._headers: list[tuple[bytes, bytes]] | None = headers
        self._raw: bytes | None = None  # request line and header lines, each with its CRLF
        # `_raw` when it goes to the server as it is (then `encode()` is `plain + extra +
        # CRLF`): no hop-by-hop header, not HTTP/1.0, headers never turned into a list
        self.plain: bytes | None = None
        self.extra = b""
        self.keep_alive = keep_alive
        self.body = BodyKind.NONE
        self.content_length: int | None = None
        self.host: str | None = None
        self.upgrade = False  # an Upgrade header: the request asks for a tunnel
        self._hop = False
        self._look(headers)

    def _look(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        chunked = False
        length: int | None = None
        host = target_authority(self.target) if self.target[:1] != b"/" else None  # wins
        hop = upgrade = False
        for key, value in headers:
            lower = key.lower()
            if lower in _REQUEST_SPECIAL_NAMES:
                if lower == b"host":
                    if host is None:
                        host = value
                elif lower == b"content-length":
                    length = int(value)  # llhttp already refused malformed or conflicting values
                elif lower == b"transfer-encoding":
                    chunked = chunked or b"chunked" in value.lower()
                else:
                    hop = True
                    upgrade = upgrade or lower == b"upgrade"
        if chunked:
            self.body, self.content_length = BodyKind.CHUNKED, None
        elif length is not None:
            self.body, self.content_length = BodyKind.LENGTH, length
        else:
            self.body, self.content_length = BodyKind.NONE, None
        self.host = host.decode("latin-1") if host is not None else None
        self.upgrade = upgrade
        self._hop = hop

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as a list (made from the head's bytes the first time it is asked for)."""
        if self._headers is None:
            self._headers = _HEADER_LINE.findall(self._raw or b"")
            self._raw = self.plain = None
        return self._headers

    @headers.setter
    def headers(self, value: list[tuple[bytes, bytes]]) -> None:
        self._headers = value
        self._raw = self.plain = None

    def headers_changed(self) -> None:
        """Look again at Host, Upgrade and hop-by-hop headers after `headers` changed."""
        self._look(self.headers)

    def request_line(self) -> str:
        """`GET /path HTTP/1.1`, as httplog quotes it."""
        return f"{self.method} {self.target.decode('latin-1')} HTTP/{self.version}"

    def encode(self) -> bytes:
        """The head as sent to a server: hop-by-hop headers dropped (Upgrade kept)."""
        if self.plain is not None:
            return self.plain + self.extra + b"\r\n"
        raw = self._raw
        upgrade = self.upgrade
        if upgrade:
            tail = b"connection: upgrade\r\n\r\n"
        elif self.version == "1.0":
            tail = b"connection: keep-alive\r\n\r\n"
        else:
            tail = b"\r\n"
        if raw is not None:
            eol = raw.index(b"\r\n")
            kept = (_HOP_LINE_BUT_UPGRADE if upgrade else _HOP_LINE).sub(b"", raw[eol:])
            return raw[:eol] + kept + self.extra + tail
        first = b"%s %b HTTP/%s\r\n" % (self.method.encode(), self.target, self.version.encode())
        headers = self._headers or []
        if not self._hop and self.version != "1.0":
            return (
                b"".join([first, *[k + b": " + v + b"\r\n" for k, v in headers], self.extra])
                + b"\r\n"
            )
        lines = [first]
        for key, value in headers:
            lower = key.lower()
            if lower in HOP_BY_HOP and not (upgrade and lower == b"upgrade"):
                continue
            lines.append(key + b": " + value + b"\r\n")
        lines.append(self.extra)
        lines.append(tail)
        return b"".join(lines)


class ResponseHead:
    """A status line and headers from a server.

    `wire` is the head as forwarded to the client (hop-by-hop lines dropped, Upgrade kept
    on a 101) without the connection line and the final CRLF, which depend on the client.
    """

    __slots__ = (
        "_headers",
        "_raw_block",
        "body",
        "content_length",
        "informational",
        "keep_alive",
        "reason",
        "status",
        "version",
        "wire",
    )

    def __init__(
        self,
        status: int,
        reason: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        *,
        keep_alive: bool,
        head_request: bool,
    ) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self._headers: list[tuple[bytes, bytes]] | None = headers
        self._raw_block = b""
        self.keep_alive = keep_alive
        self.informational = 100 <= status < 200 and status != 101
        # One pass: the body's framing and the header lines passed on (hop-by-hop dropped,
        # Upgrade kept on a 101), so `encode` only adds the status and connection lines.
        upgrade = status == 101
        chunked = False
        length: int | None = None
        lines = [b"HTTP/%s %d %b" % (version.encode(), status, reason)]
        for key, value in headers:
            lower = key.lower()
            if lower in _RESPONSE_SPECIAL:
                if lower == b"content-length":
                    length = int(value)  # llhttp already refused malformed or conflicting values
                elif lower == b"transfer-encoding":
                    chunked = chunked or b"chunked" in value.lower()
                elif not (upgrade and lower == b"upgrade"):
                    continue  # hop-by-hop
            lines.append(b"\r\n" + key + b": " + value)
        lines.append(b"\r\n")
        self.wire = b"".join(lines)
        self.body, self.content_length = _response_body(status, chunked, length, head_request)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as the server sent it."""
        if self._headers is None:
            self._headers = _HEADER_LINE.findall(self._raw_block)
        return self._headers

    def encode(self, *, close: bool, client_version: str) -> bytes:
        """The head as sent to the client: `connection: close` when we close after it."""
        if self.status == 101:
            return self.wire + b"connection: upgrade\r\n\r\n"
        if close:
            return self.wire + b"connection: close\r\n\r\n"
        if client_version == "1.0":
            return self.wire + b"connection: keep-alive\r\n\r\n"
        return self.wire + b"\r\n"


def _response_body(
    status: int, chunked: bool, length: int | None, head_request: bool
) -> tuple[BodyKind, int | None]:
    if head_request or status in (204, 304) or 100 <= status < 200:
        return BodyKind.NONE, None
    if chunked:
        return BodyKind.CHUNKED, None
    if length is not None:
        return BodyKind.LENGTH, length
    return BodyKind.UNTIL_CLOSE, None


def body_chunk(kind: BodyKind, data: bytes) -> bytes:
    """Frame de-chunked body bytes for the other side."""
    if kind is BodyKind.CHUNKED:
        return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
    return data


def body_end(kind: BodyKind) -> bytes:
    return b"0\r\n\r\n" if kind is BodyKind.CHUNKED else b""


RequestEvent = RequestHead | bytes | End
ResponseEvent = ResponseHead | bytes | End


class _Chunked(Exception):
    """Stops the fast request parser at a chunked request (see `RequestReader`)."""

    def __init__(self, start: int) -> None:
        super().__init__(start)
        self.start = start


class RequestReader:
    """Feed client bytes, get request events; raises `HttpError` (with HAProxy's status).

    After an upgrade request (e.g. WebSocket), parsing stops: `upgraded` holds the bytes
    that followed the head, which belong to the tunnel if the server agrees (101).

    Fast path: llhttp calls back only at the end of each head and per body piece (the end
    of a message follows from its head and Content-Length); the head is then cut out of
    the bytes fed (where the message started: after the previous head and its
    Content-Length body). The end of a chunked
    body cannot be located that way, so the first chunked request switches the connection
    to a parser with a callback per header (`_CallbackRequests`) for good.
    """

    def __init__(
        self, *, max_head_bytes: int = MAX_HEAD_BYTES, max_body_bytes: int | None = None
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self.events: list[RequestEvent] = []
        self.upgraded: bytes | None = None
        self.in_head = False  # bytes of a request head have arrived, the head is incomplete
        self._parser = httptools.HttpRequestParser(self)
        self._slow: _CallbackRequests | None = None
        self._data: bytes | None = b""  # what is being parsed (None: `_parts`, not joined yet)
        self._parts: list[bytes] = []  # the incomplete head fed so far
        self._pending = 0  # its size
        self._start = 0  # where the next message starts in `_data`
        self._skip = 0  # Content-Length body bytes to come before the next message starts
        self._body_left = 0  # of the current message's body

    def feed(self, data: bytes) -> list[RequestEvent]:
        if self.upgraded is not None:
            raise HttpError(HttpErrorReason.MALFORMED, "data after an upgrade request")
        if self._slow is not None:
            return self._slow.feed(data)
        if self._parts:
            self._parts.append(data)
            self._pending += len(data)
            self._data = None
            self._start = 0
        else:
            self._data = data
            skip = self._skip
            if skip:
                size = len(data)
                if skip >= size:
                    self._skip = skip - size
                    self._start = size
                else:
                    self._skip = 0
                    self._start = skip
            else:
                self._start = 0
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.upgraded = data[offset:]
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, _Chunked):
                return self._switch(cause.start)
            if isinstance(cause, HttpError):
                raise cause from None
            raise HttpError(HttpErrorReason.MALFORMED, str(error)) from None
        except httptools.HttpParserError as error:
            raise HttpError(HttpErrorReason.MALFORMED, str(error)) from None
        fed = self._data
        if fed is None:  # still no end of head: `_parts` holds all of it
            self.in_head = self.in_head or bool(data.strip(b"\r\n"))
            if self._pending > self.max_head_bytes:
                raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request head too large")
        elif self._start < len(fed) and self.upgraded is None:
            rest = fed[self._start :]  # the start of a head
            self._parts = [rest]
            self._pending = len(rest)
            self.in_head = bool(rest.strip(b"\r\n"))
            if self._pending > self.max_head_bytes:
                raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request head too large")
        else:
            if self._parts:
                self._parts = []
                self._pending = 0
            self.in_head = False
        events, self.events = self.events, []
        return events

    def _switch(self, start: int) -> list[RequestEvent]:
        """Parse from the chunked request's head on with a callback per header."""
        data = self._data
        assert data is not None
        self._parts = []
        self._pending = 0
        slow = self._slow = _CallbackRequests(self)
        events = self.events
        self.events = []
        events.extend(slow.feed(data[start:]))
        return events

    # httptools callbacks
    def on_headers_complete(self) -> None:
        data = self._data
        if data is None:
            data = self._data = b"".join(self._parts)
            self._parts = []
            self._pending = 0
        start = self._start
        if data[start] in (10, 13):
            start = _head_start(data, start)
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            raise HttpError(HttpErrorReason.MALFORMED, "no end of head found")
        size = end + 4 - start
        if size > self.max_head_bytes:
            raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request head too large")
        raw = data[start : end + 2]
        eol = raw.find(b"\r\n")
        parts = raw[:eol].split(b" ")
        if len(parts) != 3:  # llhttp lets runs of spaces through: forward one
            parts = [p for p in parts if p]
            raw = b" ".join(parts) + raw[eol:]
        head = _new(RequestHead)
        head._raw = raw
        head._headers = None
        head.extra = b""
        head.method = parts[0].decode("ascii")
        head.target = parts[1]
        version = parts[2]
        head.version = "1.1" if version == b"HTTP/1.1" else version[5:].decode("ascii")
        head.keep_alive = self._parser.should_keep_alive()
        host: bytes | None = None
        hosts = 0
        length: int | None = None
        hop = upgrade = False
        for name, value in _REQUEST_SPECIAL_LINE.findall(raw):
            size = len(name)  # the names this pattern matches differ in length but for two pairs
            if size == 4:  # host
                hosts += 1
                if host is None:
                    host = value
            elif size == 14:  # content-length
                length = int(value)  # llhttp already refused malformed or conflicting values
            elif size == 17:  # transfer-encoding
                if b"chunked" in value.lower():
                    raise _Chunked(start)
            else:
                hop = True
                upgrade = upgrade or name.lower() == b"upgrade"
        head.host = None if host is None else host.decode("latin-1")
        head.upgrade = upgrade
        head._hop = hop
        head.plain = None if hop or head.version == "1.0" else raw
        after = end + 4
        if hosts > 1 or head.target[:1] != b"/":  # rare: see `request_host`
            _settle_host(head, _HOST_LINE.findall(raw))
        events = self.events
        events.append(head)
        # No on_message_complete callback: the message ends here without a body (llhttp
        # skips the body of an upgrade), else after Content-Length body bytes (`on_body`).
        if length is None:
            head.body = _NO_BODY
            head.content_length = None
            events.append(END)
        else:
            limit = self.max_body_bytes
            if limit is not None and length > limit:
                raise HttpError(HttpErrorReason.BODY_TOO_LARGE, f"{length} bytes")
            head.body = _LENGTH
            head.content_length = length
            if not length or self._parser.should_upgrade():
                events.append(END)
            else:
                self._body_left = length
                after += length
                if after > len(data):
                    self._skip = after - len(data)
                    after = len(data)
        self._start = after

    def on_body(self, body: bytes) -> None:
        left = self._body_left = self._body_left - len(body)
        self.events.append(body)
        if not left:
            self.events.append(END)


class _CallbackRequests:
    """The request parser with a callback per header, for a connection that sent chunked."""

    def __init__(self, reader: RequestReader) -> None:
        self.reader = reader
        self.events: list[RequestEvent] = []
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body_size = 0
        self._pending_head = 0  # bytes fed while the current head was incomplete
        self._feeding = 0  # the size of the chunk being parsed

    def feed(self, data: bytes) -> list[RequestEvent]:
        reader = self.reader
        self._feeding = len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            reader.upgraded = data[offset:]
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, HttpError):
                raise cause from None
            raise HttpError(HttpErrorReason.MALFORMED, str(error)) from None
        except httptools.HttpParserError as error:
            raise HttpError(HttpErrorReason.MALFORMED, str(error)) from None
        if reader.in_head:
            self._pending_head += len(data)
            if self._pending_head > reader.max_head_bytes:
                raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request head too large")
        events, self.events = self.events, []
        return events

    def on_message_begin(self) -> None:
        self.reader.in_head = True
        self._url = b""
        self._headers = []
        self._body_size = 0
        self._pending_head = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))  # the size is checked once, at the end of the head

    def on_headers_complete(self) -> None:
        reader = self.reader
        reader.in_head = False
        self._headers = _one_host(self._url, self._headers)
        if self._pending_head + self._feeding > reader.max_head_bytes:  # else it cannot be over
            size = len(self._url) + sum(len(k) + len(v) + 4 for k, v in self._headers)
            if size > reader.max_head_bytes:
                raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request head too large")
        parser = self._parser
        head = RequestHead(
            parser.get_method().decode("ascii"),
            self._url,
            parser.get_http_version(),
            self._headers,
            keep_alive=parser.should_keep_alive(),
        )
        limit = reader.max_body_bytes
        if limit is not None and head.content_length is not None and head.content_length > limit:
            raise HttpError(HttpErrorReason.BODY_TOO_LARGE, f"{head.content_length} bytes")
        self.events.append(head)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        limit = self.reader.max_body_bytes
        if limit is not None and self._body_size > limit:
            raise HttpError(HttpErrorReason.BODY_TOO_LARGE, f"more than {limit} bytes")
        self.events.append(body)

    def on_message_complete(self) -> None:
        self.events.append(END)


class ResponseReader:
    """Feed server bytes for one request, get response events; raises `HttpError` (502).

    On a keep-alive server connection one reader serves request after request (`renew`),
    as long as each response ended cleanly. llhttp calls back only at the end of the head,
    per body piece and at the end; the head is cut out of the bytes fed (a response starts
    where the bytes from the server start, or after an interim 1xx head).
    """

    def __init__(self, *, head_request: bool, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self.head_request = head_request
        self.max_head_bytes = max_head_bytes
        self.events: list[ResponseEvent] = []
        self.head: ResponseHead | None = None
        self.complete = False
        self.upgraded: bytes | None = None
        self.trailing = False  # the server sent more after the response: do not reuse it
        self._parser = httptools.HttpResponseParser(self)
        self._data: bytes | None = b""  # what is being parsed (None: `_parts`, not joined yet)
        self._parts: list[bytes] = []  # the incomplete head fed so far
        self._pending = 0  # its size
        self._start = 0  # where the next head starts in `_data`
        self._clean_end = False  # llhttp ended the last message itself: it can parse another

    @property
    def reusable(self) -> bool:
        """The last response ended cleanly, so the parser can take the next one."""
        return self._clean_end and self.complete and self.upgraded is None and not self.trailing

    def reset(self, *, head_request: bool) -> None:
        """Get ready for the response to the next request on the same connection."""
        if not self.renew(head_request):
            raise ValueError("this reader's parser cannot take another response")

    def renew(self, head_request: bool) -> bool:
        """`reset` if the reader can take another response; False if it cannot."""
        if not (self._clean_end and self.complete and not self.trailing):
            return False
        self.head_request = head_request
        self.head = None
        self.complete = False
        self._clean_end = False
        return True

    def feed(self, data: bytes) -> list[ResponseEvent]:
        if self.complete:
            raise HttpError(HttpErrorReason.BAD_RESPONSE, "data after the response")
        if self._parts:
            self._parts.append(data)
            self._pending += len(data)
            self._data = None
        else:
            self._data = data
        self._start = 0
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.upgraded = data[offset:]
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, HttpError):
                raise cause from None
            if not isinstance(cause, _HeadDone):
                raise HttpError(HttpErrorReason.BAD_RESPONSE, str(error)) from None
        except httptools.HttpParserError as error:
            raise HttpError(HttpErrorReason.BAD_RESPONSE, str(error)) from None
        if self.head is None:
            fed = self._data
            if fed is not None and self._start < len(fed):
                rest = fed[self._start :]  # the start of a head
                self._parts = [rest]
                self._pending = len(rest)
            if self._pending > self.max_head_bytes:
                raise HttpError(HttpErrorReason.BAD_RESPONSE, "response head too large")
        events, self.events = self.events, []
        return events

    def eof(self) -> list[ResponseEvent]:
        """The server closed: the end of an until-close body, else a truncated response."""
        if self.complete:
            return []
        if self.head is not None and self.head.body is BodyKind.UNTIL_CLOSE:
            self.complete = True
            return [END]
        raise HttpError(HttpErrorReason.BAD_RESPONSE, "the server closed mid-response")

    # httptools callbacks
    def on_headers_complete(self) -> None:
        data = self._data
        if data is None:
            data = self._data = b"".join(self._parts)
            self._parts = []
            self._pending = 0
        if self.complete or self.head is not None:  # another response: the server misbehaves
            self.trailing = True
            raise _HeadDone
        start = self._start
        if data[start] in (10, 13):
            start = _head_start(data, start)
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            raise HttpError(HttpErrorReason.BAD_RESPONSE, "no end of head found")
        if end + 4 - start > self.max_head_bytes:
            raise HttpError(HttpErrorReason.BAD_RESPONSE, "response head too large")
        self._start = end + 4
        parser = self._parser
        status = parser.get_status_code()
        eol = data.find(b"\r\n", start)
        line = data[start:eol]
        block = data[eol : end + 2]  # the CRLF ending the status line, then the header lines
        if status < 200:  # 1xx: rare, built from a header list (a 101 keeps Upgrade)
            head = ResponseHead(
                status,
                line[13:],
                parser.get_http_version(),
                _HEADER_LINE.findall(block),
                keep_alive=parser.should_keep_alive(),
                head_request=self.head_request,
            )
        else:
            head = _new(ResponseHead)
            head.status = status
            head.reason = line[13:]
            version = line[5:8]
            head.version = "1.1" if version == b"1.1" else version.decode("ascii")
            head.keep_alive = parser.should_keep_alive()
            head.informational = False
            head._headers = None
            head._raw_block = block
            if len(line) == 12:  # no reason phrase: keep the space before it
                line += b" "
            head.wire = line + _HOP_LINE.sub(b"", block)
            chunked = False
            length: int | None = None
            for name, value in _FRAMING.findall(block):
                if len(name) == 14:  # content-length
                    length = int(value)  # llhttp already refused malformed or conflicting ones
                elif b"chunked" in value.lower():
                    chunked = True
            if self.head_request or status in (204, 304):
                head.body, head.content_length = _NO_BODY, None
            elif chunked:
                head.body, head.content_length = _CHUNKED, None
            elif length is not None:
                head.body, head.content_length = _LENGTH, length
            else:
                head.body, head.content_length = _UNTIL_CLOSE, None
        if head.informational:  # 100 Continue and friends: pass on, then the real answer
            self.events.append(head)
            return
        self.head = head
        self.events.append(head)
        if self.head_request:  # llhttp cannot know a HEAD answer has no body: stop here
            self.complete = True
            self.events.append(END)
            raise _HeadDone

    def on_body(self, body: bytes) -> None:
        self.events.append(body)

    def on_message_complete(self) -> None:
        if self.head is not None and not self.complete:
            self.complete = True
            self._clean_end = True
            self.events.append(END)


class _HeadDone(Exception):
    """Stops llhttp after the head of an answer to HEAD (or of a response too many)."""


@dataclass(frozen=True)
class LocalResponse:
    """An answer staplegate makes itself (errors, `http-request return|deny|redirect`)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    close: bool = True

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
    )
