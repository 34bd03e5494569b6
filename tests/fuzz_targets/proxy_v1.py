"""Fuzz target: the PROXY protocol v1 line parser (`proxy.proxyproto`).

Only a header, "need more" or `ProxyHeaderError` may come out; a parsed address is
printable ASCII without a zone ID and rebuilds (`build_v1`) into the same addresses; the
header alone parses the same, one byte less does not parse. `proxy_v2` shares the checks.
"""

from __future__ import annotations

import ipaddress

from staplegate.proxy.proxyproto import (
    NeedMore,
    ProxyHeader,
    ProxyHeaderError,
    build_v1,
    build_v2,
    parse_proxy_header,
)
from tests.fuzz_targets import Disagreement

NAME = "proxy-v1"

_HELLO_START = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def check_address(address: tuple[str, int] | None) -> None:
    """Printable ASCII only (it goes into X-Forwarded-For and logs), a canonical address
    of one family, no zone ID, a port that fits 16 bits."""
    if address is None:
        return
    host, port = address
    if not host.isascii() or not host.isprintable() or any(c in host for c in " %/\\"):
        raise Disagreement(f"address {host!r} is not plain printable ASCII")
    parsed = ipaddress.ip_address(host)
    if str(parsed) != host:
        raise Disagreement(f"address {host!r} does not round-trip ({parsed})")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise Disagreement(f"port {port!r} out of range")


def check_header(data: bytes, version: int) -> None:
    """Parse `data`; only a header, `NeedMore` or `ProxyHeaderError` may come out, and a
    header must be sane and rebuild into the same addresses."""
    try:
        result = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    if isinstance(result, NeedMore):
        return
    if not isinstance(result, ProxyHeader):
        raise Disagreement(f"unexpected result {result!r}")
    if not 0 < result.length <= len(data):
        raise Disagreement(f"length {result.length} outside the {len(data)} bytes fed")
    if result.version != version:
        return  # the mutator turned one version into the other: the other target's input
    check_address(result.source)
    check_address(result.destination)
    if (result.source is None) != (result.destination is None):
        raise Disagreement("one address without the other")
    # the header alone parses to the same thing, and one byte less is not yet a header
    again = parse_proxy_header(data[: result.length])
    if again != result:
        raise Disagreement(f"{again!r} from the header alone, {result!r} with what follows")
    try:
        shorter = parse_proxy_header(data[: result.length - 1])
    except ProxyHeaderError:
        shorter = None
    if isinstance(shorter, ProxyHeader):
        raise Disagreement("a header one byte shorter parsed too")
    if result.source is not None and result.destination is not None:
        build = build_v1 if version == 1 else build_v2
        rebuilt = parse_proxy_header(build(result.source, result.destination))
        if not isinstance(rebuilt, ProxyHeader) or (rebuilt.source, rebuilt.destination) != (
            result.source,
            result.destination,
        ):
            raise Disagreement(f"rebuilding {result!r} gave {rebuilt!r}")


def seeds() -> list[bytes]:
    return [
        build_v1(("203.0.113.7", 40000), ("127.0.0.1", 443)) + _HELLO_START,
        build_v1(("2001:db8::9", 1), ("::1", 65535)) + _HELLO_START,
        build_v1(("::ffff:192.0.2.1", 0), ("::", 8443)),
        b"PROXY UNKNOWN\r\n" + _HELLO_START,
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        b"PROXY TCP6 fe80::1%a\nX-Injected:1 ::1 1 2\r\n",
        b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
    ]


def run_one(data: bytes) -> None:
    check_header(data, 1)
