"""The pipes between the master and its workers: their frames, and both ends of each.

Each worker has two pipes. The report pipe goes the other way: the worker writes its traffic
counters (`process.traffic.WorkerReport`) at least once a second and once more as it exits
(`ReportWriter`, never blocking the data plane: a report that cannot be written whole waits,
and newer ones replace it); the master reads them (`read_reports`) until the pipe closes,
which is how it learns that the worker's counters are final.

The report pipe also carries the `stats admin` actions a worker's stats page received
(`ReportWriter.send_admin`: queued, never replaced), which the master applies and answers
on the other pipe (`encode_admin_result`).

The other pipe, from the master, written only by the master (length-prefixed
pickles; both ends are our own processes): the whole staple table when the pipe opens, then
only what changed (`StapleChanges`: new or replaced staples and withdrawn CertIds, relative to
what that worker was last sent), and the servers' health and admin states. The worker applies
each message to its `StapleTable` in place (`read_messages`); the master's end says when the
worker has drained what was written (`WorkerPipe`), so a slow worker is skipped, not queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from staplegate.ocsp.certid import CertId
from staplegate.process.traffic import WorkerReport
from staplegate.proxy.backends import AdminState, BackendPool, ServerState
from staplegate.proxy.http_rules import ServiceSnapshot, StatsService
from staplegate.proxy.stats_admin import AdminChannel, AdminMessage
from staplegate.tls.staples import StapleTable

# the worker's logger: `read_messages` runs in the worker
log = logging.getLogger("staplegate.worker")

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


def encode_metrics(exposition: bytes) -> bytes:
    """A master→worker message: what `use-service prometheus-exporter` answers from now on."""
    return _frame("metrics", exposition)


def encode_stats_pages(pages: Mapping[str, tuple[bytes, bytes, bytes]]) -> bytes:
    """A master→worker message: each stats frontend's page (HTML, `;csv`, the `stats admin`
    variant or b"") from now on."""
    return _frame("stats-pages", dict(pages))


def encode_admin_result(request_id: int, code: str) -> bytes:
    """A master→worker message: the status code of a `stats admin` action it asked for."""
    return _frame("stats-admin-result", (request_id, code))


def encode_admin(message: AdminMessage) -> bytes:
    """A worker→master message: a `stats admin` action to apply."""
    return _frame("stats-admin", message)


def encode_report(report: WorkerReport) -> bytes:
    """A worker→master message: the worker's cumulative traffic counters."""
    return _frame("report", report)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[str, Any]:
    header = await reader.readexactly(_HEADER.size)
    (length,) = _HEADER.unpack(header)
    kind, payload = pickle.loads(await reader.readexactly(length))
    return kind, payload


async def read_reports(
    reader: asyncio.StreamReader,
    on_report: Callable[[WorkerReport], None],
    on_admin: Callable[[AdminMessage], None] | None = None,
) -> None:
    """Pass each report a worker writes to `on_report`, and each `stats admin` action to
    `on_admin`, until the pipe closes (returns)."""
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            kind, payload = await _read_frame(reader)
            if kind == "report" and isinstance(payload, WorkerReport):
                on_report(payload)
            elif kind == "stats-admin" and isinstance(payload, AdminMessage):
                if on_admin is not None:
                    on_admin(payload)
            else:
                log.warning("unknown report %r from a worker", kind)


class ReportWriter:
    """A worker's end of its report pipe (non-blocking; see the module docstring)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        os.set_blocking(fd, False)
        self._pending = b""  # the rest of a frame the pipe did not take whole
        self.closed = False

    def send(self, report: WorkerReport) -> None:
        """Write `report` unless the previous one is still on its way (then it waits)."""
        if self.closed:
            return
        if not self._pending:
            self._pending = encode_report(report)
        self._flush()

    def send_admin(self, message: AdminMessage) -> None:
        """Write a `stats admin` action: queued after what is pending, never replaced."""
        if self.closed:
            return
        self._pending += encode_admin(message)
        self._flush()

    def _flush(self) -> None:
        try:
            written = os.write(self._fd, self._pending)
        except BlockingIOError:
            return
        except OSError:  # the master is gone
            self.close()
            return
        self._pending = self._pending[written:]

    def finish(self, report: WorkerReport) -> None:
        """The last report, as the worker exits: written whole, blocking, then closed."""
        if self.closed:
            return
        try:
            os.set_blocking(self._fd, True)
            data = self._pending + encode_report(report)
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self._fd)


async def read_messages(
    reader: asyncio.StreamReader,
    table: StapleTable,
    pools: Mapping[str, BackendPool],
    exporter: ServiceSnapshot | None = None,
    stats_pages: Mapping[str, StatsService] | None = None,
    channel: AdminChannel | None = None,
) -> None:
    """Apply each message the master sends until the pipe closes."""
    while True:
        kind, payload = await _read_frame(reader)
        if kind == "metrics":
            if exporter is not None and isinstance(payload, bytes):
                exporter.body = payload
        elif kind == "stats-pages":
            for name, (page_html, page_csv, admin_html) in payload.items():
                service = (stats_pages or {}).get(name)
                if service is not None:
                    service.html, service.csv, service.admin_html = page_html, page_csv, admin_html
        elif kind == "stats-admin-result":
            if channel is not None:
                channel.answered(*payload)
        elif kind == "staples":
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


class WorkerPipe(asyncio.BaseProtocol):
    """The master's end of a worker's pipe: says when the worker has drained what we wrote."""

    def __init__(self, on_drained: Callable[[], None]) -> None:
        self._on_drained = on_drained

    def pause_writing(self) -> None:
        pass  # we look at the buffer before every staple message instead

    def resume_writing(self) -> None:
        self._on_drained()
