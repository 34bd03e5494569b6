"""A frontend's accounting (`frontend`): maxconn pauses and resumes accepting, parked
connections get their turn, every closed connection is logged once, a hard stop aborts."""

from __future__ import annotations

import asyncio
import logging

import pytest

from staplegate.proxy.frontend import FrontendRuntime
from staplegate.proxy.http_stream import HttpStream
from staplegate.proxy.records import (
    ConnectionPhase,
    ConnectionRecord,
    ProxyTimeouts,
    Termination,
)
from staplegate.tls.endpoint import TlsEndpoint
from staplegate.tls.staples import StapleTable


class FakeConnection:
    """Just what a frontend uses of a client connection (`FrontendConnection`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.phase = ConnectionPhase.HELLO
        self.endpoint: TlsEndpoint | None = None
        self.transport: asyncio.Transport | None = None
        self.http: HttpStream | None = None
        self.unparked = 0
        self.aborted: list[Termination] = []

    def unpark(self) -> None:
        self.unparked += 1

    def abort(self, termination: Termination) -> None:
        self.aborted.append(termination)

    def end_http(self, *, aborted: bool) -> None:
        raise AssertionError("not in mode http")

    def record(self) -> ConnectionRecord:
        return ConnectionRecord(
            frontend="fe",
            bind="fe:443",
            client_address=("192.0.2.1", 1),
            server_name=self.name,
            certificate=None,
            tls=None,
            tls_error=None,
            backend=None,
            server=None,
            bytes_from_client=0,
            bytes_to_client=0,
            termination=Termination.NORMAL,
            duration_s=0.0,
            connect_s=None,
        )


class FakeAcceptor:
    def __init__(self) -> None:
        self.watching = True

    def pause(self) -> None:
        self.watching = False

    def resume(self) -> None:
        self.watching = True


def _frontend(maxconn: int, records: list[ConnectionRecord] | None = None) -> FrontendRuntime:
    return FrontendRuntime(
        name="fe",
        staples=StapleTable(),
        backend_router=lambda info: None,
        timeouts=ProxyTimeouts(),
        maxconn=maxconn,
        log=None if records is None else records.append,
    )


def test_maxconn_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxconn"):
        _frontend(0)


def test_accepting_pauses_at_maxconn_and_resumes_when_one_closes() -> None:
    records: list[ConnectionRecord] = []
    frontend = _frontend(2, records)
    acceptor = FakeAcceptor()
    frontend.acceptors.append(acceptor)
    first, second = FakeConnection("a"), FakeConnection("b")
    frontend.connection_opened(first)
    assert frontend.accepting
    assert not frontend.full
    frontend.connection_opened(second)
    assert frontend.full
    assert not frontend.accepting
    assert (frontend.stats.accepted, frontend.stats.max_active, frontend.stats.accept_pauses) == (
        2,
        2,
        1,
    )
    parked = FakeConnection("parked")
    frontend.parked.append(parked)
    frontend.connection_closed(first)
    assert parked.unparked == 1
    assert not frontend.parked
    assert frontend.accepting
    assert frontend.stats.active == 1
    assert [record.server_name for record in records] == ["a"]


def test_a_failing_log_callable_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(record: ConnectionRecord) -> None:
        raise RuntimeError("disk full")

    frontend = FrontendRuntime(
        name="fe",
        staples=StapleTable(),
        backend_router=lambda info: None,
        timeouts=ProxyTimeouts(),
        maxconn=1,
        log=broken,
    )
    connection = FakeConnection("a")
    frontend.connection_opened(connection)
    with caplog.at_level(logging.ERROR, logger="staplegate.proxy"):
        frontend.connection_closed(connection)
    assert "connection log callable failed" in caplog.text
    assert not frontend.connections


def test_abort_all_stops_every_connection_and_drops_the_parked() -> None:
    frontend = _frontend(1)
    running, parked = FakeConnection("a"), FakeConnection("b")
    frontend.connection_opened(running)
    frontend.parked.append(parked)
    frontend.abort_all()
    assert running.aborted == [Termination.STOPPED]
    assert parked.phase is ConnectionPhase.CLOSED
    assert not frontend.parked


def test_wait_idle_returns_once_the_last_connection_closed() -> None:
    async def scenario() -> None:
        frontend = _frontend(1)
        connection = FakeConnection("a")
        frontend.connection_opened(connection)
        waiting = asyncio.create_task(frontend.wait_idle())
        await asyncio.sleep(0)
        assert not waiting.done()
        frontend.connection_closed(connection)
        await asyncio.wait_for(waiting, 1)

    asyncio.run(scenario())
