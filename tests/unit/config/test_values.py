"""Value syntaxes: HAProxy time units, C atoi quirks, socket addresses."""

from __future__ import annotations

import pytest

from staplegate.config.values import (
    AddressFamily,
    TimeError,
    TimeParseFailure,
    ValueSyntaxError,
    c_atoi,
    parse_socket_address,
    parse_time,
)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("1500", 1500),
        ("1500us", 1),
        ("250ms", 250),
        ("5s", 5000),
        ("2m", 120000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
    ],
)
def test_time_units(text: str, ms: int) -> None:
    assert parse_time(text) == ms


def test_time_in_seconds_and_failures() -> None:
    assert parse_time("90", default_unit="s", unit="s") == 90
    assert parse_time("2m", default_unit="s", unit="s") == 120
    assert parse_time("") == TimeParseFailure(TimeError.EMPTY)
    assert parse_time("x1") == TimeParseFailure(TimeError.BAD_CHARACTER, "x")
    assert parse_time("10sx") == TimeParseFailure(TimeError.BAD_CHARACTER, "x")
    assert parse_time("999us") == TimeParseFailure(TimeError.UNDERFLOW)
    assert parse_time("25d") == TimeParseFailure(TimeError.OVERFLOW)


@pytest.mark.parametrize(
    ("text", "value", "exact"),
    [
        ("300", 300, True),
        ("5m", 5, False),
        ("abc", 0, False),
        ("", 0, False),
        (" 42", 42, False),
        ("-7", -7, True),
        ("+8", 8, True),
        ("99999999999", 2_147_483_647, True),
    ],
)
def test_c_atoi(text: str, value: int, exact: bool) -> None:
    assert c_atoi(text) == (value, exact)


def test_addresses() -> None:
    assert str(parse_socket_address("[::1]:443")) == "[::1]:443"
    assert parse_socket_address("::1:443").host == "::1"
    assert parse_socket_address("unix@/run/x.sock").family is AddressFamily.UNIX
    assert parse_socket_address("example.test:80").family is AddressFamily.HOSTNAME
    assert parse_socket_address("127.0.0.1", require_port=False).port == 0
    for bad, reason in [
        ("127.0.0.1:0", "invalid port '0' in '127.0.0.1:0'"),
        ("ipv6@127.0.0.1:1", "address '127.0.0.1' does not match the family of 'ipv6@127.0.0.1:1'"),
        ("[::1:443", "invalid address: missing ']' in '[::1:443'"),
        ("bad host:1", "invalid address 'bad host:1'"),
        ("fd@3", "address family 'fd' in 'fd@3' is not supported by staplegate"),
    ]:
        with pytest.raises(ValueSyntaxError) as caught:
            parse_socket_address(bad)
        assert caught.value.message == reason
