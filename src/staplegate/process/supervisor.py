"""The master's supervisor: start-up, signals, reaping and restarting workers, reloads, stop.

`supervise` runs on the master's event loop until the master stops. It attaches each
worker's pipe, starts the OCSP updater and the servers' health checks, waits for the
updater's first table before opening the runtime API and announcing readiness (to the log
and to systemd), then answers signals: SIGUSR2 or SIGHUP reload (`Master.reload`; one at a
time), SIGTERM stops gracefully (drain, bounded by `hard-stop-after`), SIGINT at once, and
SIGCHLD reaps workers, restarting those of the current deployment.

While a frontend of the current configuration uses `http-request use-service
prometheus-exporter`, it renders the metrics every `METRICS_INTERVAL_S` and pushes them to
the workers, which answer scrapes from that snapshot (docs/explanation/architecture.md says
why the workers answer); the same for each `stats`-enabled frontend's page. Rendering
10,000 certificates takes a noticeable fraction of a second (docs/performance.md), so the
interval stretches to `METRICS_COST_FACTOR` times the last render: the master never spends
more than ~1/5 of its time on metrics.

A `stats admin` action a worker sends (`proxy.stats_admin`) is applied here, through the
runtime API's `set server … state` at level admin; the pages are rendered and pushed again
before the worker is answered, so the page its 303 leads to shows the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence

from staplegate.config.model import StatsLevel
from staplegate.deploy.must_staple import unstapled
from staplegate.observe.log import NOTICE
from staplegate.observe.metrics import CollectedMetrics, StaplegateCollector, render
from staplegate.observe.statspage import collect_pages, render_pages
from staplegate.process.master import Master, ReloadResult, WorkerHandle, crl_targets
from staplegate.process.runtime_view import MasterRuntime
from staplegate.process.systemd import sd_notify
from staplegate.proxy import stats_admin
from staplegate.proxy.health import HealthChecker
from staplegate.proxy.stats_admin import AdminMessage
from staplegate.runtime.grammar import parse_words
from staplegate.runtime.handlers import RuntimeHandlers
from staplegate.runtime.server import (
    RuntimeServer,
    RuntimeServerError,
    limits_from_config,
    listeners_from_config,
)
from staplegate.updater.results import EntrySnapshot
from staplegate.updater.service import OcspUpdater

log = logging.getLogger("staplegate")

#: How often the master pushes fresh metrics to workers serving `prometheus-exporter`...
METRICS_INTERVAL_S = 1.0
#: ...or this many times the last render's duration, when that is longer.
METRICS_COST_FACTOR = 5.0

#: After a failed start-up, how long the master waits for its workers to exit.
STARTUP_ABORT_WAIT_S = 10.0


async def supervise(master: Master, updater: OcspUpdater) -> int:
    """Run the started master until it stops; its exit status."""
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
        # Only the workers, by pid: waitpid(-1) would also take the exit status of the
        # commands asyncio runs (the revoked hook), which then report 255.
        for pid in list(master.workers):
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                reaped, status = pid, 255 << 8  # already gone: count it as exited
            if reaped == 0:
                continue
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
            sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            log.log(NOTICE, "reload requested: loading %s", ", ".join(master.config_paths))
            result = await master.reload(updater)
            if result.ok:
                start_checkers()
            sd_notify("READY=1")
            return result

    def graceful() -> None:
        if master.stopping:
            return
        master.stopping = True
        log.log(NOTICE, "SIGTERM received: stopping gracefully")
        sd_notify("STOPPING=1")
        updater.stop()
        master.signal_workers(signal.SIGTERM)
        if not master.workers:
            done.set()

    def immediate() -> None:
        nonlocal exit_status
        master.stopping = True
        log.log(NOTICE, "SIGINT received: stopping now")
        sd_notify("STOPPING=1")
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
    view = MasterRuntime(master, updater, reload)
    admin_handlers = RuntimeHandlers(view, clock=master.clock)

    async def stats_admin_action(handle: WorkerHandle, message: AdminMessage) -> None:
        code = stats_admin.UNKN
        try:
            code = await _apply_stats_admin(master, view, admin_handlers, message)
        finally:
            master.answer_stats_admin(handle, message.request_id, code)

    master.on_stats_admin = lambda handle, message: keep(
        loop.create_task(stats_admin_action(handle, message))
    )
    metrics: asyncio.Task[None] | None = None
    ready: asyncio.Task[None] | None = None
    try:
        start_checkers()
        await _until_started(started, updater_task, done)
        if not master.stopping:  # a signal during start-up: stop as asked, don't announce
            updater.start_crl_watch(crl_targets(master.current.generation), master.state_dir)
            metrics = loop.create_task(_publish_metrics(master, view))
            runtime = await _start_runtime_api(master, view)
            if runtime is None and master.current.generation.config.global_.stats_sockets:
                graceful()
            log.log(
                NOTICE,
                "staplegate started: %d workers, listening on %s, state directory %s",
                len(master.workers),
                ", ".join(master.current.addresses()),
                master.state_dir,
            )
            ready = loop.create_task(_announce_ready(master, updater))
    except Exception as error:
        # Whatever failed, never stay alive half-started (no API, no staples, deaf to
        # signals while waiting for a start that cannot come): say why and exit non-zero.
        _startup_failed(error)
        master.stopping = True
        sd_notify("STOPPING=1")
        updater.stop()
        master.signal_workers(signal.SIGINT)  # they never served: no drain needed
        for checker in checkers:
            checker.cancel()
        if metrics is not None:
            metrics.cancel()
        if master.workers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STARTUP_ABORT_WAIT_S):
                    await done.wait()
        if runtime is not None:
            await runtime.close()
        await asyncio.gather(updater_task, return_exceptions=True)
        return 1
    await done.wait()
    if ready is not None:
        ready.cancel()
    if runtime is not None:
        await runtime.close()
    for checker in checkers:
        checker.cancel()
    if metrics is not None:
        metrics.cancel()
    updater.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await updater_task
    await updater.flush()
    return exit_status


#: How often the readiness wait looks at the staple table.
MUST_STAPLE_POLL_S = 0.2


async def _announce_ready(master: Master, updater: OcspUpdater) -> None:
    """Tell systemd READY=1 once every must-staple certificate has a staple, or after
    `ocsp-update.must-staple-wait` with a warning naming those still without one.

    Listeners and the runtime API are open already: only what waits on READY=1 (systemd
    ordering, `systemctl start`) waits for the staples that clients of a must-staple
    certificate require.
    """
    generation = master.current.generation
    wait_s = generation.config.global_.ocsp_update_must_staple_wait_ms / 1000
    missing = unstapled(generation, updater.table)
    if missing and wait_s > 0:
        log.info(
            "waiting up to %g s for %d must-staple certificate(s) to be stapled before "
            "announcing readiness",
            wait_s,
            len(missing),
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while missing and loop.time() < deadline and not master.stopping:
            await asyncio.sleep(MUST_STAPLE_POLL_S)
            missing = unstapled(master.current.generation, updater.table)
    if master.stopping:
        return
    if missing:
        log.warning(
            "ready without a staple for %d must-staple certificate(s), which clients will "
            "refuse: %s (ocsp-update.must-staple-wait %g s passed)",
            len(missing),
            ", ".join(missing),
            wait_s,
        )
    sd_notify("READY=1")
    log.log(NOTICE, "ready (systemd notified)")


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


async def _publish_metrics(master: Master, view: MasterRuntime) -> None:
    """Push the metrics to the workers while the configuration serves them (see above)."""
    collector = StaplegateCollector(
        view, now=master.clock.now, started_at=time.time() - time.monotonic() + view.started
    )
    while True:
        spent = 0.0
        collected = None
        if master.current.plan.exporter is not None:
            began = time.perf_counter()
            try:
                # read the state here, on the loop; build and format it in a thread, so the
                # loop keeps answering (the GIL is shared, the latency is not)
                collected = CollectedMetrics(collector)
                read = time.perf_counter() - began
                exposition = await asyncio.to_thread(render, collected)
                master.push_metrics(exposition)
                log.debug(
                    "metrics: %d bytes rendered in %.3f s (%.3f s reading on the loop)",
                    len(exposition),
                    time.perf_counter() - began,
                    read,
                )
            except Exception:
                log.exception("metrics: rendering failed; scrapes get the previous snapshot")
            spent = time.perf_counter() - began
        # the metrics' snapshot of this round, not a second one: ~0.15 s of the loop at
        # 10,000 certificates (docs/performance.md)
        spent += await _push_stats_pages(
            master, view, collected.snapshots if collected is not None else None
        )
        await asyncio.sleep(max(METRICS_INTERVAL_S, spent * METRICS_COST_FACTOR))


async def _push_stats_pages(
    master: Master,
    view: MasterRuntime,
    snapshots: Sequence[EntrySnapshot] | None = None,
    *,
    always: bool = False,
) -> float:
    """Render each stats frontend's page and push it to the workers; the time it took."""
    pages = {
        f.name: f.stats
        for f in master.current.generation.config.frontends
        if f.stats is not None and f.name in master.current.plan.stats_pages
    }
    if not pages:
        return 0.0
    began = time.perf_counter()
    try:
        data = collect_pages(
            view,
            pages,
            now=master.clock.now(),
            uptime_s=int(time.monotonic() - view.started),
            snapshots=snapshots,
        )
        master.push_stats_pages(await asyncio.to_thread(render_pages, data), always=always)
    except Exception:
        log.exception("stats page: rendering failed; visitors get the previous page")
    return time.perf_counter() - began


