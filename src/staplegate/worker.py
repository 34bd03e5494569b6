"""A worker process: terminate TLS on inherited sockets, staple from a table the master feeds.

A worker never fetches, never checks servers, never reads the configuration and never
touches the disk: the master built its TLS contexts and opened its sockets before forking it,
and sends it messages over a pipe (length-prefixed pickles; both ends are our own processes):
the whole staple table when the pipe opens, then only what changed (`StapleChanges`: new or
replaced staples and withdrawn CertIds, relative to what that worker was last sent), and the
servers' health and admin states.

The worker applies a change message to its `LiveStapleTable` in place: the event loop runs one
message to completion before the next handshake callback, so no handshake ever sees half a
message, and the cost is proportional to the change, not to the table (replacing a 10,000-entry
table recomputes 10,000 CertId DER keys: ~85 ms per message).
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
import pickle
import signal
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import uvloop

from staplegate.clock import SystemClock
from staplegate.observe.accesslog import tcplog_writer
from staplegate.observe.log import LogRouter, SyslogTarget
from staplegate.ocsp.certid import CertId
from staplegate.proxy.accept import serve
from staplegate.proxy.backends import AdminState, BackendPool, ServerState
from staplegate.proxy.frontend import BindSocket, FrontendRuntime
from staplegate.proxy.http_pool import HttpFrontend
from staplegate.serving import ServePlan, make_router

log = logging.getLogger("staplegate.worker")

#: The signals a worker answers (stop, drain, hard stop). `Master.spawn` blocks them across
#: the fork and `_run` unblocks them once its handlers are installed, so none is lost.
WORKER_SIGNALS: Final = frozenset((signal.SIGTERM, signal.SIGUSR1, signal.SIGINT))

_HEADER = struct.Struct("!I")


#: server states message: {(backend, server): (health, admin)}
ServerStates = Mapping[tuple[str, str], tuple[ServerState, AdminState]]


def _frame(kind: str, payload: object) -> bytes:
    body = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


@dataclass(frozen=True, slots=True)
class StapleChanges:
    """What changed in the staple table since the last message to one worker."""

    changed: Mapping[CertId, bytes]  # new or replaced staples
    removed: tuple[CertId, ...]  # withdrawn staples

    @classmethod
    def between(cls, sent: Mapping[CertId, bytes], table: Mapping[CertId, bytes]) -> StapleChanges:
        """The changes that turn `sent` into `table`.

        Identity, not equality, decides "changed": the updater's snapshots share the bytes
        objects of unchanged staples, so this is one pointer compare per entry; a refresh
        that happens to carry equal bytes is merely sent again.
        """
        changed = {cert_id: der for cert_id, der in table.items() if sent.get(cert_id) is not der}
        removed = tuple(cert_id for cert_id in sent if cert_id not in table)
        return cls(changed, removed)

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed)


def encode_table(table: Mapping[CertId, bytes]) -> bytes:
    """A master→worker message: the whole staple table (when a worker's pipe opens)."""
    return _frame("staples", dict(table))


def encode_changes(changes: StapleChanges) -> bytes:
    """A master→worker message: staples added, replaced or withdrawn since the last one."""
    return _frame("staple-changes", (dict(changes.changed), changes.removed))


def encode_servers(states: ServerStates) -> bytes:
    """A master→worker message: every server's health and admin state."""
    return _frame("servers", dict(states))


class LiveStapleTable:
    """A worker's CertId → DER staples, edited in place as the master's messages arrive.

    Implements the `StapleLookup` the TLS callback reads (`lookup` by CertId DER). Edits run
    on the worker's single event-loop thread, between handshakes, so a reader never sees a
    message half applied; each CertId's DER key is computed once, when it first arrives.
    """

    __slots__ = ("_by_id", "_by_key", "_keys")

    def __init__(self, mapping: Mapping[CertId, bytes] | None = None) -> None:
        self._by_id: dict[CertId, bytes] = {}
        self._by_key: dict[bytes, bytes] = {}
        self._keys: dict[CertId, bytes] = {}  # CertId -> its DER (the lookup key)
        if mapping:
            self.replace(mapping)

    def _key(self, cert_id: CertId) -> bytes:
        key = self._keys.get(cert_id)
        if key is None:
            key = self._keys[cert_id] = cert_id.der
        return key

    def replace(self, mapping: Mapping[CertId, bytes]) -> None:
        """Hold exactly `mapping` (empty staples are no staple)."""
        by_id = {cert_id: bytes(der) for cert_id, der in mapping.items() if der}
        self._keys = {cert_id: self._key(cert_id) for cert_id in by_id}
        self._by_key = {self._keys[cert_id]: der for cert_id, der in by_id.items()}
        self._by_id = by_id

    def apply(self, changed: Mapping[CertId, bytes], removed: Iterable[CertId]) -> None:
        """Withdraw `removed`, then install `changed`."""
        for cert_id in removed:
            self._discard(cert_id)
        for cert_id, der in changed.items():
            if not der:
                self._discard(cert_id)
                continue
            self._by_id[cert_id] = bytes(der)
            self._by_key[self._key(cert_id)] = self._by_id[cert_id]

    def _discard(self, cert_id: CertId) -> None:
        if self._by_id.pop(cert_id, None) is not None:
            self._by_key.pop(self._keys.pop(cert_id), None)

    def lookup(self, key: bytes) -> bytes:
        """The staple for a CertId's DER, or b"" (the callback's "no staple")."""
        return self._by_key.get(key, b"")

    def get(self, cert_id: CertId) -> bytes | None:
        return self._by_id.get(cert_id)

    def snapshot(self) -> dict[CertId, bytes]:
        return dict(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[CertId]:
        return iter(self._by_id)


async def read_messages(
    reader: asyncio.StreamReader, table: LiveStapleTable, pools: Mapping[str, BackendPool]
) -> None:
    """Apply each message the master sends until the pipe closes."""
    while True:
        header = await reader.readexactly(_HEADER.size)
        (length,) = _HEADER.unpack(header)
        kind, payload = pickle.loads(await reader.readexactly(length))
        if kind == "staples":
            table.replace(payload)
            log.debug("worker %d: staple table replaced: %d staples", os.getpid(), len(table))
        elif kind == "staple-changes":
            changed, removed = payload
            table.apply(changed, removed)
            log.debug(
                "worker %d: staple table: %d changed, %d withdrawn: %d staples",
                os.getpid(),
                len(changed),
                len(removed),
                len(table),
            )
        elif kind == "servers":
            for (backend, server), (health, admin) in payload.items():
                pool = pools.get(backend)
                if pool is not None and server in {s.name for s in pool.servers}:
                    pool.set_state(server, health)
                    pool.set_admin(server, admin)
        else:
            log.warning("worker %d: unknown message %r from the master", os.getpid(), kind)


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


async def _run(setup: WorkerSetup) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    table = LiveStapleTable(setup.initial_table)
    pools = {b.name: b.pool() for b in setup.plan.backends}
    for (backend, server), (health, admin) in setup.initial_servers.items():
        if backend in pools:
            pools[backend].set_state(server, health)
            pools[backend].set_admin(server, admin)
    backend_plans = {b.name: b for b in setup.plan.backends}
    http_backends = {b.name: b.http for b in setup.plan.backends}
    listeners: list[BindSocket] = []
    for fplan in setup.plan.frontends:
        retries = 3
        if fplan.default_backend in backend_plans:
            retries = backend_plans[fplan.default_backend].retries
        http = None
        if fplan.http is not None:
            http = HttpFrontend(dataclasses.replace(fplan.http, backends=http_backends))
        frontend = FrontendRuntime(
            name=fplan.name,
            staples=table,
            backend_router=make_router(fplan, pools),
            only_backend=None if fplan.rules else pools.get(fplan.default_backend or ""),
            timeouts=fplan.timeouts,
            maxconn=fplan.maxconn,
            retries=retries,
            http=http,
            log=tcplog_writer(SystemClock()) if fplan.tcplog else None,
        )
        for index, bplan in enumerate(fplan.binds):
            for sock in setup.sockets.get((fplan.name, index), ()):
                listeners.append(
                    BindSocket(
                        sock=sock,
                        frontend=frontend,
                        tls=bplan.tls,
                        accept_proxy=bplan.bind.accept_proxy,
                    )
                )

    for signum in (signal.SIGTERM, signal.SIGUSR1):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: os._exit(0))
    # Blocked since the fork (`Master.spawn`): what came meanwhile is delivered now, here.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)

    reader = asyncio.StreamReader()
    pipe = os.fdopen(setup.table_fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)

    async def follow_master() -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await read_messages(reader, table, pools)
        stop.set()  # the master is gone: finish what we have and leave

    started = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        feeder = group.create_task(follow_master())
        await serve(listeners, started=started, stop=stop, grace_s=setup.hard_stop_after_s)
        feeder.cancel()


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
