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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import httptools

MAX_HEAD_BYTES: Final = 15 * 1024  # HAProxy: tune.bufsize 16384 minus tune.maxrewrite 1024

HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
)
_RESPONSE_SPECIAL: Final = HOP_BY_HOP | {b"content-length", b"transfer-encoding"}
_REQUEST_SPECIAL: Final = _RESPONSE_SPECIAL | {b"host"}


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


class RequestHead:
    """A request line and headers; rules edit `headers` before it is sent on.

    Whoever changes `headers` calls `headers_changed` (Host, Upgrade and the hop-by-hop
    headers are looked up once per head, not once per use).
    """

    __slots__ = (
        "_hop",
        "body",
        "content_length",
        "headers",
        "host",
        "keep_alive",
        "method",
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
        self.headers = headers
        self.keep_alive = keep_alive
        chunked = False
        length: int | None = None
        host: bytes | None = None
        hop = upgrade = False
        for key, value in headers:
            lower = key.lower()
            if lower in _REQUEST_SPECIAL:
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
        self.upgrade = upgrade  # an Upgrade header: the request asks for a tunnel
        self._hop = hop

    def headers_changed(self) -> None:
        """Look again at Host, Upgrade and hop-by-hop headers after `headers` changed."""
        value = header(self.headers, b"host")
        self.host = value.decode("latin-1") if value is not None else None
        self.upgrade = header(self.headers, b"upgrade") is not None
        self._hop = any(key.lower() in HOP_BY_HOP for key, _ in self.headers)

    def request_line(self) -> str:
        """`GET /path HTTP/1.1`, as httplog quotes it."""
        return f"{self.method} {self.target.decode('latin-1')} HTTP/{self.version}"

    def encode(self) -> bytes:
        """The head as sent to a server: hop-by-hop headers dropped (Upgrade kept)."""
        first = b"%s %b HTTP/%s\r\n" % (self.method.encode(), self.target, self.version.encode())
        if not self._hop and self.version != "1.0":
            lines = [first, *[key + b": " + value + b"\r\n" for key, value in self.headers]]
            lines.append(b"\r\n")
            return b"".join(lines)
        lines = [first]
        upgrade = self.upgrade
        for key, value in self.headers:
            lower = key.lower()
            if lower in HOP_BY_HOP and not (upgrade and lower == b"upgrade"):
                continue
            lines.append(key + b": " + value + b"\r\n")
        if upgrade:
            lines.append(b"connection: upgrade\r\n")
        elif self.version == "1.0":
            lines.append(b"connection: keep-alive\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)


class ResponseHead:
    """A status line and headers from a server."""

    __slots__ = (
        "_block",
        "body",
        "content_length",
        "headers",
        "keep_alive",
        "reason",
        "status",
        "version",
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
        self.headers = headers
        self.keep_alive = keep_alive
        # One pass: the body's framing and the header lines passed on (hop-by-hop dropped,
        # Upgrade kept on a 101), so `encode` only adds the status and connection lines.
        upgrade = status == 101
        chunked = False
        length: int | None = None
        lines: list[bytes] = []
        for key, value in headers:
            lower = key.lower()
            if lower in _RESPONSE_SPECIAL:
                if lower == b"content-length":
                    length = int(value)  # llhttp already refused malformed or conflicting values
                elif lower == b"transfer-encoding":
                    chunked = chunked or b"chunked" in value.lower()
                elif not (upgrade and lower == b"upgrade"):
                    continue  # hop-by-hop
            lines.append(key + b": " + value + b"\r\n")
        self._block = b"".join(lines)
        body = BodyKind.CHUNKED if chunked else BodyKind.LENGTH if length is not None else None
        if chunked:
            length = None
        if head_request or status in (204, 304) or 100 <= status < 200:
            body, length = BodyKind.NONE, None
        elif body is None:
            body = BodyKind.UNTIL_CLOSE
        self.body, self.content_length = body, length

    @property
    def informational(self) -> bool:
        return 100 <= self.status < 200 and self.status != 101

    def encode(self, *, close: bool, client_version: str) -> bytes:
        """The head as sent to the client: `connection: close` when we close after it."""
        if self.status == 101:
            connection = b"connection: upgrade\r\n\r\n"
        elif close:
            connection = b"connection: close\r\n\r\n"
        elif client_version == "1.0":
            connection = b"connection: keep-alive\r\n\r\n"
        else:
            connection = b"\r\n"
        return b"HTTP/%s %d %b\r\n%b%b" % (
            self.version.encode(),
            self.status,
            self.reason,
            self._block,
            connection,
        )


def body_chunk(kind: BodyKind, data: bytes) -> bytes:
    """Frame de-chunked body bytes for the other side."""
    if kind is BodyKind.CHUNKED:
        return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
    return data


def body_end(kind: BodyKind) -> bytes:
    return b"0\r\n\r\n" if kind is BodyKind.CHUNKED else b""


RequestEvent = RequestHead | bytes | End
ResponseEvent = ResponseHead | bytes | End


class RequestReader:
    """Feed client bytes, get request events; raises `HttpError` (with HAProxy's status).

    After an upgrade request (e.g. WebSocket), parsing stops: `upgraded` holds the bytes
    that followed the head, which belong to the tunnel if the server agrees (101).
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
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body_size = 0
        self._pending_head = 0  # bytes fed while the current head was incomplete
        self._feeding = 0  # the size of the chunk being parsed

    def feed(self, data: bytes) -> list[RequestEvent]:
        if self.upgraded is not None:
            raise HttpError(HttpErrorReason.MALFORMED, "data after an upgrade request")
        self._feeding = len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.upgraded = data[offset:]
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, HttpError):
                raise cause from None
            raise HttpError(HttpErrorReason.MALFORMED, str(error)) from None
        except httptools.HttpParserError as error:
            raise HttpError(HttpErrorReason.MALFORMED, str(error)) from None
        if self.in_head:
            self._pending_head += len(data)
            if self._pending_head > self.max_head_bytes:
                raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request head too large")
        events, self.events = self.events, []
        return events

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.in_head = True
        self._url = b""
        self._headers = []
        self._body_size = 0
        self._pending_head = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))  # the size is checked once, at the end of the head

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self._pending_head + self._feeding > self.max_head_bytes:  # else it cannot be over
            size = len(self._url) + sum(len(k) + len(v) + 4 for k, v in self._headers)
            if size > self.max_head_bytes:
                raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request head too large")
        parser = self._parser
        head = RequestHead(
            parser.get_method().decode("ascii"),
            self._url,
            parser.get_http_version(),
            self._headers,
            keep_alive=parser.should_keep_alive(),
        )
        limit = self.max_body_bytes
        if limit is not None and head.content_length is not None and head.content_length > limit:
            raise HttpError(HttpErrorReason.BODY_TOO_LARGE, f"{head.content_length} bytes")
        self.events.append(head)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        limit = self.max_body_bytes
        if limit is not None and self._body_size > limit:
            raise HttpError(HttpErrorReason.BODY_TOO_LARGE, f"more than {limit} bytes")
        self.events.append(body)

    def on_message_complete(self) -> None:
        self.events.append(END)


class ResponseReader:
    """Feed server bytes for one request, get response events; raises `HttpError` (502).

    On a keep-alive server connection one reader serves request after request (`reset`),
    as long as each response ended cleanly.
    """

    def __init__(self, *, head_request: bool, max_head_bytes: int = MAX_HEAD_BYTES) -> None:
        self.head_request = head_request
        self.max_head_bytes = max_head_bytes
        self.events: list[ResponseEvent] = []
        self.head: ResponseHead | None = None
        self.complete = False
        self.upgraded: bytes | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._pending_head = 0  # bytes fed while the current head was incomplete
        self._feeding = 0  # the size of the chunk being parsed
        self._clean_end = False  # llhttp ended the last message itself: it can parse another

    @property
    def reusable(self) -> bool:
        """The last response ended cleanly, so the parser can take the next one."""
        return self._clean_end and self.complete and self.upgraded is None

    def reset(self, *, head_request: bool) -> None:
        """Get ready for the response to the next request on the same connection."""
        if not self.reusable:
            raise ValueError("this reader's parser cannot take another response")
        self.head_request = head_request
        self.head = None
        self.complete = False
        self._clean_end = False

    def feed(self, data: bytes) -> list[ResponseEvent]:
        if self.complete:
            raise HttpError(HttpErrorReason.BAD_RESPONSE, "data after the response")
        self._feeding = len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.upgraded = data[offset:]
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, HttpError):
                raise cause from None
            if isinstance(cause, _HeadDone):
                pass
            else:
                raise HttpError(HttpErrorReason.BAD_RESPONSE, str(error)) from None
        except httptools.HttpParserError as error:
            raise HttpError(HttpErrorReason.BAD_RESPONSE, str(error)) from None
        if self.head is None:
            self._pending_head += len(data)
            if self._pending_head > self.max_head_bytes:
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
    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))  # the size is checked once, at the end of the head

    def on_headers_complete(self) -> None:
        if self._pending_head + self._feeding > self.max_head_bytes:  # else it cannot be over
            size = len(self._reason) + sum(len(k) + len(v) + 4 for k, v in self._headers)
            if size > self.max_head_bytes:
                raise HttpError(HttpErrorReason.BAD_RESPONSE, "response head too large")
        parser = self._parser
        head = ResponseHead(
            parser.get_status_code(),
            self._reason,
            parser.get_http_version(),
            self._headers,
            keep_alive=parser.should_keep_alive(),
            head_request=self.head_request,
        )
        self._reason = b""
        self._headers = []
        self._pending_head = 0
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
    """Stops llhttp after the head of an answer to HEAD."""


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
