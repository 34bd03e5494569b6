"""A worker process: terminate TLS on inherited sockets, staple from a table the master feeds.

A worker never fetches, never checks servers, never reads the configuration and never
touches the disk: the master built its TLS contexts and opened its sockets before forking it,
and sends it staple changes and server states over a pipe (`process.ipc`), which it applies
to its `StapleTable` in place: the event loop runs one message to completion before the next
handshake callback, so no handshake ever sees half a message, and the cost is proportional to
the change, not to the table (replacing a 10,000-entry table recomputes 10,000 CertId DER
keys: ~85 ms per message).
It reports its traffic counters to the master over a second pipe every `REPORT_INTERVAL_S`
and once more when it stops (`process.ipc.ReportWriter`); reading them costs the data plane
nothing (plain attribute reads of counters it keeps anyway).
SIGTERM and SIGUSR1 stop accepting and let connections finish (bounded by `hard-stop-after`);
SIGINT exits at once; the pipe closing (master gone) is a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import uvloop

from staplegate.clock import SystemClock
from staplegate.deploy.plan import ServePlan
from staplegate.deploy.routing import make_content_check, make_router
from staplegate.observe.accesslog import tcplog_writer
from staplegate.observe.log import LogRouter, SyslogTarget
from staplegate.ocsp.certid import CertId
from staplegate.process.ipc import ReportWriter, ServerStates, read_messages
from staplegate.process.traffic import WorkerReport, frontend_counters
from staplegate.proxy.accept import serve
from staplegate.proxy.backends import BackendPool
from staplegate.proxy.frontend import BindSocket, FrontendRuntime
from staplegate.proxy.http_pool import HttpFrontend
from staplegate.proxy.stats_admin import AdminChannel
from staplegate.tls.staples import StapleTable

log = logging.getLogger("staplegate.worker")

#: The signals a worker answers (stop, drain, hard stop). `Master.spawn` blocks them across
#: the fork and `_run` unblocks them once its handlers are installed, so none is lost.
WORKER_SIGNALS: Final = frozenset((signal.SIGTERM, signal.SIGUSR1, signal.SIGINT))
#: how often a worker reports its counters to the master ("at least once a second")
REPORT_INTERVAL_S: Final = 0.5


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker inherits from the master at fork time."""

    slot: int
    plan: ServePlan
    sockets: Mapping[tuple[str, int], Sequence[socket.socket]]  # (frontend, bind index)
    table_fd: int
    initial_table: Mapping[CertId, bytes]
    initial_servers: ServerStates
    hard_stop_after_s: float | None
    log_targets: Sequence[SyslogTarget] = ()
    report_fd: int = -1  # the write end of the report pipe (-1: none)


def collect_report(
    frontends: Sequence[FrontendRuntime], pools: Mapping[str, BackendPool]
) -> WorkerReport:
    """This worker's cumulative counters, for the master (`process.traffic`)."""
    by_frontend = {
        frontend.name: frontend_counters(
            frontend.stats, frontend.http.stats if frontend.http is not None else None
        )
        for frontend in frontends
    }
    servers = {
        (backend, server.name): {"scur": pool.active(server), "stot": pool.served(server)}
        for backend, pool in pools.items()
        for server in pool.servers
    }
    return WorkerReport(by_frontend, servers)


def _usable_servers(pools: dict[str, BackendPool]) -> Callable[[str], int]:
    """`nbsrv(backend)` for conditions, from this worker's pools (health from the master)."""

    def count(name: str) -> int:
        pool = pools.get(name)
        return pool.usable_count() if pool is not None else 0

    return count


