"""TCP-connect health checks (`server ... check inter rise fall`) feeding a `BackendPool`.

One task per checked server: connect with a timeout (the check timeout, else `inter`), close,
report the result, wait `inter`, repeat. A state change is logged the way HAProxy words it and
handed to `on_change` (metrics, tests). Checks never touch client traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from staplegate.proxy.backends import BackendPool, BackendServer, StateChange

log = logging.getLogger("staplegate.proxy.health")


async def tcp_check(server: BackendServer, timeout_s: float) -> bool:
    """True when a TCP connection to the server opens within `timeout_s`."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port), timeout_s
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class HealthChecker:
    """Runs the checks of one pool until cancelled."""

    def __init__(
        self,
        pool: BackendPool,
        *,
        timeout_s: float | None = None,
        on_change: Callable[[StateChange], None] | None = None,
        on_check: Callable[[BackendServer, bool], None] | None = None,
    ) -> None:
        self.pool = pool
        self.timeout_s = timeout_s
        self.on_change = on_change
        self.on_check = on_check

    async def check_once(self, server: BackendServer) -> StateChange | None:
        ok = await tcp_check(server, self.timeout_s or server.inter_s)
        change = self.pool.report(server, ok)
        if self.on_check is not None:
            self.on_check(server, ok)
        if change is not None:
            log.warning(
                "Server %s/%s is %s. %d active servers left.",
                self.pool.name,
                server.name,
                change.state.value,
                len(self.pool.up_servers()),
            )
            if self.on_change is not None:
                self.on_change(change)
        return change

    async def _loop(self, server: BackendServer) -> None:
        while True:
            await self.check_once(server)
            await asyncio.sleep(server.inter_s)

    async def run(self) -> None:
        """Check every `check` server of the pool forever (cancel to stop)."""
        checked = [s for s in self.pool.servers if s.check]
        if not checked:
            return
        async with asyncio.TaskGroup() as group:
            for server in checked:
                group.create_task(self._loop(server))
