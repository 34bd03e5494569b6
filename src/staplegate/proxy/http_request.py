"""HTTP/1.1 requests, sans-IO: `RequestReader` turns client bytes into request events.

Events are a `RequestHead`, body bytes (de-chunked) and `END`. The reader enforces the size
limits and refuses, with HAProxy's status, what a server behind us could read another way
(framing, Host confusion, h2c upgrades); `RequestHead.encode` writes the head back for the
server. What requests and responses share is in `http_message.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import httptools

from staplegate.proxy.http_message import (
    CONTENT_LENGTH_MAX_DIGITS,
    END,
    FRAMING_NAMES,
    HEADER_LINE,
    HOP_BY_HOP,
    HOP_LINE,
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_HELD_BEFORE_101,
    BodyKind,
    End,
    HttpError,
    HttpErrorReason,
    check_header_count,
    content_length,
    has_line_break,
    head_start,
)

_REQUEST_SPECIAL_NAMES: Final = HOP_BY_HOP | FRAMING_NAMES | {b"host"}
# Enum members as module constants for the hot paths: on Python 3.11 `BodyKind.NONE` goes
# through EnumType.__getattr__'s slow attribute hook (~0.13 µs a lookup, 10x a global).
_NO_BODY: Final = BodyKind.NONE
_LENGTH: Final = BodyKind.LENGTH
_MALFORMED: Final = HttpErrorReason.MALFORMED


def check_request_framing(
    method: str, version: str, transfer_encoding: bytes | None, length: int | None, upgrade: bool
) -> None:
    """Refuse (400) the framings llhttp lets through but a server may read another way.

    * a Transfer-Encoding other than exactly `chunked` (`gzip, chunked`, ...): we would
      de-chunk and re-chunk a body whose other codings we do not know (HAProxy 3.x: 422);
    * Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: a 1.0 recipient cannot
      know it, so a 1.0 server behind us would read the chunks as the next request);
    * a body on a request that asks for a tunnel (`Connection: upgrade` + `Upgrade`, or
      CONNECT): llhttp stops at the head of such a request, so its body would be neither
      sent nor skipped. HAProxy >= 2.4.5 drops the Upgrade instead (haproxy issue #1381);
      see docs/reference/http-mode.md for why staplegate refuses.
    """
    if transfer_encoding is not None:
        if version == "1.0":
            raise HttpError(HttpErrorReason.MALFORMED, "Transfer-Encoding in an HTTP/1.0 request")
        if transfer_encoding.strip(b" \t").lower() != b"chunked":
            raise HttpError(HttpErrorReason.MALFORMED, "a transfer coding other than chunked")
    if upgrade and (transfer_encoding is not None or length):
        what = "a CONNECT" if method == "CONNECT" else "an upgrade"
        raise HttpError(HttpErrorReason.MALFORMED, f"{what} request with a body")


def _is_h2_upgrade(value: bytes) -> bool:
    """An Upgrade to h2c (or h2): never tunnelled, as HAProxy drops such an Upgrade.

    Once a server switched to HTTP/2 cleartext the client could send any request inside
    the tunnel, past every `http-request` rule ("h2c smuggling").
    """
    return any(token.strip(b" \t").lower() in (b"h2c", b"h2") for token in value.split(b","))


# Read from the head's bytes by the fast reader (see `http_message.HEADER_LINE`).
_REQUEST_SPECIAL_LINE: Final = re.compile(
    rb"\r\n(host|content-length|transfer-encoding|connection|keep-alive|proxy-connection|te"
    rb"|trailer|upgrade)[ \t]*:[ \t]*([^\r]*)",
    re.IGNORECASE,
)
_HOP_LINE_BUT_UPGRADE: Final = re.compile(
    rb"\r\n(?:connection|keep-alive|proxy-connection|te|trailer)[ \t]*:[^\r]*", re.IGNORECASE
)
_VERSIONS: Final = frozenset({b"HTTP/1.1", b"HTTP/1.0"})
_new = object.__new__  # the fast reader fills a head's slots without a Python __init__ call


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
        "destination",  # `set-dst`/`set-dst-port`: set only by those rules (else unset)
        "extra",
        "host",
        "keep_alive",
        "method",
        "plain",
        "target",
        "upgrade",
        "variables",  # `set-var(txn.x)`: set only by rules that use variables (else unset)
        "version",
    )
    variables: dict[str, str]  # read with getattr(head, "variables", None)
    destination: tuple[str, int]  # read with getattr(head, "destination", None)

    def __init__(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        *,
        keep_alive: bool,
        upgrade: bool = False,
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
        # the request asks for a tunnel: llhttp's verdict (Upgrade with `Connection:
        # upgrade`), given by the reader; an Upgrade header alone never makes one
        self.upgrade = upgrade
        self._hop = False
        self._look(headers)

    def _look(self, headers: Iterable[tuple[bytes, bytes]], *, framing: bool = True) -> None:
        chunked = False
        length: int | None = None
        host = target_authority(self.target) if self.target[:1] != b"/" else None  # wins
        hop = upgrade = False
        framing_lines = 0
        framing_kept = True  # (after rules) each framing line still says what the reader found
        for key, value in headers:
            lower = key.lower()
            if lower in _REQUEST_SPECIAL_NAMES:
                if lower == b"host":
                    if host is None:
                        host = value
                elif lower == b"content-length":
                    framing_lines += 1
                    if framing:
                        # llhttp already refused malformed or repeated ones
                        length = content_length(value, HttpErrorReason.MALFORMED)
                    else:
                        digits = value.strip(b" \t")
                        framing_kept = framing_kept and (
                            digits.isdigit() and int(digits) == self.content_length
                        )
                elif lower == b"transfer-encoding":
                    framing_lines += 1
                    if framing:
                        chunked = chunked or b"chunked" in value.lower()
                    else:
                        framing_kept = framing_kept and (
                            self.body is BodyKind.CHUNKED
                            and value.strip(b" \t").lower() == b"chunked"
                        )
                else:
                    hop = True
                    upgrade = upgrade or lower == b"upgrade"
        if framing:
            if chunked:
                self.body, self.content_length = BodyKind.CHUNKED, None
            elif length is not None:
                self.body, self.content_length = BodyKind.LENGTH, length
            else:
                self.body, self.content_length = BodyKind.NONE, None
        elif not framing_kept or framing_lines != (self.body is not BodyKind.NONE):
            self._restore_framing()
        self.host = host.decode("latin-1") if host is not None else None
        self.upgrade = upgrade and self.upgrade  # a rule may drop a tunnel, never make one
        self._hop = hop

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as a list (made from the head's bytes the first time it is asked for)."""
        if self._headers is None:
            self._headers = HEADER_LINE.findall(self._raw or b"")
            self._raw = self.plain = None
        return self._headers

    @headers.setter
    def headers(self, value: list[tuple[bytes, bytes]]) -> None:
        self._headers = value
        self._raw = self.plain = None

    def headers_changed(self) -> None:
        """Look again at Host, Upgrade and hop-by-hop headers after `headers` changed.

        The body's framing stays what the reader found: a rule that adds, changes or
        removes Content-Length or Transfer-Encoding is undone for those headers (HAProxy
        ignores such rewrites too), else the server would read the body differently from
        us, a request smuggled by configuration.
        """
        self._look(self.headers, framing=False)

    def _restore_framing(self) -> None:
        headers = self.headers
        kept = [(k, v) for k, v in headers if k.lower() not in FRAMING_NAMES]
        if self.body is BodyKind.CHUNKED:
            kept.append((b"transfer-encoding", b"chunked"))
        elif self.content_length is not None:
            kept.append((b"content-length", str(self.content_length).encode()))
        headers[:] = kept

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
            kept = (_HOP_LINE_BUT_UPGRADE if upgrade else HOP_LINE).sub(b"", raw[eol:])
            return raw[:eol] + kept + self.extra + tail
        first = b"%s %b HTTP/%s\r\n" % (self.method.encode(), self.target, self.version.encode())
        headers = self._headers or []
        if not self._hop and self.version != "1.0":
            lines = [k + b": " + v + b"\r\n" for k, v in headers]
        else:
            lines = []
            for key, value in headers:
                lower = key.lower()
                if lower in HOP_BY_HOP and not (upgrade and lower == b"upgrade"):
                    continue
                lines.append(key + b": " + value + b"\r\n")
        if self.extra:
            lines.append(self.extra)
        return _join_head(first, lines, tail)


def _join_head(first: bytes, lines: list[bytes], tail: bytes) -> bytes:
    """The head from its lines, each of which must be exactly one line.

    Header values from the client were checked by llhttp, but rules put in values of
    their own (`%[ssl_fc_sni]` is whatever the TLS client sent: ASCII, CR and LF allowed),
    and one CRLF inside a value would be a header, or a whole request, of the client's
    making. A line that is not exactly one line is dropped.
    """
    head = b"".join([first, *lines, tail])
    count = len(lines) + 1 + (1 if len(tail) == 2 else 2)
    if (
        head.count(b"\r\n") == count
        and head.count(b"\n") == count
        and head.count(b"\r") == count
        and b"\x00" not in head
    ):
        return head
    kept = [line for line in lines if not has_line_break(line[:-2])]
    return b"".join([first, *kept, tail])


RequestEvent = RequestHead | bytes | End


class _Chunked(Exception):
    """Stops the fast request parser at a chunked request (see `RequestReader`)."""

    def __init__(self, start: int) -> None:
        super().__init__(start)
        self.start = start


class RequestReader:
    """Feed client bytes, get request events; raises `HttpError` (with HAProxy's status).

    After an upgrade request (e.g. WebSocket) or a CONNECT, parsing stops: `upgraded`
    holds the bytes that followed the head (and what is fed until then), which belong to
    the tunnel if the server agrees (101), else are the next request (`resume`).

    Fast path: llhttp calls back only at the end of each head and per body piece (the end
    of a message follows from its head and Content-Length); the head is then cut out of
    the bytes fed (where the message started: after the previous head and its
    Content-Length body). The end of a chunked
    body cannot be located that way, so the first chunked request switches the connection
    to a parser with a callback per header (`_CallbackRequests`) for good.
    """

    def __init__(
        self,
        *,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_body_bytes: int | None = None,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_body_bytes = max_body_bytes
        self.max_headers = max_headers
        self.events: list[RequestEvent] = []
        self.upgraded: bytes | None = None
        self.failed: HttpError | None = None  # a refusal after complete messages (`feed`)
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
        """The events of `data`; HttpError for a message that cannot be forwarded.

        Messages complete before a refused one in the same bytes come out first, as
        HAProxy serves them: the refusal is kept in `failed` and raised by the next call.
        """
        if self.failed is not None:
            raise self.failed
        try:  # (one function: a call per request is a few percent of the layer's time)
            if self.upgraded is not None:  # the server has not answered the upgrade yet
                self.upgraded += data
                if len(self.upgraded) > MAX_HELD_BEFORE_101:  # reading is paused: a few reads
                    raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "too much sent before a 101")
                return []
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
                else:
                    raise HttpError(HttpErrorReason.MALFORMED, str(error)) from None
            except httptools.HttpParserError as error:
                raise HttpError(HttpErrorReason.MALFORMED, str(error)) from None
            if switch_at is not None:  # outside the handler: its errors have their own context
                return self._switch(switch_at)
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
        except HttpError as error:
            parsed = self.events
            if self._slow is not None:
                parsed = parsed + self._slow.events
                self._slow.events = []
            self.events = []
            for last in range(len(parsed) - 1, -1, -1):
                if parsed[last] is END:
                    self.failed = error
                    self.in_head = False  # nothing more is read: the refusal comes next
                    return parsed[: last + 1]
            raise

    def resume(self) -> list[RequestEvent]:
        """The server refused the upgrade (no 101): what followed it is the next request."""
        pending = self.upgraded or b""
        self.upgraded = None
        self._parser = httptools.HttpRequestParser(self)
        self._slow = None
        self._data = b""
        self._parts = []
        self._pending = self._start = self._skip = self._body_left = 0
        self.in_head = False
        return self.feed(pending) if pending else []

    def _switch(self, start: int) -> list[RequestEvent]:
        """Parse from the chunked request's head on with a callback per header."""
        data = self._data
        assert data is not None
        self._parts = []
        self._pending = 0
        slow = self._slow = _CallbackRequests(self)
        events = self.events
        self.events = []
        try:
            events.extend(slow.feed(data[start:]))
        except HttpError:
            self.events = events  # for `feed`: the messages before the refused one
            raise
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
            start = head_start(data, start)
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
            eol = raw.find(b"\r\n")
        if len(parts) != 3 or parts[2] not in _VERSIONS or raw.find(b"\n", 0, eol) >= 0:
            # llhttp takes `GET /` + LF as HTTP/0.9 with headers after it; a server
            # would read a 0.9 request and then the headers as garbage
            raise HttpError(HttpErrorReason.MALFORMED, "not an HTTP/1.0 or 1.1 request line")
        head = _new(RequestHead)
        head._raw = raw
        head._headers = None
        head.extra = b""
        head.method = parts[0].decode("ascii")
        head.target = parts[1]
        version = parts[2]
        head.version = "1.1" if version == b"HTTP/1.1" else version[5:].decode("ascii")
        head.keep_alive = self._parser.should_keep_alive()
        # request line + header lines (a header line takes at least 4 bytes: count only
        # heads that could be over)
        if len(raw) >= 4 * self.max_headers and raw.count(b"\r\n") >= self.max_headers:
            check_header_count(raw.count(b"\r\n") - 1, self.max_headers, _MALFORMED)
        host: bytes | None = None
        hosts = 0
        length: int | None = None
        hop = h2 = False
        for name, value in _REQUEST_SPECIAL_LINE.findall(raw):
            size = len(name)  # the names this pattern matches differ in length but for two pairs
            if size == 4:  # host
                hosts += 1
                if host is None:
                    host = value
            elif size == 14:  # content-length
                # llhttp already refused malformed or conflicting values
                length = (
                    int(value)
                    if len(value) <= CONTENT_LENGTH_MAX_DIGITS
                    else content_length(value, HttpErrorReason.MALFORMED)
                )
            elif size == 17:  # transfer-encoding: the callback parser takes it from here
                raise _Chunked(start)
            else:
                hop = True
                if size == 7 and _is_h2_upgrade(value):  # `upgrade` (or `trailer`)
                    h2 = True
        upgrade = self._parser.should_upgrade()
        if upgrade and length:
            check_request_framing(head.method, head.version, None, length, upgrade)
        head.host = None if host is None else host.decode("latin-1")
        head.upgrade = upgrade and head.method != "CONNECT" and not h2
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
            if not length:
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
        self._trailer_bytes = 0
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
        self._trailer_bytes = 0
        self._pending_head = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.reader.in_head:
            self._headers.append((name, value))  # the size is checked at the end of the head
            return
        # A trailer field (after a chunked body): dropped, never merged into the head
        # (RFC 9112 §7.1.2 lets a recipient that removes the chunked coding discard them).
        self._trailer_bytes += len(name) + len(value) + 4
        if self._trailer_bytes > self.reader.max_head_bytes:
            raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request trailers too large")

    def on_headers_complete(self) -> None:
        reader = self.reader
        reader.in_head = False
        self._headers = _one_host(self._url, self._headers)
        if self._pending_head + self._feeding > reader.max_head_bytes:  # else it cannot be over
            size = len(self._url) + sum(len(k) + len(v) + 4 for k, v in self._headers)
            if size > reader.max_head_bytes:
                raise HttpError(HttpErrorReason.HEAD_TOO_LARGE, "request head too large")
        check_header_count(len(self._headers), reader.max_headers, _MALFORMED)
        parser = self._parser
        method = parser.get_method().decode("ascii")
        version = parser.get_http_version()
        if version not in ("1.0", "1.1") or b" " in self._url or b"\n" in self._url:
            raise HttpError(HttpErrorReason.MALFORMED, "not an HTTP/1.0 or 1.1 request line")
        upgrade = parser.should_upgrade()
        head = RequestHead(
            method,
            self._url,
            version,
            self._headers,
            keep_alive=parser.should_keep_alive(),
            upgrade=upgrade
            and method != "CONNECT"
            and not any(_is_h2_upgrade(v) for k, v in self._headers if k.lower() == b"upgrade"),
        )
        codings = [v for k, v in self._headers if k.lower() == b"transfer-encoding"]
        check_request_framing(
            method,
            version,
            b",".join(codings) if codings else None,
            head.content_length,
            upgrade,
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
