"""Differential fuzz target: `http_request.RequestReader` against h11 (strict RFC 9112).

One input is the bytes a client sends on a connection. Both readers split them into
messages; for every message our reader completes, h11 must complete the same message
(method, target, body) from the same bytes; a message we are still reading the body of
must be unfinished for h11 too. Where we refuse (HttpError) anything goes: refusing is
always safe. A message h11 refuses but we forward is a disagreement, except for the
reasons in `_NOT_FRAMING` (semantic checks h11 makes that do not move a message's end).
The bytes are also fed in small pieces: the outcome must not depend on how they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11

from staplegate.proxy.http_message import END, HttpError
from staplegate.proxy.http_request import RequestHead, RequestReader
from tests.fuzz_targets import Disagreement

NAME = "http-request-reader"

# h11 refusals that say nothing about where a message ends; our reader leaves these to
# other layers (the Host rules are the router's business).
_NOT_FRAMING = (
    "Missing mandatory Host: header",
    "Found multiple Host: headers",
    # h11 refuses empty lines before the first request; RFC 9112 §2.2 says to skip them
    "no request line received",
)


def _not_framing(reason: str) -> bool:
    if any(known in reason for known in _NOT_FRAMING):
        return True
    # llhttp skips a lone CR before a request line and runs of spaces inside one; we
    # forward the line rebuilt (no CR, single spaces), so the server reads what we read
    return reason.startswith("illegal request line") and ("  " in reason or "(b'\\r" in reason)


@dataclass
class Message:
    method: bytes
    target: bytes
    body: bytes = b""
    complete: bool = False
    keep_alive: bool = True
    upgrade: bool = False


@dataclass
class Outcome:
    messages: list[Message]
    refused: str | None = None  # why the reader stopped reading


def _ours(data: bytes, piece: int) -> Outcome:
    reader = RequestReader()
    messages: list[Message] = []
    try:
        for start in range(0, len(data), piece):
            for event in reader.feed(data[start : start + piece]):
                if isinstance(event, RequestHead):
                    messages.append(
                        Message(
                            event.method.encode(),
                            event.target,
                            keep_alive=event.keep_alive,
                            upgrade=event.upgrade or event.method == "CONNECT",
                        )
                    )
                elif event is END:
                    messages[-1].complete = True
                else:
                    assert isinstance(event, bytes)
                    messages[-1].body += event
            if reader.upgraded is not None or reader.failed is not None:
                break
    except HttpError as error:
        return Outcome(messages, f"{error.status} {error}")
    if reader.failed is not None:  # refused after the complete messages before it
        return Outcome(messages, f"{reader.failed.status} {reader.failed}")
    return Outcome(messages)


def _h11(data: bytes) -> Outcome:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    messages: list[Message] = []
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            return Outcome(messages, str(error))
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return Outcome(messages)
        if isinstance(event, h11.Request):
            messages.append(Message(event.method, event.target))
        elif isinstance(event, h11.Data):
            messages[-1].body += event.data
        elif isinstance(event, h11.EndOfMessage):
            messages[-1].complete = True
            if conn.their_state is not h11.DONE:  # an upgrade or CONNECT: h11 stops here
                messages[-1].upgrade = True
                return Outcome(messages)
            conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                messages[-1].keep_alive = False
                return Outcome(messages)
            conn.start_next_cycle()
        else:  # ConnectionClosed cannot come without receive_data(b"")
            return Outcome(messages)


def compare(ours: Outcome, theirs: Outcome) -> None:
    """Raise Disagreement when a message we forward ends elsewhere for h11."""
    for index, mine in enumerate(ours.messages):
        if index >= len(theirs.messages):
            if theirs.refused is None:
                raise Disagreement(f"message {index}: h11 sees no message start here")
            if _not_framing(theirs.refused):
                return
            raise Disagreement(f"message {index}: accepted, h11 refused: {theirs.refused}")
        other = theirs.messages[index]
        if (mine.method, mine.target) != (other.method, other.target):
            raise Disagreement(f"message {index}: {mine} vs h11 {other}")
        if mine.complete != other.complete or (mine.complete and mine.body != other.body):
            if not mine.complete and index == len(ours.messages) - 1 and ours.refused:
                return  # we refused it part way: nothing of it ends anywhere
            raise Disagreement(f"message {index}: {mine} vs h11 {other}")
        if not mine.complete and not mine.body.startswith(other.body[: len(mine.body)]):
            raise Disagreement(f"message {index}: body {mine.body!r} vs h11 {other.body!r}")
        if mine.upgrade or other.upgrade or not mine.keep_alive or not other.keep_alive:
            return  # one side stops reading HTTP here: what follows is not comparable


def run_one(data: bytes) -> None:
    whole = _ours(data, max(len(data), 1))
    piece = 1 + (data[0] % 13 if data else 0)
    pieces = _ours(data, piece)
    # The complete messages and whether the bytes are refused must not depend on how they
    # arrive (a message refused part way may have its head out in pieces, not whole).
    if (whole.refused is None) != (pieces.refused is None) or [
        m for m in whole.messages if m.complete
    ] != [m for m in pieces.messages if m.complete]:
        raise Disagreement(f"fed whole: {whole}; in {piece}-byte pieces: {pieces}")
    compare(pieces, _h11(data))


def seeds() -> list[bytes]:
    def get(target: bytes, more: bytes = b"") -> bytes:
        return b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n" + more + b"\r\n"

    def post(more: bytes, body: bytes, version: bytes = b"1.1") -> bytes:
        return b"POST /p HTTP/" + version + b"\r\nHost: a\r\n" + more + b"\r\n" + body

    chunked = b"Transfer-Encoding: chunked\r\n"
    return [
        get(b"/"),
        get(b"/a?b=c", b"Accept: */*\r\n") + get(b"/2"),
        post(b"Content-Length: 5\r\n", b"hello") + get(b"/"),
        post(chunked, b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n") + get(b"/n"),
        post(b"Content-Length: 6\r\n" + chunked, b"0\r\n\r\nG"),
        post(b"Connection: keep-alive\r\nContent-Length: 2\r\n", b"ok", b"1.0") + get(b"/"),
        post(chunked, b"0\r\n\r\n", b"1.0"),
        post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
        get(b"/ws", b"Connection: Upgrade\r\nUpgrade: websocket\r\n") + b"frame",
        get(b"/ws", b"Upgrade: websocket\r\n") + get(b"/"),
        get(b"/ws", b"Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n") + b"abc",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"\r\n" + get(b"/"),
        b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234",
    ]
