"""The master's staple broadcast: coalesced, delta-encoded, never blocked by a slow worker.

A real `Master` (built from a real configuration) writes to a real pipe per "worker"; the
worker side is the real `read_messages` feeding a `StapleTable` on the same loop, so only
the fork is missing. Time is the event loop's own clock, which a test can step forward
(`SteppedClockLoop`) instead of sleeping through an interval.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from staplegate.clock import SystemClock
from staplegate.deploy.generation import load_generation
from staplegate.deploy.plan import build_plan
from staplegate.ocsp.certid import CertId
from staplegate.process.ipc import read_messages
from staplegate.process.master import Deployment, Master, WorkerHandle
from staplegate.proxy.http_rules import ServiceSnapshot
from staplegate.testpki.pytest_plugin import Pki
from staplegate.tls.staples import StapleTable

CONFIG = """\
global
    log stdout format raw local0 info
defaults
    mode tcp
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend www
    bind 127.0.0.1:9 ssl crt {crt}
    default_backend web
backend web
    server web1 127.0.0.1:9
"""


def make_master(tmp_path: Path, pki: Pki) -> Master:
    leaf = pki.issue("www.example.test")
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(crt=leaf.bundle_path), encoding="utf-8")
    clock = SystemClock()
    generation = load_generation([str(config)], now=clock.now(), err=io.StringIO())
    assert generation is not None
    assert generation.ok
    plan, _ = build_plan(generation, number=1)
    assert plan is not None
    return Master(
        config_paths=(str(config),),
        current=Deployment(1, generation, plan, sockets={}),  # nothing listens: no sockets
        state_dir=tmp_path / "state",
        worker_count=1,
        clock=clock,
    )


class SteppedClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock `advance` moves forward: what is due by then runs at once."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = 0.0

    def time(self) -> float:
        return super().time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def cert_id(serial: int) -> CertId:
    return CertId("sha1", b"\x01" * 20, b"\x02" * 20, serial)


@dataclass
class FakeWorker:
    """The worker end of one pipe: a live table fed by the real message reader."""

    handle: WorkerHandle
    table: StapleTable
    start_reading: Callable[[], None]
    exporter: ServiceSnapshot

    async def wait_for(self, expected: dict[CertId, bytes], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.table.snapshot() != expected:
                await asyncio.sleep(0.002)


@asynccontextmanager
async def worker_pipe(master: Master, *, reading: bool = True) -> AsyncIterator[FakeWorker]:
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    handle = WorkerHandle(slot=0, pid=-1, deployment=master.current.number, write_fd=write_fd)
    master.workers[handle.pid] = handle
    table = StapleTable()
    exporter = ServiceSnapshot()
    reader = asyncio.StreamReader()
    tasks: list[asyncio.Task[None]] = []
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    if not reading:
        transport.pause_reading()

    def start_reading() -> None:
        transport.resume_reading()

    tasks.append(loop.create_task(read_messages(reader, table, master.pools, exporter)))
    await master.attach_pipe(handle)
    try:
        yield FakeWorker(handle, table, start_reading, exporter)
    finally:
        master.close_pipe(handle)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        transport.close()


def fixed_interval(master: Master, seconds: float) -> None:
    master.staple_interval_per_staple_s = 1.0
    master.staple_interval_max_s = seconds


def test_the_interval_grows_with_the_table_up_to_a_bound(tmp_path: Path, pki: Pki) -> None:
    master = make_master(tmp_path, pki)
    assert master.staple_interval() == 0.0
    master.table = {cert_id(serial): b"staple" for serial in range(4)}
    assert master.staple_interval() == 4 * master.staple_interval_per_staple_s < 0.001
    master.table = {cert_id(serial): b"staple" for serial in range(2000)}
    assert abs(master.staple_interval() - 0.1) < 1e-9
    master.table = {cert_id(serial): b"staple" for serial in range(50_000)}
    assert master.staple_interval() == master.staple_interval_max_s == 1.0


def test_a_burst_of_tables_is_sent_as_one_delta_and_the_worker_ends_with_the_latest(
    tmp_path: Path, pki: Pki
) -> None:
    master = make_master(tmp_path, pki)
    fixed_interval(master, 0.1)

    async def scenario() -> None:
        async with worker_pipe(master) as worker:
            assert master.staple_messages == 1  # the whole (empty) table when the pipe opens
            table: dict[CertId, bytes] = {}
            for serial in range(1000):  # what a cold start does: one table per new staple
                table[cert_id(serial)] = b"staple %d" % serial
                master.broadcast(dict(table))
            # the first went out at once (nothing sent for longer than the interval)...
            assert master.staple_messages == 2
            # ...the 999 others wait for one send at most one interval later
            await worker.wait_for(table)
            assert master.staple_messages == 3
            assert len(master.table) == 1000

    asyncio.run(scenario())


def test_after_a_quiet_interval_a_change_or_withdrawal_is_sent_at_once(
    tmp_path: Path, pki: Pki
) -> None:
    master = make_master(tmp_path, pki)
    fixed_interval(master, 0.05)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SteppedClockLoop)
        async with worker_pipe(master) as worker:
            table = {cert_id(1): b"one", cert_id(2): b"two"}
            master.broadcast(dict(table))
            await worker.wait_for(table)
            loop.advance(master.staple_interval())  # quiet for one interval, by the loop's clock
            before = master.staple_messages
            withdrawn = {cert_id(2): b"two"}
            master.broadcast(dict(withdrawn))
            assert master.staple_messages == before + 1  # written within broadcast() itself
            await worker.wait_for(withdrawn)
            # within the interval: not written now, but due no later than the interval's end
            sent_at = loop.time()
            refreshed = {cert_id(2): b"two, refreshed"}
            master.broadcast(dict(refreshed))
            assert master.staple_messages == before + 1
            await worker.wait_for(refreshed)
            assert loop.time() - sent_at < 0.05 + 1.0  # (+ 1 s: a loaded machine)
            assert master.staple_messages == before + 2

    with asyncio.Runner(loop_factory=SteppedClockLoop) as runner:
        runner.run(scenario())


def test_a_worker_that_does_not_read_costs_one_message_of_buffer_then_gets_one_merged_delta(
    tmp_path: Path, pki: Pki
) -> None:
    master = make_master(tmp_path, pki)
    fixed_interval(master, 0.1)

    async def scenario() -> None:
        async with worker_pipe(master, reading=False) as worker:
            pipe = worker.handle.pipe
            assert pipe is not None
            table: dict[CertId, bytes] = {}
            largest = 0
            for serial in range(300):  # 300 x 2 KB: far more than a pipe holds (64 KiB)
                table[cert_id(serial)] = os.urandom(2048)
                master.broadcast(dict(table))
                sent = master.staple_messages
                master.flush_staples()  # no coalescing: as if every change came slowly
                if master.staple_messages > sent:
                    largest = max(largest, pipe.get_write_buffer_size())
            # writes stopped once the pipe was full: the buffer holds at most one message
            assert 0 < pipe.get_write_buffer_size() <= largest < 300 * 2048
            stuck_at = master.staple_messages
            assert stuck_at < 100
            worker.start_reading()
            await worker.wait_for(table)
            # drained: the rest came as one delta, not one message per skipped change
            assert master.staple_messages <= stuck_at + 1

    asyncio.run(scenario())


def test_a_metrics_push_skipped_while_a_worker_drains_reaches_it_once_drained(
    tmp_path: Path, pki: Pki
) -> None:
    # At 50,000 certificates the first push came while the workers drained a 40 MB staple
    # delta, and `/metrics` answered 503 until the next render, 15 s later.
    master = make_master(tmp_path, pki)

    async def scenario() -> None:
        async with worker_pipe(master, reading=False) as worker:
            pipe = worker.handle.pipe
            assert pipe is not None
            table = {cert_id(serial): os.urandom(2048) for serial in range(100)}  # > 64 KiB
            master.broadcast(table)
            master.flush_staples()
            assert pipe.get_write_buffer_size() > 0
            master.push_metrics(b"# the first render\n")
            assert worker.handle.exposition_sent is None  # skipped: the pipe is busy
            worker.start_reading()
            await worker.wait_for(table)
            async with asyncio.timeout(10):
                while worker.exporter.body != b"# the first render\n":
                    await asyncio.sleep(0.002)
            assert worker.handle.exposition_sent == b"# the first render\n"

    asyncio.run(scenario())
