"""Round-robin among UP servers, HAProxy's rise/fall rule, and real TCP health checks."""

from __future__ import annotations

import asyncio
import socket

import pytest

from staplegate.proxy.backends import BackendPool, BackendServer, ServerState, StateChange
from staplegate.proxy.health import HealthChecker, tcp_check

A = BackendServer("a", "127.0.0.1", 1, rise=2, fall=3)
B = BackendServer("b", "127.0.0.1", 2)
C = BackendServer("c", "127.0.0.1", 3)


def test_round_robin_skips_down_servers() -> None:
    pool = BackendPool("be", [A, B, C])
    assert [pool.pick() for _ in range(4)] == [A, B, C, A]
    for _ in range(3):
        pool.report(B, ok=False)
    assert pool.state(B) is ServerState.DOWN
    assert [pool.pick() for _ in range(4)] == [C, A, C, A]


def test_rise_and_fall() -> None:
    pool = BackendPool("be", [A])
    assert pool.report(A, ok=False) is None
    assert pool.report(A, ok=False) is None
    assert pool.report(A, ok=False) == StateChange(A, ServerState.DOWN, 3)
    assert pool.pick() is None
    assert pool.report(A, ok=True) is None
    assert pool.report(A, ok=False) is None  # a failure resets the rise count
    assert pool.report(A, ok=True) is None
    assert pool.report(A, ok=True) == StateChange(A, ServerState.UP, 2)
    assert pool.pick() is A


def test_bad_server_settings() -> None:
    with pytest.raises(ValueError, match="rise and fall"):
        BackendServer("x", "127.0.0.1", 1, rise=0)
    with pytest.raises(ValueError, match="duplicate"):
        BackendPool("be", [A, A])


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
