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
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from staplegate.config.model import TcpCheckStep
from staplegate.proxy.backends import (
    BackendPool,
    BackendServer,
    ExternalCheck,
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
    if server.external_check is not None:
        return await _external_check(server, server.external_check, timeout_s, started)
    target = replace(server, send_proxy=SendProxy.NONE, port=server.check_port or server.port)
    check = server.httpchk
    reader = asyncio.StreamReader()
    progress = _Progress()
    try:
        async with asyncio.timeout(timeout_s):
            transport, _ = await open_server(
                target,
                lambda: asyncio.StreamReaderProtocol(reader),
                client_address=("0.0.0.0", 0),
                frontend_address=("0.0.0.0", 0),
                transparent=False,  # checks come from `source`'s own address
            )
            progress.connected = True
            try:
                if check is None and server.tcp_check and _has_rules(server.tcp_check):
                    return await _scripted_check(
                        transport, reader, server.tcp_check, started, progress
                    )
                if check is None:
                    return CheckResult(True, "Layer4 check passed", None, None, _since(started))
                lines = [f"{check.method} {check.uri} {check.version}"]
                if check.host and not any(n.lower() == "host" for n, _ in check.headers):
                    lines.append(f"Host: {check.host}")
                lines.extend(f"{name}: {value}" for name, value in check.headers)
                transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                line = await reader.readline()
                body = await _check_body(reader) if check.reads_body else b""
            finally:
                transport.close()
    except TimeoutError:
        if not progress.connected:
            return CheckResult(False, "Layer4 timeout", None, None, _since(started))
        return CheckResult(False, "Layer7 timeout", progress.info, None, _since(started))
    except (OSError, ValueError) as error:
        info = getattr(error, "strerror", None) or str(error)
        return CheckResult(False, "Layer4 connection problem", info, None, _since(started))
    assert check is not None
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return CheckResult(False, "Layer7 invalid response", None, None, _since(started))
    status = int(parts[1])
    text = parts[2].strip().decode("latin-1") if len(parts) > 2 else None
    if check.judge(status, body):
        return CheckResult(True, "Layer7 check passed", text, status, _since(started))
    if check.expect is not None and check.expect[0] in ("string", "rstring"):
        return CheckResult(False, "Layer7 wrong content", text, status, _since(started))
    return CheckResult(False, "Layer7 wrong status", text, status, _since(started))


async def _check_body(reader: asyncio.StreamReader) -> bytes:
    """The response body a string expect looks at: Content-Length bytes, else up to the
    server's close (or the limit)."""
    length: int | None = None
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    if length is not None:
        return await reader.read(min(length, _TCP_CHECK_LIMIT))
    body = b""
    while len(body) < _TCP_CHECK_LIMIT:
        chunk = await reader.read(4096)
        if not chunk:
            break
        body += chunk
    return body


class _Progress:
    """How far a check got, for HAProxy's timeout verdict: before the connection is made a
    Layer4 timeout, after it a Layer7 one naming the `tcp-check` step that waited."""

    __slots__ = ("connected", "info")

    def __init__(self) -> None:
        self.connected = False
        self.info: str | None = None


def _has_rules(steps: tuple[TcpCheckStep, ...]) -> bool:
    """Whether there is something to send or expect (a lone `connect` is a connect check)."""
    return any(step.action == "send" or step.action == "expect" for step in steps)


def _step_info(number: int, step: TcpCheckStep) -> str | None:
    """HAProxy's " at step N of tcp-check (…)" for a scripted check's step (None for the
    protocol checks, whose rules HAProxy does not name)."""
    if step.kind == "mysql":
        return None
    if step.action == "send":
        what = "send"
    elif step.kind == "rstring":
        what = "expect regex"
    elif step.kind == "binary":
        what = f"expect binary '{step.data.hex()}'"
    else:
        what = f"expect string '{step.pattern}'"
    return f" at step {number} of tcp-check ({what})"


async def _scripted_check(
    transport: asyncio.Transport,
    reader: asyncio.StreamReader,
    steps: tuple[TcpCheckStep, ...],
    started: float,
    progress: _Progress | None = None,
) -> CheckResult:
    """`option tcp-check` rules in order: send writes, expect reads until its pattern is in
    what arrived (or, negated, until the server closes without it); `option mysql-check`'s
    expects read one MySQL packet each (the info of a pass: the server's version).

    Steps are numbered as HAProxy numbers its rules: every `tcp-check` line counts, its
    `connect` and `comment` lines too (an implicit connect does not), and a comment is shown
    with the step right after it."""
    received = b""
    version: str | None = None
    comment = ""
    for number, step in enumerate(steps, start=1):
        if step.action == "comment":
            comment = f" comment: '{step.pattern}'"
            continue
        if step.action == "connect":
            comment = ""
            continue
        if progress is not None:
            info = _step_info(number, step)
            progress.info = info + comment if info is not None else None
        if step.action == "send":
            transport.write(step.data)
            comment = ""
            continue
        if step.kind == "mysql":
            packet, received = await _mysql_packet(reader, received)
            failed = _mysql_failure(packet, number, started)
            if failed is not None:
                return failed
            if step.pattern == "handshake" and packet is not None:
                version = packet[1:].split(b"\x00", 1)[0].decode("latin-1", "replace")
            continue
        while not (_tcp_found(step, received) and not step.negate):
            chunk = await reader.read(4096)
            if not chunk:  # the server closed: what it sent is all there is
                if _tcp_found(step, received) != step.negate:
                    break
                if not received:
                    info = f"TCPCHK got an empty response at step {number}{comment}"
                    return CheckResult(
                        False, "Layer7 invalid response", info, None, _since(started)
                    )
                info = f"TCPCHK did not match content '{step.pattern}' at step {number}{comment}"
                return CheckResult(False, "Layer7 wrong content", info, None, _since(started))
            received += chunk
            if len(received) > _TCP_CHECK_LIMIT:
                info = f"TCPCHK got more than {_TCP_CHECK_LIMIT} bytes at step {number}{comment}"
                return CheckResult(False, "Layer7 wrong content", info, None, _since(started))
        if step.negate and _tcp_found(step, received):
            info = f"TCPCHK matched unwanted content '{step.pattern}' at step {number}{comment}"
            return CheckResult(False, "Layer7 wrong content", info, None, _since(started))
        received = b""  # the next expect looks at what comes after
        comment = ""
    return CheckResult(True, "Layer7 check passed", version, None, _since(started))


async def _mysql_packet(
    reader: asyncio.StreamReader, received: bytes
) -> tuple[bytes | None, bytes]:
    """One MySQL packet's payload (3-byte length, 1-byte sequence, payload) and what
    follows it; None when the server closed before a whole one arrived."""
    while True:
        if len(received) >= 4:
            length = int.from_bytes(received[:3], "little")
            if len(received) >= 4 + length:
                return received[4 : 4 + length], received[4 + length :]
            if length > _TCP_CHECK_LIMIT:
                return None, b""
        chunk = await reader.read(4096)
        if not chunk:
            return None, b""
        received += chunk


def _mysql_failure(packet: bytes | None, number: int, started: float) -> CheckResult | None:
    """HAProxy's mysql-check verdicts: no whole packet is an invalid response, an error
    packet (0xff, code, message) a wrong status; None: the packet passes."""
    if packet is None or not packet:
        info = f"TCPCHK got no complete MySQL packet at step {number}"
        return CheckResult(False, "Layer7 invalid response", info, None, _since(started))
    if packet[0] != 0xFF:
        return None
    code = int.from_bytes(packet[1:3], "little") if len(packet) >= 3 else None
    # the message as HAProxy shows it: protocol 4.1's `#` and SQL state kept (`#28000Access…`)
    text = packet[3:].decode("utf-8", "replace")[:200]
    return CheckResult(False, "Layer7 wrong status", text, code, _since(started))


#: a tcp-check reads at most this much looking for its pattern (HAProxy: one buffer)
_TCP_CHECK_LIMIT = 16384


def _tcp_found(step: TcpCheckStep, received: bytes) -> bool:
    if step.kind == "rstring":
        return re.search(step.pattern, received.decode("latin-1")) is not None
    return step.data in received


async def _external_check(
    server: BackendServer, check: ExternalCheck, timeout_s: float, started: float
) -> CheckResult:
    """Run the command; exit status 0 is up, anything else (or the timeout) down."""
    port = str(server.check_port or server.port)
    environment = {
        "PATH": check.path,
        "HAPROXY_PROXY_ADDR": check.proxy_address,
        "HAPROXY_PROXY_ID": str(check.proxy_id),
        "HAPROXY_PROXY_NAME": check.proxy_name,
        "HAPROXY_PROXY_PORT": check.proxy_port,
        "HAPROXY_SERVER_ADDR": server.host,
        "HAPROXY_SERVER_CURCONN": "0",
        "HAPROXY_SERVER_ID": str(check.server_id),
        "HAPROXY_SERVER_MAXCONN": str(server.maxconn or 0),
        "HAPROXY_SERVER_NAME": server.name,
        "HAPROXY_SERVER_PORT": port,
    }
    try:
        process = await asyncio.create_subprocess_exec(
            check.command,
            check.proxy_address,
            check.proxy_port,
            server.host,
            port,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=environment,
        )
    except OSError as error:
        info = f"{check.command}: {error.strerror or error}"
        return CheckResult(False, "External check error", info, None, _since(started))
    try:
        async with asyncio.timeout(timeout_s):
            status = await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return CheckResult(False, "External check timeout", None, None, _since(started))
    if status == 0:
        return CheckResult(True, "External check passed", None, None, _since(started))
    return CheckResult(False, "External check error", None, status, _since(started))


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
