"""Differential fuzz target: `http_response.ResponseReader` against h11 (strict RFC 9112).

One input is what a server sends on a connection after one request (a GET, or a HEAD
when the first byte is odd), then closes. Our reader must end the final response where
h11 ends it, with the same status and body, or refuse it (HttpError, a 502). Interim 1xx
heads are passed on by both. Bytes after the response must make our reader give the
connection up (`reusable` false), since nothing may follow a response on a connection
we pool. The bytes are also fed in small pieces: the outcome must not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11

from staplegate.proxy.http_message import END, HttpError
from staplegate.proxy.http_response import ResponseHead, ResponseReader
from tests.fuzz_targets import Disagreement

NAME = "http-response-reader"


@dataclass
class Outcome:
    status: int | None = None
    body: bytes = b""
    complete: bool = False
    refused: str | None = None
    upgraded: bool = False
    extra: bool = False  # bytes came after the end of the response (h11)
    reusable: bool = False  # our reader would take the next response on this connection


def _ours(data: bytes, *, head_request: bool, piece: int) -> Outcome:
    reader = ResponseReader(head_request=head_request)
    outcome = Outcome()
    try:
        for start in range(0, len(data), piece):
            if reader.complete:  # the stream closes a pooled connection that talks
                break
            for event in reader.feed(data[start : start + piece]):
                if isinstance(event, ResponseHead):
                    if not event.informational:
                        outcome.status = event.status
                elif event is END:
                    outcome.complete = True
                else:
                    assert isinstance(event, bytes)
                    outcome.body += event
            if reader.upgraded is not None:
                outcome.upgraded = True
                return outcome
        else:
            if not reader.complete:
                for event in reader.eof():
                    if event is END:
                        outcome.complete = True
    except HttpError as error:
        outcome.refused = f"{error.status} {error}"
        return outcome
    outcome.reusable = reader.reusable
    return outcome


def _h11(data: bytes, *, head_request: bool) -> Outcome:
    conn = h11.Connection(h11.CLIENT)
    conn.send(
        h11.Request(method="HEAD" if head_request else "GET", target="/", headers=[("Host", "a")])
    )
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    outcome = Outcome()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            outcome.refused = str(error)
            return outcome
        if isinstance(event, h11.InformationalResponse):
            if event.status_code == 101:
                outcome.status, outcome.upgraded = 101, True
                return outcome
            continue
        if isinstance(event, h11.Response):
            outcome.status = event.status_code
        elif isinstance(event, h11.Data):
            outcome.body += event.data
        elif isinstance(event, h11.EndOfMessage):
            outcome.complete = True
            outcome.extra = bool(conn.trailing_data[0].strip(b"\r\n"))  # not blank lines
        else:  # ConnectionClosed, PAUSED, NEED_DATA
            return outcome


def run_one(data: bytes) -> None:
    head_request = bool(data[:1]) and data[0] % 2 == 1
    mine = _ours(data, head_request=head_request, piece=max(len(data), 1))
    piece = 1 + (data[-1] % 11 if data else 0)
    pieces = _ours(data, head_request=head_request, piece=piece)
    # Fed whole, bytes after a response reach llhttp in the same call and may make it
    # refuse the lot; in pieces the reader stops at the end. Both are safe: compare only
    # when both accept.
    if (
        mine.refused is None
        and pieces.refused is None
        and (mine.status, mine.body, mine.complete) != (pieces.status, pieces.body, pieces.complete)
    ):
        raise Disagreement(f"fed whole: {mine}; in {piece}-byte pieces: {pieces}")
    if mine.refused is not None or not mine.complete or mine.upgraded:
        return  # refused, unfinished, or a 101 to a GET (the stream answers 502)
    theirs = _h11(data, head_request=head_request)
    if theirs.refused is not None and _not_framing(theirs.refused):
        return
    if theirs.refused is not None and not theirs.complete:
        raise Disagreement(f"accepted {mine}, h11 refused: {theirs.refused}")
    if (mine.status, mine.body) != (theirs.status, theirs.body) or not theirs.complete:
        raise Disagreement(f"ours {mine} vs h11 {theirs}")
    if theirs.extra and mine.reusable:  # fed in one piece, with bytes after the response
        raise Disagreement("bytes after the response, yet the connection would be reused")


def _not_framing(reason: str) -> bool:
    """h11 refusals that do not move where a response ends.

    Empty lines before a status line: llhttp skips them and we forward the head rebuilt.
    A framing header in the trailers: h11 judges it, we drop trailers (our reader has
    already refused any such header in the head, so the message can only be a trailer).
    """
    return reason.startswith(
        (
            "no response line received",
            "illegal status line: bytearray(b'\\r",
            "Only Transfer-Encoding: chunked is supported",
        )
    )


def seeds() -> list[bytes]:
    return [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n"
        b"Content-Length: 3\r\n\r\nabc",
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the close",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 103 Early Hints\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nf",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops",
    ]