async def _run(setup: WorkerSetup) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    table = StapleTable(setup.initial_table)
    pools = {b.name: b.pool() for b in setup.plan.backends}
    for (backend, server), (health, admin) in setup.initial_servers.items():
        if backend in pools:
            pools[backend].set_state(server, health)
            pools[backend].set_admin(server, admin)
    backend_plans = {b.name: b for b in setup.plan.backends}
    backend_checks = {
        b.name: check
        for b in setup.plan.backends
        if (check := make_content_check(b, pools)) is not None
    }
    http_backends = {b.name: b.http for b in setup.plan.backends}
    listeners: list[BindSocket] = []
    frontends: list[FrontendRuntime] = []
    for fplan in setup.plan.frontends:
        retries = 3
        if fplan.default_backend in backend_plans:
            retries = backend_plans[fplan.default_backend].retries
        http = None
        if fplan.http is not None:
            http = HttpFrontend(dataclasses.replace(fplan.http, backends=http_backends))
            http.usable_servers = _usable_servers(pools)
        frontend = FrontendRuntime(
            name=fplan.name,
            staples=table,
            backend_router=make_router(fplan, pools),
            inspect_delay_s=fplan.inspect_delay_s,
            content_check=make_content_check(fplan, pools),
            backend_checks=backend_checks,
            only_backend=None if fplan.rules else pools.get(fplan.default_backend or ""),
            timeouts=fplan.timeouts,
            maxconn=fplan.maxconn,
            retries=retries,
            http=http,
            log=tcplog_writer(SystemClock()) if fplan.tcplog else None,
        )
        frontends.append(frontend)
        for index, bplan in enumerate(fplan.binds):
            for sock in setup.sockets.get((fplan.name, index), ()):
                listeners.append(
                    BindSocket(
                        sock=sock,
                        frontend=frontend,
                        tls=bplan.tls,
                        accept_proxy=bplan.bind.accept_proxy,
                        label=f"{bplan.bind.name} (frontend {fplan.name})",
                    )
                )

    for signum in (signal.SIGTERM, signal.SIGUSR1):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: os._exit(0))
    # Blocked since the fork (`Master.spawn`): what came meanwhile is delivered now, here.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)

    setup.plan.must_staple.lookup = table.lookup  # monitor-uri's must-staple check
    reader = asyncio.StreamReader()
    pipe = os.fdopen(setup.table_fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)

    reports = ReportWriter(setup.report_fd) if setup.report_fd >= 0 else None
    # `stats admin` actions go to the master on the report pipe; answers come on the other
    channel = AdminChannel(reports.send_admin if reports is not None else None)
    for service in setup.plan.stats_pages.values():
        service.channel = channel

    async def follow_master() -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await read_messages(
                reader, table, pools, setup.plan.exporter, setup.plan.stats_pages, channel
            )
        stop.set()  # the master is gone: finish what we have and leave

    async def report_traffic() -> None:
        assert reports is not None
        while True:
            reports.send(collect_report(frontends, pools))
            await asyncio.sleep(REPORT_INTERVAL_S)

    started = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            feeder = group.create_task(follow_master())
            reporter = group.create_task(report_traffic()) if reports is not None else None
            await serve(listeners, started=started, stop=stop, grace_s=setup.hard_stop_after_s)
            feeder.cancel()
            if reporter is not None:
                reporter.cancel()
    finally:
        if reports is not None:
            reports.finish(collect_report(frontends, pools))


@contextlib.contextmanager
def _profiled(slot: int) -> Iterator[None]:
    """cProfile the worker when STAPLEGATE_PROFILE names a directory (bench/README.md).

    Counting Python calls per connection or request is steadier on a shared VM than timing
    them; the stats land in `<dir>/worker-<slot>-<pid>.pstats` when the worker stops.
    """
    directory = os.environ.get("STAPLEGATE_PROFILE")
    if not directory:
        yield
        return
    import cProfile  # only when asked: a developer tool

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(os.path.join(directory, f"worker-{slot}-{os.getpid()}.pstats"))


def worker_main(setup: WorkerSetup) -> int:
    """Entry point in the forked child; returns the exit status."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # The master's event loop registered its self-pipe as the signal wakeup fd, and the fork
    # copied that registration but `_close_inherited_fds` closed the pipe. The worker's loop
    # would "restore" that number when it stops, by then naming some other file (a blocking
    # one makes uvloop raise "the fd N must be in non-blocking mode", exit status 1).
    signal.set_wakeup_fd(-1)
    # Forked from inside the master's running loop: forget it before starting our own.
    asyncio.events._set_running_loop(None)
    # The master's log handler feeds a writer thread that does not exist in this process.
    logger = logging.getLogger("staplegate")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    router = LogRouter(setup.log_targets)
    router.install(logger)
    # What the master built (contexts, certificates, tables) lives as long as the worker:
    # keep it out of the collector's full passes, which would otherwise rescan it all every
    # ~1,000 connections.
    gc.freeze()
    try:
        # uvloop runs the data plane (docs/performance.md: +15-20 % per core). Only here: the
        # master reaps workers with a SIGCHLD handler, which uvloop refuses.
        with _profiled(setup.slot), asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(setup))
    except Exception as error:
        # the reason in the line itself: log targets print the message, not the traceback
        log.exception(
            "worker %d (slot %d) failed: %s: %s",
            os.getpid(),
            setup.slot,
            type(error).__name__,
            error,
        )
        return 1
    finally:
        router.close()
    return 0
