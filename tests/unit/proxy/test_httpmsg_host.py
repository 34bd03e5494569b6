"""The host a request is routed on (`RequestHead.host`): HAProxy's H1 rules against Host
confusion, on the fast reader and on the per-header one a chunked request switches to."""

from __future__ import annotations

import pytest

from staplegate.config.model import HttpRedirectScheme
from staplegate.proxy.httpmsg import (
    HttpError,
    RequestHead,
    RequestReader,
    request_host,
    target_authority,
)
from staplegate.proxy.httprules import CompiledRule, RequestFacts, apply_rules


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


@pytest.mark.parametrize(
    ("target", "location"),
    [
        (b"/x?y=1", "https://a.test/x?y=1"),
        (b"http://a.test/x?y=1", "https://a.test/x?y=1"),
        (b"http://u@a.test?y=1", "https://a.test/?y=1"),
        (b"http://a.test", "https://a.test/"),
    ],
)
def test_redirect_scheme_uses_the_host_and_the_path_of_any_target(
    target: bytes, location: str
) -> None:
    head = RequestHead("GET", target, "1.1", [(b"Host", b"a.test")], keep_alive=True)
    answer, _ = apply_rules(
        [CompiledRule(HttpRedirectScheme("https", 301))],
        head,
        RequestFacts(("127.0.0.1", 1), None, False, head.host),
    )
    assert answer is not None
    assert dict(answer.headers)["location"] == location
