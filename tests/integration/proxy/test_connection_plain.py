"""A plain bind (no `ssl`) in mode tcp: the client's bytes go to the server as they are, with
the same half-close, failure and timeout handling as a TLS bind (real sockets on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import socket

from staplegate.proxy.backends import BackendServer
from staplegate.proxy.records import ProxyTimeouts, Termination
from tests.integration.tls.tls_harness import RunningProxy


def _read_until_closed(sock: socket.socket) -> bytes:
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_plain_forwarding_both_ways_and_half_close() -> None:
    with RunningProxy(None) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        payload = bytes(range(256)) * 1024  # 256 KiB: several server reads into one buffer
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)  # FIN → FIN to the server, which answers <EOF>
        assert _read_until_closed(client) == payload + b"<EOF>"
        client.close()
        proxy.wait_until(lambda: len(proxy.records) == 1)
        record = proxy.records[0]
        assert record.termination is Termination.NORMAL
        assert (record.bytes_from_client, record.bytes_to_client) == (
            len(payload),
            len(payload) + 5,
        )
        assert (record.tls, record.tls_bind, record.server_name) == (None, False, None)
        stats = proxy.call(lambda: proxy.frontend.stats)
        assert (stats.active, stats.handshakes, stats.bytes_in) == (0, 0, len(payload))


def test_plain_bind_with_the_server_down_closes_the_client() -> None:
    dead = BackendServer("dead", "127.0.0.1", _unused_port())
    with RunningProxy(None, backend_servers=[dead]) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        assert _read_until_closed(client) == b""
        client.close()
        proxy.wait_until(lambda: len(proxy.records) == 1)
        assert proxy.records[0].termination is Termination.SERVER_CONNECT_FAILED


def test_plain_bind_server_timeout_while_forwarding() -> None:
    timeouts = ProxyTimeouts(connect_s=2.0, client_s=10.0, server_s=0.3)
    with RunningProxy(None, timeouts=timeouts) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as client:
            client.sendall(b"a")
            assert client.recv(10) == b"a"
            with contextlib.suppress(ConnectionResetError):  # aborted: EOF or a reset
                assert _read_until_closed(client) == b""
        proxy.wait_until(lambda: len(proxy.records) == 1)
        assert proxy.records[0].termination is Termination.SERVER_TIMEOUT
