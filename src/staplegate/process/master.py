"""The master's state: the deployment in service, its workers, staple distribution, reloads.

The master keeps the listening sockets, owns the servers' health (one set of checks, not one
per worker), and sends staple changes and server states to each worker over its pipe
(`process.ipc`). A worker that dies is restarted with the current table, without touching
the disk. `process.supervisor` drives it (signals, reaping, start-up); `app.run` builds it.

Staples reach workers coalesced and as deltas (`Master.broadcast`). The updater reports the
whole table after every single change, so a cold start with N certificates would otherwise send
N tables of up to N staples to every worker: O(N²) bytes, pickling and table rebuilds
(docs/performance.md has the figures). Instead the master keeps only the latest table and
sends it at most once per interval, at once when the last send is older than that (so one
`set ssl ocsp-response`, refresh or withdrawal reaches new handshakes within the interval);
each worker gets the changes since what it was last sent, the whole table when its pipe opens.
The interval grows with the table (`staple_interval`): finding what changed costs ~0.5 µs per
staple per worker, so 50 µs per staple keeps that under ~2 % of the master at any size, while
a small table is sent at once (4 staples: 0.2 ms; 2,000: 100 ms; capped at 1 s from 20,000 —
far inside the 300 s by which a staple is withdrawn before its nextUpdate). Pipe writes never
block the loop, and a worker that has not drained its previous message is skipped until it
has (the transport tells us), then gets one merged delta: a slow worker costs at most one
message of buffer, never a backlog.

A reload loads the new configuration in the master; if it has any error the old one keeps
serving and every error is logged; otherwise new workers start on the same sockets (an
address present in both keeps its socket, so nothing queued is lost), the old workers stop
accepting and finish their connections (bounded by `hard-stop-after`), and the updater keeps
every verified staple whose CertId still exists, fetching only for new certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from staplegate.certs import OcspDisposition
from staplegate.clock import Clock
from staplegate.config.model import CrlWatchMode, GlobalSettings
from staplegate.deploy.generation import Generation, load_generation
from staplegate.deploy.plan import ServePlan, build_plan
from staplegate.observe.log import NOTICE, SyslogTarget
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.process.ipc import (
    ServerStates,
    StapleChanges,
    WorkerPipe,
    encode_admin_result,
    encode_changes,
    encode_metrics,
    encode_servers,
    encode_stats_pages,
    encode_table,
    read_reports,
)
from staplegate.process.sockets import PlanSockets, open_sockets, sockets_by_address
from staplegate.process.traffic import TrafficTotals, WorkerReport
from staplegate.process.worker import WORKER_SIGNALS, WorkerSetup, worker_main
from staplegate.proxy.backends import BackendPool, StateChange
from staplegate.proxy.stats_admin import AdminMessage
from staplegate.updater.crl_watch import CrlTarget, watched_url
from staplegate.updater.driver import UpdaterEntry
from staplegate.updater.service import OcspUpdater

log = logging.getLogger("staplegate")

#: Staple messages to workers are at least this many seconds apart per staple in the table...
STAPLE_INTERVAL_PER_STAPLE_S = 50e-6
#: ...and at most this far apart (see the module docstring for both figures).
STAPLE_INTERVAL_MAX_S = 1.0


def updater_entries(generation: Generation) -> list[UpdaterEntry]:
    """One entry per certificate that has an OCSP entry (`OcspDisposition.ENTRY`, decided by
    `certs.readiness.assess_ocsp` with HAProxy's load-time rules)."""
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
                uri=readiness.ocsp_uri,
                auto_update=readiness.auto_update and not disabled,
                # the AIA's other OCSP URLs, unless an override replaced them all
                fallback_uris=cert.ocsp_uris[1:] if readiness.ocsp_uri == cert.ocsp_uri else (),
                sidecar_ocsp=cert.ocsp.der if cert.ocsp else None,
            )
        )
    return entries


def _shared_store_of(generation: Generation) -> tuple[str | None, str | None]:
    settings = generation.config.global_
    return settings.ocsp_update_shared_store, settings.ocsp_update_shared_store_password_file


