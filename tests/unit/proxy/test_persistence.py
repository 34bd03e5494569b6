"""Cookie persistence on request and response heads (HAProxy's insert mode)."""

from __future__ import annotations

from staplegate.config.model import CookiePersistence
from staplegate.proxy.http_request import RequestHead
from staplegate.proxy.http_response import ResponseHead
from staplegate.proxy.persistence import insert_cookie, request_cookie


def _request(*cookies: bytes) -> RequestHead:
    headers = [(b"Host", b"a.test"), *((b"Cookie", c) for c in cookies)]
    return RequestHead("GET", b"/", "1.1", headers, keep_alive=True)


def _response(*headers: tuple[bytes, bytes]) -> ResponseHead:
    return ResponseHead(
        200,
        b"OK",
        "1.1",
        [(b"Content-Length", b"2"), *headers],
        keep_alive=True,
        head_request=False,
    )


def test_the_request_cookie_is_found_and_removed_with_indirect() -> None:
    head = _request(b"a=1; SRV=s2; b=2")
    assert request_cookie(head, "SRV", remove=False) == "s2"
    assert head.headers[1] == (b"Cookie", b"a=1; SRV=s2; b=2")
    assert request_cookie(head, "SRV", remove=True) == "s2"
    assert head.headers == [(b"Host", b"a.test"), (b"Cookie", b"a=1; b=2")]
    alone = _request(b"SRV=s1")
    assert request_cookie(alone, "SRV", remove=True) == "s1"
    assert alone.headers == [(b"Host", b"a.test")]  # nothing left: the header goes
    assert request_cookie(_request(b"SRVX=s1"), "SRV", remove=True) is None


def test_insert_unless_the_cookie_chose_the_server() -> None:
    persistence = CookiePersistence("SRV", indirect=True, nocache=True, httponly=True)
    response = _response((b"Set-Cookie", b"SRV=server-own"), (b"Set-Cookie", b"app=1"))
    insert_cookie(response, persistence, "s1", direct=False)
    assert response.headers[1:] == [
        (b"Set-Cookie", b"app=1"),
        (b"Set-Cookie", b"SRV=s1; path=/; HttpOnly"),
        (b"Cache-control", b"private"),
    ]
    assert b"Set-Cookie: SRV=s1; path=/; HttpOnly\r\n" in response.wire
    chosen = _response((b"Cache-Control", b"no-store"))
    insert_cookie(chosen, persistence, "s1", direct=True)
    assert [k for k, _ in chosen.headers] == [b"Content-Length", b"Cache-Control"]
    expired = _response((b"Cache-Control", b"private"))
    insert_cookie(expired, CookiePersistence("SRV", nocache=True), None, direct=False)
    assert expired.headers[-1] == (
        b"Set-Cookie",
        b"SRV=; Expires=Thu, 01-Jan-1970 00:00:01 GMT; path=/",
    )  # a server without a cookie value; already private: no second Cache-control
