"""The server side of a `mode tcp` connection: what the server sends goes to the client side.

`connection.ClientConnection` opens one `BackendConnection` per forwarded connection and
sees it through its `transport` and `write_paused`; the backend connection sees the client
side through `TcpClientSide` (a type only: every call is the client connection's own).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from staplegate.tls.endpoint import PLAINTEXT_BUFFER


class TcpClientSide(Protocol):
    """What a backend connection calls on its client connection (`connection.ClientConnection`)."""

    @property
    def transport(self) -> asyncio.Transport | None: ...

    @property
    def client_done(self) -> bool: ...

    def server_read(self, size: int) -> None:
        """`size` bytes from the server landed in `PLAINTEXT_BUFFER`."""

    def server_finished(self) -> None:
        """The server sent its FIN."""

    def server_lost(self, exc: Exception | None) -> None:
        """The server connection is gone (`exc`: how, if not cleanly)."""


class BackendConnection(asyncio.BufferedProtocol):
    """The server side of one forwarded connection; everything goes to its client connection.

    Reads land in `PLAINTEXT_BUFFER`, one 64 KiB buffer for every backend connection of the
    process: asyncio reads up to 256 KiB per `data_received`, so this caps a server read at
    64 KiB (a paused client never has more than its buffer limit plus one read queued), costs
    no per-connection memory (the loop is single-threaded and each read is encrypted before
    `buffer_updated` returns), and OpenSSL encrypts straight from it.
    """

    __slots__ = ("client", "transport", "write_paused")

    def __init__(self, client: TcpClientSide) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return PLAINTEXT_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        self.client.server_read(nbytes)

    def eof_received(self) -> bool:
        self.client.server_finished()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.client.server_lost(exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        client = self.client.transport
        if client is not None:
            client.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        client = self.client.transport
        if client is not None and not self.client.client_done:
            client.resume_reading()
