#!/usr/bin/env python3
"""Cold start of a whole `staplegate` (master + workers): how long until every certificate is
stapled in every worker, and at what memory?

Setup (shared with bench/ocsp_scale.py): a test CA with a delegated P-256 OCSP signer and N
leaves in its index.txt, one shared leaf key; `staplegate responder --workers 2` on 127.0.0.1
signs every answer afresh. staplegate runs as a user runs it, `staplegate -f CFG --state-dir
EMPTY --workers W`, with a crt-list of N bundles, `ocsp-update.mode on` and its shipped updater
settings, logging at debug to stdout (a file, so no line is lost).

Clock: from spawning staplegate until every worker has logged that it holds N staples (the
workers log each staple message they apply). Then a handshake check: `--verify` full TLS
handshakes (default 200 random certificates; `--verify 0` none, `--verify -1` all) must each
carry a staple. Memory: the master's RSS when every worker is stapled and its peak (VmHWM),
and the workers' peaks. The master's debug lines give the staple messages and bytes it piped;
"whole tables would be" is what the same sends would have cost as whole tables (coalescing
alone, no deltas), from the table size at each send and the mean staple size.

`--probe` ignores the workers' log lines and sweeps handshakes instead: over the certificates
not yet seen stapled until none is left, then over all of them again until one whole sweep is
stapled (a handshake reaches either worker, and workers may lag each other), so its time
includes up to two sweeps (~1.5 ms per handshake here). It works with any staplegate version
(to compare against an older tree: `PYTHONPATH=/path/to/old/src`).

    flock /tmp/bench.lock .venv/bin/python bench/cold_start.py --counts 2000 5000

Only 127.0.0.1 is ever contacted.

Figures on the 2-core development VM (shared with other jobs, ±20 %), 2 workers:

| tree | certificates | seconds | master RSS (peak) | CPU s all/master | messages | MiB piped |
|---|---|---|---|---|---|---|
| before, --probe | 2,000 | 90.9 | 186 MiB (4,662 MiB) | 138 / 46 | 4,000 | ~3,000 |
| deltas, --probe | 2,000 | 16.7 | 146 MiB (146 MiB) | 16.0 / 8.9 | 374 | 3.1 |
| deltas | 2,000 | 9.8 | 146 MiB (146 MiB) | 6.9 / 6.7 | 494 | 3.1 |
| deltas | 5,000 | 25.1 | 284 MiB (284 MiB) | 21.6 / 21.3 | 582 | 7.8 |

("before": the tree without coalescing, a whole table per change — 2,000 tables of 0.8 MB on
average to each worker; "deltas": coalesced deltas. --probe adds its handshake sweeps to the
time and CPU. With deltas the time is the updater's own: 250
fetches/s per responder host, i.e. 8 s and 20 s of fetching.)
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocsp_scale import (  # a sibling script, not a package
    Pki,
    _reissue_url,
    free_port,
    make_pki,
    responder,
    tree_cpu_seconds,
)

WORKER_TABLE = re.compile(r"worker (\d+): staple table.*: (\d+) staples$")
MASTER_SENT = re.compile(
    r"staples sent to worker #\d+ \(\d+\): (?:whole table|(\d+) changed, (\d+) withdrawn), "
    r"(\d+) bytes; table (\d+) staples"
)


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} for {pid}")


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def write_bundles(pki: Pki, work: Path) -> Path:
    bundles = work / "bundles"
    bundles.mkdir()
    key_pem = pki.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_pem = pki.ca.certificate.public_bytes(serialization.Encoding.PEM)
    lines = []
    for i, leaf in enumerate(pki.leaves):
        path = bundles / f"host{i}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds a key
        with os.fdopen(fd, "wb") as handle:
            handle.write(leaf.public_bytes(serialization.Encoding.PEM) + key_pem + ca_pem)
        lines.append(f"{path} host{i}.bench.test\n")
    crt_list = work / "crt-list.txt"
    crt_list.write_text("".join(lines))
    return crt_list


def handshake_stapled(port: int, servername: str) -> bool:
    stapled = False

    def on_staple(_conn: SSL.Connection, data: bytes, _arg: object) -> bool:
        nonlocal stapled
        stapled = bool(data)
        return True

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_ocsp_client_callback(on_staple)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.settimeout(None)
        conn = SSL.Connection(context, raw)
        conn.set_tlsext_host_name(servername.encode())
        conn.request_ocsp()
        conn.set_connect_state()
        conn.do_handshake()
    return stapled


@dataclass
class LogTail:
    """Reads the lines staplegate appended to its log file since the last call."""

    path: Path
    offset: int = 0
    partial: str = ""
    lines: list[str] = field(default_factory=list)

    def poll(self) -> list[str]:
        with self.path.open("r", encoding="utf-8", errors="replace") as handle:
            handle.seek(self.offset)
            data = handle.read()
            self.offset = handle.tell()
        data = self.partial + data
        *new, self.partial = data.split("\n")
        self.lines += new
        return new


def run_one(args: argparse.Namespace, count: int, work: Path) -> dict[str, float]:
    pki = make_pki(work, count, ocsp_url=None)
    with responder(pki, args.responder_workers) as (url, _):
        pki = _reissue_url(pki, url)
        crt_list = write_bundles(pki, work)
        port = free_port()
        config = work / "haproxy.cfg"
        config.write_text(
            "global\n    log stdout format raw local0 debug\n    ocsp-update.mode on\n"
            "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n"
            "    timeout server 10s\n"
            f"frontend www\n    bind 127.0.0.1:{port} ssl crt-list {crt_list}\n"
            "    default_backend web\n"
            "backend web\n    server web1 127.0.0.1:9\n"
        )
        log_path = work / "staplegate.log"
        with log_path.open("wb") as log:
            t0 = time.perf_counter()
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "staplegate", "-f", str(config)),
                    *("--state-dir", str(work / "state"), "--workers", str(args.workers)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        tail = LogTail(log_path)
        try:
            return measure(args, count, pki, port, process, tail, t0)
        finally:
            process.terminate()
            process.wait(60)


def measure(
    args: argparse.Namespace,
    count: int,
    pki: Pki,
    port: int,
    process: subprocess.Popen[bytes],
    tail: LogTail,
    t0: float,
) -> dict[str, float]:
    names = [f"host{i}.bench.test" for i in range(count)]
    deadline = t0 + args.timeout
    started_at = 0.0
    workers: list[int] = []
    held: dict[int, int] = {}
    pending, full_sweep = list(names), True
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"staplegate exited:\n{''.join(tail.lines[-30:])}")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"not all stapled within {args.timeout}s: {held or len(pending)}")
        for line in tail.poll():
            if not started_at and "staplegate started" in line:
                started_at = time.perf_counter() - t0
                workers = children(process.pid)
            match = WORKER_TABLE.search(line)
            if match:
                held[int(match[1])] = int(match[2])
        if not started_at:
            time.sleep(0.02)
            continue
        if args.probe:
            failed = [name for name in pending if not handshake_stapled(port, name)]
            if full_sweep and not failed:
                break
            pending, full_sweep = (failed, False) if failed else (list(names), True)
        elif len(held) >= args.workers and all(held.get(pid) == count for pid in workers):
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    master_rss = proc_status(process.pid, "VmRSS")
    master_peak = proc_status(process.pid, "VmHWM")
    worker_peaks = [proc_status(pid, "VmHWM") for pid in workers]
    cpu = tree_cpu_seconds(process.pid)
    master_cpu = tree_cpu_seconds_one(process.pid)

    sample = names if args.verify < 0 else random.sample(names, min(args.verify, count))
    t1 = time.perf_counter()
    unstapled = [name for name in sample if not handshake_stapled(port, name)]
    verify_seconds = time.perf_counter() - t1
    if unstapled and not args.probe:
        raise RuntimeError(f"{len(unstapled)} of {len(sample)} handshakes without a staple")

    tail.poll()
    messages = staple_bytes = changed = 0
    table_sizes: list[int] = []
    for line in tail.lines:
        match = MASTER_SENT.search(line)
        if match:
            messages += 1
            staple_bytes += int(match[3])
            if match[1] is not None:
                changed += int(match[1])
                table_sizes.append(int(match[4]))
    mean_staple = staple_bytes / changed if changed else 0.0
    return {
        "seconds": elapsed,
        "seconds_to_started": started_at,
        "master_rss": master_rss,
        "master_peak": master_peak,
        "worker_peak": max(worker_peaks, default=0),
        "cpu_seconds": cpu,
        "master_cpu_seconds": master_cpu,
        "messages": messages,
        "staple_bytes": staple_bytes,
        "whole_table_bytes": sum(table_sizes) * mean_staple,
        "verified": len(sample),
        "unstapled": len(unstapled),
        "verify_seconds": verify_seconds,
    }


def tree_cpu_seconds_one(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[2000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--responder-workers", type=int, default=2)
    parser.add_argument("--verify", type=int, default=200, help="handshakes checked (-1: all)")
    parser.add_argument("--probe", action="store_true", help="readiness by handshakes only")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)

    print(
        f"staplegate --workers {args.workers}, staplegate responder --workers "
        f"{args.responder_workers} (P-256 delegated signer, fresh signature per request), "
        f"readiness: {'handshake sweeps' if args.probe else 'every worker logs N staples'}"
    )
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]}")
    print(
        "| certificates | seconds to all stapled in every worker | master RSS (peak) | "
        "worker peak RSS | CPU s (all / master) | staple messages | MiB piped "
        "(whole tables would be) |"
    )
    print("|---|---|---|---|---|---|---|")
    for count in args.counts:
        work = Path(tempfile.mkdtemp(prefix="cold-start-"))
        try:
            r = run_one(args, count, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        mib = 2**20
        print(
            f"| {count:,} | {r['seconds']:.1f} | {r['master_rss'] / mib:.0f} MiB "
            f"({r['master_peak'] / mib:.0f} MiB) | {r['worker_peak'] / mib:.0f} MiB | "
            f"{r['cpu_seconds']:.1f} / {r['master_cpu_seconds']:.1f} | {r['messages']:.0f} | "
            f"{r['staple_bytes'] / mib:.1f} ({r['whole_table_bytes'] / mib:.0f}) |",
            flush=True,
        )
        print(
            f"  started after {r['seconds_to_started']:.1f} s; {r['verified']:.0f} handshakes, "
            f"{r['unstapled']:.0f} without a staple ({r['verify_seconds']:.1f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
