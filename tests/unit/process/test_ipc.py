"""Staple messages between master and worker: deltas, the wire format, the worker's reader."""

from __future__ import annotations

import asyncio
import os

from staplegate.ocsp.certid import CertId
from staplegate.process.ipc import StapleChanges, encode_changes, encode_table, read_messages
from staplegate.tls.staples import StapleTable


def cert_id(serial: int) -> CertId:
    return CertId("sha1", b"\x01" * 20, b"\x02" * 20, serial)


def test_changes_between_two_tables_name_only_what_differs() -> None:
    a, b, c = cert_id(1), cert_id(2), cert_id(3)
    kept, replaced, added = b"kept", b"old", b"new"
    sent = {a: kept, b: replaced}
    table = {a: kept, c: added}
    changes = StapleChanges.between(sent, table)
    assert changes.changed == {c: added}
    assert changes.removed == (b,)
    assert StapleChanges.between(table, dict(table)).changed == {}
    assert not StapleChanges.between(table, dict(table))
    # a refreshed staple is a new bytes object: sent again even when equal
    refreshed = {a: bytes(bytearray(kept)), c: added}
    assert StapleChanges.between(table, refreshed).changed == {a: kept}


def test_a_worker_applies_the_whole_table_then_each_delta_read_from_a_real_pipe() -> None:
    a, b, c = cert_id(1), cert_id(2), cert_id(3)
    messages = [
        encode_table({a: b"A", b: b"B"}),
        encode_changes(StapleChanges({c: b"C"}, (a,))),
        encode_changes(StapleChanges({b: b"B2"}, ())),
    ]

    async def scenario() -> dict[CertId, bytes]:
        read_fd, write_fd = os.pipe()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(b"".join(messages))
        table = StapleTable()
        try:
            await read_messages(reader, table, {})
        except asyncio.IncompleteReadError:
            pass  # the pipe closed after the last message
        finally:
            transport.close()
        return table.snapshot()

    assert asyncio.run(scenario()) == {b: b"B2", c: b"C"}
