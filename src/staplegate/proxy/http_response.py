"""HTTP/1.1 responses, sans-IO: `ResponseReader` turns server bytes into response events.

Events are a `ResponseHead` (interim 1xx heads too), body bytes (de-chunked) and `END`; a
malformed or oversized response is `HttpError` 502, as HAProxy answers it. One reader
serves a keep-alive server connection's responses one after another. What requests and
responses share is in `http_message.py`.
"""

from __future__ import annotations

import re
from typing import Final

import httptools

from staplegate.proxy.http_message import (
    CONTENT_LENGTH_MAX_DIGITS,
    END,
    FRAMING_NAMES,
    HEADER_LINE,
    HOP_BY_HOP,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    BodyKind,
    End,
    HttpError,
    HttpErrorReason,
    check_header_count,
    content_length,
    head_start,
)

_RESPONSE_SPECIAL: Final = HOP_BY_HOP | FRAMING_NAMES
# Enum members as module constants (see `http_request`: Python 3.11's slow enum lookups).
_NO_BODY: Final = BodyKind.NONE
_LENGTH: Final = BodyKind.LENGTH
_CHUNKED: Final = BodyKind.CHUNKED
_UNTIL_CLOSE: Final = BodyKind.UNTIL_CLOSE
_BAD_RESPONSE: Final = HttpErrorReason.BAD_RESPONSE
# Read from the head's bytes by the reader (see `http_message.HEADER_LINE`).

_FRAMING: Final = re.compile(
    rb"\r\n(content-length|transfer-encoding)[ \t]*:[ \t]*([^\r]*)", re.IGNORECASE
)
# The framing and hop-by-hop lines in one pass: (the whole line, its name, its value).
_SPECIAL_LINE: Final = re.compile(
    rb"(\r\n(content-length|transfer-encoding|connection|keep-alive|proxy-connection|te"
    rb"|trailer|upgrade)[ \t]*:[ \t]*([^\r]*))",
    re.IGNORECASE,
)
_CONTROL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_new = object.__new__  # the reader fills a head's slots without a Python __init__ call


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
        # the body's framing, and the lines passed on (`_wire`), so `encode` only adds the
        # connection line
        chunked = False
        length: int | None = None
        for key, value in headers:
            lower = key.lower()
            if lower == b"content-length":
                # llhttp already refused malformed or conflicting values
                length = content_length(value, _BAD_RESPONSE)
            elif lower == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
        self.wire = _wire(version, status, reason, headers)
        self.body, self.content_length = _response_body(status, chunked, length, head_request)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as the server sent it."""
        if self._headers is None:
            self._headers = HEADER_LINE.findall(self._raw_block)
        return self._headers

    def set_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Forward `headers` instead (`http-response` rules). The framing stays what the
        server sent: the rules cannot name framing or hop-by-hop headers."""
        self._headers = headers
        self.wire = _wire(self.version, self.status, self.reason, headers)

    def set_status(self, status: int, reason: bytes) -> None:
        """Forward this status line instead (`http-response set-status`); the body's framing
        stays what the server sent (the rule refuses bodiless statuses)."""
        self.status = status
        self.reason = reason
        self.wire = _wire(self.version, status, reason, self.headers)

    def encode(self, *, close: bool, client_version: str) -> bytes:
        """The head as sent to the client: `connection: close` when we close after it."""
        if self.status == 101:
            return self.wire + b"connection: upgrade\r\n\r\n"
        if close:
            return self.wire + b"connection: close\r\n\r\n"
        if client_version == "1.0":
            return self.wire + b"connection: keep-alive\r\n\r\n"
        return self.wire + b"\r\n"


