"""The ClientHello parser: real hellos, every split, every malformation raises only its error."""

from __future__ import annotations

import contextlib
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from staplegate.tls.clienthello import (
    ClientHello,
    ClientHelloError,
    ClientHelloErrorReason,
    NeedMoreData,
    parse_client_hello,
)

from .hello_samples import pyopenssl_hello, rerecord, stdlib_hello

PYOPENSSL = pyopenssl_hello(alpn=[b"h2", b"http/1.1"])
STDLIB = stdlib_hello()


def _parse(data: bytes) -> ClientHello:
    result = parse_client_hello(data)
    assert isinstance(result, ClientHello)
    return result


def test_pyopenssl_hello() -> None:
    hello = _parse(PYOPENSSL)
    assert hello.server_name == "example.test"
    assert hello.alpn_protocols == (b"h2", b"http/1.1")
    assert hello.status_request
    assert hello.offers_tls13
    assert 0x0303 in hello.supported_versions
    assert hello.accepts_ecdsa()
    assert hello.accepts_rsa()
    assert 0x1301 in hello.cipher_suites  # TLS_AES_128_GCM_SHA256


def test_stdlib_hello_without_alpn_or_status_request() -> None:
    hello = _parse(STDLIB)
    assert hello.server_name == "stdlib.test"
    assert hello.alpn_protocols == ()
    assert not hello.status_request


def test_no_sni_and_tls12_only() -> None:
    hello = _parse(pyopenssl_hello(server_name=None, ocsp=False, max_version=SSL.TLS1_2_VERSION))
    assert hello.server_name is None
    assert not hello.offers_tls13
    assert not hello.status_request


def test_every_prefix_needs_more_data() -> None:
    for cut in range(len(PYOPENSSL)):
        result = parse_client_hello(PYOPENSSL[:cut])
        assert isinstance(result, NeedMoreData), cut
        assert result.at_least >= 1


def test_trailing_bytes_are_ignored() -> None:
    assert _parse(PYOPENSSL + b"\x17\x03\x03\x00\x05hello") == _parse(PYOPENSSL)


@given(sizes=st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=8))
def test_hello_split_over_records(sizes: list[int]) -> None:
    framed = rerecord(PYOPENSSL, sizes)
    assert _parse(framed) == _parse(PYOPENSSL)
    for cut in (1, 5, 6, len(framed) // 2, len(framed) - 1):
        assert isinstance(parse_client_hello(framed[:cut]), NeedMoreData)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", ClientHelloErrorReason.NOT_HANDSHAKE),
        (b"\x80\x2e\x01\x03\x01", ClientHelloErrorReason.NOT_HANDSHAKE),  # SSLv2 hello
        (b"\x16\x02\x00\x00\x05", ClientHelloErrorReason.BAD_RECORD),
        (b"\x16\x03\x01\x00\x00", ClientHelloErrorReason.BAD_RECORD),
        (b"\x16\x03\x01\x50\x00", ClientHelloErrorReason.BAD_RECORD),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", ClientHelloErrorReason.NOT_CLIENT_HELLO),
        (b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", ClientHelloErrorReason.TOO_LARGE),
        (b"\x16\x03\x01\x00\x04\x01\x00\x00\x00", ClientHelloErrorReason.TRUNCATED),
    ],
)
def test_malformed_input(data: bytes, reason: ClientHelloErrorReason) -> None:
    with pytest.raises(ClientHelloError) as error:
        parse_client_hello(data)
    assert error.value.reason is reason


def _hello_with_extensions(extensions: bytes) -> bytes:
    body = (
        b"\x03\x03"
        + b"\x00" * 32
        + b"\x00"  # session id
        + b"\x00\x02\x13\x01"
        + b"\x01\x00"
        + len(extensions).to_bytes(2, "big")
        + extensions
    )
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(message).to_bytes(2, "big") + message


def _ext(kind: int, data: bytes) -> bytes:
    return kind.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def _sni(name: bytes) -> bytes:
    entry = b"\x00" + len(name).to_bytes(2, "big") + name
    return _ext(0, len(entry).to_bytes(2, "big") + entry)


def test_hand_made_hello_without_signature_algorithms_prefers_rsa() -> None:
    hello = _parse(_hello_with_extensions(_sni(b"a.test")))
    assert hello.server_name == "a.test"
    assert hello.signature_algorithms is None
    assert hello.supported_versions == (0x0303,)
    assert not hello.accepts_ecdsa()
    assert hello.accepts_rsa()


def test_signature_algorithms_decide_the_key_type() -> None:
    ecdsa_only = _ext(13, b"\x00\x02\x04\x03")
    hello = _parse(_hello_with_extensions(ecdsa_only))
    assert hello.accepts_ecdsa()
    assert not hello.accepts_rsa()
    pss_only = _ext(13, b"\x00\x02\x08\x04")
    hello = _parse(_hello_with_extensions(pss_only))
    assert not hello.accepts_ecdsa()
    assert hello.accepts_rsa()


@pytest.mark.parametrize(
    ("extensions", "reason"),
    [
        (_sni(b"a.test") + _sni(b"b.test"), ClientHelloErrorReason.DUPLICATE_EXTENSION),
        (_sni(b"caf\xc3\xa9.test"), ClientHelloErrorReason.BAD_SERVER_NAME),
        (_sni(b""), ClientHelloErrorReason.BAD_SERVER_NAME),
        (_ext(16, b"\x00\x01\x00"), ClientHelloErrorReason.BAD_EXTENSION),
        (_ext(13, b"\x00\x01\x04"), ClientHelloErrorReason.BAD_EXTENSION),
        (_ext(0, b"\x00\x09\x00"), ClientHelloErrorReason.TRUNCATED),
    ],
)
def test_bad_extensions(extensions: bytes, reason: ClientHelloErrorReason) -> None:
    with pytest.raises(ClientHelloError) as error:
        parse_client_hello(_hello_with_extensions(extensions))
    assert error.value.reason is reason


def _only_defined_outcomes(data: bytes) -> None:
    try:
        result = parse_client_hello(data)
    except ClientHelloError:
        return
    assert isinstance(result, ClientHello | NeedMoreData)


@settings(max_examples=400)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    _only_defined_outcomes(data)
    _only_defined_outcomes(b"\x16\x03\x01" + data)


@settings(max_examples=400)
@given(
    position=st.integers(min_value=0, max_value=len(PYOPENSSL) - 1),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=len(PYOPENSSL)),
)
def test_mutated_real_hello_never_raises_anything_else(position: int, value: int, cut: int) -> None:
    mutated = bytearray(PYOPENSSL)
    mutated[position] = value
    _only_defined_outcomes(bytes(mutated))
    _only_defined_outcomes(bytes(mutated[:cut]))


def _tls12_hello(ciphers: str) -> bytes:
    context = ssl.create_default_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="site.test")
    with contextlib.suppress(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_ecdsa_needs_a_suite_an_ecdsa_key_can_serve() -> None:
    # HAProxy's rule: ECDSA sigalgs are not enough when every offered TLS 1.2 suite is RSA
    hello = _parse(_tls12_hello("ECDHE-RSA-AES128-GCM-SHA256"))
    assert hello.signature_algorithms is not None
    assert any(alg & 0xFF == 0x03 for alg in hello.signature_algorithms)
    assert not hello.accepts_ecdsa()
    assert hello.accepts_rsa()
    assert _parse(_tls12_hello("ECDHE-ECDSA-AES128-GCM-SHA256")).accepts_ecdsa()
