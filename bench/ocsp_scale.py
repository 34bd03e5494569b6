#!/usr/bin/env python3
"""How long does it take to bring N certificates from no staple to stapled, and at what memory?

Setup: a test CA with a delegated P-256 OCSP signer and N leaf certificates in its index.txt
(made directly with cryptography, one shared leaf key, so 10,000 certificates take seconds);
a local `staplegate responder` on 127.0.0.1 (`--responder-workers`, default 2) answering
every request with a freshly signed response (each certificate is asked once, so the
responder's cache never helps).

Modes:
- `inprocess` (default): `OcspUpdater` runs in a fresh Python process with a
  `FileStapleStore` in a temporary state directory (every staple persisted with fsync, as in
  production); the clock stops when `on_staples` has seen all N CertIds. Memory is that
  process's RSS after loading the certificates vs after all are stapled, divided by N.
- `subprocess`: `staplegate -f CFG --workers 1` with a crt-list of N HAProxy bundles and a
  UDP `log` target; the clock runs from spawning staplegate to the N-th `1 "Update
  successful"` line. This includes the master's staple broadcasts to its worker and uses
  app.py's updater settings (not --rate/--burst/--concurrency).

    .venv/bin/python bench/ocsp_scale.py --counts 1000 --rate 10 --burst 20 --concurrency 4
    .venv/bin/python bench/ocsp_scale.py --counts 1000 10000   # OcspUpdater's defaults
    .venv/bin/python bench/ocsp_scale.py --mode subprocess --counts 1000

`--rate 0` means no per-host rate limit. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from staplegate.ocsp.certid import CertId
from staplegate.testpki.ca import CertificateAuthority
from staplegate.testpki.index import EntryStatus, IndexEntry, write_index

READY = "staplegate responder listening on "


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Pki:
    ca: CertificateAuthority
    signer_cert: Path
    signer_key: Path
    leaves: list[x509.Certificate]
    leaf_key: ec.EllipticCurvePrivateKey


def make_pki(directory: Path, count: int, ocsp_url: str | None) -> Pki:
    """A CA, a delegated signer and `count` leaves, all recorded in index.txt in one write."""
    ca = CertificateAuthority.init(directory / "ca", ocsp_url=None)
    signer = ca.ocsp_signer()
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=30)
    leaves = []
    entries = list(ca.entries())
    serial_base = int.from_bytes(os.urandom(7), "big") << 16
    for i in range(count):
        name = f"host{i}.bench.test"
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.certificate.subject)
            .public_key(leaf_key.public_key())
            .serial_number(serial_base + i)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        )
        if ocsp_url:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(ocsp_url),
                        )
                    ]
                ),
                critical=False,
            )
        leaf = builder.sign(ca.private_key, hashes.SHA256())
        leaves.append(leaf)
        entries.append(IndexEntry(EntryStatus.VALID, end, serial_base + i, f"/CN={name}"))
    write_index(ca.index_path, entries)
    return Pki(ca, signer.cert_path, signer.key_path, leaves, leaf_key)


@contextmanager
def responder(pki: Pki, workers: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log_path = pki.ca.directory.parent / "responder.log"
    with log_path.open("wb") as log:  # a file, not a pipe: nobody has to drain it
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "staplegate", "responder"),
                *("--index", str(pki.ca.index_path), "--CA", str(pki.ca.ca_cert_path)),
                *("--rsigner", str(pki.signer_cert), "--rkey", str(pki.signer_key)),
                *("--port", str(port), "--workers", str(workers)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            text = log_path.read_text()
            if READY in text:
                url = text.split(READY, 1)[1].split()[0]
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the responder did not start:\n{text}")
            time.sleep(0.05)
        yield url, process
    finally:
        process.terminate()
        process.wait(10)


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its children (live ones), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


# --- in-process mode (runs in a child process: `--one N`) ---


def run_one_inprocess(
    args: argparse.Namespace, count: int, url: str, work: Path
) -> dict[str, float]:
    from staplegate.fetch.client import FetchSettings
    from staplegate.ocsp.schedule import UpdateSettings
    from staplegate.store import FileStapleStore
    from staplegate.updater.driver import UpdaterEntry
    from staplegate.updater.service import OcspUpdater

    rss_start = rss_bytes()
    leaves = [
        x509.load_pem_x509_certificate(block)
        for block in re.findall(
            rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n",
            (work / "leaves.pem").read_bytes(),
            re.DOTALL,
        )
    ]
    issuer = x509.load_pem_x509_certificate((work / "issuer.pem").read_bytes())
    entries = [
        UpdaterEntry(certificate=leaf, issuer=issuer, path=f"/bench/host{i}.pem", uri=url)
        for i, leaf in enumerate(leaves)
    ]
    rss_loaded = rss_bytes()
    done = asyncio.Event()
    seen = {"max": 0}

    def on_staples(table: Mapping[CertId, bytes]) -> None:
        seen["max"] = max(seen["max"], len(table))
        if len(table) >= count:
            done.set()

    rate = args.rate if args.rate > 0 else 1e9
    updater = OcspUpdater(
        entries,
        update_settings=UpdateSettings(),
        fetch_settings=FetchSettings(),
        on_staples=on_staples,
        store=None if args.no_store else FileStapleStore(work / "state"),
        max_concurrent=args.concurrency,
        host_rate=rate,
        host_burst=args.burst,
    )

    async def scenario() -> dict[str, float]:
        started = asyncio.Event()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        task = asyncio.create_task(updater.run(started=started))
        await started.wait()
        await asyncio.wait_for(done.wait(), args.timeout)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        await updater.flush()
        flushed = time.perf_counter() - t0
        rss_end = rss_bytes()
        updater.stop()
        await task
        return {
            "seconds": elapsed,
            "seconds_persisted": flushed,
            "cpu_seconds": cpu,
            "rss_start": rss_start,
            "rss_loaded": rss_loaded,
            "rss_end": rss_end,
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }

    return asyncio.run(scenario())


# --- subprocess mode ---


def run_one_subprocess(
    args: argparse.Namespace, pki: Pki, count: int, work: Path
) -> dict[str, float]:
    bundles = work / "bundles"
    bundles.mkdir()
    key_pem = pki.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_pem = pki.ca.certificate.public_bytes(serialization.Encoding.PEM)
    lines = []
    for i, leaf in enumerate(pki.leaves):
        path = bundles / f"host{i}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(leaf.public_bytes(serialization.Encoding.PEM) + key_pem + ca_pem)
        lines.append(f"{path} host{i}.bench.test\n")
    crt_list = work / "crt-list.txt"
    crt_list.write_text("".join(lines))
    syslog = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    syslog.bind(("127.0.0.1", 0))
    syslog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    config = work / "haproxy.cfg"
    config.write_text(
        "global\n"
        f"    log 127.0.0.1:{syslog.getsockname()[1]} local0\n"
        "    ocsp-update.mode on\n"
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n"
        "    timeout server 10s\n"
        f"frontend www\n    bind 127.0.0.1:{free_port()} ssl crt-list {crt_list}\n"
        "    default_backend web\n"
        "backend web\n    server web1 127.0.0.1:9\n"
    )
    t0 = time.perf_counter()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "staplegate", "-f", str(config)),
            *("--state-dir", str(work / "state"), "--workers", "1"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    successes = 0
    started_at = None
    rss_started = 0
    syslog.settimeout(args.timeout)
    try:
        while successes < count:
            data = syslog.recv(65536)
            if b"staplegate started" in data and started_at is None:
                started_at = time.perf_counter() - t0
                rss_started = rss_bytes(process.pid)
            if b'1 "Update successful"' in data:
                successes += 1
        elapsed = time.perf_counter() - t0
        rss_end = rss_bytes(process.pid)
        cpu = tree_cpu_seconds(process.pid)
    finally:
        process.terminate()
        process.wait(30)
        syslog.close()
    return {
        "seconds": elapsed,
        "seconds_to_started": started_at or 0.0,
        "cpu_seconds": cpu,
        "rss_loaded": rss_started,
        "rss_end": rss_end,
    }


def updater_defaults() -> dict[str, float]:
    """OcspUpdater's own defaults, so a plain run measures what staplegate ships."""
    import inspect

    from staplegate.updater.service import OcspUpdater

    parameters = inspect.signature(OcspUpdater.__init__).parameters
    return {
        name: float(parameters[name].default)
        for name in ("host_rate", "host_burst", "max_concurrent")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--mode", choices=("inprocess", "subprocess"), default="inprocess")
    defaults = updater_defaults()
    parser.add_argument(
        "--rate", type=float, default=defaults["host_rate"], help="per-host fetches/s (0: none)"
    )
    parser.add_argument("--burst", type=int, default=int(defaults["host_burst"]))
    parser.add_argument(
        "--concurrency", type=int, default=int(defaults["max_concurrent"]), help="fetches in flight"
    )
    parser.add_argument("--responder-workers", type=int, default=2)
    parser.add_argument("--no-store", action="store_true", help="don't persist staples")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one is not None:  # child of the in-process mode
        print(json.dumps(run_one_inprocess(args, args.one, args.url, args.work)))
        return 0

    print(
        f"mode={args.mode} responder=staplegate responder --workers {args.responder_workers} "
        f"(P-256 delegated signer, fresh signature per request), "
        + (
            f"updater: rate={'none' if args.rate <= 0 else f'{args.rate:g}/s'} "
            f"burst={args.burst} concurrency={args.concurrency} "
            f"store={'none' if args.no_store else 'FileStapleStore (fsync)'}"
            if args.mode == "inprocess"
            else "updater: app.py's settings"
        )
    )
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]}")
    print(
        "| certificates | seconds to all stapled | staples/s | CPU s (staplegate) | "
        "RSS before -> after | bytes per certificate |"
    )
    print("|---|---|---|---|---|---|")
    for count in args.counts:
        work = Path(tempfile.mkdtemp(prefix="ocsp-scale-"))
        try:
            if args.mode == "subprocess":
                pki = make_pki(work, count, ocsp_url=None)
                with responder(pki, args.responder_workers) as (url, _):
                    pki = _reissue_url(pki, url)
                    result = run_one_subprocess(args, pki, count, work)
            else:
                pki = make_pki(work, count, ocsp_url=None)
                (work / "leaves.pem").write_bytes(
                    b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pki.leaves)
                )
                (work / "issuer.pem").write_bytes(
                    pki.ca.certificate.public_bytes(serialization.Encoding.PEM)
                )
                with responder(pki, args.responder_workers) as (url, proc):
                    cpu0 = tree_cpu_seconds(proc.pid)
                    child = subprocess.run(
                        [
                            sys.executable, __file__, "--one", str(count), "--work", str(work),
                            "--url", url, "--rate", str(args.rate), "--burst", str(args.burst),
                            "--concurrency", str(args.concurrency), "--timeout", str(args.timeout),
                            *(["--no-store"] if args.no_store else []),
                        ],
                        capture_output=True, text=True, check=True,
                    )  # fmt: skip
                    result = json.loads(child.stdout.strip().splitlines()[-1])
                    result["responder_cpu"] = tree_cpu_seconds(proc.pid) - cpu0
        finally:
            shutil.rmtree(work, ignore_errors=True)
        per_cert = (result["rss_end"] - result["rss_loaded"]) / count
        print(
            f"| {count:,} | {result['seconds']:.1f} | {count / result['seconds']:,.0f} | "
            f"{result['cpu_seconds']:.1f} | {result['rss_loaded'] / 2**20:.0f} MiB -> "
            f"{result['rss_end'] / 2**20:.0f} MiB | {per_cert:,.0f} |",
            flush=True,
        )
        extra = {k: round(v, 2) for k, v in result.items() if k not in ("rss_end", "rss_loaded")}
        print(f"  details: {extra}", flush=True)
    return 0


def _reissue_url(pki: Pki, url: str) -> Pki:
    """Leaves carrying the responder's real URL (the port is known only once it listens)."""
    now = dt.datetime.now(dt.UTC)
    leaves = []
    for leaf in pki.leaves:
        builder = (
            x509.CertificateBuilder()
            .subject_name(leaf.subject)
            .issuer_name(leaf.issuer)
            .public_key(pki.leaf_key.public_key())
            .serial_number(leaf.serial_number)
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(url),
                        )
                    ]
                ),
                critical=False,
            )
        )
        leaves.append(builder.sign(pki.ca.private_key, hashes.SHA256()))
    return Pki(pki.ca, pki.signer_cert, pki.signer_key, leaves, pki.leaf_key)


if __name__ == "__main__":
    sys.exit(main())
