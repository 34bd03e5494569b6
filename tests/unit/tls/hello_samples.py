"""Real ClientHellos, made by pyOpenSSL and stdlib clients on memory BIOs (no sockets)."""

from __future__ import annotations

import contextlib
import ssl

from OpenSSL import SSL


def pyopenssl_hello(
    server_name: bytes | None = b"example.test",
    alpn: list[bytes] | None = None,
    ocsp: bool = True,
    max_version: int | None = None,
) -> bytes:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if max_version is not None:
        context.set_max_proto_version(max_version)
    if alpn:
        context.set_alpn_protos(alpn)
    if ocsp:
        context.set_ocsp_client_callback(lambda conn, data, _: True)
    conn = SSL.Connection(context, None)
    conn.set_connect_state()
    if server_name is not None:
        conn.set_tlsext_host_name(server_name)
    if ocsp:
        conn.request_ocsp()
    with contextlib.suppress(SSL.WantReadError):
        conn.do_handshake()
    return conn.bio_read(65536)


def stdlib_hello(server_name: str | None = "stdlib.test") -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def rerecord(hello: bytes, sizes: list[int]) -> bytes:
    """The same handshake message re-framed into records of the given payload sizes."""
    payload = b""
    pos = 0
    while pos < len(hello):
        length = int.from_bytes(hello[pos + 3 : pos + 5], "big")
        payload += hello[pos + 5 : pos + 5 + length]
        pos += 5 + length
    out = b""
    index = 0
    while payload:
        size = max(1, sizes[index % len(sizes)]) if sizes else len(payload)
        chunk, payload = payload[:size], payload[size:]
        out += b"\x16\x03\x01" + len(chunk).to_bytes(2, "big") + chunk
        index += 1
    return out
