"""Requests from clients (`http_request`): events, pipelining, limits and statuses, framing,
Host confusion, head rewriting, and the fast reader that cuts heads out of the bytes fed.

The fast reader lets llhttp validate a head and then reads the few headers it acts on from
its bytes. The property tests build requests, feed them in arbitrary pieces, and check each
head against one built from its header list (what the per-header callback parser makes),
plus the cases where message boundaries are hard to follow: Content-Length bodies across
feeds, pipelining, empty lines between messages, and a chunked request (which switches the
connection to the callback parser). The Host tests run on both parsers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from staplegate.proxy.http_message import END, BodyKind, HttpError, body_chunk
from staplegate.proxy.http_request import (
    RequestEvent,
    RequestHead,
    RequestReader,
    request_host,
    target_authority,
)


def test_request_events_and_pipelining() -> None:
    reader = RequestReader()
    events = reader.feed(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.0\r\n\r\n"
    )
    head, body, end, second, end2 = events
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.body, head.host) == ("POST", b"/a", BodyKind.LENGTH, "x")
    assert (body, end, end2) == (b"abc", END, END)
    assert isinstance(second, RequestHead)
    assert not second.keep_alive  # HTTP/1.0 without keep-alive


def test_chunked_request_is_rechunked() -> None:
    reader = RequestReader()
    events = reader.feed(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    assert isinstance(events[0], RequestHead)
    assert events[0].body is BodyKind.CHUNKED
    assert isinstance(events[1], bytes)
    assert body_chunk(BodyKind.CHUNKED, events[1]) == b"5\r\nhello\r\n"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"y" * 3000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 99\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_haproxy_statuses(data: bytes, status: int) -> None:
    reader = RequestReader(max_head_bytes=2048, max_body_bytes=10)
    with pytest.raises(HttpError) as caught:
        reader.feed(data)
    assert caught.value.status == status


def test_incomplete_head_over_the_limit_is_431() -> None:
    reader = RequestReader(max_head_bytes=100)
    reader.feed(b"GET / HTTP/1.1\r\nX: ")
    with pytest.raises(HttpError) as caught:
        reader.feed(b"z" * 200)
    assert caught.value.status == 431


def test_head_rewrite_drops_hop_by_hop_headers() -> None:
    head = RequestHead(
        "GET", b"/", "1.1", [(b"Host", b"x"), (b"Connection", b"close"), (b"Keep-Alive", b"1")],
        keep_alive=False,
    )  # fmt: skip
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_request_head_size_counts_across_chunks() -> None:
    head = b"GET / HTTP/1.1\r\nX: " + b"y" * 150 + b"\r\n\r\n"
    reader = RequestReader(max_head_bytes=100)
    assert reader.feed(head[:60]) == []
    with pytest.raises(HttpError) as caught:
        reader.feed(head[60:])  # complete now, 170 bytes in all
    assert caught.value.status == 431
    assert isinstance(RequestReader(max_head_bytes=200).feed(head)[0], RequestHead)


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n",
        # more than 20 digits (h11's limit): a server parsing into 64 bits may wrap (bench/fuzz.py)
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 000000000000000000011\r\n\r\nabcdefghijk",
        b"POST /p HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n"
        b"Content-Length: 000000000000000000011\r\nHost: a\r\n\r\nabcdefghijk",
    ],
)
def test_framings_a_server_could_read_another_way_are_400(data: bytes) -> None:
    for reader in (RequestReader(), _after_a_chunked_request()):  # fast and callback paths
        with pytest.raises(HttpError) as caught:
            reader.feed(data)
        assert caught.value.status == 400


def _after_a_chunked_request() -> RequestReader:
    reader = RequestReader()
    reader.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    return reader


def test_upgrade_header_alone_is_no_upgrade_and_a_refused_upgrade_resumes() -> None:
    reader = RequestReader()
    events = reader.feed(b"GET / HTTP/1.1\r\nUpgrade: ws\r\n\r\nGET /2 HTTP/1.1\r\n\r\n")
    heads = [e for e in events if isinstance(e, RequestHead)]
    assert [h.upgrade for h in heads] == [False, False]
    assert heads[0].encode() == b"GET / HTTP/1.1\r\n\r\n"  # hop-by-hop Upgrade dropped
    reader = RequestReader()
    events = reader.feed(b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\nGET /2 ")
    assert isinstance(events[0], RequestHead)
    assert events[0].upgrade
    assert reader.feed(b"HTTP/1.1\r\n\r\n") == []  # held until the server answers
    resumed = reader.resume()
    assert isinstance(resumed[0], RequestHead)
    assert resumed[0].target == b"/2"
    assert resumed[1] is END


def test_trailers_are_dropped_not_merged() -> None:
    reader = RequestReader()
    events = reader.feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\nx\r\n0\r\nHost: evil\r\n\r\n"
    )
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.headers == [(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")]
    assert events[1:] == [b"x", END]


def test_a_request_line_without_an_http_1_version_is_400() -> None:
    # llhttp read `POST /` + LF as HTTP/0.9 followed by headers, and the head went out as
    # it came: a server reads a 0.9 request, then the headers as garbage
    for data in (
        b"POST /\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframe",
        b"GET /\r\nHost: a\r\n\r\n",
    ):
        for reader in (RequestReader(), _after_a_chunked_request()):
            with pytest.raises(HttpError) as caught:
                reader.feed(data)
            assert caught.value.status == 400


def test_a_refused_upgrade_resumes_on_the_callback_parser_too() -> None:
    reader = _after_a_chunked_request()
    events = reader.feed(b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\nGET /2")
    assert [e.upgrade for e in events if isinstance(e, RequestHead)] == [True]
    assert reader.feed(b" HTTP/1.1\r\n\r\n") == []
    (head, end) = reader.resume()
    assert isinstance(head, RequestHead)
    assert (head.target, end) == (b"/2", END)


def test_an_h2c_upgrade_is_no_upgrade_on_either_parser() -> None:
    data = b"GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: H2C\r\n\r\n"
    for reader in (RequestReader(), _after_a_chunked_request()):
        head = [e for e in reader.feed(data) if isinstance(e, RequestHead)][-1]
        assert not head.upgrade
        assert head.encode() == b"GET / HTTP/1.1\r\n\r\n"


def _heads(data: bytes) -> list[RequestHead]:
    return [e for e in RequestReader().feed(data) if isinstance(e, RequestHead)]


CHUNKED = b"POST /c HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"


@pytest.mark.parametrize("prefix", [b"", CHUNKED])  # after CHUNKED: the per-header parser
@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX: y\r\nhost: a.test:443\r\n\r\n",
        b"GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"GET https://a.test@b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"GET http://b.test:8080/ HTTP/1.1\r\nHost: b.test\r\n\r\n",
    ],
)
def test_host_confusion_is_400(prefix: bytes, head: bytes) -> None:
    reader = RequestReader()
    if prefix:
        reader.feed(prefix)
    with pytest.raises(HttpError) as raised:
        reader.feed(head)
    assert raised.value.status == 400


@pytest.mark.parametrize("prefix", [b"", CHUNKED])
def test_absolute_form_authority_is_the_host_and_equal_duplicates_merge(prefix: bytes) -> None:
    data = (
        prefix
        + b"GET http://user:pw@B.test:8080/x?y HTTP/1.1\r\n\r\n"
        + b"GET http://b.test/ HTTP/1.1\r\nHost: B.TEST\r\n\r\n"
        + b"GET /z HTTP/1.1\r\nHost: c.test\r\nX: 1\r\nHOST: C.test\r\n\r\n"
    )
    heads = _heads(data)[1 if prefix else 0 :]
    assert [h.host for h in heads] == ["B.test:8080", "b.test", "c.test"]
    assert heads[0].encode().startswith(b"GET http://user:pw@B.test:8080/x?y HTTP/1.1\r\n")
    merged = heads[2].encode()
    assert merged.lower().count(b"\r\nhost:") == 1
    assert b"\r\nX: 1\r\n" in merged


def test_authority_and_host_helpers() -> None:
    assert target_authority(b"/a") is None
    assert target_authority(b"*") is None
    assert target_authority(b"a.test:443") is None  # CONNECT's authority-form
    assert target_authority(b"http:///x") is None
    assert target_authority(b"http://a.test?x") == b"a.test"
    assert request_host(b"/", []) is None
    assert request_host(b"/", [b"a", b"A"]) == b"a"
    assert request_host(b"http://a/", [b"A"]) == b"a"
    # a rule that edits headers keeps the authority as the host
    head = RequestHead("GET", b"http://a.test/", "1.1", [(b"X", b"1")], keep_alive=True)
    assert head.host == "a.test"
    head.headers.append((b"Y", b"2"))
    head.headers_changed()
    assert head.host == "a.test"


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
    # one Host, matching an absolute target's authority (the rest is 400: test_http_request)
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
