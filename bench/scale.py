#!/usr/bin/env python3
"""One staplegate instance with N certificates (default 50,000) and stored staples: time to
listening, time until every worker staples all of them, memory as Pss — beside HAProxy 2.6
loading the same crt-list.

Setup: a test CA (staplegate.testpki, P-256) with a delegated P-256 OCSP signer; N leaves signed
directly with cryptography, all sharing ONE P-256 leaf key (generating 50,000 keys would be
slow and changes nothing the benchmark looks at except key memory); a crt-list of N HAProxy
bundles (leaf + key + CA). Every leaf's AIA names a counting TCP listener on 127.0.0.1 that
stands for the responder. For every leaf a GOOD response signed in-process by the delegated
signer (thisUpdate a minute ago, nextUpdate in 7 days) is written to the state directory as
`<CertId hex>.ocsp`, as staplegate itself stores it, so the staples are younger than
`maxdelay` and start-up needs 0 responder requests (the listener counts connections; the
report shows the count).

staplegate runs as a user runs it: `staplegate -f CFG --state-dir STATE --workers 2`,
`ocsp-update.mode on`, logging at debug to a file. Clocks from spawning it:
- "listening": the first TCP connect that succeeds (the master has bound the socket; the kernel
  queues connections before any worker serves); "serving": the first TLS handshake that
  completes (1 s timeout per try); "started": its `staplegate started` line;
- "stapled": every worker has logged a staple table of N staples (the workers log each staple
  message they apply) — read from the log, not from N handshakes; then `--verify` handshakes
  (`openssl s_client -status`, random names) must each show a successful OCSP response.
Then `show ssl ocsp-updates`, `show ssl cert` and `show info` on the admin stats socket: time,
lines and bytes of each answer (staplegate's cost to list N certificates).
Memory: the sum of Pss (/proc/PID/smaps_rollup, shared copy-on-write pages counted once) of the
master and every descendant, once all is stapled.

HAProxy 2.6 (Debian's `haproxy`) reads the same crt-list: `haproxy -c` wall time, then a started
`haproxy -db` (nbthread 2): time until its port accepts, its RSS and Pss. HAProxy gets no
`.ocsp` files (it would staple them without fetching; their ~0.5 KB each is left out).

The calibration line times a fixed pure-Python loop and one cryptography P-256 signature, so
runs on different machines or moments can be compared.

    flock /tmp/bench.lock .venv/bin/python bench/scale.py --count 5000
    flock /tmp/bench.lock .venv/bin/python bench/scale.py --count 50000

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from staplegate.ocsp.certid import CertId
from staplegate.testpki.ca import CertificateAuthority

WORKER_TABLE = re.compile(r"worker (\d+): staple table.*: (\d+) staples$")
MIB = 2**20
RUNTIME_COMMANDS = ("show ssl ocsp-updates", "show ssl cert", "show info")


def parse_pss(smaps_rollup: str) -> int:
    """Bytes of the `Pss:` line of /proc/PID/smaps_rollup."""
    for line in smaps_rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise ValueError("no Pss line")


def parse_worker_table(line: str) -> tuple[int, int] | None:
    """(worker pid, table size) from a worker's staple-table debug line, else None."""
    match = WORKER_TABLE.search(line)
    return (int(match[1]), int(match[2])) if match else None


def descendants(pid: int) -> list[int]:
    """`pid` and every live descendant (from /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def tree_memory(pid: int) -> tuple[int, int]:
    """(sum of Pss, sum of RSS) in bytes over `pid` and its descendants."""
    pss = rss = 0
    for p in descendants(pid):
        try:
            pss += parse_pss(Path(f"/proc/{p}/smaps_rollup").read_text())
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return pss, rss


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def counting_listener() -> Iterator[tuple[str, list[int]]]:
    """A TCP listener on 127.0.0.1 standing for the responder: counts connections, answers none."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(0.2)
    count = [0]
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            count[0] += 1
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/", count
    finally:
        stop.set()
        thread.join(2)
        server.close()


@dataclass
class Setup:
    crt_list: Path
    state: Path
    names: list[str]
    seconds: float


