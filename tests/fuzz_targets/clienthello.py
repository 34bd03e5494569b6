"""Fuzz target: the TLS ClientHello reader (`tls.clienthello`).

Only `ClientHelloError` may escape `parse_client_hello`, as its docstring promises; a parsed
hello must decode every lazily kept list without an exception, and its server name must be
a plain ASCII host name (no control byte, space or NUL: it goes into routing, logs and the
`%[ssl_fc_sni]` of a set-header). Feeding the same bytes as one record or re-framed into
small records must give the same hello. Seeds are real hellos from OpenSSL (pyOpenSSL) and
Python's ssl, captured on memory BIOs.
"""

from __future__ import annotations

import contextlib
import ssl
from functools import cache

from OpenSSL import SSL

from staplegate.tls.clienthello import (
    ClientHello,
    ClientHelloError,
    NeedMoreData,
    parse_client_hello,
)
from tests.fuzz_targets import Disagreement

NAME = "clienthello"


def _pyopenssl_hello(server_name: bytes | None, alpn: list[bytes], max_version: int) -> bytes:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(max_version)
    if alpn:
        context.set_alpn_protos(alpn)
    context.set_ocsp_client_callback(lambda conn, data, _: True)
    conn = SSL.Connection(context, None)
    conn.set_connect_state()
    if server_name is not None:
        conn.set_tlsext_host_name(server_name)
    conn.request_ocsp()
    with contextlib.suppress(SSL.WantReadError):
        conn.do_handshake()
    return conn.bio_read(65536)


def _stdlib_hello(server_name: str | None) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _reframed(hello: bytes, size: int) -> bytes:
    """The first record's payload split into records of `size` bytes."""
    length = int.from_bytes(hello[3:5], "big")
    payload, rest = hello[5 : 5 + length], hello[5 + length :]
    records = b"".join(
        hello[:3] + len(chunk).to_bytes(2, "big") + chunk
        for chunk in (payload[i : i + size] for i in range(0, len(payload), size))
    )
    return records + rest


@cache
def _seeds() -> tuple[bytes, ...]:
    hellos = [
        _pyopenssl_hello(b"www.example.test", [b"h2", b"http/1.1"], SSL.TLS1_3_VERSION),
        _pyopenssl_hello(b"a.test", [], SSL.TLS1_2_VERSION),
        _pyopenssl_hello(None, [b"http/1.1"], SSL.TLS1_3_VERSION),
        _stdlib_hello("stdlib.test"),
        _stdlib_hello(None),
    ]
    return (*hellos, _reframed(hellos[0], 100), _reframed(hellos[3], 7))


def seeds() -> list[bytes]:
    return list(_seeds())


def _check(hello: ClientHello) -> None:
    try:
        summary = (
            hello.alpn_protocols,
            hello.supported_versions,
            hello.signature_algorithms,
            hello.cipher_suites,
            hello.offers_tls13,
            hello.accepts_ecdsa(),
            hello.accepts_rsa(),
            repr(hello),
        )
    except Exception as error:  # a lazily decoded list must have been validated already
        raise Disagreement(f"reading a parsed hello raised {error!r}") from error
    del summary
    name = hello.server_name
    if name is not None and (
        not name or not name.isascii() or any(c <= " " or c == "\x7f" for c in name)
    ):
        raise Disagreement(f"server name {name!r} is not a plain ASCII host name")


def run_one(data: bytes) -> None:
    try:
        result = parse_client_hello(data)
    except ClientHelloError:
        return
    if isinstance(result, NeedMoreData):
        if result.at_least <= 0:
            raise Disagreement(f"asks for {result.at_least} more bytes")
        return
    _check(result)
    if len(data) >= 5 and data[0] == 22:
        try:
            again = parse_client_hello(_reframed(data, 16))
        except ClientHelloError as error:
            raise Disagreement(f"re-framed into 16-byte records: {error}") from error
        if again != result:
            raise Disagreement(f"re-framed into 16-byte records: {again!r} != {result!r}")
