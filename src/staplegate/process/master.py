"""The composition root: the master process, its workers, the OCSP updater, reloads.

Theory of operation. `run()` loads the configuration and certificates (exactly what
`staplegate -c` checks), builds the TLS contexts and opens every listening socket, then forks
the workers: they inherit the sockets and contexts (so they share session-ticket keys) and
serve TLS. The master keeps the sockets, runs the OCSP updater — which loads persisted
staples from the state directory, verifies them, fetches what is missing, and refreshes on
schedule — and the servers' health checks, and sends staple changes and server states to
each worker over its pipe. A worker that dies is restarted with the current table, without
touching the disk.

Staples reach workers coalesced and as deltas (`Master.broadcast`). The updater reports the
whole table after every single change, so a cold start with N certificates would otherwise send
N tables of up to N staples to every worker: O(N²) bytes, pickling and table rebuilds (2,000
certificates, 2 workers: 91 s to stapled everywhere, the master peaking at 4.6 GB; now 10 s —
the updater's 250 fetches/s — and 146 MB: bench/cold_start.py). Instead the master keeps only
the latest table and sends it at most once per interval, at once when the last send is older
than that (so one `set ssl ocsp-response`, refresh or withdrawal reaches new handshakes within
the interval); each worker gets the changes since what it was last sent, the whole table when
its pipe opens. The interval grows with the table (`staple_interval`): finding what changed
costs ~0.5 µs per staple per worker, so 50 µs per staple keeps that under ~2 % of the master at
any size, while a small table is sent at once, as before (4 staples: 0.2 ms; 2,000: 100 ms;
capped at 1 s from 20,000 — far inside the 300 s by which a staple is withdrawn before its
nextUpdate). Pipe writes never block the loop, and a worker that has not drained its previous
message is skipped until it has (the transport tells us), then gets one merged delta: a slow
worker costs at most one message of buffer, never a backlog.

Signals: SIGUSR2 or SIGHUP reload: the new configuration is loaded in the master; if it has
any error the old one keeps serving and every error is logged; otherwise new workers start on
the same sockets (an address present in both keeps its socket, so nothing queued is lost),
the old workers stop accepting and finish their connections (bounded by `hard-stop-after`),
and the updater keeps every verified staple whose CertId still exists, fetching only for new
certificates. SIGTERM stops gracefully (drain, bounded by `hard-stop-after`), SIGINT at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from staplegate.certs import OcspDisposition
from staplegate.check import load_generation, validate
from staplegate.clock import Clock, SystemClock
from staplegate.config.model import GlobalSettings, LogTargetKind
from staplegate.config.values import SocketAddress
from staplegate.fetch.http import FetchSettings
from staplegate.fetch.updater import OcspUpdater, UpdaterEntry
from staplegate.generation import Generation
from staplegate.observe.log import NOTICE, LogRouter, SyslogTarget
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.proxy.backends import BackendPool, StateChange
from staplegate.proxy.health import HealthChecker
from staplegate.runtime.handlers import RuntimeHandlers
from staplegate.runtime.server import (
    RuntimeServer,
    RuntimeServerError,
    limits_from_config,
    listeners_from_config,
)
from staplegate.serving import ServePlan, build_plan, open_listening_socket
from staplegate.store import FileStapleStore, StoreError, resolve_state_dir
from staplegate.worker import (
    WORKER_SIGNALS,
    ServerStates,
    StapleChanges,
    WorkerSetup,
    encode_changes,
    encode_servers,
    encode_table,
    worker_main,
)

log = logging.getLogger("staplegate")

SocketKey = tuple[str, str, int]  # (family, host, port)

#: Staple messages to workers are at least this many seconds apart per staple in the table...
STAPLE_INTERVAL_PER_STAPLE_S = 50e-6
#: ...and at most this far apart (see the module docstring for both figures).
STAPLE_INTERVAL_MAX_S = 1.0
#: After a failed start-up, how long the master waits for its workers to exit.
STARTUP_ABORT_WAIT_S = 10.0


def log_targets(settings: GlobalSettings) -> list[SyslogTarget]:
    """The global `log` lines as targets; stderr at notice when there are none (see docs)."""
    targets = []
    for target in settings.logs:
        if target.kind in (LogTargetKind.STDOUT, LogTargetKind.STDERR):
            kind: str = target.kind.value
            address: str | tuple[str, int] | None = None
        elif target.kind is LogTargetKind.UNIX:
            kind, address = "unix", target.target
        elif target.kind is LogTargetKind.UDP and target.address is not None:
            kind, address = "udp", (target.address.host, target.address.port or 514)
        else:
            log.warning("log target %s is not supported yet; ignored", target.target)
            continue
        targets.append(
            SyslogTarget(
                kind=kind,
                address=address,
                facility=target.facility,
                max_level=target.level or "debug",
                min_level=target.min_level or "emerg",
                length=target.length or 1024,
                format=target.format.value,
                tag=settings.log_tag or "staplegate",
            )
        )
    if not targets:
        targets.append(SyslogTarget(kind="stderr", address=None, max_level="notice", format="raw"))
    return targets


def updater_entries(generation: Generation) -> list[UpdaterEntry]:
    """One entry per certificate that has an OCSP entry (spec §3.4)."""
    disabled = generation.config.global_.ocsp_update_disable
    entries = []
    for entry in generation.loaded():
        cert = entry.certificate
        readiness = entry.readiness
        if cert is None or readiness is None or cert.issuer is None:
            continue
        if readiness.disposition is not OcspDisposition.ENTRY:
            continue
        entries.append(
            UpdaterEntry(
                certificate=cert.leaf,
                issuer=cert.issuer,
                path=entry.name,
                uri=cert.ocsp_uri,
                auto_update=readiness.auto_update and not disabled,
                sidecar_ocsp=cert.ocsp.der if cert.ocsp else None,
            )
        )
    return entries


def update_settings_of(settings: GlobalSettings) -> UpdateSettings:
    return UpdateSettings(
        mindelay=settings.ocsp_update_mindelay_s, maxdelay=settings.ocsp_update_maxdelay_s
    )


def _close_inherited_fds(keep: set[int]) -> None:
    """In a new worker: close every descriptor but `keep` (runtime API clients, other
    workers' pipes, the master's event loop), so nothing the master owns stays open here."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _socket_key(address: SocketAddress) -> SocketKey:
    return (address.family.value, address.host, address.port)