def generate(work: Path, count: int, ocsp_url: str) -> Setup:
    """CA, signer, N leaves (one shared key), bundles, crt-list and N stored staples."""
    t0 = time.perf_counter()
    ca = CertificateAuthority.init(work / "ca", ocsp_url=None)
    signer = ca.ocsp_signer()
    signer_key = signer.private_key
    assert isinstance(signer_key, ec.EllipticCurvePrivateKey)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_pem = ca.certificate.public_bytes(serialization.Encoding.PEM)
    ocsp_access = x509.AccessDescription(
        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
    )
    aia = x509.AuthorityInformationAccess([ocsp_access])
    now = dt.datetime.now(dt.UTC)
    bundles, state = work / "bundles", work / "state"
    bundles.mkdir()
    state.mkdir(mode=0o700)
    serial_base = int.from_bytes(os.urandom(7), "big") << 20
    lines, names = [], []
    for i in range(count):
        name = f"host{i}.bench.test"
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca.certificate.subject)
            .public_key(leaf_key.public_key())
            .serial_number(serial_base + i)
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(aia, critical=False)
            .sign(ca.private_key, hashes.SHA256())
        )
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf,
                issuer=ca.certificate,
                algorithm=hashes.SHA1(),
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=now - dt.timedelta(minutes=1),
                next_update=now + dt.timedelta(days=7),
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
            .certificates([signer.certificate])
            .sign(signer_key, hashes.SHA256())
        )
        cert_id = CertId.for_certificate(leaf, ca.certificate)
        _write_private(
            state / f"{cert_id.hex}.ocsp", response.public_bytes(serialization.Encoding.DER)
        )
        path = bundles / f"host{i}.pem"
        _write_private(path, leaf.public_bytes(serialization.Encoding.PEM) + key_pem + ca_pem)
        lines.append(f"{path} {name}\n")
        names.append(name)
    crt_list = work / "crt-list.txt"
    crt_list.write_text("".join(lines))
    return Setup(crt_list, state, names, time.perf_counter() - t0)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds a key or a staple
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def handshakes(port: int) -> bool:
    """True when a TLS handshake completes within 1 s: a worker serves, not only the kernel's
    backlog of a socket the master has bound."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
            context.wrap_socket(raw, server_hostname="host0.bench.test"),
        ):
            return True
    except OSError:
        return False


def runtime_command(sock: Path, command: str) -> tuple[float, int, int]:
    """Seconds, lines and bytes of one runtime API answer (read until the server closes)."""
    t0 = time.perf_counter()
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(120)
        client.connect(str(sock))
        client.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := client.recv(1 << 20):
            chunks.append(chunk)
    data = b"".join(chunks)
    return time.perf_counter() - t0, data.count(b"\n"), len(data)


def openssl_stapled(port: int, name: str) -> bool:
    """One `openssl s_client -status` handshake; True when it shows a successful OCSP response."""
    result = subprocess.run(
        [
            *("openssl", "s_client", "-connect", f"127.0.0.1:{port}"),
            *("-servername", name, "-status"),
        ],
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    return b"OCSP Response Status: successful" in result.stdout


def log_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """Whole lines appended to `path` since `offset`, and the new offset."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", "replace").splitlines(), offset + end


def run_staplegate(args: argparse.Namespace, setup: Setup, work: Path) -> dict[str, float]:
    port = free_port()
    config = work / "staplegate.cfg"
    config.write_text(
        "global\n    log stdout format raw local0 debug\n    ocsp-update.mode on\n"
        f"    stats socket {work / 'admin.sock'} mode 600 level admin\n"
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n"
        "    timeout server 10s\n"
        f"frontend www\n    bind 127.0.0.1:{port} ssl crt-list {setup.crt_list}\n"
        "    default_backend web\n"
        "backend web\n    server web1 127.0.0.1:9\n"
    )
    log_path = work / "staplegate.log"
    count = len(setup.names)
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "staplegate", "-f", str(config)),
                *("--state-dir", str(setup.state), "--workers", str(args.workers)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    result: dict[str, float] = {}
    try:
        offset = 0
        held: dict[int, int] = {}  # worker pid -> staples in its table
        deadline = t0 + args.timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"staplegate exited:\n{log_path.read_text()[-3000:]}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not all stapled within {args.timeout}s: {held}")
            lines, offset = log_lines(log_path, offset)
            for line in lines:
                if "started" not in result and "staplegate started" in line:
                    result["started"] = time.perf_counter() - t0
                parsed = parse_worker_table(line)
                if parsed:
                    held[parsed[0]] = parsed[1]
                    if parsed[1] == count:
                        result[f"worker {parsed[0]}"] = time.perf_counter() - t0
            if "listening" not in result and accepts(port):
                result["listening"] = time.perf_counter() - t0
            if "listening" in result and "serving" not in result and handshakes(port):
                result["serving"] = time.perf_counter() - t0
            workers = [p for p in descendants(process.pid) if p != process.pid]
            if (
                "serving" in result
                and len(workers) >= args.workers
                and all(held.get(p) == count for p in workers)
            ):
                result["stapled"] = max(result[f"worker {p}"] for p in workers)
                break
            time.sleep(0.05)
        result["pss"], result["rss"] = tree_memory(process.pid)
        for command in RUNTIME_COMMANDS:
            seconds, line_count, size = runtime_command(work / "admin.sock", command)
            result[f"{command} seconds"] = seconds
            result[f"{command} lines"] = line_count
            result[f"{command} bytes"] = size
        sample = random.sample(setup.names, min(args.verify, count))
        result["verified"] = len(sample)
        result["verified_ok"] = sum(openssl_stapled(port, name) for name in sample)
        return result
    finally:
        process.terminate()
        process.wait(120)


