"""One client connection (`connection`) before TLS: the PROXY header, a hello that is not
TLS, a client gone mid-hello; each ends with HAProxy's termination code in the log."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any, cast

import pytest

from staplegate.proxy.connection import ClientConnection
from staplegate.proxy.frontend import BindSocket, FrontendRuntime
from staplegate.proxy.proxyproto import build_v1
from staplegate.proxy.records import ConnectionPhase, ConnectionRecord, ProxyTimeouts, Termination
from staplegate.tls.endpoint import AlertDescription, fatal_alert
from staplegate.tls.staples import StapleTable
from tests.unit.proxy._fakes import NO_TLS, RecordingTransport


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()  # for its clock: nothing here runs on it
    yield loop
    loop.close()


def _connection(
    loop: asyncio.AbstractEventLoop, records: list[ConnectionRecord], *, accept_proxy: bool = False
) -> tuple[ClientConnection, RecordingTransport, FrontendRuntime]:
    frontend = FrontendRuntime(
        name="fe",
        staples=StapleTable(),
        backend_router=lambda info: None,
        timeouts=ProxyTimeouts(),
        maxconn=10,
        log=records.append,
    )
    with socket.socket() as sock:
        bind = BindSocket(sock, frontend, NO_TLS, accept_proxy=accept_proxy)
    connection = ClientConnection(bind, loop)
    transport = RecordingTransport()
    connection.connection_made(cast(Any, transport))
    return connection, transport, frontend


def test_a_hello_that_is_not_tls_gets_a_handshake_failure_alert(
    loop: asyncio.AbstractEventLoop,
) -> None:
    records: list[ConnectionRecord] = []
    connection, transport, frontend = _connection(loop, records)
    assert connection.client_address == ("192.0.2.7", 5555)
    assert frontend.stats.active == 1
    connection.data_received(b"GET / HTTP/1.1\r\n\r\n")
    assert transport.written == [fatal_alert(AlertDescription.HANDSHAKE_FAILURE)]
    assert transport.closed
    assert connection.phase is ConnectionPhase.CLOSED
    assert frontend.stats.hello_errors == 1
    assert frontend.stats.active == 0
    (record,) = records
    assert record.termination is Termination.CLIENT_ABORT_HANDSHAKE
    assert record.tls_error is not None


def test_the_proxy_header_gives_the_client_and_frontend_addresses(
    loop: asyncio.AbstractEventLoop,
) -> None:
    records: list[ConnectionRecord] = []
    connection, _, _ = _connection(loop, records, accept_proxy=True)
    assert connection.phase is ConnectionPhase.PROXY_HEADER
    header = build_v1(("203.0.113.5", 1234), ("198.51.100.9", 8443))
    connection.data_received(header[:10])  # a header in pieces waits for the rest
    assert connection.phase is ConnectionPhase.PROXY_HEADER
    connection.data_received(header[10:] + b"\x00not a hello")
    assert connection.client_address == ("203.0.113.5", 1234)
    assert connection.frontend_address == ("198.51.100.9", 8443)
    assert records[0].client_address == ("203.0.113.5", 1234)


def test_a_client_gone_mid_hello_is_cr(loop: asyncio.AbstractEventLoop) -> None:
    records: list[ConnectionRecord] = []
    connection, _, _ = _connection(loop, records)
    connection.data_received(b"\x16\x03\x01")  # the start of a record: wait for more
    assert connection.phase is ConnectionPhase.HELLO
    assert connection.eof_received() is False
    assert [record.termination for record in records] == [Termination.CLIENT_ABORT_HANDSHAKE]
    connection.connection_lost(None)  # after the close: nothing more is logged
    assert len(records) == 1