@dataclass
class Deployment:
    """One configuration generation in service: its plan and its listening sockets."""

    number: int
    generation: Generation
    plan: ServePlan
    sockets: dict[tuple[str, int], list[socket.socket]]

    @property
    def hard_stop_after_s(self) -> float | None:
        ms = self.generation.config.global_.hard_stop_after_ms
        return None if ms is None else ms / 1000.0

    def addresses(self) -> list[str]:
        return [str(a) for f in self.plan.frontends for b in f.binds for a in b.addresses]


def open_sockets(
    plan: ServePlan, reusable: Mapping[SocketKey, socket.socket]
) -> dict[tuple[str, int], list[socket.socket]]:
    """Sockets for every bind of `plan`, reusing `reusable` ones for the same address."""
    opened: list[socket.socket] = []
    sockets: dict[tuple[str, int], list[socket.socket]] = {}
    try:
        for fplan in plan.frontends:
            for index, bplan in enumerate(fplan.binds):
                for address in bplan.addresses:
                    sock = reusable.get(_socket_key(address))
                    if sock is None:
                        sock = open_listening_socket(address)
                        opened.append(sock)
                    sockets.setdefault((fplan.name, index), []).append(sock)
    except OSError:
        for sock in opened:
            sock.close()
        raise
    return sockets


def sockets_by_address(deployment: Deployment) -> dict[SocketKey, socket.socket]:
    found: dict[SocketKey, socket.socket] = {}
    for fplan in deployment.plan.frontends:
        for index, bplan in enumerate(fplan.binds):
            for address, sock in zip(
                bplan.addresses, deployment.sockets.get((fplan.name, index), []), strict=False
            ):
                found[_socket_key(address)] = sock
    return found


@dataclass
class WorkerHandle:
    slot: int
    pid: int
    deployment: int
    pipe: asyncio.WriteTransport | None = None
    write_fd: int = -1
    #: the staple table this worker was last sent (None: send it the whole table)
    sent: Mapping[CertId, bytes] | None = None


