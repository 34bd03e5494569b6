#!/usr/bin/env python3
"""How long does rendering `/metrics` take with N certificates, and how big is it?

Setup (shared with bench/ocsp_scale.py and cold_start.py): a test CA with a delegated OCSP
signer and N leaves, `staplegate responder` on 127.0.0.1; the bundles are loaded as start-up
loads them (`load_certificate`, `assess_ocsp`) and a real `OcspUpdater` fetches a staple for
every one. Then the master's metrics collector (`observe.metrics.StaplegateCollector`, the
one `process.supervisor` pushes to workers) is rendered `--repeat` times through
prometheus-client's `generate_latest`, against a `ProcessView` holding those certificates and
the real updater, the way `process.supervisor` does it: the state read on the event loop
(`CollectedMetrics`), the families built and formatted in a thread (`asyncio.to_thread`),
while a 1 ms ticker on the loop records how long the loop was blocked. The stats page (its
certificates table of the same N) is timed the same way (`collect_pages` on the loop,
`render_pages` in a thread). What a scrape costs a worker is a copy of the bytes rendered here: the
workers never compute metrics (docs/explanation/architecture.md), so the data plane's hot
path is unchanged and only the master pays this, at most once per `METRICS_INTERVAL_S` (or
`METRICS_COST_FACTOR` x the render time, when longer).

    flock /tmp/bench.lock .venv/bin/python bench/metrics_scrape.py --count 10000

Only 127.0.0.1 is ever contacted. Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold_start import write_bundles  # a sibling script, not a package
from ocsp_scale import _reissue_url, make_pki, responder

from staplegate.certs import CertificateSource, ExtraFiles, LoadedCertificate, load_certificate
from staplegate.certs.readiness import assess_ocsp
from staplegate.clock import SystemClock
from staplegate.config.diagnostics import SourceLocation
from staplegate.config.model import StatsPage
from staplegate.deploy.generation import CertificateEntry
from staplegate.fetch.client import FetchSettings
from staplegate.observe.metrics import CollectedMetrics, StaplegateCollector, render
from staplegate.observe.statspage import collect_pages, render_pages
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.proxy.backends import AdminState
from staplegate.runtime.contract import (
    CommitResult,
    CrtListView,
    OcspService,
    ReloadReport,
    ServerView,
    StatRow,
)
from staplegate.updater.driver import UpdaterEntry
from staplegate.updater.service import OcspUpdater


class BenchView:
    """A `ProcessView` with the loaded certificates, the running updater, one frontend."""

    def __init__(self, stores: Sequence[CertificateEntry], updater: OcspUpdater) -> None:
        self._stores = stores
        self._updater = updater

    def ocsp_updater(self) -> OcspService:
        return self._updater

    def certificates(self) -> Sequence[CertificateEntry]:
        return self._stores

    def crt_lists(self) -> Sequence[CrtListView]:
        return ()

    async def commit_certificate(self, name: str, certificate: LoadedCertificate) -> CommitResult:
        raise NotImplementedError

    async def reload(self) -> ReloadReport:
        raise NotImplementedError

    def last_reload(self) -> ReloadReport | None:
        return None

    def servers(self) -> Sequence[ServerView]:
        return ()

    def set_server_state(self, backend: str, server: str, state: AdminState) -> None:
        raise NotImplementedError

    def info(self) -> Mapping[str, str | int]:
        return {"Nbthread": 2, "Nbproc": 1, "Uptime_sec": 1, "Stopping": 0, "DroppedLogs": 0}

    def stats(self) -> Sequence[StatRow]:
        names = tuple(store.name for store in self._stores)
        row: dict[str, str | int | None] = {"pxname": "www", "svname": "FRONTEND", "mode": "http"}
        return (StatRow(row, certificates=names, handshakes={"sent": 1}),)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        work = Path(tmp)
        pki = make_pki(work / "pki", args.count, None)
        with responder(pki, 2) as (url, _process):
            pki = _reissue_url(pki, url)
            crt_list = write_bundles(pki, work)
            now = SystemClock().now()
            t0 = time.perf_counter()
            stores = []
            for line in crt_list.read_text().splitlines():
                path = line.split()[0]
                cert = load_certificate(
                    CertificateSource.from_path(Path(path)), extra=ExtraFiles(), now=now
                )
                readiness = assess_ocsp(cert, ocsp_update=True)
                stores.append(CertificateEntry(cert.name, (), cert, None, readiness, None))
            print(f"loaded {len(stores)} certificates in {time.perf_counter() - t0:.1f} s")
            figures = asyncio.run(_scrape(stores, args.count, args.repeat, args.timeout))
    print(
        f"{args.count} certificates: render median {figures['median']:.3f} s "
        f"(min {figures['min']:.3f}, max {figures['max']:.3f}), "
        f"{figures['bytes'] / 1e6:.1f} MB, {figures['lines']} lines; "
        f"of which reading the state (on the master's loop): {figures['read']:.3f} s; "
        f"longest loop block {figures['blocked']:.3f} s"
    )
    print(
        f"stats page: median {figures['page']:.3f} s, of which on the loop "
        f"{figures['page_read']:.3f} s ({figures['page_read_shared']:.3f} s with the metrics' "
        f"snapshot); longest loop block {figures['page_blocked']:.3f} s; "
        f"{figures['page_bytes'] / 1e6:.1f} MB"
    )
    return 0


class LoopLag:
    """The longest the event loop went without running a 1 ms ticker (its blocking)."""

    def __init__(self) -> None:
        self.longest = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.001)
            now = loop.time()
            self.longest = max(self.longest, now - last - 0.001)
            last = now


async def _scrape(
    stores: Sequence[CertificateEntry], count: int, repeat: int, timeout: float
) -> dict[str, float]:
    done = asyncio.Event()

    def on_staples(table: Mapping[CertId, bytes]) -> None:
        if len(table) >= count:
            done.set()

    entries = [
        UpdaterEntry(
            certificate=store.certificate.leaf,
            issuer=store.certificate.issuer,
            path=store.name,
            uri=store.certificate.ocsp_uri,
        )
        for store in stores
        if store.certificate is not None and store.certificate.issuer is not None
    ]
    updater = OcspUpdater(
        entries,
        update_settings=UpdateSettings(),
        fetch_settings=FetchSettings(),
        on_staples=on_staples,
        max_concurrent=64,
        host_rate=1e9,
        host_burst=1000,
    )
    started = asyncio.Event()
    task = asyncio.create_task(updater.run(started=started))
    t0 = time.perf_counter()
    await started.wait()
    await asyncio.wait_for(done.wait(), timeout)
    print(f"stapled {count} certificates in {time.perf_counter() - t0:.1f} s")
    collector = StaplegateCollector(
        BenchView(stores, updater), now=SystemClock().now, started_at=time.time()
    )
    view = BenchView(stores, updater)
    times = []
    reads = []
    body = b""
    lag = LoopLag()
    ticker = asyncio.create_task(lag.run())
    await asyncio.sleep(0.01)
    for _ in range(repeat):
        began = time.perf_counter()
        collected = CollectedMetrics(collector)  # what the master's loop does
        reads.append(time.perf_counter() - began)
        body = await asyncio.to_thread(render, collected)  # what its thread does
        times.append(time.perf_counter() - began)
    blocked, lag.longest = lag.longest, 0.0
    pages = {"stats": StatsPage(SourceLocation("bench.cfg", 1), uri="/stats")}
    page_times = []
    page_reads = []
    shared_reads = []
    page = b""
    for _ in range(repeat):
        began = time.perf_counter()
        data = collect_pages(view, pages, now=SystemClock().now(), uptime_s=1)
        page_reads.append(time.perf_counter() - began)
        page = (await asyncio.to_thread(render_pages, data))["stats"][0]
        page_times.append(time.perf_counter() - began)
        # with /metrics on too, the supervisor hands the page the metrics' snapshot
        began = time.perf_counter()
        collect_pages(
            view, pages, now=SystemClock().now(), uptime_s=1, snapshots=collected.snapshots
        )
        shared_reads.append(time.perf_counter() - began)
    ticker.cancel()
    updater.stop()
    await task
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "bytes": len(body),
        "lines": body.count(b"\n"),
        "read": statistics.median(reads),
        "blocked": blocked,
        "page": statistics.median(page_times),
        "page_read": statistics.median(page_reads),
        "page_read_shared": statistics.median(shared_reads),
        "page_blocked": lag.longest,
        "page_bytes": len(page),
    }


if __name__ == "__main__":
    raise SystemExit(main())
