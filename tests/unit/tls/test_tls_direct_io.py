"""The endpoint's direct OpenSSL data path (`_openssl_compat`) against a real pyOpenSSL peer:
large writes past the shared buffer, many records in one read, close_notify and errors."""

from __future__ import annotations

from test_tls_endpoint import Client, handshake, server_for
from tls_unit_pki import UnitPki

from staplegate.tls import _openssl_compat, endpoint
from staplegate.tls.endpoint import TlsEndpoint
from staplegate.tls.staples import StapleStats, StapleTable


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
    before = conn._into_ssl  # type: ignore[attr-defined]
    assert _openssl_compat.renew_bios(conn)
    assert conn._into_ssl != before  # type: ignore[attr-defined]
    client.conn.sendall(b"ping")
    conn.bio_write(client.conn.bio_read(65536))  # waiting in the incoming BIO
    assert not _openssl_compat.renew_bios(conn)
    client.conn.sendall(b"ping again")
    assert server.receive(client.conn.bio_read(65536)).plaintext == [b"ping", b"ping again"]
    client.conn.bio_write(server.send(b"pong"))
    assert client.conn.recv(100) == b"pong"
