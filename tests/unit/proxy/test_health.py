"""TCP-connect health checks (`health`) mark a server down, then up again."""

from __future__ import annotations

import asyncio
import socket

import pytest

from staplegate.proxy.backends import BackendPool, BackendServer, ServerState, StateChange
from staplegate.proxy.health import HealthChecker, tcp_check


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
