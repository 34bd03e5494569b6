"""The request-smuggling (desync) matrix, end to end through one running mode-http proxy.

Each case is raw bytes a client sends over TLS; the backend (`raw_backend.RawBackend`)
frames requests as a lenient origin server does (Transfer-Encoding over Content-Length)
and records what it reads. For every case the backend must see exactly the requests the
client meant, one per message, or the client must get a 400 and the backend nothing of
that message. The table in docs/reference/http-mode.md lists the same cases with what
HAProxy does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from staplegate.proxy.backends import BackendServer
from tests.integration.tls.tls_harness import TlsPki

from .http_harness import RunningHttpProxy
from .raw_backend import RawBackend

H = b"Host: a\r\n"
CLOSE = b"Connection: close\r\n"
LAST = b"GET /last HTTP/1.1\r\n" + H + CLOSE + b"\r\n"  # ends a case that keeps the connection


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    seen: tuple[tuple[str, str, bytes], ...]  # (method, target, body) the backend must read
    statuses: tuple[int, ...]  # the answers the client gets, in order


def bad(name: str, data: bytes, *before: tuple[str, str, bytes]) -> Case:
    return Case(name, data, before, (*(200 for _ in before), 400))


def post(head: bytes, body: bytes) -> bytes:
    return b"POST /p HTTP/1.1\r\n" + H + head + b"\r\n" + body


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
CASES = [
    # classic CL.TE / TE.CL: both headers; RFC 9112 lets a proxy drop CL, llhttp refuses
    bad("cl-te", post(b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\nG")),
    bad(
        "te-cl",
        post(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", b"8\r\nSMUGGLED\r\n0\r\n\r\n"),
    ),
    # TE.TE: an obfuscated Transfer-Encoding one side might not see
    bad("te-xchunked", post(b"Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n", b"abcd")),
    bad("te-space-before-colon", post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n")),
    bad("te-vertical-tab", post(b"Transfer-Encoding:\x0bchunked\r\n", b"0\r\n\r\n")),
    bad(
        "te-chunked-then-identity", post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n")
    ),
    bad("te-gzip-chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n")),
    bad(
        "te-two-lines",
        post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n", b"0\r\n\r\n"),
    ),
    bad("te-folded", post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n")),
    bad("te-identity", post(b"Transfer-Encoding: identity\r\n", SMUGGLED)),
    bad(
        "te-in-http10", b"POST /p HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    # duplicate and list Content-Length
    bad("cl-duplicate-same", post(b"Content-Length: 3\r\nContent-Length: 3\r\n", b"abc")),
    bad("cl-duplicate-differ", post(b"Content-Length: 3\r\nContent-Length: 40\r\n", b"abc")),
    bad("cl-list", post(b"Content-Length: 3, 3\r\n", b"abc")),
    bad("cl-plus-sign", post(b"Content-Length: +3\r\n", b"abc")),
    bad("cl-negative", post(b"Content-Length: -1\r\n", b"abc")),
    bad("cl-hex", post(b"Content-Length: 0x3\r\n", b"abc")),
    # a body on a request that asks for a tunnel (llhttp would stop at the head)
    bad(
        "upgrade-with-cl",
        b"GET /ws HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    ),
    bad(
        "upgrade-with-te",
        b"GET /ws HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    ),
    bad("connect-with-cl", b"CONNECT a:443 HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello"),
    # chunk sizes
    bad("chunk-size-negative", post(b"Transfer-Encoding: chunked\r\n", b"-3\r\nabc\r\n0\r\n\r\n")),
    bad("chunk-size-0x", post(b"Transfer-Encoding: chunked\r\n", b"0x3\r\nabc\r\n0\r\n\r\n")),
    bad(
        "chunk-size-overflow",
        post(b"Transfer-Encoding: chunked\r\n", b"1" + b"0" * 16 + b"3\r\nabc\r\n0\r\n\r\n"),
    ),
    bad("chunk-size-bare-lf", post(b"Transfer-Encoding: chunked\r\n", b"3\nabc\n0\n\n")),
    bad("chunk-data-too-long", post(b"Transfer-Encoding: chunked\r\n", b"3\r\nabcd\r\n0\r\n\r\n")),
    bad(
        "chunk-size-space-inside",
        post(b"Transfer-Encoding: chunked\r\n", b"1 0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"),
    ),
    # framing in the head itself
    bad("bare-lf-head", b"POST /p HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc"),
    bad("nul-in-header", post(b"X: a\x00b\r\nContent-Length: 3\r\n", b"abc")),
    bad("space-in-header-name", post(b"Content Length: 3\r\n", b"abc")),
    # pipelining after an error: nothing after the bad message is read
    bad("pipelined-after-error", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n" + SMUGGLED),
    bad(
        "valid-then-malformed-in-one-read",
        b"GET /ok HTTP/1.1\r\n" + H + b"\r\nGET / HTTP/1.1\r\nBad Header\r\n\r\n" + SMUGGLED,
        ("GET", "/ok", b""),
    ),
    # well-formed messages go through exactly, one per message
    Case(
        "chunked-then-pipelined",
        post(b"Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n0\r\n\r\n") + LAST,
        (("POST", "/p", b"abc"), ("GET", "/last", b"")),
        (200, 200),
    ),
    Case(
        "chunk-extension",
        post(b"Transfer-Encoding: chunked\r\n", b"3;name=value\r\nabc\r\n0\r\n\r\n") + LAST,
        (("POST", "/p", b"abc"), ("GET", "/last", b"")),
        (200, 200),
    ),
    Case(
        "trailers-dropped",
        post(b"Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n0\r\nHost: evil\r\nX-T: 1\r\n\r\n")
        + LAST,
        (("POST", "/p", b"abc"), ("GET", "/last", b"")),
        (200, 200),
    ),
    Case(
        "cl-body-that-looks-like-a-request",
        post(b"Content-Length: %d\r\n" % len(SMUGGLED), SMUGGLED) + LAST,
        (("POST", "/p", SMUGGLED), ("GET", "/last", b"")),
        (200, 200),
    ),
    Case(
        "cl-leading-zeros",
        post(b"Content-Length: 003\r\n", b"abc") + LAST,
        (("POST", "/p", b"abc"), ("GET", "/last", b"")),
        (200, 200),
    ),
    Case(
        "upgrade-header-without-connection-upgrade",
        b"GET /u HTTP/1.1\r\n" + H + b"Upgrade: websocket\r\n\r\n" + LAST,
        (("GET", "/u", b""), ("GET", "/last", b"")),
        (200, 200),
    ),
    Case(
        "refused-upgrade-then-pipelined",
        b"GET /ws HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + LAST,
        (("GET", "/ws", b""), ("GET", "/last", b"")),
        (200, 200),
    ),
    Case(
        "h2c-upgrade-then-pipelined",
        b"GET /h2c HTTP/1.1\r\n" + H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" + LAST,
        (("GET", "/h2c", b""), ("GET", "/last", b"")),
        (200, 200),
    ),
    Case(
        "http10-with-cl",
        b"POST /p HTTP/1.0\r\n" + H + b"Content-Length: 3\r\n\r\nabc",
        (("POST", "/p", b"abc"),),
        (200,),
    ),
]


@pytest.fixture(scope="module")
def matrix(proxy_pki: TlsPki) -> Iterator[tuple[RunningHttpProxy, RawBackend]]:
    backend = RawBackend()
    proxy = RunningHttpProxy(
        proxy_pki, servers=lambda _: [BackendServer("raw", "127.0.0.1", backend.port)]
    )
    with proxy:
        yield proxy, backend
    backend.close()


def statuses(answer: bytes) -> list[int]:
    """The status of each response in `answer` (each has a Content-Length body)."""
    found = []
    while answer.startswith(b"HTTP/1."):
        end = answer.index(b"\r\n\r\n")
        head = answer[:end].decode("latin-1").lower()
        found.append(int(head.split(" ", 2)[1]))
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")
            if line.startswith("content-length:")
        )
        answer = answer[end + 4 + length :]
    assert answer == b"", answer
    return found


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_desync_case(matrix: tuple[RunningHttpProxy, RawBackend], case: Case) -> None:
    proxy, backend = matrix
    start = backend.snapshot()
    sock = proxy.raw()
    sock.sendall(case.data)
    received = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:  # a timeout too
            break
        if not chunk:
            break
        received += chunk
    sock.close()
    assert statuses(bytes(received)) == list(case.statuses)
    seen = backend.since(start)
    assert [(r.method, r.target, r.body) for r in seen] == list(case.seen)
    for request in seen:
        assert request.header("host") == ["a"]  # one Host, the client's
        assert request.trailers == b""
