"""The server side of a `mode tcp` connection (`backend_connection`): reads land in the shared
plaintext buffer and go to the client side, and a full server socket pauses the client."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from staplegate.proxy.backend_connection import BackendConnection
from staplegate.tls.endpoint import PLAINTEXT_BUFFER
from tests.unit.proxy._fakes import RecordingTransport


class FakeClientSide:
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = cast(Any, RecordingTransport())
        self.client_done = False
        self.calls: list[tuple[str, object]] = []

    def server_read(self, size: int) -> None:
        self.calls.append(("read", bytes(PLAINTEXT_BUFFER[:size])))

    def server_finished(self) -> None:
        self.calls.append(("finished", None))

    def server_lost(self, exc: Exception | None) -> None:
        self.calls.append(("lost", exc))


def test_reads_go_to_the_client_side_through_the_shared_buffer() -> None:
    client = FakeClientSide()
    backend = BackendConnection(client)
    backend.connection_made(cast(Any, RecordingTransport()))
    buffer = backend.get_buffer(-1)
    assert buffer is PLAINTEXT_BUFFER
    buffer[:5] = b"hello"
    backend.buffer_updated(5)
    assert backend.eof_received() is True  # keep the transport open: half-close
    error = ConnectionResetError()
    backend.connection_lost(error)
    assert backend.transport is None
    assert client.calls == [("read", b"hello"), ("finished", None), ("lost", error)]


def test_a_full_server_pauses_the_client_until_it_drains() -> None:
    client = FakeClientSide()
    transport = cast(RecordingTransport, client.transport)
    backend = BackendConnection(client)
    backend.pause_writing()
    assert backend.write_paused
    assert not transport.reading
    backend.resume_writing()
    assert transport.reading
    backend.pause_writing()
    client.client_done = True  # the client has finished: nothing more to read from it
    backend.resume_writing()
    assert not backend.write_paused
    assert not transport.reading
