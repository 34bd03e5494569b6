"""The composition root: the master process, its workers, the OCSP updater.

Theory of operation. `run()` loads the configuration and certificates (exactly what
`staplegate -c` checks), builds the TLS contexts and opens every listening socket, then forks
the workers: they inherit the sockets and contexts (so they share session-ticket keys) and
serve TLS. The master keeps the sockets, runs the OCSP updater — which loads persisted
staples from the state directory, verifies them, fetches what is missing, and refreshes on
schedule — and sends every new staple table to each worker over its pipe. A worker that dies
is restarted with the current table, without touching the disk. SIGTERM stops gracefully
(workers drain, bounded by `hard-stop-after`), SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from staplegate.certs import OcspDisposition
from staplegate.check import load_generation
from staplegate.clock import SystemClock
from staplegate.config.model import GlobalSettings, LogTargetKind
from staplegate.fetch.http import FetchSettings
from staplegate.fetch.updater import OcspUpdater, UpdaterEntry
from staplegate.generation import Generation
from staplegate.observe.log import NOTICE, LogRouter, SyslogTarget
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.proxy.backends import BackendPool, StateChange
from staplegate.proxy.health import HealthChecker
from staplegate.serving import ServePlan, build_plan, open_listening_socket
from staplegate.store import FileStapleStore, resolve_state_dir
from staplegate.worker import (
    ServerStates,
    WorkerSetup,
    encode_servers,
    encode_table,
    worker_main,
)

log = logging.getLogger("staplegate")


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


@dataclass
class WorkerHandle:
    slot: int
    pid: int
    pipe: asyncio.WriteTransport | None = None
    write_fd: int = -1


@dataclass
class Master:
    """State of the running master process."""

    generation: Generation
    plan: ServePlan
    sockets: dict[tuple[str, int], list[socket.socket]]
    state_dir: Path
    worker_count: int
    log_targets: Sequence[SyslogTarget] = ()
    table: dict[CertId, bytes] = field(default_factory=dict)
    workers: dict[int, WorkerHandle] = field(default_factory=dict)
    pools: dict[str, BackendPool] = field(default_factory=dict)
    stopping: bool = False

    def __post_init__(self) -> None:
        # The master owns server health (one set of checks, not one per worker) and admin state.
        self.pools = {b.name: BackendPool(b.name, b.servers) for b in self.plan.backends}

    def server_states(self) -> ServerStates:
        return {
            (name, server): states
            for name, pool in self.pools.items()
            for server, states in pool.states().items()
        }

    def broadcast_servers(self, _: StateChange | None = None) -> None:
        self._send(encode_servers(self.server_states()))

    def _send(self, message: bytes) -> None:
        for handle in self.workers.values():
            if handle.pipe is not None and not handle.pipe.is_closing():
                handle.pipe.write(message)

    @property
    def hard_stop_after_s(self) -> float | None:
        ms = self.generation.config.global_.hard_stop_after_ms
        return None if ms is None else ms / 1000.0

    def spawn(self, slot: int) -> WorkerHandle:
        """Fork one worker with the current table; the child never returns."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            os.close(write_fd)
            for other in self.workers.values():
                if other.write_fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(other.write_fd)
            setup = WorkerSetup(
                slot=slot,
                plan=self.plan,
                sockets=self.sockets,
                table_fd=read_fd,
                initial_table=dict(self.table),
                initial_servers=self.server_states(),
                hard_stop_after_s=self.hard_stop_after_s,
                log_targets=tuple(self.log_targets),
            )
            status = 1
            try:
                status = worker_main(setup)
            finally:
                os._exit(status)
        os.close(read_fd)
        handle = WorkerHandle(slot=slot, pid=pid, write_fd=write_fd)
        self.workers[pid] = handle
        return handle

    async def attach_pipe(self, handle: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(handle.write_fd, "wb", buffering=0, closefd=False)
        transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, pipe)
        handle.pipe = transport
        transport.write(encode_table(self.table))
        transport.write(encode_servers(self.server_states()))

    def broadcast(self, table: Mapping[CertId, bytes]) -> None:
        self.table = dict(table)
        self._send(encode_table(self.table))

    def signal_workers(self, signum: int) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def close_pipe(self, handle: WorkerHandle) -> None:
        if handle.pipe is not None:
            handle.pipe.close()
            handle.pipe = None
        if handle.write_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(handle.write_fd)
            handle.write_fd = -1