def crl_targets(generation: Generation) -> list[CrlTarget]:
    """The certificates whose CRL the watch follows (`ocsp-update.crl-watch`): with
    `no-ocsp-only` those without an OCSP URL, with `on` all, with `off` none; each needs an
    http(s) CRL distribution point and a known issuer."""
    mode = generation.config.global_.ocsp_update_crl_watch
    if mode is CrlWatchMode.OFF:
        return []
    targets: dict[str, CrlTarget] = {}
    for entry in generation.loaded():
        cert = entry.certificate
        if cert is None or cert.issuer is None or watched_url(cert.leaf) is None:
            continue
        if mode is CrlWatchMode.NO_OCSP_ONLY and cert.ocsp_uri is not None:
            continue
        targets.setdefault(entry.name, CrlTarget(entry.name, cert.leaf, cert.issuer))
    return list(targets.values())


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


@dataclass
class Deployment:
    """One configuration generation in service: its plan and its listening sockets."""

    number: int
    generation: Generation
    plan: ServePlan
    sockets: PlanSockets

    @property
    def hard_stop_after_s(self) -> float | None:
        ms = self.generation.config.global_.hard_stop_after_ms
        return None if ms is None else ms / 1000.0

    def addresses(self) -> list[str]:
        return [str(a) for f in self.plan.frontends for b in f.binds for a in b.addresses]


