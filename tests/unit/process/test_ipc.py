"""Staple messages between master and worker: deltas, the wire format, the worker's reader."""

from __future__ import annotations

import asyncio
import contextlib
import os

from staplegate.ocsp.certid import CertId
from staplegate.process.ipc import (
    ReportWriter,
    StapleChanges,
    encode_admin_result,
    encode_changes,
    encode_metrics,
    encode_stats_pages,
    encode_table,
    read_messages,
    read_reports,
)
from staplegate.process.traffic import WorkerReport
from staplegate.proxy.http_rules import ServiceSnapshot, StatsService
from staplegate.proxy.stats_admin import DONE, AdminChannel, AdminMessage, AdminRequest
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


def test_reports_travel_over_a_real_pipe_and_the_last_one_is_written_on_exit() -> None:
    first = WorkerReport({"www": {"stot": 1}}, {("web", "a"): {"stot": 1}})
    last = WorkerReport({"www": {"stot": 2}}, {})

    async def scenario() -> list[WorkerReport]:
        read_fd, write_fd = os.pipe()
        writer = ReportWriter(write_fd)
        writer.send(first)
        writer.finish(last)  # closes the pipe: the reader ends
        assert writer.closed
        writer.send(first)  # after the end: ignored, never raises
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        got: list[WorkerReport] = []
        await read_reports(reader, got.append)
        transport.close()
        return got

    assert asyncio.run(scenario()) == [first, last]


def test_a_full_report_pipe_never_blocks_the_worker() -> None:
    read_fd, write_fd = os.pipe()
    writer = ReportWriter(write_fd)
    big = WorkerReport({f"frontend{i}": {"stot": i} for i in range(20_000)}, {})
    for _ in range(5):
        writer.send(big)  # the pipe takes 64 KiB: the rest waits, newer reports too
    writer.close()
    os.close(read_fd)


def test_the_metrics_snapshot_reaches_the_worker_service() -> None:
    async def scenario() -> bytes:
        read_fd, write_fd = os.pipe()
        os.write(write_fd, encode_metrics(b"# metrics\n"))
        os.close(write_fd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        snapshot = ServiceSnapshot()
        with contextlib.suppress(asyncio.IncompleteReadError):
            await read_messages(reader, StapleTable({}), {}, snapshot)
        transport.close()
        return snapshot.body

    assert asyncio.run(scenario()) == b"# metrics\n"


def test_stats_admin_actions_go_up_the_report_pipe_between_reports() -> None:
    report = WorkerReport({"www": {"stot": 1}}, {})
    action = AdminMessage(7, AdminRequest("stats", "web", "maint", ("a", "b")))

    async def scenario() -> tuple[list[WorkerReport], list[AdminMessage]]:
        read_fd, write_fd = os.pipe()
        writer = ReportWriter(write_fd)
        writer.send(report)
        writer.send_admin(action)  # queued behind the report, never replaced by the next
        writer.finish(report)
        writer.send_admin(action)  # after the end: ignored
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        reports: list[WorkerReport] = []
        actions: list[AdminMessage] = []
        await read_reports(reader, reports.append, actions.append)
        transport.close()
        return reports, actions

    assert asyncio.run(scenario()) == ([report, report], [action])


def test_the_worker_takes_its_pages_and_the_answers_to_its_actions() -> None:
    service = StatsService("stats", "/", [], None)
    channel = AdminChannel(lambda message: None)

    async def scenario() -> str:
        read_fd, write_fd = os.pipe()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        waiting = asyncio.create_task(
            channel.submit(AdminRequest("stats", "web", "ready", ("a",)), timeout=10)
        )
        await asyncio.sleep(0)
        os.write(write_fd, encode_stats_pages({"stats": (b"ro", b"csv", b"rw")}))
        os.write(write_fd, encode_admin_result(1, DONE))
        os.close(write_fd)
        with contextlib.suppress(asyncio.IncompleteReadError):
            await read_messages(reader, StapleTable({}), {}, None, {"stats": service}, channel)
        transport.close()
        return await waiting

    assert asyncio.run(scenario()) == DONE
    assert (service.html, service.csv, service.admin_html) == (b"ro", b"csv", b"rw")
