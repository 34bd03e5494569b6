"""Accepting (`accept`): `serve` accepts on a bind socket until stopped, drains, and never
closes the master's socket; an acceptor pauses and resumes on its frontend's word."""

from __future__ import annotations

import asyncio
import socket

from staplegate.proxy.accept import Acceptor, serve
from staplegate.proxy.frontend import BindSocket, FrontendRuntime
from staplegate.proxy.records import ConnectionRecord, ProxyTimeouts, Termination
from staplegate.tls.endpoint import AlertDescription, fatal_alert
from staplegate.tls.staples import StapleTable
from tests.unit.proxy._fakes import NO_TLS


def _frontend(records: list[ConnectionRecord]) -> FrontendRuntime:
    return FrontendRuntime(
        name="fe",
        staples=StapleTable(),
        backend_router=lambda info: None,
        timeouts=ProxyTimeouts(),
        maxconn=4,
        log=records.append,
    )


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_serve_accepts_until_stop_then_drains_and_keeps_the_socket() -> None:
    async def scenario() -> None:
        records: list[ConnectionRecord] = []
        frontend = _frontend(records)
        with _listening() as sock:
            started, stop = asyncio.Event(), asyncio.Event()
            serving = asyncio.create_task(
                serve([BindSocket(sock, frontend, NO_TLS)], started=started, stop=stop)
            )
            await started.wait()
            assert frontend.accepting
            reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            writer.write(b"GET / HTTP/1.0\r\n\r\n")  # not TLS: an alert, then the close
            assert await reader.read() == fatal_alert(AlertDescription.HANDSHAKE_FAILURE)
            writer.close()
            await writer.wait_closed()
            stop.set()
            await asyncio.wait_for(serving, 5)
            assert not frontend.accepting
            assert not frontend.acceptors
            assert sock.fileno() != -1  # the master's socket: still open
        assert [record.termination for record in records] == [Termination.CLIENT_ABORT_HANDSHAKE]

    asyncio.run(scenario())


def test_an_acceptor_pauses_and_resumes() -> None:
    async def scenario() -> None:
        frontend = _frontend([])
        with _listening() as sock:
            acceptor = Acceptor(BindSocket(sock, frontend, NO_TLS), asyncio.get_running_loop())
            await acceptor.start()
            assert acceptor.watching
            assert frontend.accepting
            acceptor.pause()
            assert not frontend.accepting
            acceptor.resume()
            assert frontend.accepting
            acceptor.stop()
            assert not acceptor.watching
            assert acceptor not in frontend.acceptors
            acceptor.resume()  # a stopped acceptor stays stopped
            assert not acceptor.watching

    asyncio.run(scenario())
