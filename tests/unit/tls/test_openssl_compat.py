"""The endpoint's direct OpenSSL data path (`_openssl_compat`) against a real pyOpenSSL peer:
large writes past the shared buffer, many records in one read, close_notify and errors."""

from __future__ import annotations

import pytest

from staplegate.tls import _openssl_compat, endpoint
from staplegate.tls.endpoint import TlsEndpoint
from staplegate.tls.staples import StapleStats, StapleTable

from .test_endpoint import Client, handshake, server_for
from .tls_unit_pki import UnitPki


def _pair(unit_pki: UnitPki) -> tuple[Client, TlsEndpoint]:
    server = TlsEndpoint(server_for(unit_pki), StapleTable(), StapleStats())
    client = Client()
    handshake(client, server)
    return client, server


def _client_read_all(client: Client, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        received += client.conn.recv(65536)
    return bytes(received)


def test_the_direct_path_is_what_runs() -> None:
    assert _openssl_compat.direct_io_available()
    assert endpoint._DIRECT


def test_a_write_larger_than_the_shared_buffer(unit_pki: UnitPki) -> None:
    client, server = _pair(unit_pki)
    payload = bytes(range(256)) * 1200  # 300 KiB: ~19 records, more than the 64 KiB buffer
    ciphertext = server.send(memoryview(payload))
    assert len(ciphertext) > len(payload)
    client.conn.bio_write(ciphertext)
    assert _client_read_all(client, len(payload)) == payload


def test_bytes_larger_than_a_record_are_all_sent(unit_pki: UnitPki) -> None:
    client, server = _pair(unit_pki)
    for payload in (b"one record", bytes(range(256)) * 200):  # 50 KiB: partial writes
        client.conn.bio_write(server.send(payload))
        assert _client_read_all(client, len(payload)) == payload


def test_many_records_in_one_receive_come_out_in_order(unit_pki: UnitPki) -> None:
    client, server = _pair(unit_pki)
    parts = [bytes([i]) * (1000 + i) for i in range(40)]
    for part in parts:
        client.conn.sendall(part)  # one record each
    result = server.receive(client.conn.bio_read(1 << 20))
    assert b"".join(result.plaintext) == b"".join(parts)
    assert all(len(chunk) <= _openssl_compat.RECORD_PLAINTEXT for chunk in result.plaintext)


def test_a_record_split_across_receives(unit_pki: UnitPki) -> None:
    client, server = _pair(unit_pki)
    client.conn.sendall(b"split me")
    record = client.conn.bio_read(65536)
    first = server.receive(record[:7])
    assert first.plaintext == []
    assert first.to_peer == b""
    second = server.receive(record[7:])
    assert second.plaintext == [b"split me"]


def test_close_notify_then_nothing_more(unit_pki: UnitPki) -> None:
    client, server = _pair(unit_pki)
    client.conn.sendall(b"last words")
    client.conn.shutdown()
    result = server.receive(client.conn.bio_read(65536))
    assert result.plaintext == [b"last words"]
    assert result.peer_closed


def test_bios_are_renewed_only_when_empty(unit_pki: UnitPki) -> None:
    client, server = _pair(unit_pki)
    conn = server._conn
    before = conn._into_ssl
    assert _openssl_compat.renew_bios(conn)
    assert conn._into_ssl != before
    client.conn.sendall(b"ping")
    conn.bio_write(client.conn.bio_read(65536))  # waiting in the incoming BIO
    assert not _openssl_compat.renew_bios(conn)
    client.conn.sendall(b"ping again")
    assert server.receive(client.conn.bio_read(65536)).plaintext == [b"ping", b"ping again"]
    client.conn.bio_write(server.send(b"pong"))
    assert client.conn.recv(100) == b"pong"


def test_read_is_receive_in_one_call(unit_pki: UnitPki) -> None:
    client, server = _pair(unit_pki)
    for part in (b"first", b"second" * 5000):  # one record, then several
        client.conn.sendall(part)
    plaintext: list[bytes] = []
    to_peer, closed = server.read(client.conn.bio_read(1 << 20), plaintext)
    assert b"".join(plaintext) == b"first" + b"second" * 5000
    assert (to_peer, closed) == (b"", False)
    client.conn.shutdown()
    plaintext.clear()
    assert server.read(client.conn.bio_read(65536), plaintext) == (b"", True)
    assert plaintext == []


def test_read_of_garbage_is_a_protocol_error_with_an_alert(unit_pki: UnitPki) -> None:
    _, server = _pair(unit_pki)
    with pytest.raises(endpoint.TlsEndpointError) as raised:
        server.read(b"\x17\x03\x03\x00\x20" + b"\x00" * 32, [])
    assert raised.value.reason is endpoint.TlsErrorReason.PROTOCOL_ERROR
    assert raised.value.to_peer  # the fatal alert (encrypted: TLS 1.3)


def test_encrypting_the_plaintext_buffer_in_place(unit_pki: UnitPki) -> None:
    client, server = _pair(unit_pki)
    buffer = endpoint.PLAINTEXT_BUFFER
    payload = bytes(range(256)) * 256  # the whole 64 KiB buffer: four records
    buffer[: len(payload)] = payload
    client.conn.bio_write(server.encrypt_plaintext_buffer(len(payload)))
    assert _client_read_all(client, len(payload)) == payload
    buffer[:5] = b"small"
    client.conn.bio_write(server.encrypt_plaintext_buffer(5))
    assert client.conn.recv(100) == b"small"


def test_handshake_buffers_are_shed_only_after_the_handshake(unit_pki: UnitPki) -> None:
    server = TlsEndpoint(server_for(unit_pki), StapleTable(), StapleStats())
    assert not server.shed_handshake_buffers()  # mid-handshake: nothing is freed
    client = Client()
    handshake(client, server)
    assert server.shed_handshake_buffers()
    client.conn.sendall(b"still works")
    assert server.receive(client.conn.bio_read(65536)).plaintext == [b"still works"]
    client.conn.bio_write(server.send(b"both ways"))
    assert client.conn.recv(100) == b"both ways"


def test_the_sni_openssl_read(unit_pki: UnitPki) -> None:
    server = TlsEndpoint(server_for(unit_pki), StapleTable(), StapleStats())
    client = Client()
    client.conn.set_tlsext_host_name(b"Named.Example.test")
    handshake(client, server)
    assert server.server_name() == "Named.Example.test"
    assert _pair(unit_pki)[1].server_name() is None
