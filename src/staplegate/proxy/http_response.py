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
    END,
    FRAMING_NAMES,
    HEADER_LINE,
    HOP_BY_HOP,
    HOP_LINE,
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
    as long as each response ended cleanly. llhttp calls back only at the end of the head,
    per body piece and at the end; the head is cut out of the bytes fed (a response starts
    where the bytes from the server start, or after an interim 1xx head).
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
    def on_message_begin(self) -> None:
        if self.complete:  # the start of another response in the same read: never reuse
            self.trailing = True

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
            head.wire = line + HOP_LINE.sub(b"", block)
            chunked = False
            length: int | None = None
            for name, value in _FRAMING.findall(block):
                if len(name) == 14:  # content-length
                    # llhttp already refused malformed or conflicting ones
                    length = content_length(value, _BAD_RESPONSE)
                elif chunked or value.strip(b" \t").lower() != b"chunked":
                    # another coding: llhttp would read until close while the header
                    # tells the client something else (HAProxy: 502 too)
                    raise HttpError(_BAD_RESPONSE, "a transfer coding other than chunked")
                else:
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
            if data[self._start :].strip(b"\r\n"):  # a body after all: never reuse
                self.trailing = True
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
