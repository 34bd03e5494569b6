"""The callback-free readers cut heads out of the bytes fed: same events as a header list.

`RequestReader` and `ResponseReader` let llhttp validate a head and then read the few
headers they act on from its bytes. These tests build messages, feed them in arbitrary
pieces, and check each head against one built from its header list (what the readers
produced with a callback per header), plus the cases where message boundaries are hard to
follow: Content-Length bodies across feeds, pipelining, empty lines between messages, a
chunked request (which switches the connection to the callback parser) and 1xx answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from staplegate.proxy.httpmsg import (
    END,
    BodyKind,
    HttpError,
    RequestEvent,
    RequestHead,
    RequestReader,
    ResponseEvent,
    ResponseHead,
    ResponseReader,
)


@dataclass(frozen=True)
class Message:
    """One generated message: its wire form and what a reader should make of it."""

    wire: bytes
    head: bytes  # the head as a list-built RequestHead/ResponseHead encodes it
    headers: list[tuple[bytes, bytes]]
    body: bytes


_NAMES = st.sampled_from(
    [b"Host", b"HOST", b"X-Trace", b"Accept", b"Connection", b"Keep-Alive", b"TE", b"Upgrade-Ish"]
)
_VALUES = st.from_regex(rb"\A[a-z0-9=.,;/ -]{0,12}\Z").map(lambda v: v.strip(b" "))


@st.composite
def requests(draw: st.DrawFn) -> Message:
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "DELETE"]))
    target = draw(st.sampled_from([b"/", b"/a/b?c=d", b"*", b"http://h.test/x"]))
    version = draw(st.sampled_from(["1.1", "1.0"]))
    headers = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=5))
    # llhttp refuses what follows a request that ends the connection: keep each one alive
    headers = [(k, b"keep-alive" if k == b"Connection" else v) for k, v in headers]
    if version == "1.0":
        headers.append((b"Connection", b"keep-alive"))
    if draw(st.booleans()):
        headers.append((b"Host", b"h.test:8443"))
    # one Host, matching an absolute target's authority (the rest is 400: test_httpmsg_host)
    hosts = [i for i, (k, _) in enumerate(headers) if k.lower() == b"host"]
    headers = [(k, v) for i, (k, v) in enumerate(headers) if i not in hosts[1:]]
    if hosts and target.startswith(b"http://"):
        headers[hosts[0]] = (headers[hosts[0]][0], b"h.test")
    body = draw(st.binary(max_size=40)) if method == "POST" else b""
    if body or (method == "POST" and draw(st.booleans())):
        headers.append((b"Content-Length", str(len(body)).encode()))
    line = f"{method} ".encode() + target + f" HTTP/{version}\r\n".encode()
    lines = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    prefix = b"\r\n" if draw(st.booleans()) else b""
    wire = prefix + line + lines + b"\r\n" + body
    expected = RequestHead(method, target, version, list(headers), keep_alive=True).encode()
    return Message(wire, expected, headers, body)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return [p for p in pieces if p]


def _requests(events: list[RequestEvent]) -> list[tuple[RequestHead, bytes]]:
    found: list[tuple[RequestHead, bytes]] = []
    head: RequestHead | None = None
    body = b""
    for event in events:
        if isinstance(event, RequestHead):
            head, body = event, b""
        elif event is END:
            assert head is not None
            found.append((head, body))
            head = None
        else:
            assert isinstance(event, bytes)
            body += event
    assert head is None, "a message without its end"
    return found


@settings(max_examples=150, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=8))
def test_requests_in_any_pieces_match_the_header_list_reading(
    messages: list[Message], cuts: list[int]
) -> None:
    reader = RequestReader()
    events: list[RequestEvent] = []
    for piece in _cut(b"".join(m.wire for m in messages), cuts):
        events.extend(reader.feed(piece))
    found = _requests(events)
    assert len(found) == len(messages)
    for (head, body), message in zip(found, messages, strict=True):
        assert head.encode() == message.head
        assert body == message.body
        hosts = [v for k, v in message.headers if k.lower() == b"host"]
        authority = "h.test" if head.target.startswith(b"http://") else None
        assert head.host == (authority or (hosts[0].decode() if hosts else None))
        assert head.headers == message.headers
    assert not reader.in_head


def test_a_chunked_request_switches_to_the_callback_parser_mid_feed() -> None:
    first = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
    chunked = (
        b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    third = b"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    reader = RequestReader()
    events = reader.feed(first + chunked[:70])
    events += reader.feed(chunked[70:] + third)
    found = _requests(events)
    assert [h.target for h, _ in found] == [b"/1", b"/2", b"/3"]
    assert found[1][0].body is BodyKind.CHUNKED
    assert found[1][1] == b"abc"
    assert found[2][0].encode() == b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    assert not found[2][0].keep_alive


def test_content_length_body_across_feeds_then_the_next_head() -> None:
    reader = RequestReader()
    events = reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123")
    events += reader.feed(b"45678")
    events += reader.feed(b"9GET /n HTTP/1.1\r\nX: 1\r\n\r\n")
    (first, body), (second, _) = _requests(events)
    assert (first.content_length, body) == (10, b"0123456789")
    assert second.target == b"/n"
    assert second.encode() == b"GET /n HTTP/1.1\r\nX: 1\r\n\r\n"


def test_extra_header_and_rules_on_a_raw_head() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
    ((head, _),) = _requests(RequestReader().feed(data))
    head.extra = b"X-Forwarded-For: 192.0.2.1\r\n"
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
    head.headers.append((b"X-Y", b"z"))  # a rule: the head now goes out from its list
    head.headers_changed()
    assert head.encode() == (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Y: z\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
    )


def test_upgrade_request_keeps_the_rest_for_the_tunnel() -> None:
    reader = RequestReader()
    events = reader.feed(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nFRAME"
    )
    ((head, _),) = _requests(events)
    assert head.upgrade
    assert reader.upgraded == b"FRAME"
    assert head.encode() == (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    )


def test_runs_of_spaces_in_the_request_line_are_forwarded_as_one() -> None:
    data = b"GET  /p   HTTP/1.1\r\nHost: a\r\n\r\n"
    ((head, _),) = _requests(RequestReader().feed(data))
    assert head.encode() == b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n"
    assert head.request_line() == "GET /p HTTP/1.1"


def test_incomplete_head_then_empty_lines_only_is_not_in_head() -> None:
    reader = RequestReader()
    assert reader.feed(b"\r\n") == []
    assert not reader.in_head
    assert reader.feed(b"GET / HT") == []
    assert reader.in_head
    ((head, _),) = _requests(reader.feed(b"TP/1.1\r\n\r\n"))
    assert head.target == b"/"
    assert not reader.in_head


_RESPONSE_NAMES = st.sampled_from(
    [b"Server", b"Date", b"keep-alive", b"Proxy-Connection", b"X-Te", b"Trailer"]
)


@st.composite
def responses(draw: st.DrawFn) -> Message:
    status = draw(st.sampled_from([200, 201, 204, 304, 404, 500]))
    reason = draw(st.sampled_from([b"OK", b"Not Found", b"", b"Some Reason"]))
    headers = draw(st.lists(st.tuples(_RESPONSE_NAMES, _VALUES), max_size=5))
    if draw(st.booleans()):  # what nginx sends; any other value could end the keep-alive
        headers.insert(draw(st.integers(0, len(headers))), (b"Connection", b"keep-alive"))
    body = b"" if status in (204, 304) else draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["length", "chunked"]))
    if framing == "length":
        headers.append((b"Content-Length", str(len(body)).encode()))
        wire_body = body
    else:
        headers.append((b"Transfer-Encoding", b"chunked"))
        wire_body = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        if status in (204, 304):
            wire_body = b""
    line = b"HTTP/1.1 %d" % status + (b" " + reason if reason else b"") + b"\r\n"
    lines = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    expected = ResponseHead(
        status, reason, "1.1", list(headers), keep_alive=True, head_request=False
    )
    return Message(
        line + lines + b"\r\n" + wire_body,
        expected.encode(close=False, client_version="1.1"),
        headers,
        body,
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(responses(), min_size=1, max_size=3), st.lists(st.integers(0, 10_000), max_size=6))
def test_responses_in_any_pieces_match_the_header_list_reading(
    messages: list[Message], cuts: list[int]
) -> None:
    reader = ResponseReader(head_request=False)
    for number, message in enumerate(messages):
        if number:
            assert reader.reusable
            reader.reset(head_request=False)
        events: list[ResponseEvent] = []
        for piece in _cut(message.wire, cuts):
            events.extend(reader.feed(piece))
        head = events[0]
        assert isinstance(head, ResponseHead)
        assert head.encode(close=False, client_version="1.1") == message.head
        assert head.headers == message.headers
        assert events[-1] is END
        assert b"".join(e for e in events[1:-1] if isinstance(e, bytes)) == message.body


def test_interim_answer_then_the_response_in_one_read() -> None:
    reader = ResponseReader(head_request=False)
    events = reader.feed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
        b"Connection: keep-alive\r\n\r\nok"
    )
    interim, final, body, end = events
    assert isinstance(interim, ResponseHead)
    assert interim.informational
    assert isinstance(final, ResponseHead)
    assert final.encode(close=True, client_version="1.1") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: close\r\n\r\n"
    )
    assert (body, end) == (b"ok", END)


def test_a_second_response_in_the_same_read_makes_the_connection_unusable() -> None:
    reader = ResponseReader(head_request=False)
    events = reader.feed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    assert events[1:] == [b"ok", END]
    assert reader.trailing
    assert not reader.reusable


def test_a_server_sending_a_bad_head_is_a_bad_response() -> None:
    with pytest.raises(HttpError) as caught:
        ResponseReader(head_request=False).feed(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n")
    assert caught.value.status == 502
