"""Fuzz target: the PROXY protocol v2 header parser (`proxy.proxyproto`).

Only a header, "need more" or `ProxyHeaderError` may come out; a parsed address rebuilds
(`build_v2`) into the same addresses, and the header ends where its length says.
"""

from __future__ import annotations

import struct

from staplegate.proxy.proxyproto import V2_SIGNATURE, build_v2
from tests.fuzz_targets.proxy_v1 import check_header

NAME = "proxy-v2"

_HELLO_START = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def _with_tlvs(header: bytes, tlvs: bytes) -> bytes:
    length = struct.unpack_from("!H", header, 14)[0] + len(tlvs)
    return header[:14] + struct.pack("!H", length) + header[16:] + tlvs


def seeds() -> list[bytes]:
    v4 = build_v2(("203.0.113.7", 40000), ("127.0.0.1", 443))
    v6 = build_v2(("2001:db8::9", 1), ("::1", 65535))
    return [
        v4 + _HELLO_START,
        v6 + _HELLO_START,
        _with_tlvs(v4, b"\x01\x00\x02h2" + b"\x02\x00\x05a.test"),  # ALPN, authority
        _with_tlvs(v6, b"\x04\x00\x00" + b"\x20\x00\x05\x01\x00\x00\x00\x00"),  # NOOP, SSL
        V2_SIGNATURE + b"\x20\x00\x00\x00" + _HELLO_START,  # LOCAL
        V2_SIGNATURE + b"\x21\x00\x00\x00",  # PROXY, AF_UNSPEC
        V2_SIGNATURE + b"\x21\x31\x00\x10" + b"/tmp/sock".ljust(16, b"\x00"),  # AF_UNIX
    ]


def run_one(data: bytes) -> None:
    check_header(data, 2)