class _WorkerPipe(asyncio.BaseProtocol):
    """The master's end of a worker's pipe: says when the worker has drained what we wrote."""

    def __init__(self, on_drained: Callable[[], None]) -> None:
        self._on_drained = on_drained

    def pause_writing(self) -> None:
        pass  # we look at the buffer before every staple message instead

    def resume_writing(self) -> None:
        self._on_drained()


class DeployError(Exception):
    """A generation could not be put in service; the running one keeps serving."""


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    message: str
    when: float
    lines: tuple[str, ...] = ()


@dataclass
class Master:
    """State of the running master process."""

    config_paths: Sequence[str]
    current: Deployment
    state_dir: Path
    worker_count: int
    clock: Clock
    log_targets: Sequence[SyslogTarget] = ()
    #: the latest staple table; never mutated (the updater hands over a fresh copy each time)
    table: Mapping[CertId, bytes] = field(default_factory=dict)
    staple_interval_per_staple_s: float = STAPLE_INTERVAL_PER_STAPLE_S
    staple_interval_max_s: float = STAPLE_INTERVAL_MAX_S
    #: staple messages written to workers, and their bytes (for tests and diagnostics)
    staple_messages: int = 0
    staple_bytes: int = 0
    _last_staple_flush: float = field(default=float("-inf"), init=False, repr=False)
    _staple_timer: asyncio.TimerHandle | None = field(default=None, init=False, repr=False)
    workers: dict[int, WorkerHandle] = field(default_factory=dict)
    pools: dict[str, BackendPool] = field(default_factory=dict)
    stopping: bool = False
    reloads: list[ReloadResult] = field(default_factory=list)
    on_deployment: Callable[[Deployment], None] | None = None
    #: log lines this process lost so far (`show info` DroppedLogs): the log router's count
    dropped_logs: Callable[[], int] = lambda: 0

    def __post_init__(self) -> None:
        self.pools = self._pools_for(self.current.plan)

    # --- servers ---

    def _pools_for(self, plan: ServePlan) -> dict[str, BackendPool]:
        """The master owns server health (one set of checks, not one per worker)."""
        pools = {b.name: BackendPool(b.name, b.servers) for b in plan.backends}
        for name, pool in pools.items():  # carry states over a reload
            old = self.pools.get(name)
            if old is None:
                continue
            names = {s.name for s in pool.servers}
            for server, (health, admin) in old.states().items():
                if server in names:
                    pool.set_state(server, health)
                    pool.set_admin(server, admin)
        return pools

    def server_states(self) -> ServerStates:
        return {
            (name, server): states
            for name, pool in self.pools.items()
            for server, states in pool.states().items()
        }

    def broadcast_servers(self, _: StateChange | None = None) -> None:
        self._send(encode_servers(self.server_states()))

    # --- workers ---

    def current_workers(self) -> list[WorkerHandle]:
        return [h for h in self.workers.values() if h.deployment == self.current.number]

    def _send(self, message: bytes) -> None:
        for handle in self.current_workers():
            if handle.pipe is not None and not handle.pipe.is_closing():
                handle.pipe.write(message)

    def spawn(self, slot: int) -> WorkerHandle:
        """Fork one worker of the current deployment; the child never returns."""
        deployment = self.current
        read_fd, write_fd = os.pipe()
        # Until the worker's own handlers are in place, the signals it answers stay blocked
        # (pending, not lost): between the fork and `worker._run`, the master's handlers
        # would swallow them, and a SIGTERM right after a reload left a worker running.
        saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
            raise
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
        if pid == 0:  # child (its WORKER_SIGNALS stay blocked until worker._run)
            keep = {0, 1, 2, read_fd}
            keep.update(s.fileno() for socks in deployment.sockets.values() for s in socks)
            _close_inherited_fds(keep)
            setup = WorkerSetup(
                slot=slot,
                plan=deployment.plan,
                sockets=deployment.sockets,
                table_fd=read_fd,
                initial_table=dict(self.table),
                initial_servers=self.server_states(),
                hard_stop_after_s=deployment.hard_stop_after_s,
                log_targets=tuple(self.log_targets),
            )
            status = 1
            try:
                status = worker_main(setup)
            finally:
                os._exit(status)
        os.close(read_fd)
        handle = WorkerHandle(slot=slot, pid=pid, deployment=deployment.number, write_fd=write_fd)
        self.workers[pid] = handle
        return handle

    async def attach_pipe(self, handle: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(handle.write_fd, "wb", buffering=0, closefd=False)
        transport, _ = await loop.connect_write_pipe(
            lambda: _WorkerPipe(lambda: self._staples_drained(handle)), pipe
        )
        # resume_writing as soon as the buffer is empty again (see _send_staples)
        transport.set_write_buffer_limits(high=0)
        handle.pipe = transport
        handle.sent = None
        self._send_staples(handle)  # the whole table
        transport.write(encode_servers(self.server_states()))

    def broadcast(self, table: Mapping[CertId, bytes]) -> None:
        """Take the updater's new staple table (read-only, not copied); send it coalesced."""
        self.table = table
        if self._staple_timer is not None:
            return  # the pending send will carry this table
        loop = asyncio.get_running_loop()
        wait = self._last_staple_flush + self.staple_interval() - loop.time()
        if wait <= 0:
            self.flush_staples()
        else:
            self._staple_timer = loop.call_later(wait, self.flush_staples)

    def staple_interval(self) -> float:
        """Seconds between two staple sends: proportional to the work one costs, bounded."""
        return min(self.staple_interval_max_s, len(self.table) * self.staple_interval_per_staple_s)

    def flush_staples(self) -> None:
        """Send every current worker what changed since its last staple message."""
        if self._staple_timer is not None:
            self._staple_timer.cancel()
            self._staple_timer = None
        sent = self.staple_messages
        for handle in self.current_workers():
            self._send_staples(handle)
        if self.staple_messages > sent:
            # Only a real send starts an interval: the updater's first table (often nothing
            # new) must not hold back the first fetched staple.
            self._last_staple_flush = asyncio.get_running_loop().time()

    def _staples_drained(self, handle: WorkerHandle) -> None:
        if handle.deployment == self.current.number and handle.sent is not self.table:
            self._send_staples(handle)

    def _send_staples(self, handle: WorkerHandle) -> None:
        pipe = handle.pipe
        if pipe is None or pipe.is_closing():
            return
        if pipe.get_write_buffer_size() > 0:
            return  # still draining the last message: one merged delta when it is done
        if handle.sent is None:
            message = encode_table(self.table)
            what = "whole table"
        else:
            changes = StapleChanges.between(handle.sent, self.table)
            if not changes:
                return
            message = encode_changes(changes)
            what = f"{len(changes.changed)} changed, {len(changes.removed)} withdrawn"
        handle.sent = self.table
        pipe.write(message)
        self.staple_messages += 1
        self.staple_bytes += len(message)
        log.debug(
            "staples sent to worker #%d (%d): %s, %d bytes; table %d staples",
            handle.slot,
            handle.pid,
            what,
            len(message),
            len(self.table),
        )

    def signal_workers(self, signum: int, handles: Sequence[WorkerHandle] | None = None) -> None:
        for handle in list(self.workers.values()) if handles is None else handles:
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signum)

    def close_pipe(self, handle: WorkerHandle) -> None:
        if handle.pipe is not None:
            handle.pipe.close()
            handle.pipe = None
        if handle.write_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(handle.write_fd)
            handle.write_fd = -1

    # --- reload ---

    async def reload(self, updater: OcspUpdater) -> ReloadResult:
        """Load the configuration again; switch to it only when it is entirely valid."""
        sink = io.StringIO()
        generation = await asyncio.to_thread(
            load_generation, self.config_paths, now=self.clock.now(), err=sink
        )
        lines = tuple(sink.getvalue().splitlines())
        for line in lines:
            log.warning("reload: %s", line)
        if generation is None or not generation.ok:
            return self._reload_failed("the new configuration has errors (see above)", lines)
        problems: list[str] = []
        try:
            number = await self.deploy(generation, updater, problems=problems)
        except DeployError as error:
            return self._reload_failed(str(error), lines + tuple(problems))
        result = ReloadResult(
            True, f"reloaded: generation {number}", time.time(), lines + tuple(problems)
        )
        self.reloads.append(result)
        return result

    async def deploy(
        self, generation: Generation, updater: OcspUpdater, *, problems: list[str] | None = None
    ) -> int:
        """Put `generation` in service: new workers on the same sockets, old ones drain."""
        number = self.current.number + 1
        plan, found = await asyncio.to_thread(build_plan, generation, number=number)
        for problem in found:
            log.warning("reload: %s", problem)
            if problems is not None:
                problems.append(str(problem))
        if plan is None:
            raise DeployError("the new configuration cannot be served (see above)")
        previous = self.current
        reusable = sockets_by_address(previous)
        try:
            sockets = open_sockets(plan, reusable)
        except OSError as error:
            raise DeployError(f"cannot listen: {error.strerror}") from None
        self.current = Deployment(number, generation, plan, sockets)
        self.pools = self._pools_for(plan)
        await updater.reconfigure(updater_entries(generation))
        old_workers = [h for h in self.workers.values() if h.deployment == previous.number]
        for slot in range(self.worker_count):
            await self.attach_pipe(self.spawn(slot))
        # Old workers stop accepting and drain; the shared sockets keep every queued client.
        self.signal_workers(signal.SIGUSR1, old_workers)
        for handle in old_workers:
            self.close_pipe(handle)
        kept = {id(s) for socks in sockets.values() for s in socks}
        for socks in previous.sockets.values():
            for sock in socks:
                if id(sock) not in kept:
                    sock.close()
        if self.on_deployment is not None:
            self.on_deployment(self.current)
        log.log(
            NOTICE,
            "reload: generation %d serving (%d workers, %s); %d old workers draining",
            number,
            self.worker_count,
            ", ".join(self.current.addresses()),
            len(old_workers),
        )
        return number

    def _reload_failed(self, reason: str, lines: tuple[str, ...] = ()) -> ReloadResult:
        result = ReloadResult(
            False,
            f"reload failed, still serving generation {self.current.number}: {reason}",
            time.time(),
            lines,
        )
        self.reloads.append(result)
        log.error("%s", result.message)
        return result


