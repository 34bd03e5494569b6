"""Health checks (`server ... check inter rise fall`, `option httpchk`) feeding a pool.

One task per checked server: connect with a timeout (`timeout check`, else `inter`) — over
TLS when the server line says `ssl` — and either close (layer 4) or, with `option httpchk`,
send `METH URI HTTP/1.0` and read the status line (layer 7: `http-check expect status N`,
else any 2xx or 3xx passes). Report the result, wait `inter`, repeat. A state change is
logged the way HAProxy words it and handed to `on_change` (the master broadcasts it to the
workers). Checks never touch client traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from staplegate.proxy.backends import (
    BackendPool,
    BackendServer,
    SendProxy,
    ServerState,
    StateChange,
)
from staplegate.proxy.upstream import open_server

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


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome, worded like HAProxy's check status."""

    ok: bool
    reason: str  # "Layer4 check passed", "Layer7 wrong status", ...
    info: str | None = None
    code: int | None = None
    duration_s: float = 0.0

    def describe(self) -> str:
        text = f"reason: {self.reason}"
        if self.code is not None:
            text += f", code: {self.code}"
        if self.info:
            text += f', info: "{self.info}"'
        return text + f", check duration: {int(self.duration_s * 1000)}ms"


async def run_check(server: BackendServer, timeout_s: float) -> CheckResult:
    """Layer 4 (connect) or layer 7 (`option httpchk`) check of one server."""
    started = time.monotonic()
    target = replace(server, send_proxy=SendProxy.NONE, port=server.check_port or server.port)
    check = server.httpchk
    reader = asyncio.StreamReader()
    try:
        async with asyncio.timeout(timeout_s):
            transport, _ = await open_server(
                target,
                lambda: asyncio.StreamReaderProtocol(reader),
                client_address=("0.0.0.0", 0),
                frontend_address=("0.0.0.0", 0),
            )
            try:
                if check is None:
                    return CheckResult(True, "Layer4 check passed", None, None, _since(started))
                lines = [f"{check.method} {check.uri} {check.version}"]
                if check.host and not any(n.lower() == "host" for n, _ in check.headers):
                    lines.append(f"Host: {check.host}")
                lines.extend(f"{name}: {value}" for name, value in check.headers)
                transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                line = await reader.readline()
            finally:
                transport.close()
    except TimeoutError:
        return CheckResult(False, "Layer4 timeout", None, None, _since(started))
    except (OSError, ValueError) as error:
        info = getattr(error, "strerror", None) or str(error)
        return CheckResult(False, "Layer4 connection problem", info, None, _since(started))
    assert check is not None
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return CheckResult(False, "Layer7 invalid response", None, None, _since(started))
    status = int(parts[1])
    text = parts[2].strip().decode("latin-1") if len(parts) > 2 else None
    if check.accepts(status):
        return CheckResult(True, "Layer7 check passed", text, status, _since(started))
    return CheckResult(False, "Layer7 wrong status", text, status, _since(started))


def _since(started: float) -> float:
    return time.monotonic() - started


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
        result = await run_check(server, self.timeout_s or server.check_timeout_s or server.inter_s)
        ok = result.ok
        change = self.pool.report(server, ok)
        if self.on_check is not None:
            self.on_check(server, ok)
        if change is not None:
            up = self.pool.up_servers()
            active = sum(1 for s in up if not s.backup)
            backup = len(up) - active
            if change.state is ServerState.DOWN:
                tail = f"{active} active and {backup} backup servers left."
            else:
                tail = f"{active} active and {backup} backup servers online."
            log.warning(
                "%s %s/%s is %s, %s. %s",
                "Backup Server" if server.backup else "Server",
                self.pool.name,
                server.name,
                change.state.value,
                result.describe(),
                tail,
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
