"""What requests and responses share (`http_message`): error pages, the header count limit."""

from __future__ import annotations

import pytest

from staplegate.proxy.http_message import END, HttpError, error_response
from staplegate.proxy.http_request import RequestHead, RequestReader
from staplegate.proxy.http_response import ResponseReader


def test_error_page_matches_haproxy() -> None:
    encoded = error_response(503).encode()
    assert encoded.startswith(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\n")
    assert encoded.endswith(
        b"<html><body><h1>503 Service Unavailable</h1>\n"
        b"No server is available to handle this request.\n</body></html>\n"
    )


def test_header_count_limit_counts_the_first_line_as_haproxy() -> None:
    fits = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 100 + b"\r\n"
    assert isinstance(RequestReader().feed(fits)[0], RequestHead)
    with pytest.raises(HttpError):
        RequestReader(max_headers=100).feed(fits)
    response = b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 10 + b"Content-Length: 0\r\n\r\n"
    assert ResponseReader(head_request=False, max_headers=12).feed(response)[-1] is END
    with pytest.raises(HttpError) as caught:
        ResponseReader(head_request=False, max_headers=11).feed(response)
    assert caught.value.status == 502
