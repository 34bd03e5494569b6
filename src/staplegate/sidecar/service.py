"""The sidecar's runner: staplegate's OCSP updater over someone else's certificates.

Theory of operation. `read()` finds the certificates (sidecar/haproxy_config.py or
nginx_config.py); an `OcspUpdater` (updater/service.py, the same engine as the main command:
schedule, verification, state directory, `<OCSP-UPDATE>` lines) keeps a verified staple for
each; every time its table changes, a pump task hands each `Delivery` the difference from
what that delivery was last given (`process.ipc.StapleChanges.between`, as the master does
for its workers). A delivery built after a re-read starts from nothing, so it receives the
whole table first.

Signals as the main command: SIGTERM/SIGINT stop (staples already persisted stay in the
state directory for the next start), SIGHUP/SIGUSR2 re-read the configuration; a re-read that
finds `[ALERT]`s keeps the previous certificates. systemd `Type=notify` hears READY,
RELOADING and STOPPING.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from staplegate.certs.model import KeyType
from staplegate.clock import Clock, SystemClock
from staplegate.config.model import GlobalSettings
from staplegate.fetch.client import FetchSettings
from staplegate.fleet.redis_share import PasswordError, RedisShare, shared_store
from staplegate.observe.endpoint import MetricsEndpoint
from staplegate.observe.log import LogRouter, SyslogTarget
from staplegate.observe.statspage import PageOptions, render_page, snapshot_rows
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.process.ipc import StapleChanges
from staplegate.process.systemd import sd_notify
from staplegate.runtime.server import RuntimeServer, RuntimeServerError
from staplegate.sidecar.runtime import SidecarRuntime, runtime_server
from staplegate.sidecar.targets import Delivery, DeliveryFactory, Discovery, Reader, Reloader
from staplegate.store import FileStapleStore, StoreError, resolve_state_dir
from staplegate.updater.service import OcspUpdater

log = logging.getLogger("staplegate.sidecar")

#: How long READY=1 waits for the deliveries' first round (staple files written) at most.
FIRST_DELIVERY_WAIT_S = 10.0
#: `--metrics`' `/stats` page refreshes itself this often (seconds).
STATS_REFRESH_S = 10

#: How often the files a configuration named are checked for changes (a stat each).
WATCH_INTERVAL_S = 5.0


def update_settings(settings: GlobalSettings) -> UpdateSettings:
    """`ocsp-update.mindelay`/`maxdelay` as the updater takes them."""
    return UpdateSettings(
        mindelay=settings.ocsp_update_mindelay_s, maxdelay=settings.ocsp_update_maxdelay_s
    )


def fetch_settings(settings: GlobalSettings) -> FetchSettings:
    """`ocsp-update.httpproxy` and `httpclient.*` as the OCSP client takes them (as app.py)."""
    proxy = settings.ocsp_update_httpproxy
    return FetchSettings(
        proxy=f"{proxy.host}:{proxy.port}" if proxy else None,
        connect_timeout=settings.httpclient.timeout_connect_ms / 1000 or 15.0,
        connect_retries=settings.httpclient.retries,
    )


class SidecarService:
    """The updater, the deliveries and the pump between them; see the module docstring."""

    def __init__(
        self,
        read: Reader,
        build: DeliveryFactory,
        discovery: Discovery,
        *,
        store: FileStapleStore | None,
        clock: Clock | None = None,
        watch_interval: float | None = WATCH_INTERVAL_S,
        runtime_socket: str | None = None,
        metrics_address: tuple[str, int] | None = None,
        shared: RedisShare | None = None,
    ) -> None:
        self._read = read
        self._runtime_socket = runtime_socket
        self._metrics_address = metrics_address
        self.metrics: MetricsEndpoint | None = None
        self._started_at = time.monotonic()
        self._watch_interval = watch_interval
        self._watched: dict[str, tuple[int, int, int] | None] = {}
        self._build = build
        self._discovery = discovery
        settings = discovery.settings
        self.updater = OcspUpdater(
            [c.entry for c in discovery.certificates],
            update_settings=update_settings(settings),
            fetch_settings=fetch_settings(settings),
            on_staples=self._on_staples,
            store=store,
            clock=clock or SystemClock(),
            max_concurrent=settings.ocsp_update_maxconn,
            host_rate=settings.ocsp_update_rate_limit,
            host_burst=min(settings.ocsp_update_rate_limit, 50),
            shared=shared,  # `ocsp-update.shared-store` (--extra-config): the fleet's Redis
        )
        # `ocsp-update.revoked-hook` (--extra-config): the operator's command on a revocation
        self._state_dir = store.directory if store is not None else None
        self.updater.configure_revoked_hook(settings.ocsp_update_revoked_hook, self._state_dir)
        self._table: Mapping[CertId, bytes] = {}
        self._deliveries: list[Delivery] = []
        self._sent: dict[int, Mapping[CertId, bytes]] = {}
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        self._delivered_once = asyncio.Event()
        self.rereads = 0
        self.reread_attempts = 0
        self.watch_rounds = 0

    @property
    def discovery(self) -> Discovery:
        return self._discovery

    @property
    def deliveries(self) -> Sequence[Delivery]:
        return tuple(self._deliveries)

    def _stats_page(self) -> Callable[[], str]:
        """`--metrics`' `/stats`: the certificates table of what the sidecar keeps stapled
        (read now, on the loop; the returned call renders it, in a thread)."""
        now = dt.datetime.now(dt.UTC)
        snapshots = self.updater.snapshot()
        certificates = [c.entry for c in self._discovery.certificates]
        key_types = {
            e.path: KeyType.of(e.certificate.public_key()).haproxy_name for e in certificates
        }
        not_after = {e.path: e.certificate.not_valid_after_utc for e in certificates}
        uptime_s = int(time.monotonic() - self._started_at)
        options = PageOptions(refresh_s=STATS_REFRESH_S)

        def render() -> str:
            rows = snapshot_rows(snapshots, key_types, not_after, now=now)
            return render_page([], rows, options, now=now, uptime_s=uptime_s)

        return render

    def _on_staples(self, table: Mapping[CertId, bytes]) -> None:
        self._table = table
        self._changed.set()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until `stop()`: updater, pump, signals (when on the main thread's loop)."""
        loop = asyncio.get_running_loop()
        self._deliveries = list(self._build(self._discovery))
        updater_started = asyncio.Event()
        updater_task = loop.create_task(self.updater.run(started=updater_started))
        pump_task = loop.create_task(self._pump())
        watch_task = None
        if self._watch_interval is not None:
            self._watched = await asyncio.to_thread(_stat_all, self._discovery.files)
            watch_task = loop.create_task(self._watch(self._watch_interval))
        handlers = self._install_signals(loop)
        runtime: RuntimeServer | None = None
        try:
            waiter = loop.create_task(updater_started.wait())
            await asyncio.wait({waiter, updater_task}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if updater_task.done():
                updater_task.result()  # a crash at start: raise it
            if self._runtime_socket is not None:
                runtime = runtime_server(self, self._runtime_socket)
                await runtime.start()
            if self._metrics_address is not None:
                self.metrics = MetricsEndpoint(
                    SidecarRuntime(self), *self._metrics_address, page=self._stats_page
                )
                await self.metrics.start()
            # the CRL watch (and the revoked hook's "cleared" events) over the certificates
            self.updater.start_crl_watch(self._discovery.crl_targets, self._state_dir)
            self.started.set()
            # READY=1 once every delivery had its first call (bounded): with systemd's
            # `Before=nginx.service`, nginx then finds every ssl_stapling_file it names.
            # (a stop meanwhile is not held up by a delivery that keeps failing)
            waits = {
                loop.create_task(self._delivered_once.wait()),
                loop.create_task(self._stop.wait()),
            }
            _, pending = await asyncio.wait(
                waits, timeout=FIRST_DELIVERY_WAIT_S, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            sd_notify("READY=1")
            await self._stop.wait()
        finally:
            sd_notify("STOPPING=1")
            if runtime is not None:
                await runtime.close()
            if self.metrics is not None:
                await self.metrics.close()
            for signum in handlers:
                loop.remove_signal_handler(signum)
            if watch_task is not None:
                watch_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch_task
            self.updater.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await updater_task
            await self.updater.flush()
            async with self._lock:
                pump_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump_task
                await self._deliver_changes()  # the last table, then close
                for delivery in self._deliveries:
                    await _close(delivery)

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        try:
            loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal, "SIGTERM")
        except (RuntimeError, ValueError):  # not the main thread (tests): no signals
            return []
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal, "SIGINT")
        for signum in (signal.SIGHUP, signal.SIGUSR2):
            loop.add_signal_handler(signum, lambda: loop.create_task(self.reread()))
        return [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2]

    def _on_stop_signal(self, name: str) -> None:
        log.warning("%s received: stopping", name)
        self.stop()

    async def reread(self) -> bool:
        """Read the configuration again; True when the new certificates are in service."""
        async with self._lock:
            sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                return await self._reread()
            finally:
                sd_notify("READY=1")

    async def _reread(self) -> bool:
        log.warning("re-reading the configuration")
        self.reread_attempts += 1
        # the files' state before reading is the watch's new baseline: a failed re-read is
        # not tried again until a file changes again, and a change during it is seen later
        before = await asyncio.to_thread(_stat_all, tuple(self._watched))
        try:
            discovery = await asyncio.to_thread(self._read)
        except Exception:
            log.exception("re-reading the configuration failed; keeping the previous one")
            self._watched.update(before)
            return False
        for line in discovery.messages:
            log.warning("%s", line)
        if discovery.errors:
            for line in discovery.errors:
                log.error("%s", line)
            log.error("the configuration has errors: keeping the previous certificates")
            self._watched.update(before)
            return False
        fresh = await asyncio.to_thread(_stat_all, [p for p in discovery.files if p not in before])
        self._watched = {p: before[p] for p in discovery.files if p in before} | fresh
        if discovery.settings != self._discovery.settings:
            log.warning(
                "the OCSP settings changed (ocsp-update.*, httpclient.*): the revoked hook "
                "applies now, the others when the sidecar restarts"
            )
        self.updater.configure_revoked_hook(
            discovery.settings.ocsp_update_revoked_hook, self._state_dir
        )
        for delivery in self._deliveries:
            await _close(delivery)
        self._discovery = discovery
        self._deliveries = list(self._build(discovery))
        self._sent.clear()
        await self.updater.reconfigure([c.entry for c in discovery.certificates])
        self.updater.start_crl_watch(discovery.crl_targets, self._state_dir)
        self.rereads += 1
        log.warning(
            "configuration re-read: %d certificate(s) kept stapled", len(discovery.certificates)
        )
        self._changed.set()
        return True

    async def _watch(self, interval: float) -> None:
        """Re-read when a file the configuration named changes (a renewed certificate, an
        edited crt-list): its size, mtime or inode differs, or it appeared or vanished."""
        while True:
            await asyncio.sleep(interval)
            current = await asyncio.to_thread(_stat_all, tuple(self._watched))
            changed = [path for path, seen in current.items() if self._watched.get(path) != seen]
            self.watch_rounds += 1
            if not changed:
                continue
            log.warning("'%s' changed: re-reading the configuration", changed[0])
            await self.reread()

    async def _pump(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            async with self._lock:
                await self._deliver_changes()

    async def _deliver_changes(self) -> None:
        table = self._table
        for delivery in self._deliveries:
            sent = self._sent.get(id(delivery), {})
            changes = StapleChanges.between(sent, table)
            if not changes and id(delivery) in self._sent:
                continue  # (a new delivery always gets its first call, even with no staple)
            try:
                await delivery.deliver(changes.changed, changes.removed)
            except Exception:  # a delivery's bug must not stop the others or the updater
                log.exception("a staple delivery failed; it gets the changes again later")
                continue
            self._sent[id(delivery)] = table
        if all(id(delivery) in self._sent for delivery in self._deliveries):
            self._delivered_once.set()


def _stat_all(paths: Sequence[str]) -> dict[str, tuple[int, int, int] | None]:
    """(mtime, size, inode) of each path; None for one that cannot be seen."""
    seen: dict[str, tuple[int, int, int] | None] = {}
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            seen[path] = None
        else:
            seen[path] = (info.st_mtime_ns, info.st_size, info.st_ino)
    return seen


async def _close(delivery: Delivery) -> None:
    try:
        await delivery.close()
    except Exception:
        log.exception("closing a staple delivery failed")


def install_logging(level: str = "info") -> LogRouter:
    """The sidecar logs to stderr (journald under systemd), one line per event.

    HAProxy's `log` lines are HAProxy's: the sidecar does not write to its syslog targets.
    """
    router = LogRouter([SyslogTarget(kind="stderr", address=None, max_level=level, format="raw")])
    logger = logging.getLogger("staplegate")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    router.install(logger)
    return router


def serve(
    read: Reader,
    build: DeliveryFactory,
    *,
    state_dir: str | None,
    reloader: Reloader | None = None,
    runtime_socket: str | None = None,
    metrics_address: tuple[str, int] | None = None,
) -> int:
    """Run the sidecar in the foreground until SIGTERM; the exit status.

    The first reading must be free of `[ALERT]`s (printed, exit 1), as must the state
    directory (checked before anything runs, as the main command does).
    """
    discovery = read()
    for line in discovery.messages:
        print(line, file=sys.stderr)
    if discovery.errors:
        for line in discovery.errors:
            print(line, file=sys.stderr)
        print("[ALERT] sidecar : Fatal errors found in configuration.", file=sys.stderr)
        return 1
    directory = resolve_state_dir(state_dir, os.environ, is_root=os.geteuid() == 0)
    store = FileStapleStore(directory)
    try:
        store.ensure_directory()
    except StoreError as error:
        print(f"[ALERT] Cannot use the state directory {error}.", file=sys.stderr)
        return 1
    settings = discovery.settings
    try:
        shared = shared_store(
            settings.ocsp_update_shared_store,
            settings.ocsp_update_shared_store_password_file,
            clock=SystemClock(),
            environ=os.environ,
        )
    except PasswordError as error:
        print(f"[ALERT] sidecar : ocsp-update.shared-store: {error}.", file=sys.stderr)
        return 1
    router = install_logging()
    try:
        return asyncio.run(
            _serve(
                read,
                build,
                discovery,
                store,
                Path(directory),
                reloader,
                runtime_socket,
                metrics_address,
                shared,
            )
        )
    finally:
        router.close()


async def _serve(
    read: Reader,
    build: DeliveryFactory,
    discovery: Discovery,
    store: FileStapleStore,
    path: Path,
    reloader: Reloader | None,
    runtime_socket: str | None,
    metrics_address: tuple[str, int] | None = None,
    shared: RedisShare | None = None,
) -> int:
    service = SidecarService(
        read,
        build,
        discovery,
        store=store,
        runtime_socket=runtime_socket,
        metrics_address=metrics_address,
        shared=shared,
    )
    log.warning(
        "staplegate sidecar started: %d certificate(s) to keep stapled, %d skipped, "
        "state directory %s",
        len(discovery.certificates),
        len(discovery.skipped),
        path,
    )
    try:
        await service.run()
    except RuntimeServerError as error:
        log.error("[ALERT] cannot start the sidecar's runtime API: %s", error)
        return 1
    except OSError as error:  # --metrics: the address is taken or not ours
        log.error("[ALERT] cannot start the sidecar's metrics endpoint: %s", error)
        return 1
    finally:
        if reloader is not None:
            await reloader.close()  # a pending reload runs now
    log.warning("staplegate sidecar stopped")
    return 0
