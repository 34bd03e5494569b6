"""The PROXY protocol (v1 text and v2 binary), sans-IO: parse what `accept-proxy` binds
receive before the TLS ClientHello, and build what `send-proxy[-v2]` servers receive.

Format: haproxy.org's proxy-protocol.txt. A v1 line is at most 107 bytes ending in CRLF; a
v2 header is a 12-byte signature, version/command, family, a 16-bit length and the
addresses, then TLVs (checked to fit, otherwise skipped). `LOCAL` (v2) and `UNKNOWN` (v1)
headers carry no address: the connection keeps its socket addresses, as HAProxy does.
Addresses are parsed as strictly as HAProxy's: what comes out holds no control byte and
no IPv6 zone ID, so it can go into `X-Forwarded-For` and log lines as it is.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import struct
from dataclasses import dataclass
from typing import Final

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX: Final = 107
_V2_FIXED = struct.Struct("!12sBBH")


class ProxyHeaderErrorReason(enum.Enum):
    NOT_PROXY = "the connection did not start with a PROXY protocol header"
    BAD_V1 = "malformed PROXY v1 line"
    BAD_V2 = "malformed PROXY v2 header"


class ProxyHeaderError(Exception):
    """The peer misbehaved: HAProxy closes such a connection without an answer."""

    def __init__(self, reason: ProxyHeaderErrorReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}{': ' + detail if detail else ''}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """Addresses the header announced (None for LOCAL/UNKNOWN) and its length in bytes."""

    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    length: int
    version: int


class NeedMore:
    """Not enough bytes yet to decide."""


NEED_MORE: Final = NeedMore()


def parse_proxy_header(data: bytes) -> ProxyHeader | NeedMore:
    """Parse the header at the start of `data` (v1 or v2); raises `ProxyHeaderError`."""
    if data[:1] == b"\r":
        if len(data) < 16:
            if not V2_SIGNATURE.startswith(data[:12]):
                raise ProxyHeaderError(ProxyHeaderErrorReason.NOT_PROXY)
            return NEED_MORE
        return _parse_v2(data)
    if not data.startswith(b"PROXY"[: len(data)]):
        raise ProxyHeaderError(ProxyHeaderErrorReason.NOT_PROXY)
    end = data.find(b"\r\n", 0, V1_MAX)  # 107 bytes with the CRLF
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(ProxyHeaderErrorReason.BAD_V1, "no CRLF in 107 bytes")
        return NEED_MORE
    return _parse_v1(data[:end], end + 2)


# What HAProxy's inet_pton and read_uint take: an address in the textual form of its
# family and nothing else (Python's ipaddress also takes IPv6 zone IDs such as
# `fe80::1%eth0`, whose suffix may hold any byte), a port of decimal digits only (int() also
# takes a sign, `_` and surrounding whitespace, a bare LF included).
_V1_ADDRESS: Final = re.compile(rb"[0-9A-Fa-f:.]{2,45}")
_V1_PORT: Final = re.compile(rb"[0-9]{1,5}")


def _v1_address(word: bytes, version: int) -> str:
    if _V1_ADDRESS.fullmatch(word) is None:
        raise ValueError(f"bad address {word[:48]!r}")
    address = ipaddress.ip_address(word.decode("ascii"))
    if address.version != version:
        raise ValueError("address family does not match")
    return str(address)


def _v1_port(word: bytes) -> int:
    if _V1_PORT.fullmatch(word) is None or int(word) > 65535:
        raise ValueError(f"bad port {word[:8]!r}")
    return int(word)


def _parse_v1(line: bytes, length: int) -> ProxyHeader:
    words = line.split(b" ")
    if len(words) >= 2 and words[0] == b"PROXY" and words[1] == b"UNKNOWN":
        return ProxyHeader(None, None, length, 1)
    if len(words) != 6 or words[0] != b"PROXY" or words[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError(ProxyHeaderErrorReason.BAD_V1, repr(line[:64]))
    version = 4 if words[1] == b"TCP4" else 6
    try:
        source = (_v1_address(words[2], version), _v1_port(words[4]))
        destination = (_v1_address(words[3], version), _v1_port(words[5]))
    except ValueError as error:
        raise ProxyHeaderError(ProxyHeaderErrorReason.BAD_V1, str(error)) from None
    return ProxyHeader(source, destination, length, 1)


def _check_tlvs(tlvs: bytes) -> None:
    """Each TLV (type, 16-bit length, value) must end inside the header, as HAProxy checks."""
    offset = 0
    while offset < len(tlvs):
        if offset + 3 > len(tlvs):
            raise ProxyHeaderError(ProxyHeaderErrorReason.BAD_V2, "truncated TLV")
        offset += 3 + int.from_bytes(tlvs[offset + 1 : offset + 3], "big")
        if offset > len(tlvs):
            raise ProxyHeaderError(ProxyHeaderErrorReason.BAD_V2, "TLV past the header's end")


def _parse_v2(data: bytes) -> ProxyHeader | NeedMore:
    signature, version_command, family, body_length = _V2_FIXED.unpack_from(data)
    if signature != V2_SIGNATURE:
        raise ProxyHeaderError(ProxyHeaderErrorReason.NOT_PROXY)
    if version_command >> 4 != 2 or version_command & 0x0F not in (0, 1):
        raise ProxyHeaderError(
            ProxyHeaderErrorReason.BAD_V2, f"version/command {version_command:#x}"
        )
    length = 16 + body_length
    if len(data) < length:
        return NEED_MORE
    body = data[16:length]
    if version_command & 0x0F == 0:  # LOCAL: health checks and the like
        return ProxyHeader(None, None, length, 2)
    if family == 0x11 and len(body) >= 12:
        src, dst, sport, dport = struct.unpack_from("!4s4sHH", body)
        _check_tlvs(body[12:])
    elif family == 0x21 and len(body) >= 36:
        src, dst, sport, dport = struct.unpack_from("!16s16sHH", body)
        _check_tlvs(body[36:])
    elif family == 0x00:
        return ProxyHeader(None, None, length, 2)
    else:
        raise ProxyHeaderError(
            ProxyHeaderErrorReason.BAD_V2, f"family {family:#x} with {len(body)} bytes"
        )
    return ProxyHeader(
        (str(ipaddress.ip_address(src)), sport),
        (str(ipaddress.ip_address(dst)), dport),
        length,
        2,
    )


def build_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """`send-proxy`: a v1 line for a TCP connection from `source` to `destination`."""
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        return b"PROXY UNKNOWN\r\n"
    family = "TCP4" if src.version == 4 else "TCP6"
    return f"PROXY {family} {src} {dst} {source[1]} {destination[1]}\r\n".encode("ascii")


def build_v2(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """`send-proxy-v2`: a binary header (PROXY command, TCP over IPv4 or IPv6)."""
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        return _V2_FIXED.pack(V2_SIGNATURE, 0x21, 0x00, 0)
    if src.version == 4:
        body = struct.pack("!4s4sHH", src.packed, dst.packed, source[1], destination[1])
        family = 0x11
    else:
        body = struct.pack("!16s16sHH", src.packed, dst.packed, source[1], destination[1])
        family = 0x21
    return _V2_FIXED.pack(V2_SIGNATURE, 0x21, family, len(body)) + body