async def _master_main(master: Master, updater: OcspUpdater) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    exit_status = 0
    pending: set[asyncio.Task[object]] = set()
    reload_lock = asyncio.Lock()
    checkers: list[asyncio.Task[None]] = []

    def keep(task: asyncio.Task[object]) -> None:
        pending.add(task)
        task.add_done_callback(pending.discard)

    def start_checkers() -> None:
        for checker in checkers:
            checker.cancel()
        checkers[:] = [
            loop.create_task(HealthChecker(pool, on_change=master.broadcast_servers).run())
            for pool in master.pools.values()
            if any(server.check for server in pool.servers)
        ]

    for handle in list(master.workers.values()):
        await master.attach_pipe(handle)

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            handle = master.workers.pop(pid, None)
            if handle is None:
                continue
            master.close_pipe(handle)
            code = os.waitstatus_to_exitcode(status)
            old = handle.deployment != master.current.number
            if master.stopping or old:
                log.log(NOTICE, "worker #%d (%d) exited with status %d", handle.slot, pid, code)
            else:
                replacement = master.spawn(handle.slot)
                keep(loop.create_task(master.attach_pipe(replacement)))
                log.warning(
                    "worker #%d (%d) exited with status %d; restarting it as %d",
                    handle.slot,
                    pid,
                    code,
                    replacement.pid,
                )
        if master.stopping and not master.workers:
            done.set()

    async def reload() -> ReloadResult:
        async with reload_lock:
            if master.stopping:
                return ReloadResult(False, "staplegate is stopping", time.time())
            _sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            log.log(NOTICE, "reload requested: loading %s", ", ".join(master.config_paths))
            result = await master.reload(updater)
            if result.ok:
                start_checkers()
            _sd_notify("READY=1")
            return result

    def graceful() -> None:
        if master.stopping:
            return
        master.stopping = True
        log.log(NOTICE, "SIGTERM received: stopping gracefully")
        _sd_notify("STOPPING=1")
        updater.stop()
        master.signal_workers(signal.SIGTERM)
        if not master.workers:
            done.set()

    def immediate() -> None:
        nonlocal exit_status
        master.stopping = True
        log.log(NOTICE, "SIGINT received: stopping now")
        _sd_notify("STOPPING=1")
        updater.stop()
        master.signal_workers(signal.SIGINT)
        exit_status = 130
        if not master.workers:
            done.set()

    loop.add_signal_handler(signal.SIGCHLD, reap)
    loop.add_signal_handler(signal.SIGTERM, graceful)
    loop.add_signal_handler(signal.SIGINT, immediate)
    for signum in (signal.SIGUSR2, signal.SIGHUP):
        loop.add_signal_handler(signum, lambda: keep(loop.create_task(reload())))
    reap()  # a worker may have died before the handler was installed

    started = asyncio.Event()
    updater_task = loop.create_task(updater.run(started=started))
    runtime: RuntimeServer | None = None
    try:
        start_checkers()
        await _until_started(started, updater_task, done)
        if not master.stopping:  # a signal during start-up: stop as asked, don't announce
            runtime = await _start_runtime_api(master, updater, reload)
            if runtime is None and master.current.generation.config.global_.stats_sockets:
                graceful()
            log.log(
                NOTICE,
                "staplegate started: %d workers, listening on %s, state directory %s",
                len(master.workers),
                ", ".join(master.current.addresses()),
                master.state_dir,
            )
            _sd_notify("READY=1")
    except Exception as error:
        # Whatever failed, never stay alive half-started (no API, no staples, deaf to
        # signals while waiting for a start that cannot come): say why and exit non-zero.
        _startup_failed(error)
        master.stopping = True
        _sd_notify("STOPPING=1")
        updater.stop()
        master.signal_workers(signal.SIGINT)  # they never served: no drain needed
        for checker in checkers:
            checker.cancel()
        if master.workers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STARTUP_ABORT_WAIT_S):
                    await done.wait()
        if runtime is not None:
            await runtime.close()
        await asyncio.gather(updater_task, return_exceptions=True)
        return 1
    await done.wait()
    if runtime is not None:
        await runtime.close()
    for checker in checkers:
        checker.cancel()
    updater.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await updater_task
    await updater.flush()
    return exit_status


