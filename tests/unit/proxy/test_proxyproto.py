"""PROXY protocol parsing is as strict as HAProxy's: nothing but an address and a decimal port
comes out of a v1 line, and a v2 header's parts must fit inside it."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staplegate.proxy.proxyproto import (
    V2_SIGNATURE,
    NeedMore,
    ProxyHeaderError,
    build_v1,
    build_v2,
    parse_proxy_header,
)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP6 fe80::1%a\nX-Injected:1 ::1 1 2\r\n",  # the reported injection
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",  # any zone ID
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80\n 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 8_0 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80 -1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80 \xd9\xa1\r\n",  # an Arabic-Indic digit
        b"PROXY TCP4 1.2.3.4\t 5.6.7.8 80 443\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 80 443\r\n",
        b"PROXY TCP4 ::1 5.6.7.8 80 443\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 80 443\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 \r\n",
        b"PROXY TCP4 1.2.3.4  5.6.7.8 80 443\r\n",
    ],
)
def test_v1_refuses_anything_but_an_address_and_a_decimal_port(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(line)


def test_v1_takes_what_haproxy_takes() -> None:
    parsed = parse_proxy_header(b"PROXY TCP6 ::FFFF:1.2.3.4 2001:DB8::1 0 65535\r\nrest")
    assert not isinstance(parsed, NeedMore)
    assert parsed.source == ("::ffff:102:304", 0)  # Python's spelling of ::ffff:1.2.3.4
    assert parsed.destination == ("2001:db8::1", 65535)
    assert parsed.length == len(b"PROXY TCP6 ::FFFF:1.2.3.4 2001:DB8::1 0 65535\r\n")


def _v2(family: int, body: bytes, command: int = 0x21) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", command, family, len(body)) + body


def test_v2_tlvs_must_end_inside_the_header() -> None:
    addresses = bytes([127, 0, 0, 1, 127, 0, 0, 2]) + struct.pack("!HH", 1, 2)
    good = _v2(0x11, addresses + b"\x04\x00\x02ab" + b"\x05\x00\x00")
    parsed = parse_proxy_header(good)
    assert not isinstance(parsed, NeedMore)
    assert parsed.source == ("127.0.0.1", 1)
    for tlvs in (b"\x04\x00\x03ab", b"\x04\x00", b"\x04", b"\x04\x00\x02ab\x05\xff\xff"):
        with pytest.raises(ProxyHeaderError):
            parse_proxy_header(_v2(0x11, addresses + tlvs))


def test_v2_family_and_length_agree() -> None:
    v4 = build_v2(("127.0.0.1", 1), ("127.0.0.2", 2))
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(_v2(0x21, v4[16:]))  # IPv6 family, IPv4-sized addresses
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(_v2(0x11, v4[16:-1]))  # one byte short
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(_v2(0x11, v4[16:], command=0x22))  # unknown command
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(_v2(0x11, v4[16:], command=0x11))  # version 1 in a v2 header
    local = parse_proxy_header(_v2(0x11, b"", command=0x20))
    assert not isinstance(local, NeedMore)
    assert local.source is None


def test_v1_is_at_most_107_bytes_with_its_crlf() -> None:
    longest = b"PROXY UNKNOWN " + b"x" * (107 - 16) + b"\r\n"
    assert len(longest) == 107
    parsed = parse_proxy_header(longest)
    assert not isinstance(parsed, NeedMore)
    assert parsed.length == 107
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * (108 - 16) + b"\r\n")


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
