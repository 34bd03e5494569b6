"""TCP-connect health checks (`health`) mark a server down, then up again."""

from __future__ import annotations

import asyncio
import socket

import pytest

from staplegate.config.model import TcpCheckStep
from staplegate.config.parser.proxies import mysql_check_steps
from staplegate.proxy.backends import BackendPool, BackendServer, ServerState, StateChange
from staplegate.proxy.health import (
    CheckResult,
    HealthChecker,
    _scripted_check,
    run_check,
    tcp_check,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_health_check_marks_down_then_up() -> None:
    async def scenario() -> None:
        port = _free_port()
        server = BackendServer("s", "127.0.0.1", port, check=True, inter_s=0.05, rise=2, fall=2)
        pool = BackendPool("be", [server])
        changes: list[StateChange] = []
        checker = HealthChecker(pool, timeout_s=1.0, on_change=changes.append)
        assert not await tcp_check(server, 1.0)
        await checker.check_once(server)
        await checker.check_once(server)
        assert pool.state(server) is ServerState.DOWN
        listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        try:
            went_up = asyncio.Event()

            def record(change: StateChange) -> None:
                changes.append(change)
                went_up.set()

            checker.on_change = record
            task = asyncio.create_task(checker.run())
            await asyncio.wait_for(went_up.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            listener.close()
            await listener.wait_closed()
        assert [c.state for c in changes] == [ServerState.DOWN, ServerState.UP]
        assert pool.state(server) is ServerState.UP

    asyncio.run(scenario())


def _mysql_packet(payload: bytes, sequence: int = 0) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


@pytest.mark.parametrize(
    ("sent", "ok", "reason", "info"),
    [
        (_mysql_packet(b"\x0a10.11-MariaDB\x00rest"), True, "Layer7 check passed", "10.11-MariaDB"),
        (
            _mysql_packet(b"\xff\x69\x04#HY000Host '1.2.3.4' is blocked"),
            False,
            "Layer7 wrong status",
            "#HY000Host '1.2.3.4' is blocked",
        ),
        (_mysql_packet(b"\x0a10.11")[:6], False, "Layer7 invalid response", None),
        (b"", False, "Layer7 invalid response", None),
    ],
)
def test_mysql_check_reads_one_packet_each(
    sent: bytes, ok: bool, reason: str, info: str | None
) -> None:
    """HAProxy's verdicts on the server's first packet (a real MariaDB is in
    tests/e2e/test_mysql_check_e2e.py): an error packet fails with its message and code
    (1129 here), a truncated one is an invalid response."""

    async def run() -> CheckResult:
        reader = asyncio.StreamReader()
        reader.feed_data(sent)
        reader.feed_eof()
        steps = mysql_check_steps(None)
        return await _scripted_check(_NullTransport(), reader, steps, 0.0)

    result = asyncio.run(run())
    assert (result.ok, result.reason) == (ok, reason)
    if info is not None:
        assert result.info == info
    if not ok and reason == "Layer7 wrong status":
        assert result.code == 1129


class _NullTransport(asyncio.Transport):
    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass


def _tcp_steps() -> tuple[TcpCheckStep, ...]:
    return (
        TcpCheckStep("connect"),
        TcpCheckStep("send", b"PING\r\n"),
        TcpCheckStep("expect", b"+PONG", "string", "+PONG"),
        TcpCheckStep("send", b"info replication\r\n"),
        TcpCheckStep("expect", b"", "rstring", "role:(master|leader)"),
    )


@pytest.mark.parametrize(
    ("sent", "reason", "info"),
    [
        # HAProxy 2.6's verdicts, seen against it: a server that closes after answering PING
        # leaves the next expect nothing ("an empty response"), one that says something else
        # fails on content; steps count the connect as step 1
        (b"+PONG\r\n", "Layer7 invalid response", "TCPCHK got an empty response at step 5"),
        (
            b"+PONG\r\n",
            "Layer7 wrong content",
            "TCPCHK did not match content 'role:(master|leader)' at step 5",
        ),
    ],
)
def test_tcp_check_verdicts_when_the_server_closes(sent: bytes, reason: str, info: str) -> None:
    async def run() -> CheckResult:
        reader = asyncio.StreamReader()
        reader.feed_data(sent)
        if reason == "Layer7 wrong content":
            asyncio.get_running_loop().call_soon(reader.feed_data, b"role:slave\r\n")
        asyncio.get_running_loop().call_soon(reader.feed_eof)
        return await _scripted_check(_NullTransport(), reader, _tcp_steps(), 0.0)

    result = asyncio.run(run())
    assert (result.ok, result.reason, result.info) == (False, reason, info)


def test_a_check_that_waits_past_its_timeout_names_its_step() -> None:
    """Connected, then silent: HAProxy's Layer7 timeout naming the step that waited (not a
    Layer4 one, which is for a connect that never completes)."""

    async def run() -> CheckResult:
        async def answer_ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readline()
                writer.write(b"+PONG\r\n")  # then nothing: the regex waits
                await reader.read()
            finally:
                writer.close()
                await writer.wait_closed()

        listener = await asyncio.start_server(answer_ping, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            silent = BackendServer("r", "127.0.0.1", port, tcp_check=_tcp_steps())
            return await run_check(silent, 0.3)
        finally:
            listener.close()
            await listener.wait_closed()

    waited = asyncio.run(run())
    assert (waited.ok, waited.reason, waited.info) == (
        False,
        "Layer7 timeout",
        " at step 5 of tcp-check (expect regex)",
    )


def test_comment_and_connect_lines_are_numbered_and_a_comment_names_its_step() -> None:
    """The rules of a HAProxy 2.6 run (seen against it): `tcp-check comment` and `connect`
    lines count as steps, and the comment is shown with the step right after it."""
    steps = (
        TcpCheckStep("comment", pattern="connect first"),
        TcpCheckStep("connect"),
        TcpCheckStep("send", b"PING\r\n"),
        TcpCheckStep("comment", pattern="the master says PONG"),
        TcpCheckStep("expect", b"+PONG", "string", "+PONG"),
        TcpCheckStep("send", b"info replication\r\n"),
        TcpCheckStep("comment", pattern="role check"),
        TcpCheckStep("expect", b"", "rstring", "role:(master|leader)"),
    )

    async def run() -> CheckResult:
        reader = asyncio.StreamReader()
        reader.feed_data(b"+PONG\r\nrole:slave:PING\r\n")
        reader.feed_eof()
        return await _scripted_check(_NullTransport(), reader, steps, 0.0)

    result = asyncio.run(run())
    assert (result.reason, result.info) == (
        "Layer7 invalid response",
        "TCPCHK got an empty response at step 8 comment: 'role check'",
    )
