"""Parse HAProxy value syntaxes (times, C-style integers, socket addresses) without I/O.

Each parser returns a value or raises `ValueSyntaxError` carrying HAProxy's wording, so the
caller can attach file:line and the keyword.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

# HAProxy keeps timers in a signed 32-bit millisecond counter.
MAX_TIMER_MS = 2_147_483_647

_TIME_UNITS_US = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
}


class ValueSyntaxError(ValueError):
    """A value could not be parsed; `message` is ready to show after the keyword context."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TimeError(enum.Enum):
    """Why a time value was refused (HAProxy's PARSE_TIME_* outcomes)."""

    EMPTY = "empty"
    BAD_CHARACTER = "bad-character"
    OVERFLOW = "overflow"
    UNDERFLOW = "underflow"


@dataclass(frozen=True)
class TimeParseFailure:
    """The outcome of a failed time parse: what went wrong and, if relevant, the character."""

    error: TimeError
    character: str = ""


def parse_time(text: str, *, default_unit: str = "ms", unit: str = "ms") -> int | TimeParseFailure:
    """Parse one number with an optional unit (`us ms s m h d`), as HAProxy's parse_time_err.

    A bare number is in `default_unit`; the result is in `unit` (ms or s).
    A non-zero value that rounds down to zero is an underflow, as in HAProxy.
    """
    if not text:
        return TimeParseFailure(TimeError.EMPTY)
    match = re.match(r"[0-9]+", text)
    if match is None:
        return TimeParseFailure(TimeError.BAD_CHARACTER, text[0])
    number = int(match.group(0))
    suffix = text[match.end() :]
    if suffix == "":
        factor = _TIME_UNITS_US[default_unit]
    elif suffix in _TIME_UNITS_US:
        factor = _TIME_UNITS_US[suffix]
    else:
        # HAProxy reports the first character it could not use.
        bad = suffix[0]
        for name in sorted(_TIME_UNITS_US, key=len, reverse=True):
            if suffix.startswith(name):
                bad = suffix[len(name)] if len(suffix) > len(name) else suffix[0]
                break
        return TimeParseFailure(TimeError.BAD_CHARACTER, bad)
    value = number * factor // _TIME_UNITS_US[unit]
    if number and value == 0:
        return TimeParseFailure(TimeError.UNDERFLOW)
    limit = MAX_TIMER_MS if unit == "ms" else MAX_TIMER_MS // 1000
    if value > limit:
        return TimeParseFailure(TimeError.OVERFLOW)
    return value


def c_atoi(text: str) -> tuple[int, bool]:
    """C `atoi`: skip leading blanks, read an optional sign and digits, ignore the rest.

    Returns (value, exact) where `exact` is False when characters were ignored or no digit
    was found (atoi then returns 0). HAProxy reads `ocsp-update.*delay` this way.
    """
    match = re.match(r"[ \t\n\v\f\r]*([+-]?)([0-9]*)", text)
    assert match is not None  # the pattern matches the empty string
    sign, digits = match.group(1), match.group(2)
    if not digits:
        return 0, False
    value = int(digits)
    if sign == "-":
        value = -value
    # C int overflow is undefined; clamp like glibc's strtol-based atoi does in practice.
    value = max(min(value, 2_147_483_647), -2_147_483_648)
    exact = match.end() == len(text) and match.start(1) == 0
    return value, exact


def parse_int(text: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Strict decimal integer; raises ValueSyntaxError with a short reason."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueSyntaxError(f"'{text}' is not an integer")
    value = int(text)
    if minimum is not None and value < minimum:
        raise ValueSyntaxError(f"{value} is lower than the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ValueSyntaxError(f"{value} is higher than the maximum {maximum}")
    return value


class AddressFamily(enum.Enum):
    """What kind of endpoint an address names."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    HOSTNAME = "hostname"
    UNIX = "unix"


@dataclass(frozen=True)
class SocketAddress:
    """An IP (or host name) and port, or a UNIX socket path (port 0)."""

    family: AddressFamily
    host: str
    port: int

    def __str__(self) -> str:
        if self.family is AddressFamily.UNIX:
            return self.host
        if self.family is AddressFamily.IPV6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


_PREFIXES = ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@", "unix@")
_UNSUPPORTED_PREFIXES = (
    "abns@",
    "abnsz@",
    "fd@",
    "sockpair@",
    "udp@",
    "udp4@",
    "udp6@",
    "quic4@",
    "quic6@",
    "uxst@",
    "uxdg@",
    "rhttp@",
)


def parse_socket_address(text: str, *, require_port: bool = True) -> SocketAddress:
    """Parse HAProxy's `[proto@]host:port` forms: `:443`, `*:443`, `[::1]:443`, `ipv6@:443`.

    Raises ValueSyntaxError for port ranges, unsupported families and malformed text.
    """
    original = text
    forced: AddressFamily | None = None
    lowered = text.lower()
    for prefix in _UNSUPPORTED_PREFIXES:
        if lowered.startswith(prefix):
            raise ValueSyntaxError(
                f"address family '{prefix[:-1]}' in '{original}' is not supported by staplegate"
            )
    for prefix in _PREFIXES:
        if lowered.startswith(prefix):
            text = text[len(prefix) :]
            if prefix in ("ipv4@", "tcp4@"):
                forced = AddressFamily.IPV4
            elif prefix in ("ipv6@", "tcp6@"):
                forced = AddressFamily.IPV6
            elif prefix == "unix@":
                if not text:
                    raise ValueSyntaxError(f"missing UNIX socket path in '{original}'")
                return SocketAddress(AddressFamily.UNIX, text, 0)
            break
    if text.startswith("/"):
        return SocketAddress(AddressFamily.UNIX, text, 0)
    host: str
    port_text: str
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueSyntaxError(f"invalid address: missing ']' in '{original}'")
        host = text[1:close]
        rest = text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueSyntaxError(f"invalid address '{original}'")
        port_text = rest[1:]
        family = AddressFamily.IPV6
    else:
        if text.count(":") > 1:
            # a bare IPv6 literal: HAProxy takes the part after the last colon as the port
            host, _, port_text = text.rpartition(":")
        else:
            host, sep, port_text = text.partition(":")
            if not sep:
                port_text = ""
        family = AddressFamily.HOSTNAME
    if host in ("", "*"):
        if forced is AddressFamily.IPV6 or family is AddressFamily.IPV6:
            host, family = "::", AddressFamily.IPV6
        else:
            host, family = "0.0.0.0", AddressFamily.IPV4
    else:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if family is AddressFamily.IPV6:
                raise ValueSyntaxError(f"invalid IPv6 address '{host}' in '{original}'") from None
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", host):
                raise ValueSyntaxError(f"invalid address '{original}'") from None
        else:
            family = AddressFamily.IPV4 if ip.version == 4 else AddressFamily.IPV6
    if forced is not None and family is not AddressFamily.HOSTNAME and family is not forced:
        raise ValueSyntaxError(f"address '{host}' does not match the family of '{original}'")
    if "-" in port_text:
        raise ValueSyntaxError(f"port ranges are not supported by staplegate ('{original}')")
    if not port_text:
        if require_port:
            raise ValueSyntaxError(f"missing port number in '{original}'")
        return SocketAddress(family, host, 0)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueSyntaxError(f"invalid port '{port_text}' in '{original}'")
    return SocketAddress(family, host, int(port_text))