async def _apply_stats_admin(
    master: Master, view: MasterRuntime, handlers: RuntimeHandlers, message: AdminMessage
) -> str:
    """Apply a `stats admin` action a worker sent, through the runtime API's own
    `set server <b>/<s> state …` at level admin (same checks, same effect, every worker
    told); re-render the pages when something changed, so the page the worker's 303 leads
    to shows it; HAProxy's status code."""
    request = message.request
    page = next(
        (f.stats for f in master.current.generation.config.frontends if f.name == request.frontend),
        None,
    )
    if page is None or page.admin is None:  # a reload took `stats admin` away meanwhile
        return stats_admin.DENY
    scope = tuple(request.frontend if name == "." else name for name in page.scope)
    planned = stats_admin.plan_commands(
        request, [(s.backend, s.name) for s in view.servers()], scope
    )
    if isinstance(planned, str):
        return planned
    commands, unknown = planned
    altered = 0
    for words in commands:
        answer = await handlers.execute(parse_words(words), StatsLevel.ADMIN)
        if answer:
            log.warning(
                "stats admin on frontend %s: %s: %s",
                request.frontend,
                " ".join(words),
                answer.strip(),
            )
        else:
            altered += 1
            log.log(NOTICE, "stats admin on frontend %s: %s", request.frontend, " ".join(words))
    if altered:
        await _push_stats_pages(master, view, always=True)
    return stats_admin.outcome(altered, len(commands) + unknown)


async def _start_runtime_api(master: Master, view: MasterRuntime) -> RuntimeServer | None:
    """The `stats socket` listeners (after the fork, so workers never hold them)."""
    global_settings = master.current.generation.config.global_
    listeners = listeners_from_config(global_settings)
    if not listeners:
        return None
    handlers = RuntimeHandlers(view, clock=master.clock)
    server = RuntimeServer(listeners, handlers, limits=limits_from_config(global_settings))
    try:
        await server.start()
    except RuntimeServerError as error:
        log.error("[ALERT] cannot start the runtime API: %s", error)
        return None
    log.log(NOTICE, "runtime API listening on %s", ", ".join(server.bound))
    return server
