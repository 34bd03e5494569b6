"""HTTP/1.1 parsing limits and statuses, head rewriting, rules, PROXY protocol, log lines."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staplegate.config.model import (
    AclFetch,
    AclTerm,
    Condition,
    HttpDelHeader,
    HttpRedirectScheme,
    HttpSetHeader,
)
from staplegate.proxy.httplog import Counters, HttpLogRecord, haproxy_date
from staplegate.proxy.httpmsg import (
    END,
    BodyKind,
    HttpError,
    RequestHead,
    RequestReader,
    ResponseHead,
    ResponseReader,
    body_chunk,
    error_response,
)
from staplegate.proxy.httprules import CompiledRule, RequestFacts, apply_rules, condition_holds
from staplegate.proxy.proxyproto import (
    NeedMore,
    ProxyHeaderError,
    build_v1,
    build_v2,
    parse_proxy_header,
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


def test_response_head_adds_connection_close() -> None:
    head = ResponseHead(200, b"OK", "1.1", [(b"Connection", b"keep-alive")], keep_alive=True,
                        head_request=False)  # fmt: skip
    assert head.encode(close=True, client_version="1.1") == (
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
    )


def test_error_page_matches_haproxy() -> None:
    encoded = error_response(503).encode()
    assert encoded.startswith(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 107\r\n")
    assert encoded.endswith(
        b"<html><body><h1>503 Service Unavailable</h1>\n"
        b"No server is available to handle this request.\n</body></html>\n"
    )


def test_conditions_on_host_and_sni() -> None:
    facts = RequestFacts(("192.0.2.1", 1), "www.example.test", True, "API.test")
    host = AclTerm(AclFetch.HDR_HOST, ("api.test",), ignore_case=True)
    sni = AclTerm(AclFetch.SSL_FC_SNI, ("www.example.test",))
    assert condition_holds(Condition(False, (host, sni)), facts)
    assert not condition_holds(Condition(True, (host,)), facts)
    assert not condition_holds(
        Condition(False, (AclTerm(AclFetch.HDR_HOST, ("api.test",)),)), facts
    )


def test_redirect_keeps_host_and_path() -> None:
    head = RequestHead("GET", b"/p?q", "1.1", [(b"Host", b"h.test")], keep_alive=True)
    facts = RequestFacts(("192.0.2.1", 1), None, True, "h.test")
    answer, name = apply_rules([CompiledRule(HttpRedirectScheme("https"))], head, facts)
    assert name == "redirect"
    assert answer is not None
    assert ("location", "https://h.test/p?q") in answer.headers
    assert answer.status == 302


@given(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=4).map(str),
    st.integers(0, 65535),
    st.integers(0, 65535),
)
def test_proxy_v1_and_v2_round_trip(src: str, dst: str, sport: int, dport: int) -> None:
    for build in (build_v1, build_v2):
        data = build((src, sport), (dst, dport)) + b"\x16\x03\x01"
        parsed = parse_proxy_header(data)
        assert not isinstance(parsed, NeedMore)
        assert parsed.source == (src, sport)
        assert parsed.destination == (dst, dport)
        assert data[parsed.length :] == b"\x16\x03\x01"
        assert isinstance(parse_proxy_header(data[: parsed.length - 1]), NeedMore)


def test_proxy_header_refusals() -> None:
    for bad in (b"\x16\x03\x01\x02\x00", b"PROXY TCP4 1.2.3.4 nope 1 2\r\n", b"GET / HTTP/1.1\r\n"):
        with pytest.raises(ProxyHeaderError):
            parse_proxy_header(bad)
    v6 = build_v2(("2001:db8::1", 1), ("2001:db8::2", 2))
    parsed = parse_proxy_header(v6)
    assert not isinstance(parsed, NeedMore)
    assert parsed.source == ("2001:db8::1", 1)
    unknown = parse_proxy_header(b"PROXY UNKNOWN\r\n")
    assert not isinstance(unknown, NeedMore)
    assert unknown.source is None


def test_httplog_line_format() -> None:
    when = dt.datetime(2009, 2, 6, 12, 14, 14, 655000, tzinfo=dt.UTC).astimezone()
    record = HttpLogRecord(
        client=("10.0.1.2", 33317), received_at=when, frontend="http-in", tls=False,
        backend="static", server="srv1", request_s=0.010, queue_s=0.0, connect_s=0.030,
        response_s=0.069, active_s=0.109, status=200, bytes_out=2750, termination="----",
        counters=Counters(1, 1, 1, 1, 0), request_line="GET /index.html HTTP/1.1",
    )  # fmt: skip
    assert record.render() == (
        f"10.0.1.2:33317 [{haproxy_date(when)}] http-in static/srv1 10/0/30/69/109 200 2750 "
        '- - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"'
    )
    assert haproxy_date(dt.datetime(2009, 2, 6, 12, 14, 14, 655000)).endswith(":12:14:14.655")


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


def test_rules_that_change_host_or_hop_by_hop_headers_are_seen_by_later_steps() -> None:
    head = RequestHead("GET", b"/", "1.1", [(b"Host", b"a.test"), (b"X-Y", b"1")], keep_alive=True)
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Y: 1\r\n\r\n"
    facts = RequestFacts(("192.0.2.1", 1), None, True, head.host)
    rules = [
        CompiledRule(HttpSetHeader("Host", "b.test")),
        CompiledRule(HttpSetHeader("Connection", "close", add=True)),
        CompiledRule(HttpDelHeader("X-Y")),
    ]
    assert apply_rules(rules, head, facts) == (None, None)
    assert head.host == "b.test"
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n"  # Connection dropped


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


def test_rules_cannot_change_the_framing_the_reader_found() -> None:
    head = RequestReader().feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")[0]
    assert isinstance(head, RequestHead)
    facts = RequestFacts(("192.0.2.1", 1), None, True, "a")
    rules = [CompiledRule(HttpDelHeader("Content-Length"))]
    apply_rules(rules, head, facts)
    assert (head.body, head.content_length) == (BodyKind.LENGTH, 3)
    assert head.encode() == b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 3\r\n\r\n"
    chunked = RequestReader().feed(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )[0]
    assert isinstance(chunked, RequestHead)
    apply_rules([CompiledRule(HttpSetHeader("Content-Length", "0"))], chunked, facts)
    assert chunked.body is BodyKind.CHUNKED
    assert chunked.encode() == b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n"


# Found by the differential fuzz targets (tests/fuzz_targets/http_*_reader.py) against h11.


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


def test_a_refused_upgrade_resumes_on_the_callback_parser_too() -> None:
    reader = _after_a_chunked_request()
    events = reader.feed(b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: ws\r\n\r\nGET /2")
    assert [e.upgrade for e in events if isinstance(e, RequestHead)] == [True]
    assert reader.feed(b" HTTP/1.1\r\n\r\n") == []
    (head, end) = reader.resume()
    assert isinstance(head, RequestHead)
    assert (head.target, end) == (b"/2", END)


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


def test_an_h2c_upgrade_is_no_upgrade_on_either_parser() -> None:
    data = b"GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: H2C\r\n\r\n"
    for reader in (RequestReader(), _after_a_chunked_request()):
        head = [e for e in reader.feed(data) if isinstance(e, RequestHead)][-1]
        assert not head.upgrade
        assert head.encode() == b"GET / HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    "rule",
    [
        HttpSetHeader("Content-Length", "abc"),
        HttpSetHeader("Content-Length", "3", add=True),
        HttpSetHeader("Transfer-Encoding", "chunked", add=True),
        HttpDelHeader("Content-Length"),
    ],
)
def test_any_rule_on_framing_headers_leaves_one_original_framing_line(
    rule: HttpSetHeader | HttpDelHeader,
) -> None:
    head = RequestReader().feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")[0]
    assert isinstance(head, RequestHead)
    facts = RequestFacts(("192.0.2.1", 1), None, True, "a")
    apply_rules([CompiledRule(rule)], head, facts)
    assert head.encode() == b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 3\r\n\r\n"


def test_a_rule_value_with_a_line_break_is_never_sent() -> None:
    head = RequestReader().feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")[0]
    assert isinstance(head, RequestHead)
    facts = RequestFacts(("192.0.2.1", 1), "x\r\n\r\nGET /admin HTTP/1.1", True, "a")
    apply_rules([CompiledRule(HttpSetHeader("X-Sni", "%[ssl_fc_sni]"))], head, facts)
    assert head.headers[-1] == (b"X-Sni", b"x\\x0D\\x0A\\x0D\\x0AGET /admin HTTP/1.1")
    head.headers[-1] = (b"X-Sni", b"x\r\n\r\nGET /admin HTTP/1.1")  # whatever filled it in
    head.extra = b"X-Forwarded-For: 192.0.2.1\r\n"
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
    head.extra = b"X-Forwarded-For: 1\nX: 2\r\n"
    assert head.encode() == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
