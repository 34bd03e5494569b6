"""The master's messages to its workers: the frames, and both ends of the pipe that carries them.

Each worker has one pipe from the master, written only by the master (length-prefixed
pickles; both ends are our own processes): the whole staple table when the pipe opens, then
only what changed (`StapleChanges`: new or replaced staples and withdrawn CertIds, relative to
what that worker was last sent), and the servers' health and admin states. The worker applies
each message to its `StapleTable` in place (`read_messages`); the master's end says when the
worker has drained what was written (`WorkerPipe`), so a slow worker is skipped, not queued.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from staplegate.ocsp.certid import CertId
from staplegate.proxy.backends import AdminState, BackendPool, ServerState
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


async def read_messages(
    reader: asyncio.StreamReader, table: StapleTable, pools: Mapping[str, BackendPool]
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


class WorkerPipe(asyncio.BaseProtocol):
    """The master's end of a worker's pipe: says when the worker has drained what we wrote."""

    def __init__(self, on_drained: Callable[[], None]) -> None:
        self._on_drained = on_drained

    def pause_writing(self) -> None:
        pass  # we look at the buffer before every staple message instead

    def resume_writing(self) -> None:
        self._on_drained()