async def _master_main(master: Master, updater: OcspUpdater) -> int:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    exit_status = 0
    pending: set[asyncio.Task[None]] = set()
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
            if master.stopping:
                log.log(NOTICE, "worker #%d (%d) exited with status %d", handle.slot, pid, code)
            else:
                log.warning(
                    "worker #%d (%d) exited with status %d; restarting it", handle.slot, pid, code
                )
                replacement = master.spawn(handle.slot)
                task = loop.create_task(master.attach_pipe(replacement))
                pending.add(task)
                task.add_done_callback(pending.discard)
        if master.stopping and not master.workers:
            done.set()

    def graceful() -> None:
        if master.stopping:
            return
        master.stopping = True
        log.log(NOTICE, "SIGTERM received: stopping gracefully")
        updater.stop()
        master.signal_workers(signal.SIGTERM)
        if not master.workers:
            done.set()

    def immediate() -> None:
        nonlocal exit_status
        master.stopping = True
        log.log(NOTICE, "SIGINT received: stopping now")
        updater.stop()
        master.signal_workers(signal.SIGINT)
        exit_status = 130
        if not master.workers:
            done.set()

    loop.add_signal_handler(signal.SIGCHLD, reap)
    loop.add_signal_handler(signal.SIGTERM, graceful)
    loop.add_signal_handler(signal.SIGINT, immediate)
    reap()  # a worker may have died before the handler was installed

    checkers = [
        loop.create_task(HealthChecker(pool, on_change=master.broadcast_servers).run())
        for pool in master.pools.values()
        if any(server.check for server in pool.servers)
    ]
    started = asyncio.Event()
    updater_task = loop.create_task(updater.run(started=started))
    await started.wait()
    listening = ", ".join(
        f"{address}" for f in master.plan.frontends for b in f.binds for address in b.addresses
    )
    log.log(
        NOTICE,
        "staplegate started: %d workers, listening on %s, state directory %s",
        len(master.workers),
        listening,
        master.state_dir,
    )
    _sd_notify("READY=1")
    await done.wait()
    _sd_notify("STOPPING=1")
    for checker in checkers:
        checker.cancel()
    updater.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await updater_task
    await updater.flush()
    return exit_status


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state, if it is listening."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def run(paths: Sequence[str], *, state_dir: str | None, workers: int | None = None) -> int:
    """Run staplegate on the configuration at `paths` until stopped; the exit status."""
    clock = SystemClock()
    generation = load_generation(paths, now=clock.now(), err=sys.stderr)
    if generation is None or not generation.ok:
        print("[ALERT] config : Fatal errors found in configuration.", file=sys.stderr)
        return 1
    plan, problems = build_plan(generation, number=1)
    for problem in problems:
        print(problem, file=sys.stderr)
    if plan is None:
        print("[ALERT] config : Fatal errors found in configuration.", file=sys.stderr)
        return 1

    sockets: dict[tuple[str, int], list[socket.socket]] = {}
    try:
        for fplan in plan.frontends:
            for index, bplan in enumerate(fplan.binds):
                for address in bplan.addresses:
                    sockets.setdefault((fplan.name, index), []).append(
                        open_listening_socket(address)
                    )
    except OSError as error:
        print(
            f"[ALERT] config : [{sys.argv[0]}.main()] Some protocols failed to start their "
            f"listeners! Exiting. ({error.strerror})",
            file=sys.stderr,
        )
        return 1

    settings = generation.config.global_
    router = LogRouter(log_targets(settings))
    staplegate_logger = logging.getLogger("staplegate")
    staplegate_logger.setLevel(logging.DEBUG)
    staplegate_logger.propagate = False
    router.install(staplegate_logger)

    directory = resolve_state_dir(state_dir, os.environ, is_root=os.geteuid() == 0)
    store = FileStapleStore(directory)
    worker_count = workers or settings.nbthread or os.cpu_count() or 1
    master = Master(
        generation=generation,
        plan=plan,
        sockets=sockets,
        state_dir=directory,
        worker_count=worker_count,
        log_targets=log_targets(settings),
    )
    proxy = settings.ocsp_update_httpproxy
    updater = OcspUpdater(
        updater_entries(generation),
        update_settings=UpdateSettings(
            mindelay=settings.ocsp_update_mindelay_s, maxdelay=settings.ocsp_update_maxdelay_s
        ),
        fetch_settings=FetchSettings(proxy=f"{proxy.host}:{proxy.port}" if proxy else None),
        on_staples=master.broadcast,
        store=store,
        clock=clock,
    )
    # Fork before the master's event loop exists (restarts later fork from inside it).
    for slot in range(worker_count):
        master.spawn(slot)
    try:
        return asyncio.run(_master_main(master, updater))
    finally:
        router.close()
        for socks in sockets.values():
            for sock in socks:
                sock.close()
