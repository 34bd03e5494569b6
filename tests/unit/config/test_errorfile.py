"""`errorfile` files: a whole HTTP/1.x response, framing headers left to the proxy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staplegate.config.errorfile import MAX_BYTES, ErrorFileError, parse_error_file

DEBIAN_503 = (
    b"HTTP/1.0 503 Service Unavailable\r\nCache-Control: no-cache\r\nConnection: close\r\n"
    b"Content-Type: text/html\r\n\r\n<html><body><h1>503 Service Unavailable</h1>\n"
    b"No server is available to handle this request.\n</body></html>\n"
)


def test_a_debian_error_file() -> None:
    page = parse_error_file(DEBIAN_503)
    assert (page.status, page.reason) == (503, "Service Unavailable")
    assert page.headers == (("cache-control", "no-cache"), ("content-type", "text/html"))
    assert page.body.startswith(b"<html><body><h1>503")
    assert not page.delimited  # no Content-Length: the body is the rest of the file


def test_content_length_bounds_the_body_and_bare_newlines_are_read() -> None:
    page = parse_error_file(b"HTTP/1.1 429 Slow down\nContent-Length: 4\nX-A: b\n\nbodyEXTRA")
    assert (page.status, page.reason, page.headers) == (429, "Slow down", (("x-a", "b"),))
    assert (page.body, page.delimited) == (b"body", True)
    assert parse_error_file(b"HTTP/1.1 200\r\n\r\n").reason == ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"HTTP/1.1 503 x\r\n", "no empty line"),
        (b"<html>oops</html>\r\n\r\n", "status line"),
        (b"HTTP/2 503 x\r\n\r\n", "status line"),
        (b"HTTP/1.1 503 x\r\nno colon here\r\n\r\n", "line 2 is no 'Name: value' header"),
        (b"HTTP/1.1 503 x\r\nbad name: v\r\n\r\n", "line 2"),
        (b"HTTP/1.1 503 x\r\nContent-Length: ten\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 503 x\r\nContent-Length: 10\r\n\r\nshort", "longer than the 5-byte body"),
        (b"HTTP/1.1 503 x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "chunked"),
        (b"HTTP/1.1 503 x\r\n\r\n" + b"x" * MAX_BYTES, "allowed"),
    ],
)
def test_what_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ErrorFileError, match=message):
        parse_error_file(data)


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_error_file_error(data: bytes) -> None:
    try:
        page = parse_error_file(b"HTTP/1.1 503 x\r\n" + data)
    except ErrorFileError:
        return
    assert all(name not in ("content-length", "connection") for name, _ in page.headers)