def _wire(version: str, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The status line and the headers passed on (hop-by-hop dropped, Upgrade kept on a
    101), without the connection line and the final CRLF."""
    upgrade = status == 101
    lines = [b"HTTP/%s %d %b" % (version.encode(), status, reason)]
    for key, value in headers:
        lower = key.lower()
        hop_by_hop = lower in _RESPONSE_SPECIAL and lower not in FRAMING_NAMES
        if hop_by_hop and not (upgrade and lower == b"upgrade"):
            continue
        lines.append(b"\r\n" + key + b": " + value)
    lines.append(b"\r\n")
    return b"".join(lines)


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


ResponseEvent = ResponseHead | bytes | End


class ResponseReader:
    """Feed server bytes for one request, get response events; raises `HttpError` (502).

    On a keep-alive server connection one reader serves request after request (`renew`),
    as long as each response ended cleanly. llhttp validates every byte but calls back only
    at the end of a head: the head is cut out of the bytes fed (a response starts where the
    bytes from the server start, or after an interim 1xx head), and a Content-Length or
    until-close body is cut out after it by counting, as llhttp counts it. A chunked body
    cannot be located that way, so the first chunked response switches the connection to
    a parser that calls back per body piece and at the end (`_ChunkedResponses`), for good.
    One Python callback per response instead of four is what keeps `mode http` near the
    featureless front (docs/performance.md).
    """

    def __init__(
        self,
        *,
        head_request: bool,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self.head_request = head_request
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
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
        self._clean_end = False  # the last message ended where llhttp ends it: it can go on
        self._body_left = 0  # Content-Length body bytes to come (-1: until the close)
        self._chunked: _ChunkedResponses | None = None  # the callback parser, once chunked

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
        self._body_left = 0
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
            left = self._body_left
            if left:  # the body goes on (never while a head is incomplete: `_parts`)
                self._body(data, 0, left)
        self._start = 0
        switch_at: int | None = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.upgraded = data[offset:]
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, _Chunked):
                switch_at = cause.start
            elif isinstance(cause, HttpError):
                raise cause from None
            elif not isinstance(cause, _HeadDone):
                raise HttpError(HttpErrorReason.BAD_RESPONSE, str(error)) from None
        except httptools.HttpParserError as error:
            raise HttpError(HttpErrorReason.BAD_RESPONSE, str(error)) from None
        if switch_at is not None:  # outside the handler: its errors have their own context
            fed = self._data
            assert fed is not None
            chunked = self._chunked = _ChunkedResponses(self)
            self._parser = httptools.HttpResponseParser(chunked)
            return self.feed(fed[switch_at:])
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

    def _body(self, data: bytes, start: int, left: int) -> None:
        """Body bytes from `start` on, `left` of them still to come (-1: until the close);
        at the end of the body, the response is complete, and bytes after it make the
        connection one never to reuse (llhttp skips blank lines between messages)."""
        if left < 0:
            if start < len(data):
                self.events.append(data[start:] if start else data)
            return
        end = start + left
        size = len(data)
        if end > size:
            if start < size:
                self.events.append(data[start:] if start else data)
            self._body_left = end - size
            return
        if left:
            self.events.append(data[start:end] if start or end < size else data)
        self._body_left = 0
        self.complete = True
        self._clean_end = True
        self.events.append(END)
        if end < size and data[end:].lstrip(b"\r\n"):
            self.trailing = True

    # httptools callback (with `_ChunkedResponses`, also per body piece and at the end)
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
            start = head_start(data, start)
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
        reason = line[13:]
        if not reason.replace(b" ", b"").isalpha() and _CONTROL.search(reason):
            # llhttp lets control bytes into the reason phrase
            raise HttpError(_BAD_RESPONSE, "a control character in the status line")
        if status < 100:  # llhttp takes `000`
            raise HttpError(_BAD_RESPONSE, f"status {status}")
        block = data[eol : end + 2]  # the CRLF ending the status line, then the header lines
        if len(block) > 4 * self.max_headers and block.count(b"\r\n") > self.max_headers:
            check_header_count(block.count(b"\r\n") - 1, self.max_headers, _BAD_RESPONSE)
        if status < 200:  # 1xx: rare, built from a header list (a 101 keeps Upgrade)
            if _FRAMING.search(block):
                # RFC 9112 §6.3: a 1xx never has content, but llhttp reads a body after
                # some of them (105 + Content-Length); HAProxy would not, so refuse
                raise HttpError(
                    _BAD_RESPONSE, "a 1xx response with Content-Length or Transfer-Encoding"
                )
            head = ResponseHead(
                status,
                line[13:],
                parser.get_http_version(),
                HEADER_LINE.findall(block),
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
            wire = block
            chunked = False
            length: int | None = None
            for whole, name, value in _SPECIAL_LINE.findall(block):
                size = len(name)  # the names differ in length but for hop-by-hop pairs
                if size == 14:  # content-length
                    # llhttp already refused malformed or conflicting ones
                    length = (
                        int(value)
                        if len(value) <= CONTENT_LENGTH_MAX_DIGITS
                        else content_length(value, _BAD_RESPONSE)
                    )
                elif size == 17:  # transfer-encoding
                    if chunked or value.strip(b" \t").lower() != b"chunked":
                        # another coding: llhttp would read until close while the header
                        # tells the client something else (HAProxy: 502 too)
                        raise HttpError(_BAD_RESPONSE, "a transfer coding other than chunked")
                    chunked = True
                else:  # hop-by-hop: not passed on. Every line of the block is followed by
                    # the CR of the next CRLF, so only whole lines equal to this one go.
                    wire = wire.replace(whole + b"\r", b"\r")
            head.wire = line + wire
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
            if data[self._start :].strip(b"\r\n"):  # a body after all: never reuse
                self.trailing = True
            raise _HeadDone
        if self._chunked is not None:
            return  # llhttp calls back with the body and its end
        body = head.body
        if body is _LENGTH:
            start = self._start
            body_size: int = head.content_length  # type: ignore[assignment]
            if start + body_size != len(data):  # more to come, or bytes after it
                self._body(data, start, body_size)
                return
            events = self.events  # the usual answer: the whole body in this read, no more
            if body_size:
                events.append(data[start:])
            self.complete = True
            self._clean_end = True
            events.append(END)
        elif body is _NO_BODY:  # 204, 304, 101: llhttp ends the message at the head
            self.complete = True
            self._clean_end = True
            self.events.append(END)
            if status != 101 and data[self._start :].lstrip(b"\r\n"):
                self.trailing = True
        elif body is _CHUNKED:
            self.head = None
            self.events.pop()
            raise _Chunked(start)
        else:
            self._body_left = -1
            self._body(data, self._start, -1)


class _ChunkedResponses:
    """The llhttp callbacks of a connection that answered chunked: the body pieces
    de-chunked, and the end of each message as llhttp finds it."""

    __slots__ = ("reader",)

    def __init__(self, reader: ResponseReader) -> None:
        self.reader = reader

    def on_message_begin(self) -> None:
        if self.reader.complete:  # the start of another response in the same read: never reuse
            self.reader.trailing = True

    def on_headers_complete(self) -> None:
        self.reader.on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.reader.events.append(body)

    def on_message_complete(self) -> None:
        reader = self.reader
        if reader.head is not None and not reader.complete:
            reader.complete = True
            reader._clean_end = True
            reader.events.append(END)


class _HeadDone(Exception):
    """Stops llhttp after the head of an answer to HEAD (or of a response too many)."""


class _Chunked(Exception):
    """Stops the counting parser at a chunked response (see `ResponseReader`)."""

    def __init__(self, start: int) -> None:
        super().__init__(start)
        self.start = start
