"""Responses from servers (`http_response`): events, HEAD and until-close bodies, reuse,
limits, 502s, and the reader that cuts heads out of the bytes fed.

The property test builds responses, feeds them in arbitrary pieces, and checks each head
against one built from its header list; 1xx answers and a second response in one read are
the boundary cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from staplegate.proxy.http_message import END, BodyKind, HttpError
from staplegate.proxy.http_response import ResponseEvent, ResponseHead, ResponseReader


def test_response_reader_head_request_and_until_close() -> None:
    reader = ResponseReader(head_request=True)
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert isinstance(events[0], ResponseHead)
    assert events[1] is END
    reader = ResponseReader(head_request=False)
    events = reader.feed(b"HTTP/1.0 200 OK\r\n\r\npartial")
    assert isinstance(events[0], ResponseHead)
    assert events[0].body is BodyKind.UNTIL_CLOSE
    assert reader.eof() == [END]
    truncated = ResponseReader(head_request=False)
    truncated.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(HttpError) as caught:
        truncated.eof()
    assert caught.value.status == 502


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 204 No Content\r\nContent-Length:00000000000000000000110\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 000000000000000000003\r\n\r\nabc",
    ],
)
def test_a_content_length_over_20_digits_is_502(data: bytes) -> None:
    """h11's limit; found by bench/fuzz.py (the differential target disagreed)."""
    for head_request in (False, True):
        with pytest.raises(HttpError) as caught:
            ResponseReader(head_request=head_request).feed(data)
        assert caught.value.status == 502


def test_response_head_adds_connection_close() -> None:
    head = ResponseHead(200, b"OK", "1.1", [(b"Connection", b"keep-alive")], keep_alive=True,
                        head_request=False)  # fmt: skip
    assert head.encode(close=True, client_version="1.1") == (
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
    )


def test_response_reader_takes_the_next_response_after_a_clean_end() -> None:
    reader = ResponseReader(head_request=False)
    first = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert first[1:] == [b"ok", END]
    assert reader.reusable
    reader.reset(head_request=False)
    second = reader.feed(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    head = second[0]
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.body) == (404, b"Not Found", BodyKind.CHUNKED)
    assert second[1:] == [b"abc", END]


def test_response_reader_after_head_or_mid_response_is_not_reused() -> None:
    reader = ResponseReader(head_request=True)
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert reader.complete
    assert not reader.reusable  # llhttp was stopped after the head: a new parser is needed
    with pytest.raises(ValueError, match="cannot take another response"):
        reader.reset(head_request=False)
    partial = ResponseReader(head_request=False)
    partial.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert not partial.reusable


def test_response_head_forwards_end_to_end_headers_only() -> None:
    head = ResponseHead(
        200, b"OK", "1.1",
        [(b"Server", b"x"), (b"Connection", b"keep-alive"), (b"Keep-Alive", b"timeout=5"),
         (b"Content-Length", b"2"), (b"Upgrade", b"h2c")],
        keep_alive=True, head_request=False,
    )  # fmt: skip
    assert (head.body, head.content_length) == (BodyKind.LENGTH, 2)
    assert head.encode(close=False, client_version="1.1") == (
        b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n"
    )
    assert head.encode(close=False, client_version="1.0").endswith(
        b"Content-Length: 2\r\nconnection: keep-alive\r\n\r\n"
    )
    switching = ResponseHead(
        101, b"Switching Protocols", "1.1", [(b"Upgrade", b"websocket"), (b"Connection", b"up")],
        keep_alive=True, head_request=False,
    )  # fmt: skip
    assert switching.encode(close=False, client_version="1.1") == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    )
    both = ResponseHead(
        200, b"OK", "1.1", [(b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")],
        keep_alive=True, head_request=False,
    )  # fmt: skip
    assert (both.body, both.content_length) == (BodyKind.CHUNKED, None)
    until_close = ResponseHead(200, b"OK", "1.0", [], keep_alive=False, head_request=False)
    assert until_close.body is BodyKind.UNTIL_CLOSE


def test_response_head_over_the_limit_is_a_bad_response_in_one_chunk_or_many() -> None:
    big = b"HTTP/1.1 200 OK\r\nX: " + b"y" * 300 + b"\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(HttpError) as caught:
        ResponseReader(head_request=False, max_head_bytes=200).feed(big)
    assert caught.value.status == 502
    trickle = ResponseReader(head_request=False, max_head_bytes=200)
    for start in range(0, 200, 50):  # 200 bytes of an incomplete head: still within
        assert trickle.feed(big[start : start + 50]) == []
    with pytest.raises(HttpError) as caught:
        trickle.feed(big[200:250])
    assert caught.value.status == 502
    fits = ResponseReader(head_request=False, max_head_bytes=400)
    assert fits.feed(big)[1:] == [END]


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nbody until close",
        b"HTTP/1.1 000 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 O\x0bK\r\nContent-Length: 2\r\n\r\nok",
    ],
)
def test_responses_framed_or_labelled_oddly_are_502(data: bytes) -> None:
    with pytest.raises(HttpError) as caught:
        ResponseReader(head_request=False).feed(data)
    assert caught.value.status == 502


