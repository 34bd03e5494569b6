"""`tcp-request inspect-delay`: what a plain bind's first bytes say, from a real ClientHello
(Python's ssl module writes it into a memory BIO)."""

from __future__ import annotations

import contextlib
import ssl

from staplegate.proxy.http_rules import Inspected
from staplegate.proxy.inspection import INSPECT_LIMIT, inspect, wants_more


def _client_hello(server_name: str, alpn: list[str]) -> bytes:
    context = ssl.create_default_context()
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        connection.do_handshake()
    return outgoing.read()


def test_a_client_hello_gives_its_sni_and_first_alpn_protocol() -> None:
    hello = _client_hello("a.example.test", ["acme-tls/1", "http/1.1"])
    assert (inspect(hello)) == (Inspected(len(hello), True, "acme-tls/1"), "a.example.test")
    assert inspect(_client_hello("b.example.test", []))[0].alpn is None
    # a hello in pieces: wait for the rest; whole: decide
    assert wants_more(hello[:20])
    assert not wants_more(hello)


def test_other_bytes_decide_at_once() -> None:
    assert not wants_more(b"\x00\x0eOPENVPN")
    assert not wants_more(b"SSH-2.0-OpenSSH_9.2\r\n")
    assert inspect(b"SSH-2.0-OpenSSH_9.2\r\n") == (Inspected(21), None)
    assert inspect(b"") == (Inspected(0), None)
    assert not wants_more(b"\x16\x03\x01" + b"\xff" * INSPECT_LIMIT)  # one buffer at most
