#!/usr/bin/env python3
"""Responder requests per certificate per refresh round for a fleet of 1, 3, 5 instances.

Setup: a real `redis-server` on 127.0.0.1 (a free port, no persistence, stopped by PID),
the test CA with a delegated P-256 signer and its responder (in-process thread, counting
requests), and N `OcspUpdater`s in one event loop, each with its own `RedisShare`
(`ocsp-update.shared-store`), sharing a clock with the responder so a refresh round is
"move the clock past maxdelay and the responder's cache, wake the updaters" (no waiting).
For contrast the same fleet runs without a shared store (`--baseline`, on by default).

Per round it prints the responder requests per certificate and the spread of install times
of each staple across the instances (the last instance to install it minus the first).

    .venv/bin/python bench/fleet.py                       # 50 certificates, 1/3/5 instances
    .venv/bin/python bench/fleet.py --certs 200 --instances 3 --rounds 3 --json out.json

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from staplegate.clock import SystemClock
from staplegate.fetch.client import FetchSettings
from staplegate.fleet.redis_share import RedisShare
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.testpki.pytest_plugin import Pki, make_pki
from staplegate.updater.driver import UpdaterEntry
from staplegate.updater.service import OcspUpdater

SETTINGS = UpdateSettings(mindelay=60, maxdelay=600)
VALIDITY = dt.timedelta(minutes=20)  # the responder caches an answer half of that
ROUND = dt.timedelta(minutes=11)  # past maxdelay and the responder's cache
FETCH = FetchSettings(connect_timeout=2.0, total_timeout=10.0, connect_retries=0)


class OffsetClock:
    def __init__(self) -> None:
        self._system = SystemClock()
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return self._system.now() + self.offset


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("redis-server did not start")
        time.sleep(0.02)


async def run_fleet(
    pki: Pki, clock: OffsetClock, url: str | None, instances: int, certs: int, rounds: int
) -> list[dict[str, float]]:
    entries, ids = [], []
    for number in range(certs):
        leaf = pki.issue(f"site{number}.{instances}.{'shared' if url else 'alone'}.test")
        entries.append(
            UpdaterEntry(leaf.certificate, leaf.issuer, f"/c/{number}.pem", pki.responder.url)
        )
        ids.append(CertId.for_certificate(leaf.certificate, leaf.issuer))
    installed: list[dict[tuple[CertId, bytes], float]] = [{} for _ in range(instances)]
    tables: list[Mapping[CertId, bytes]] = [{} for _ in range(instances)]

    def recorder(index: int) -> object:
        def on_staples(table: Mapping[CertId, bytes]) -> None:
            tables[index] = table
            now = time.monotonic()
            for cert_id, der in table.items():
                installed[index].setdefault((cert_id, der), now)

        return on_staples

    updaters = []
    for index in range(instances):
        share = (
            RedisShare(url, password=None, clock=clock, lease_ttl=5.0) if url is not None else None
        )
        updaters.append(
            OcspUpdater(
                entries,
                update_settings=SETTINGS,
                fetch_settings=FETCH,
                on_staples=recorder(index),  # type: ignore[arg-type]
                clock=clock,
                rng=random.Random(index),
                shared=share,
            )
        )
    events = [asyncio.Event() for _ in updaters]
    tasks = [asyncio.create_task(u.run(started=e)) for u, e in zip(updaters, events, strict=True)]
    results = []
    try:
        for event in events:
            await event.wait()
        previous: list[dict[CertId, bytes]] = [{} for _ in range(instances)]
        for round_number in range(rounds):
            if round_number:
                clock.offset += ROUND
                for updater in updaters:
                    updater.wake()
            before = len(pki.responder.requests)
            started = time.monotonic()
            while not all(
                all(table.get(c) not in (None, prev.get(c)) for c in ids)
                for table, prev in zip(tables, previous, strict=True)
            ):
                if time.monotonic() - started > 120:
                    raise SystemExit(f"round {round_number} did not complete")
                await asyncio.sleep(0.01)
            while any(u.fetches_in_flight for u in updaters):
                await asyncio.sleep(0.01)
            requests = len(pki.responder.requests) - before
            spreads = []
            for cert_id in ids:
                times = [installed[i][(cert_id, tables[i][cert_id])] for i in range(instances)]
                spreads.append(max(times) - min(times))
            results.append(
                {
                    "round": round_number,
                    "requests_per_certificate": requests / certs,
                    "install_spread_max_s": max(spreads),
                    "seconds": time.monotonic() - started,
                }
            )
            previous = [dict(t) for t in tables]
    finally:
        for updater in updaters:
            updater.stop()
        await asyncio.gather(*tasks)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--certs", type=int, default=50)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--svg", type=Path, help="write a bar chart (docs/img/fleet.svg)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt install redis-server)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        redis, url = start_redis(Path(tmp))
        try:
            for shared in [True] if args.no_baseline else [True, False]:
                for count in args.instances:
                    clock = OffsetClock()
                    pki = make_pki(
                        Path(tmp) / f"pki-{count}-{shared}", clock=clock, validity=VALIDITY
                    )
                    try:
                        for row in asyncio.run(
                            run_fleet(
                                pki, clock, url if shared else None, count, args.certs, args.rounds
                            )
                        ):
                            row.update(instances=count, shared=shared)
                            rows.append(row)
                            print(
                                f"{'shared' if shared else 'alone ':6} instances={count} "
                                f"round={row['round']} requests/certificate="
                                f"{row['requests_per_certificate']:.2f} install spread max="
                                f"{row['install_spread_max_s'] * 1000:.0f} ms "
                                f"({row['seconds']:.2f} s)",
                                flush=True,
                            )
                    finally:
                        pki.responder.stop()
        finally:
            redis.send_signal(signal.SIGKILL)
            redis.wait()
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    if args.svg is not None:
        args.svg.write_text(plot(rows), encoding="utf-8")


def plot(rows: list[dict[str, float]]) -> str:
    """A bar chart (SVG, no plotting library): mean requests per certificate per round, by
    fleet size, with and without the shared store."""
    sizes = sorted({int(r["instances"]) for r in rows})
    series = [(True, "#2b7bba", "shared store"), (False, "#c0504d", "each alone")]
    mean = {
        (n, shared): sum(r["requests_per_certificate"] for r in picked) / len(picked)
        for n in sizes
        for shared in (True, False)
        if (picked := [r for r in rows if r["instances"] == n and bool(r["shared"]) is shared])
    }
    top = max(mean.values(), default=1.0)
    width, height, left, bottom, bar = 120 + 110 * len(sizes), 260, 50, 220, 36
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="16">responder requests per certificate per refresh</text>',
        f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="black"/>',
    ]
    for index, n in enumerate(sizes):
        x0 = left + 20 + index * 110
        for offset, (shared, colour, _) in enumerate(series):
            value = mean.get((n, shared))
            if value is None:
                continue
            h = (bottom - 80) * value / top  # the legend sits above the tallest bar
            x = x0 + offset * (bar + 4)
            parts.append(
                f'<rect x="{x}" y="{bottom - h:.1f}" width="{bar}" height="{h:.1f}" '
                f'fill="{colour}"/>'
            )
            parts.append(f'<text x="{x + 4}" y="{bottom - h - 4:.1f}">{value:.2f}</text>')
        parts.append(f'<text x="{x0 + 10}" y="{bottom + 16}">{n} instance(s)</text>')
    for offset, (_, colour, label) in enumerate(series):
        parts.append(
            f'<rect x="{left + offset * 130}" y="28" width="10" height="10" fill="{colour}"/>'
        )
        parts.append(f'<text x="{left + 15 + offset * 130}" y="37">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