def test_the_start_of_another_response_in_the_same_read_stops_reuse() -> None:
    reader = ResponseReader(head_request=False)
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nX: 1")
    assert events[1:] == [b"ok", END]
    assert not reader.reusable  # the partial head would answer the next client's request


def test_a_body_sent_after_a_head_answer_stops_reuse() -> None:
    reader = ResponseReader(head_request=True)
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")[1] is END
    assert reader.trailing  # those two bytes would start the next client's answer
    clean = ResponseReader(head_request=True)
    clean.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    assert not clean.trailing


def test_an_interim_answer_with_a_body_length_is_502() -> None:
    # found by the fuzz target: llhttp read "ok" as the body of a 105, and those bytes
    # went to the client between the interim and the final head
    data = (
        b"HTTP/1.1 105 X\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    with pytest.raises(HttpError) as caught:
        ResponseReader(head_request=False).feed(data)
    assert caught.value.status == 502
    fine = ResponseReader(head_request=False).feed(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    assert [type(e) for e in fine] == [ResponseHead, ResponseHead, type(END)]


@dataclass(frozen=True)
class Message:
    """One generated message: its wire form and what a reader should make of it."""

    wire: bytes
    head: bytes  # the head as a list-built RequestHead/ResponseHead encodes it
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return [p for p in pieces if p]


_VALUES = st.from_regex(rb"\A[a-z0-9=.,;/ -]{0,12}\Z").map(lambda v: v.strip(b" "))
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


def test_hop_by_hop_lines_go_whole_and_only_they() -> None:
    """The wire drops every hop-by-hop line, repeated or not, and nothing of the others:
    a line whose start equals a dropped one (`keep-alive-x`) stays whole."""
    reader = ResponseReader(head_request=False)
    events = reader.feed(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nX-A: b\r\nKeep-Alive: timeout=5\r\n"
        b"X-B: Connection: keep-alive\r\nconnection: keep-alive\r\nTE: x\r\n"
        b"X-C: keep-alive-x\r\nContent-Length: 2\r\n\r\nok"
    )
    head = events[0]
    assert isinstance(head, ResponseHead)
    assert head.wire == (
        b"HTTP/1.1 200 OK\r\nX-A: b\r\nX-B: Connection: keep-alive\r\n"
        b"X-C: keep-alive-x\r\nContent-Length: 2\r\n"
    )
    assert events[1:] == [b"ok", END]
    assert reader.reusable


def test_a_counted_body_over_several_reads_then_reuse() -> None:
    """Content-Length bodies are cut out by counting: across reads, with blank lines after
    (reusable), or with bytes after (never reused); a chunked answer switches the
    connection to llhttp's body callbacks, and the next answer is read there too."""
    reader = ResponseReader(head_request=False)
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")[1:] == [b"ab"]
    assert reader.feed(b"c") == [b"c"]
    assert reader.feed(b"de\r\n") == [b"de", END]
    assert reader.reusable
    reader.reset(head_request=False)
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 2")
    assert events[1:] == [b"x", END]
    assert not reader.reusable
    chunked = ResponseReader(head_request=False)
    events = chunked.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n")
    assert isinstance(events[0], ResponseHead)
    assert events[0].body is BodyKind.CHUNKED
    assert events[1:] == [b"ok"]
    assert chunked.feed(b"0\r\n\r\n") == [END]
    chunked.reset(head_request=False)
    events = chunked.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert events[1:] == [END]
    assert chunked.reusable
