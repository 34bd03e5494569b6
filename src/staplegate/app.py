"""The composition root: build the master's objects from the configuration, hand them over.

`run()` validates the configuration and its certificates (exactly what `staplegate -c`
checks), opens every listening socket, the pidfile and the state directory (before
detaching, so `-D` reports a failure), builds the log router, the `Master` and the OCSP
updater, forks the workers (before the master's event loop exists: they inherit the sockets
and TLS contexts, so they share session-ticket keys) and hands everything to
`process.supervisor.supervise`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from staplegate.clock import SystemClock
from staplegate.config.model import GlobalSettings, LogTargetKind
from staplegate.deploy.generation import Generation
from staplegate.deploy.plan import validate
from staplegate.fetch.client import FetchSettings
from staplegate.fleet.redis_share import PasswordError, RedisShare, shared_store
from staplegate.observe.log import LogRouter, SyslogTarget
from staplegate.ocsp.verify import VerifiedStaple
from staplegate.process.forked import ForkedCall
from staplegate.process.master import Deployment, Master, update_settings_of, updater_entries
from staplegate.process.sockets import open_sockets
from staplegate.process.supervisor import supervise
from staplegate.store import FileStapleStore, StoreError, resolve_state_dir
from staplegate.store.preload import BackgroundScan
from staplegate.updater.precheck import PRECHECK_MIN, precheck
from staplegate.updater.service import OcspUpdater

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


def _shared_store(settings: GlobalSettings, clock: SystemClock) -> RedisShare | None:
    """The fleet's Redis store (`ocsp-update.shared-store`), or None (PasswordError: see
    fleet.redis_share.shared_store)."""
    return shared_store(
        settings.ocsp_update_shared_store,
        settings.ocsp_update_shared_store_password_file,
        clock=clock,
        environ=os.environ,
    )


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
    directory = resolve_state_dir(state_dir, os.environ, is_root=os.geteuid() == 0)
    store = FileStapleStore(directory)
    # The stored staples are read by a child while the certificates load (store/preload.py)
    # and verified by another while the TLS contexts are built (updater/precheck.py).
    preload = BackgroundScan(store.scan)
    prechecks: list[ForkedCall[dict[bytes, VerifiedStaple]]] = []

    def start_precheck(generation: Generation) -> None:
        scan = preload.result()
        if scan is None:
            return  # the updater reads the directory itself, and verifies at start
        store.use_preloaded(scan)
        if len(scan.staples) >= PRECHECK_MIN and (os.cpu_count() or 1) > 1:
            entries, now = updater_entries(generation), clock.now()
            call = ForkedCall(lambda: precheck(entries, scan.staples, now=now), name="precheck")
            prechecks.append(call)

    prechecked: dict[bytes, VerifiedStaple] = {}
    try:
        generation, plan = validate(
            paths, now=clock.now(), err=sys.stderr, startup=True, loaded=start_precheck
        )
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
            # opened before detaching, as HAProxy does, so `-D` reports it instead of dying
            # silently
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

        def give_up(alert: str) -> int:
            """Refuse to start: the alert, then the listeners and the pidfile let go."""
            print(alert, file=sys.stderr)
            for socks in sockets.values():
                for sock in socks:
                    sock.close()
            if pid_handle is not None:
                pid_handle.close()
                with contextlib.suppress(OSError):
                    os.unlink(pid_handle.name)
            return 1

        try:
            # checked before detaching, like the pidfile: a state directory that cannot be used
            # would otherwise be found at the first save, by a daemon nobody watches
            store.ensure_directory()
        except StoreError as error:
            return give_up(f"[ALERT] Cannot use the state directory {error}.")
        try:
            shared = _shared_store(settings, clock)
        except PasswordError as error:
            return give_up(f"[ALERT] config : ocsp-update.shared-store: {error}.")
        # before detaching: only this process can reap its children
        for call in prechecks:
            prechecked = call.result() or {}
    finally:
        preload.cancel()  # each does nothing once collected
        for call in prechecks:
            call.cancel()
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
        shared=shared,
    )
    updater.use_prechecked(prechecked)
    del prechecked  # the updater drops it once started
    updater.configure_revoked_hook(settings.ocsp_update_revoked_hook, directory)
    # Fork before the master's event loop exists (restarts later fork from inside it).
    for slot in range(worker_count):
        master.spawn(slot)
    try:
        return asyncio.run(supervise(master, updater))
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