def run_haproxy(args: argparse.Namespace, setup: Setup, work: Path) -> dict[str, float]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    config = work / "haproxy.cfg"
    config.write_text(
        "global\n    nbthread 2\n"
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n"
        "    timeout server 10s\n"
        f"frontend www\n    bind 127.0.0.1:{port} ssl crt-list {setup.crt_list}\n"
        "    default_backend web\n"
        "backend web\n    server web1 127.0.0.1:9\n"
    )
    result: dict[str, float] = {}
    t0 = time.perf_counter()
    subprocess.run([haproxy, "-c", "-q", "-f", str(config)], check=True, timeout=args.timeout)
    result["check"] = time.perf_counter() - t0
    log_path = work / "haproxy.log"
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        process = subprocess.Popen(
            [haproxy, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = t0 + args.timeout
        while not handshakes(port):
            if process.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"haproxy did not listen:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        result["serving"] = time.perf_counter() - t0
        result["pss"], result["rss"] = tree_memory(process.pid)
        return result
    finally:
        process.terminate()
        process.wait(60)


def calibration() -> str:
    t0 = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i & 7
    loop = time.perf_counter() - t0
    key = ec.generate_private_key(ec.SECP256R1())
    t0 = time.perf_counter()
    for _ in range(200):
        key.sign(b"calibration", ec.ECDSA(hashes.SHA256()))
    sign = (time.perf_counter() - t0) / 200
    return f"calibration: 2M-step Python loop {loop * 1000:.0f} ms, P-256 sign {sign * 1e6:.0f} µs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--verify", type=int, default=5, help="openssl s_client -status checks")
    parser.add_argument("--no-haproxy", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    print(calibration(), flush=True)
    print(
        f"cpus={os.cpu_count()} python={sys.version.split()[0]} staplegate --workers "
        f"{args.workers}, {args.count:,} certificates (one shared P-256 leaf key), stored "
        "staples in --state-dir",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    try:
        with counting_listener() as (url, requests):
            setup = generate(work, args.count, url)
            print(f"generated in {setup.seconds:.1f} s", flush=True)
            sg = run_staplegate(args, setup, work)
            responder_requests = requests[0]
        hp = {} if args.no_haproxy else run_haproxy(args, setup, work)
    finally:
        if args.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    def ok(met: bool) -> str:
        return "met" if met else "MISSED"

    stapled_after = sg["stapled"] - sg["serving"]
    nan = float("nan")
    print("| | staplegate | HAProxy 2.6 | target |")
    print("|---|---|---|---|")
    print(f"| TCP connect accepted (socket bound) | {sg['listening']:.1f} s | — | |")
    print(
        f"| first TLS handshake served | {sg['serving']:.1f} s (`started` line "
        f"{sg.get('started', nan):.1f} s) | {hp.get('serving', nan):.1f} s "
        f"(`haproxy -c` {hp.get('check', nan):.1f} s) | < 60 s: {ok(sg['serving'] < 60)} |"
    )
    print(
        f"| every worker stapled, after serving | {stapled_after:.1f} s "
        f"({sg['stapled']:.1f} s after start) | no staples loaded | < 10 s: "
        f"{ok(stapled_after < 10)} |"
    )
    print(f"| responder requests | {responder_requests} | — | 0: {ok(responder_requests == 0)} |")
    hp_pss = hp.get("pss", 0.0)
    ratio = f" ({sg['pss'] / hp_pss:.1f}× HAProxy)" if hp_pss else ""
    print(
        f"| memory, sum of Pss (RSS) | {sg['pss'] / MIB:,.0f} MiB{ratio} "
        f"({sg['rss'] / MIB:,.0f} MiB) | {hp_pss / MIB:,.0f} MiB "
        f"({hp.get('rss', 0.0) / MIB:,.0f} MiB) | < 4 GiB: {ok(sg['pss'] < 4 * 2**30)} |"
    )
    print(
        f"| Pss per certificate | {sg['pss'] / args.count / 1024:.1f} KiB | "
        f"{hp_pss / args.count / 1024:.1f} KiB | |"
    )
    for command in RUNTIME_COMMANDS:
        print(
            f"runtime API `{command}`: {sg[f'{command} seconds']:.2f} s, "
            f"{sg[f'{command} lines']:,.0f} lines, {sg[f'{command} bytes'] / MIB:.1f} MiB"
        )
    print(
        f"openssl s_client -status: {sg['verified_ok']:.0f} of {sg['verified']:.0f} "
        "handshakes stapled"
    )
    print(calibration(), flush=True)
    return 0 if sg["verified_ok"] == sg["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
