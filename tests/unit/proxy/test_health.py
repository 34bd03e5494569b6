"""TCP-connect health checks (`health`) mark a server down, then up again."""

from __future__ import annotations

import asyncio
import socket

import pytest

from staplegate.config.parser.proxies import mysql_check_steps
from staplegate.proxy.backends import BackendPool, BackendServer, ServerState, StateChange
from staplegate.proxy.health import CheckResult, HealthChecker, _scripted_check, tcp_check


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
