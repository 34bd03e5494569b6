"""The ClientHello fuzz target (tests/fuzz_targets/clienthello.py) on bounded, deterministic
inputs: real hellos from OpenSSL and Python's ssl, mutated, and raw bytes behind a record
header. `bench/fuzz.py` runs the same target a million times."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staplegate.tls.clienthello import (
    ClientHello,
    ClientHelloError,
    ClientHelloErrorReason,
    parse_client_hello,
)
from tests.fuzz_targets import clienthello

_SEEDS = clienthello.seeds()
# bytes that matter to a hello: length fields at their extremes, control bytes in names
_INTERESTING = [b"\x00", b"\xff", b"\x00\x00", b"\xff\xff", b"\r\n", b" ", b"\x7f", b"\x01"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.integers(0, 3))
        position = draw(st.integers(0, len(data)))
        if operation == 0 and data:
            data[min(position, len(data) - 1)] = draw(st.integers(0, 255))
        elif operation == 1:
            data[position:position] = draw(st.sampled_from(_INTERESTING) | st.binary(max_size=4))
        elif operation == 2:
            del data[position : position + draw(st.integers(1, 16))]
        else:
            del data[position:]
    return bytes(data)


@st.composite
def renamed(draw: st.DrawFn) -> bytes:
    """A real hello whose server name is swapped for bytes of the same length (so every
    length field still holds), drawn to include control bytes, spaces and non-ASCII."""
    seed = _SEEDS[0]
    name = b"www.example.test"
    at = seed.index(name)
    byte = st.sampled_from([*range(0x21), 0x7F, 0x80, 0xFF]) | st.integers(0x21, 0x7E)
    new = bytes(draw(st.lists(byte, min_size=len(name), max_size=len(name))))
    return seed[:at] + new + seed[at + len(name) :]


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """Random bytes as a ClientHello handshake message inside one record."""
    body = draw(st.binary(max_size=300))
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(message)) + message


@settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(mutated() | renamed() | framed())
def test_clienthello_target(data: bytes) -> None:
    clienthello.run_one(data)


def test_the_seeds_are_real_hellos() -> None:
    names = set()
    for seed in _SEEDS:
        clienthello.run_one(seed)
        hello = parse_client_hello(seed)
        assert isinstance(hello, ClientHello)
        names.add(hello.server_name)
    assert names == {"www.example.test", "a.test", None, "stdlib.test"}


def test_a_server_name_with_control_bytes_is_refused() -> None:
    """What the fuzz target found: OpenSSL's clients send any bytes but NUL as SNI, and a
    CR LF in the name reached a `set-header X-Sni %[ssl_fc_sni]` line."""
    seed = _SEEDS[0]
    at = seed.index(b"www.example.test")
    for bad in (b"www.exa\r\nX: 1est", b"www.example tes\x7f", b"\x01ww.example.test"):
        with pytest.raises(ClientHelloError) as raised:
            parse_client_hello(seed[:at] + bad + seed[at + len(bad) :])
        assert raised.value.reason is ClientHelloErrorReason.BAD_SERVER_NAME
