"""Accept client connections on a worker's bind sockets, and `serve` them until stop.

Each listening socket (inherited from the master, never closed here) is served by the
event loop's own server on a duplicate descriptor (`Acceptor`); a frontend at `maxconn`
closes those servers and the kernel's backlog holds new clients until a connection ends.
A burst accepted past `maxconn` waits unread until a slot frees. `serve` runs the sockets
until `stop` is set, then stops accepting and waits for the connections to finish
(optionally bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from staplegate.proxy.connection import ClientConnection
from staplegate.proxy.frontend import BindSocket, FrontendRuntime

log = logging.getLogger("staplegate.proxy")


class Acceptor:
    """Accepts on one listening socket while watching is on (paused above maxconn).

    The loop's own server accepts (uvloop does it in C: no Python socket object and no task
    per connection), on a duplicate of the master's socket so that closing it to pause never
    closes the listener; the kernel's backlog holds new clients while paused. A loop may
    accept a burst past maxconn before the pause takes effect: those connections wait,
    unread, in the frontend's `parked` queue until a slot frees (as if still in the backlog).
    """

    __slots__ = ("_server", "_starting", "backlog", "listener", "loop", "stopped", "watching")

    def __init__(self, listener: BindSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.listener = listener
        self.loop = loop
        self.backlog = listener.backlog
        self.watching = False
        self.stopped = False
        self._server: asyncio.AbstractServer | None = None
        self._starting: asyncio.Task[None] | None = None
        listener.sock.setblocking(False)

    async def start(self) -> None:
        self.listener.frontend.acceptors.append(self)
        if not self.listener.frontend.full:
            self.resume()
            if self._starting is not None:
                await self._starting

    def pause(self) -> None:
        if self.watching:
            self.watching = False
            if self._server is not None:
                self._server.close()
                self._server = None

    def resume(self) -> None:
        if not self.watching and not self.stopped:
            self.watching = True
            if self._starting is None:
                self._starting = self.loop.create_task(self._listen())

    async def _listen(self) -> None:
        """Open a server on a duplicate of the socket; pause() may run while this awaits."""
        try:
            while self.watching and self._server is None:
                sock = self.listener.sock.dup()
                try:
                    server = await self.loop.create_server(
                        self._new_connection, sock=sock, backlog=self.backlog
                    )
                except OSError as error:
                    sock.close()
                    log.warning(
                        "frontend %s: cannot accept: %s", self.listener.frontend.name, error
                    )
                    self.watching = False
                    return
                if self.watching:
                    self._server = server
                else:
                    server.close()
        finally:
            self._starting = None

    def _new_connection(self) -> ClientConnection:
        return ClientConnection(self.listener, self.loop)

    def stop(self) -> None:
        self.pause()
        self.stopped = True
        with contextlib.suppress(ValueError):
            self.listener.frontend.acceptors.remove(self)


async def serve(
    listeners: Sequence[BindSocket],
    *,
    started: asyncio.Event,
    stop: asyncio.Event,
    grace_s: float | None = None,
) -> None:
    """Accept on `listeners` until `stop` is set, then let connections finish.

    The sockets stay open (the master owns them). With `grace_s`, connections still open that
    long after the stop are aborted (`KD`).
    """
    loop = asyncio.get_running_loop()
    acceptors = [Acceptor(listener, loop) for listener in listeners]
    frontends: list[FrontendRuntime] = []
    for listener in listeners:
        if listener.frontend not in frontends:
            frontends.append(listener.frontend)
    try:
        for acceptor in acceptors:
            await acceptor.start()
        started.set()
        await stop.wait()
    finally:
        for acceptor in acceptors:
            acceptor.stop()
        for frontend in frontends:
            frontend.stopping = True
            frontend.drop_parked()
            if frontend.http is not None:
                frontend.http.close_idle()
                for connection in list(frontend.connections):
                    stream = connection.http
                    if stream is not None and stream.exchange is None and not stream.events:
                        connection.end_http(aborted=False)  # idle keep-alive: close now
    drained = asyncio.gather(*(frontend.wait_idle() for frontend in frontends))
    try:
        await asyncio.wait_for(asyncio.shield(drained), grace_s)
    except TimeoutError:
        for frontend in frontends:
            frontend.abort_all()
        await drained