@dataclass
class WorkerHandle:
    slot: int
    pid: int
    deployment: int
    pipe: asyncio.WriteTransport | None = None
    write_fd: int = -1
    #: the staple table this worker was last sent (None: send it the whole table)
    sent: Mapping[CertId, bytes] | None = None
    report_fd: int = -1  # the read end of its report pipe (until `attach_pipe` takes it)
    #: the metrics and stats pages this worker was last sent (a push skips a busy worker;
    #: it gets the latest once its pipe drains)
    exposition_sent: bytes | None = None
    pages_sent: Mapping[str, tuple[bytes, bytes, bytes]] | None = None


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
    #: every worker's traffic counters, totals kept across reloads (`process.traffic`)
    traffic: TrafficTotals = field(default_factory=TrafficTotals)
    #: the latest exposition pushed to workers (None: none yet, or no rule uses the service)
    exposition: bytes | None = None
    #: the latest stats pages pushed to workers: frontend name -> (HTML, `;csv`, admin HTML)
    stats_pages: Mapping[str, tuple[bytes, bytes, bytes]] = field(default_factory=dict)
    #: applies a `stats admin` action a worker sent (the supervisor sets it)
    on_stats_admin: Callable[[WorkerHandle, AdminMessage], None] | None = None
    _report_tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.pools = self._pools_for(self.current.plan)

    # --- servers ---

    def _pools_for(self, plan: ServePlan) -> dict[str, BackendPool]:
        """The master owns server health (one set of checks, not one per worker)."""
        pools = {b.name: b.pool() for b in plan.backends}
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
        report_read_fd, report_write_fd = os.pipe()
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
            keep = {0, 1, 2, read_fd, report_write_fd}
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
                report_fd=report_write_fd,
            )
            status = 1
            try:
                status = worker_main(setup)
            finally:
                os._exit(status)
        os.close(read_fd)
        os.close(report_write_fd)
        handle = WorkerHandle(
            slot=slot,
            pid=pid,
            deployment=deployment.number,
            write_fd=write_fd,
            report_fd=report_read_fd,
        )
        self.workers[pid] = handle
        return handle

    async def attach_pipe(self, handle: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(handle.write_fd, "wb", buffering=0, closefd=False)
        transport, _ = await loop.connect_write_pipe(
            lambda: WorkerPipe(lambda: self._staples_drained(handle)), pipe
        )
        # resume_writing as soon as the buffer is empty again (see _send_staples)
        transport.set_write_buffer_limits(high=0)
        handle.pipe = transport
        handle.sent = None
        self._send_staples(handle)  # the whole table
        transport.write(encode_servers(self.server_states()))
        if self.exposition is not None:
            transport.write(encode_metrics(self.exposition))
            handle.exposition_sent = self.exposition
        if self.stats_pages:
            transport.write(encode_stats_pages(self.stats_pages))
            handle.pages_sent = self.stats_pages
        if handle.report_fd >= 0:
            await self._follow_reports(handle)

    async def _follow_reports(self, handle: WorkerHandle) -> None:
        """Read the worker's reports into `traffic` until its pipe closes, then retire it."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(handle.report_fd, "rb", buffering=0)
        handle.report_fd = -1  # the transport owns (and closes) it now
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        pid = handle.pid

        def update(report: WorkerReport) -> None:
            self.traffic.update(pid, report)

        def admin(message: AdminMessage) -> None:
            if self.on_stats_admin is not None:
                self.on_stats_admin(handle, message)

        async def follow() -> None:
            try:
                await read_reports(reader, update, admin)
            finally:
                transport.close()
                self.traffic.retire(pid)

        task = loop.create_task(follow())
        self._report_tasks.add(task)
        task.add_done_callback(self._report_tasks.discard)

    # --- the prometheus-exporter service ---

    def push_metrics(self, exposition: bytes) -> None:
        """Give every current worker what `use-service prometheus-exporter` answers now.

        A worker still draining an earlier message skips this one: a metrics snapshot is
        never worth a backlog. It gets the latest snapshot once its pipe drains
        (`_staples_drained`), not a render interval later: at 50,000 certificates the first
        push came while the workers drained a 40 MB staple delta, and scrapes got 503 for
        the next 15 s.
        """
        self.exposition = exposition
        message = encode_metrics(exposition)
        for handle in self.current_workers():
            pipe = handle.pipe
            if pipe is not None and not pipe.is_closing() and pipe.get_write_buffer_size() == 0:
                pipe.write(message)
                handle.exposition_sent = exposition

    def push_stats_pages(
        self, pages: Mapping[str, tuple[bytes, bytes, bytes]], *, always: bool = False
    ) -> None:
        """Give every current worker each stats frontend's page (skipped like metrics,
        unless `always`: after a `stats admin` action, the next page load shows it)."""
        self.stats_pages = pages
        message = encode_stats_pages(pages)
        for handle in self.current_workers():
            pipe = handle.pipe
            if (
                pipe is not None
                and not pipe.is_closing()
                and (always or pipe.get_write_buffer_size() == 0)
            ):
                pipe.write(message)
                handle.pages_sent = pages

    def answer_stats_admin(self, handle: WorkerHandle, request_id: int, code: str) -> None:
        """Tell the worker that asked how its `stats admin` action went."""
        pipe = handle.pipe
        if pipe is not None and not pipe.is_closing():
            pipe.write(encode_admin_result(request_id, code))

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
        """The worker's pipe is empty: what it missed meanwhile, staples first."""
        if handle.deployment != self.current.number:
            return
        if handle.sent is not self.table:
            self._send_staples(handle)
        pipe = handle.pipe
        if pipe is None or pipe.is_closing() or pipe.get_write_buffer_size() > 0:
            return  # the staples went first; the rest at the next drain
        if self.exposition is not None and handle.exposition_sent is not self.exposition:
            pipe.write(encode_metrics(self.exposition))
            handle.exposition_sent = self.exposition
        if pipe.get_write_buffer_size() > 0:
            return  # the pages at the next drain
        if self.stats_pages and handle.pages_sent is not self.stats_pages:
            pipe.write(encode_stats_pages(self.stats_pages))
            handle.pages_sent = self.stats_pages

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
        if handle.report_fd >= 0:  # never attached: nobody reads its reports
            with contextlib.suppress(OSError):
                os.close(handle.report_fd)
            handle.report_fd = -1

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
        reusable = sockets_by_address(previous.plan, previous.sockets)
        try:
            sockets = open_sockets(plan, reusable)
        except OSError as error:
            raise DeployError(f"cannot listen: {error.strerror}") from None
        self.current = Deployment(number, generation, plan, sockets)
        self.pools = self._pools_for(plan)
        await updater.reconfigure(updater_entries(generation))
        if _shared_store_of(generation) != _shared_store_of(previous.generation):
            log.warning("reload: ocsp-update.shared-store changes take effect at the next restart")
        updater.configure_revoked_hook(
            generation.config.global_.ocsp_update_revoked_hook, self.state_dir
        )
        updater.start_crl_watch(crl_targets(generation), self.state_dir)
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