class StartupError(RuntimeError):
    """The master could not finish starting; the message says what failed."""


async def _until_started(
    started: asyncio.Event, updater_task: asyncio.Task[None], stopping: asyncio.Event
) -> None:
    """Return once the updater published its first staple table or the master was told to
    stop during start-up; raise StartupError when the updater ended without starting (a
    master waiting on `started` alone would wait forever, deaf to SIGTERM and SIGINT)."""
    waiters = [
        asyncio.ensure_future(started.wait()),
        asyncio.ensure_future(stopping.wait()),
    ]
    try:
        await asyncio.wait([*waiters, updater_task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    if started.is_set() or stopping.is_set():
        return
    if updater_task.cancelled():
        raise StartupError("the OCSP updater was cancelled before it loaded the stored staples")
    failure = updater_task.exception()
    raise StartupError(
        f"the OCSP updater failed while loading the stored staples: {failure!r}"
    ) from failure


def _startup_failed(error: BaseException) -> None:
    """One clear `[ALERT]` line (log targets and stderr), then the traceback on stderr."""
    message = f"[ALERT] staplegate could not start: {error}; exiting"
    log.critical("%s", message)
    print(message, file=sys.stderr)
    traceback.print_exception(error, file=sys.stderr)


async def _start_runtime_api(
    master: Master, updater: OcspUpdater, reload: Callable[[], Awaitable[ReloadResult]]
) -> RuntimeServer | None:
    """The `stats socket` listeners (after the fork, so workers never hold them)."""
    from staplegate.master_runtime import MasterRuntime

    global_settings = master.current.generation.config.global_
    listeners = listeners_from_config(global_settings)
    if not listeners:
        return None
    handlers = RuntimeHandlers(MasterRuntime(master, updater, reload), clock=master.clock)
    server = RuntimeServer(listeners, handlers, limits=limits_from_config(global_settings))
    try:
        await server.start()
    except RuntimeServerError as error:
        log.error("[ALERT] cannot start the runtime API: %s", error)
        return None
    log.log(NOTICE, "runtime API listening on %s", ", ".join(server.bound))
    return server


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state, if it is listening."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def _daemonize() -> None:
    """Detach from the terminal (`-D`): double fork, new session, stdio on /dev/null."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def run(
    paths: Sequence[str],
    *,
    state_dir: str | None,
    workers: int | None = None,
    pidfile: str | None = None,
    daemon: bool = False,
) -> int:
    """Run staplegate on the configuration at `paths` until stopped; the exit status."""
    clock = SystemClock()
    generation, plan = validate(paths, now=clock.now(), err=sys.stderr, startup=True)
    if generation is None or plan is None:
        print("[ALERT] config : Fatal errors found in configuration.", file=sys.stderr)
        return 1
    try:
        sockets = open_sockets(plan, {})
    except OSError as error:
        print(
            "[ALERT] config : Some protocols failed to start their listeners! Exiting. "
            f"({error.strerror})",
            file=sys.stderr,
        )
        return 1

    settings = generation.config.global_
    pidfile = pidfile or settings.pidfile
    pid_handle = None
    if pidfile:
        # opened before detaching, as HAProxy does, so `-D` reports it instead of dying silently
        try:
            pid_handle = open(pidfile, "w", encoding="ascii")  # noqa: SIM115 - closed below
        except OSError as error:
            print(
                f"[ALERT] Cannot create pidfile {pidfile}: {error.strerror or error}.",
                file=sys.stderr,
            )
            for socks in sockets.values():
                for sock in socks:
                    sock.close()
            return 1
    directory = resolve_state_dir(state_dir, os.environ, is_root=os.geteuid() == 0)
    store = FileStapleStore(directory)
    try:
        # checked before detaching, like the pidfile: a state directory that cannot be used
        # would otherwise be found at the first save, by a daemon nobody watches
        store.ensure_directory()
    except StoreError as error:
        print(f"[ALERT] Cannot use the state directory {error}.", file=sys.stderr)
        for socks in sockets.values():
            for sock in socks:
                sock.close()
        if pid_handle is not None:
            pid_handle.close()
            with contextlib.suppress(OSError):
                os.unlink(pid_handle.name)
        return 1
    if daemon or settings.daemon:
        _daemonize()
    if pid_handle is not None:
        with pid_handle:
            pid_handle.write(f"{os.getpid()}\n")

    targets = log_targets(settings)
    router = LogRouter(targets)
    staplegate_logger = logging.getLogger("staplegate")
    staplegate_logger.setLevel(logging.DEBUG)
    staplegate_logger.propagate = False
    router.install(staplegate_logger)

    worker_count = workers or settings.nbthread or os.cpu_count() or 1
    master = Master(
        config_paths=tuple(paths),
        current=Deployment(1, generation, plan, sockets),
        state_dir=directory,
        worker_count=worker_count,
        clock=clock,
        log_targets=targets,
        dropped_logs=lambda: router.dropped,
    )
    proxy = settings.ocsp_update_httpproxy
    updater = OcspUpdater(
        updater_entries(generation),
        update_settings=update_settings_of(settings),
        fetch_settings=FetchSettings(
            proxy=f"{proxy.host}:{proxy.port}" if proxy else None,
            # 0 means no connect timeout; the whole fetch's own deadline still bounds it
            connect_timeout=settings.httpclient.timeout_connect_ms / 1000 or 15.0,
            connect_retries=settings.httpclient.retries,
        ),
        on_staples=master.broadcast,
        store=store,
        clock=clock,
        max_concurrent=settings.ocsp_update_maxconn,
        host_rate=settings.ocsp_update_rate_limit,
        host_burst=min(settings.ocsp_update_rate_limit, 50),
    )
    # Fork before the master's event loop exists (restarts later fork from inside it).
    for slot in range(worker_count):
        master.spawn(slot)
    try:
        return asyncio.run(_master_main(master, updater))
    except Exception as error:  # a bug: exit with a clear message, workers stopped
        message = f"[ALERT] staplegate stopped on an internal error: {error!r}; exiting"
        print(message, file=sys.stderr)
        traceback.print_exception(error, file=sys.stderr)
        master.signal_workers(signal.SIGINT)
        return 1
    finally:
        router.close()
        for socks in master.current.sockets.values():
            for sock in socks:
                sock.close()
        if pidfile:
            with contextlib.suppress(OSError):
                Path(pidfile).unlink()
