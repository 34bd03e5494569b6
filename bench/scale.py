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

Options, each measured in the same run after the above:
- `--scrape`: a `mode http` frontend with `http-request use-service prometheus-exporter`;
  once the master has logged a render (`metrics: N bytes rendered in S s`), `--scrapes` GETs
  of `/metrics` are timed; the master's render time is read from that debug line.
- `--reload`: `--clients` threads make new connections without pause (pyOpenSSL handshake
  asking for a staple, `ping` echoed by the backend, a real TCP echo server); SIGUSR2; the
  clock runs until the new generation serves (`reload: generation 2 serving`), its workers
  hold N staples, and the old workers have exited. Every connection that fails is a dropped
  one; a handshake without a staple is counted too; the sum of Pss is sampled every second.
- `--crt-store`: HAProxy 3.x syntax, a `crt-store bench` section with one `load crt … alias
  hostN` line per bundle, the crt-list naming `@bench/hostN` (HAProxy 2.6 has no crt-store:
  its column keeps the plain crt-list).
- `--cold`: no stored staples; the leaves' OCSP URL is a fast responder on 127.0.0.1 that
  answers each request with the response signed in advance for its serial (so the responder
  is never the limit); the rate at which staples arrive is compared with
  `ocsp-update.rate-limit` (250/s per responder host by default).
- `--svg PATH`: a step chart of the staples in each worker's table over time since start,
  with the start-up (and SIGUSR2) moments marked (docs/img/scale.svg); `--timeline` prints
  the master's and workers' key log lines with their time since start.

The calibration line times a fixed pure-Python loop and one cryptography P-256 signature, so
runs on different machines or moments can be compared.

    flock /tmp/bench.lock .venv/bin/python bench/scale.py --count 5000
    flock /tmp/bench.lock .venv/bin/python bench/scale.py --count 50000 --reload --scrape \
        --svg docs/img/scale.svg
    flock /tmp/bench.lock .venv/bin/python bench/scale.py --count 50000 --crt-store --no-haproxy
    flock /tmp/bench.lock .venv/bin/python bench/scale.py --count 5000 --cold --no-haproxy

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from OpenSSL import SSL

from staplegate.ocsp.certid import CertId
from staplegate.testpki.ca import CertificateAuthority

WORKER_TABLE = re.compile(r"worker (\d+): staple table.*: (\d+) staples$")
METRICS_RENDER = re.compile(r"metrics: (\d+) bytes rendered in ([\d.]+) s \(([\d.]+) s reading")
WORKER_EXITED = re.compile(r"worker #\d+ \((\d+)\) exited")
#: log lines worth a place in the timeline (`--timeline`, and the plot's markers)
TIMELINE = re.compile(
    r"stored staples:|staples sent to worker|staple table|staplegate started|reload|exited"
)
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


class PresignedResponder(ThreadingHTTPServer):
    """A fast OCSP responder on 127.0.0.1 (`--cold`): answers each request (GET or POST)
    with the response signed in advance for its serial number, so the responder is never
    what limits the rate; records when each answer went out."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OcspHandler)
        self.responses: dict[int, bytes] = {}
        self.answered: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _OcspHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a CA's responder
    server: PresignedResponder

    def do_GET(self) -> None:
        self._answer(base64.b64decode(urllib.parse.unquote(self.path.rsplit("/", 1)[-1])))

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _answer(self, request: bytes) -> None:
        body = answer_for(request, self.server.responses)
        if body:  # counted before the client can read it
            self.server.answered.append(time.perf_counter())
        self.send_response(200 if body else 400)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def answer_for(request: bytes, responses: dict[int, bytes]) -> bytes:
    """The pre-signed response for the serial number an OCSP request asks about (b"":
    unparsable or unknown)."""
    try:
        serial = ocsp.load_der_ocsp_request(request).serial_number
    except ValueError:
        return b""
    return responses.get(serial, b"")


@dataclass
class Setup:
    crt_list: Path
    state: Path
    names: list[str]
    seconds: float
    #: every leaf's pre-signed response, by serial number (what `--cold`'s responder answers)
    responses: dict[int, bytes] = field(default_factory=dict)


def generate(work: Path, count: int, ocsp_url: str, *, store: bool = True) -> Setup:
    """CA, signer, N leaves (one shared key), bundles, crt-list and N pre-signed responses,
    written to the state directory as stored staples unless `store` is false."""
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
    responses: dict[int, bytes] = {}
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
        der = response.public_bytes(serialization.Encoding.DER)
        responses[serial_base + i] = der
        if store:
            cert_id = CertId.for_certificate(leaf, ca.certificate)
            _write_private(state / f"{cert_id.hex}.ocsp", der)
        path = bundles / f"host{i}.pem"
        _write_private(path, leaf.public_bytes(serialization.Encoding.PEM) + key_pem + ca_pem)
        lines.append(f"{path} {name}\n")
        names.append(name)
    crt_list = work / "crt-list.txt"
    crt_list.write_text("".join(lines))
    return Setup(crt_list, state, names, time.perf_counter() - t0, responses)


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


def parse_metrics_render(line: str) -> tuple[int, float, float] | None:
    """(bytes, seconds, seconds on the loop) from the master's metrics debug line, else None."""
    match = METRICS_RENDER.search(line)
    return (int(match[1]), float(match[2]), float(match[3])) if match else None


def parse_worker_exit(line: str) -> int | None:
    """The pid of a worker whose exit the master logged, else None."""
    match = WORKER_EXITED.search(line)
    return int(match[1]) if match else None


@dataclass
class Follower:
    """Follows staplegate's log file: every worker's table size, the timeline, render lines."""

    path: Path
    t0: float
    offset: int = 0
    held: dict[int, int] = field(default_factory=dict)  # worker pid -> staples in its table
    full_at: dict[int, float] = field(default_factory=dict)  # worker pid -> when it held N
    exited: dict[int, float] = field(default_factory=dict)  # worker pid -> when it exited
    events: list[tuple[float, str]] = field(default_factory=list)
    tables: list[tuple[float, int, int]] = field(default_factory=list)  # (t, pid, size)
    renders: list[tuple[int, float, float]] = field(default_factory=list)

    def poll(self, count: int) -> list[str]:
        lines, self.offset = log_lines(self.path, self.offset)
        now = time.perf_counter() - self.t0
        for line in lines:
            if TIMELINE.search(line):
                self.events.append((now, line))
            parsed = parse_worker_table(line)
            if parsed:
                self.held[parsed[0]] = parsed[1]
                self.tables.append((now, *parsed))
                if parsed[1] == count:
                    self.full_at.setdefault(parsed[0], now)
            pid = parse_worker_exit(line)
            if pid is not None:
                self.exited[pid] = now
            render = parse_metrics_render(line)
            if render:
                self.renders.append(render)
        return lines

    def first(self, text: str) -> float | None:
        return next((t for t, line in self.events if text in line), None)


class EchoBackend(socketserver.ThreadingTCPServer):
    """The frontend's server: echoes what it reads, so a client checks the whole path."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def stapled_round_trip(port: int, name: str, context: SSL.Context) -> bool:
    """One new connection: TLS handshake asking for a staple, `ping` echoed through the
    backend; True when a staple came. Raises on any failure (a dropped connection)."""
    staple: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.settimeout(None)  # pyOpenSSL wants a blocking socket; SO_RCVTIMEO bounds it
        timeval = struct.pack("ll", 10, 0)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        conn = SSL.Connection(context, raw)
        conn.set_app_data(staple)
        conn.set_tlsext_host_name(name.encode())
        conn.request_ocsp()
        conn.set_connect_state()
        conn.do_handshake()
        conn.sendall(b"ping\n")
        echoed = b""
        while len(echoed) < 5:
            chunk = conn.recv(16)
            if not chunk:
                break
            echoed += chunk
        if echoed != b"ping\n":
            raise ConnectionError(f"echo {echoed!r}")
        conn.shutdown()
    return bool(staple and staple[0])


def _on_staple(conn: SSL.Connection, data: bytes, _arg: object) -> bool:
    conn.get_app_data().append(data)
    return True


@dataclass
class ClientLoad:
    """Threads making new connections (handshake + echo) until stopped; counts what failed."""

    port: int
    names: list[str]
    threads: int = 1
    done: int = 0
    stapled: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> ClientLoad:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._running.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(30)

    def _run(self, index: int) -> None:
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_ocsp_client_callback(_on_staple)
        rng = random.Random(index)
        while not self._stop.is_set():
            try:
                stapled = stapled_round_trip(self.port, rng.choice(self.names), context)
            except Exception as error:  # every failure is a dropped connection
                self.failures.append(f"{type(error).__name__}: {error}")
                continue
            self.done += 1
            self.stapled += stapled


def staplegate_config(args: argparse.Namespace, setup: Setup, work: Path) -> tuple[Path, int]:
    """The configuration file and its TLS port (`--scrape` adds an exporter frontend on
    `args.metrics_port`; `--crt-store` loads the bundles in a crt-store)."""
    port = free_port()
    if args.crt_store:
        # HAProxy 3.x syntax: every bundle loaded in a crt-store, the crt-list names entries
        store = "".join(
            f"    load crt {work / 'bundles' / f'host{i}.pem'} alias host{i}\n"
            for i in range(len(setup.names))
        )
        store_list = work / "crt-list-store.txt"
        store_list.write_text(
            "".join(f"@bench/host{i} {name}\n" for i, name in enumerate(setup.names))
        )
        certificates, crt_list = f"crt-store bench\n{store}", store_list
    else:
        certificates, crt_list = "", setup.crt_list
    exporter = ""
    if args.scrape:
        exporter = (
            f"frontend prometheus\n    mode http\n    bind 127.0.0.1:{args.metrics_port}\n"
            "    http-request use-service prometheus-exporter\n"
        )
    config = work / "staplegate.cfg"
    config.write_text(
        "global\n    log stdout format raw local0 debug\n    ocsp-update.mode on\n"
        f"    stats socket {work / 'admin.sock'} mode 600 level admin\n"
        "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n"
        "    timeout server 10s\n"
        f"{certificates}"
        f"frontend www\n    bind 127.0.0.1:{port} ssl crt-list {crt_list}\n"
        "    default_backend web\n"
        f"{exporter}"
        f"backend web\n    server web1 127.0.0.1:{args.backend_port}\n"
    )
    return config, port


def run_staplegate(
    args: argparse.Namespace, setup: Setup, work: Path
) -> tuple[dict[str, float], Follower]:
    config, port = staplegate_config(args, setup, work)
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
    follow = Follower(log_path, t0)
    result: dict[str, float] = {}
    try:
        deadline = t0 + args.timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"staplegate exited:\n{log_path.read_text()[-3000:]}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not all stapled within {args.timeout}s: {follow.held}")
            follow.poll(count)
            if "listening" not in result and accepts(port):
                result["listening"] = time.perf_counter() - t0
            if "listening" in result and "serving" not in result and handshakes(port):
                result["serving"] = time.perf_counter() - t0
            workers = [p for p in descendants(process.pid) if p != process.pid]
            if (
                "serving" in result
                and len(workers) >= args.workers
                and all(follow.held.get(p) == count for p in workers)
            ):
                result["stapled"] = max(follow.full_at[p] for p in workers)
                break
            time.sleep(0.05)
        started = follow.first("staplegate started")
        if started is not None:
            result["started"] = started
        result["pss"], result["rss"] = tree_memory(process.pid)
        for command in RUNTIME_COMMANDS:
            seconds, line_count, size = runtime_command(work / "admin.sock", command)
            result[f"{command} seconds"] = seconds
            result[f"{command} lines"] = line_count
            result[f"{command} bytes"] = size
        sample = random.sample(setup.names, min(args.verify, count))
        result["verified"] = len(sample)
        result["verified_ok"] = sum(openssl_stapled(port, name) for name in sample)
        if args.scrape:
            result.update(scrape(args, follow, count))
        if args.reload:
            result.update(reload_under_load(args, process, follow, port, setup.names))
        return result, follow
    finally:
        process.terminate()
        process.wait(300)


def scrape(args: argparse.Namespace, follow: Follower, count: int) -> dict[str, float]:
    """`/metrics` from the prometheus-exporter frontend: `--scrapes` GETs timed, once the
    master has rendered at least once; and the master's own render time (its debug line)."""
    deadline = time.perf_counter() + args.timeout
    while not follow.renders:
        if time.perf_counter() > deadline:
            raise RuntimeError("no metrics render logged")
        follow.poll(count)
        time.sleep(0.2)
    url = f"http://127.0.0.1:{args.metrics_port}/metrics"
    rendered_at = time.perf_counter()
    first_answer = float("nan")
    times: list[float] = []
    unavailable, size, lines = 0, 0, 0
    # 503 until the worker answering holds a snapshot (the master's push skips a worker still
    # draining its staple delta): counted, not timed
    while len(times) < args.scrapes:
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=120) as answer:
                body = answer.read()
        except urllib.error.HTTPError as error:
            if error.code != 503 or t0 > deadline:
                raise
            unavailable += 1
            time.sleep(0.5)
            continue
        times.append(time.perf_counter() - t0)
        if len(times) == 1:
            first_answer = time.perf_counter() - rendered_at
        size, lines = len(body), body.count(b"\n")
    follow.poll(count)
    rendered, seconds, on_loop = follow.renders[-1]
    return {
        "scrape seconds": sorted(times)[len(times) // 2],
        "scrape max seconds": max(times),
        "scrape bytes": size,
        "scrape lines": lines,
        "render seconds": seconds,
        "render loop seconds": on_loop,
        "render bytes": rendered,
        "renders": len(follow.renders),
        "scrape 503s": unavailable,
        "scrape first answer": first_answer,
    }


def reload_under_load(
    args: argparse.Namespace,
    process: subprocess.Popen[bytes],
    follow: Follower,
    port: int,
    names: list[str],
) -> dict[str, float]:
    """SIGUSR2 while `--clients` threads keep making new connections (handshake + echo):
    until the new generation serves, its workers hold every staple and the old workers have
    exited; connections that failed, handshakes without a staple, the peak sum of Pss."""
    count = len(names)
    old = {p for p in descendants(process.pid) if p != process.pid}
    peak_pss = 0.0
    result: dict[str, float] = {}
    with ClientLoad(port, names, threads=args.clients) as load:
        while load.done < 20 and not load.failures:  # the load runs before the signal
            time.sleep(0.05)
        before = load.done
        signalled = time.perf_counter()
        result["signalled"] = signalled - follow.t0
        process.send_signal(signal.SIGUSR2)
        deadline = signalled + args.timeout
        last_sample = 0.0
        while True:
            if process.poll() is not None:
                raise RuntimeError("staplegate exited during the reload")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"reload not finished within {args.timeout}s: {follow.held}")
            follow.poll(count)
            now = time.perf_counter()
            if now - last_sample >= 1.0:
                peak_pss = max(peak_pss, tree_memory(process.pid)[0])
                last_sample = now
            if "serving" not in result and follow.first("reload: generation 2 serving"):
                result["serving"] = now - signalled
            new = {p for p in descendants(process.pid) if p != process.pid} - old
            if (
                "serving" in result
                and "stapled" not in result
                and len(new) >= args.workers
                and all(follow.held.get(p) == count for p in new)
            ):
                result["stapled"] = now - signalled
            if "stapled" in result and all(p in follow.exited for p in old):
                result["drained"] = now - signalled
                break
            time.sleep(0.05)
        after_until = time.perf_counter() + 2.0
        while time.perf_counter() < after_until:  # and keeps running on the new generation
            time.sleep(0.1)
    failed = failures_summary(load.failures)
    if failed:
        print(f"reload: failed connections: {failed}", flush=True)
    return {
        "reload signalled": result["signalled"],
        "reload serving": result["serving"],
        "reload stapled": result["stapled"],
        "reload drained": result["drained"],
        "reload connections": load.done + len(load.failures),
        "reload during": load.done - before,
        "reload failed": len(load.failures),
        "reload unstapled": load.done - load.stapled,
        "reload peak pss": peak_pss,
    }


def cold_rates(answered: list[float], follow: Follower, count: int) -> dict[str, float]:
    """From the responder's answer times and the workers' tables: how fast staples came.

    "fetch rate" is answers per second between the first and the last; "stapled rate" is N
    over the seconds from the first answer until every worker held N staples (the end to
    end figure the rate limit bounds: burst, then `rate` per second)."""
    first, last = min(answered) - follow.t0, max(answered) - follow.t0
    stapled = max(follow.full_at.values()) if follow.full_at else float("nan")
    return {
        "cold first fetch": first,
        "cold fetch seconds": last - first,
        "cold fetch rate": (len(answered) - 1) / (last - first) if last > first else 0.0,
        "cold stapled seconds": stapled - first,
        "cold stapled rate": count / (stapled - first),
    }


def failures_summary(failures: list[str]) -> str:
    """`3× ConnectionResetError: ...` per distinct failure, most frequent first."""
    counted: dict[str, int] = {}
    for failure in failures:
        counted[failure] = counted.get(failure, 0) + 1
    return "; ".join(f"{n}× {text}" for text, n in sorted(counted.items(), key=lambda i: -i[1]))


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


def plot(follow: Follower, result: dict[str, float], count: int) -> str:
    """A step chart (SVG, no plotting library): staples in each worker's table over the
    seconds since staplegate was spawned, with the start-up (and reload) moments marked."""
    width, height, left, right, top, bottom = 760, 330, 70, 20, 40, 270
    end = max([t for t, _, _ in follow.tables] + [result.get("stapled", 1.0)]) * 1.05
    if "reload drained" in result:
        end = max(end, max(follow.exited.values(), default=end) * 1.02)

    def x(t: float) -> float:
        return left + (width - left - right) * t / end

    def y(n: float) -> float:
        return bottom - (bottom - top) * n / max(count, 1)

    colours = ["#2b7bba", "#c0504d", "#9bbb59", "#8064a2", "#f79646", "#4bacc6"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="18">staples in each worker\'s table, {count:,} certificates '
        "(seconds since start)</text>",
        f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>',
        f'<text x="{left - 6}" y="{y(count) + 4:.1f}" text-anchor="end">{count:,}</text>',
        f'<text x="{left - 6}" y="{bottom + 4}" text-anchor="end">0</text>',
    ]
    step = 10 ** max(0, len(str(int(end))) - 1)
    for tick in range(0, int(end) + 1, step if end / step >= 3 else max(1, step // 2)):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle">{tick}</text>'
        )
    markers = [
        ("socket bound", result.get("listening")),
        ("first handshake", result.get("serving")),
        ("all stapled", result.get("stapled")),
    ]
    if "reload signalled" in result:
        markers.append(("SIGUSR2", result["reload signalled"]))
    for index, (label, when) in enumerate(markers):
        if when is None:
            continue
        parts.append(
            f'<line x1="{x(when):.1f}" y1="{top}" x2="{x(when):.1f}" y2="{bottom}" '
            'stroke="#888" stroke-dasharray="4 3"/>'
        )
        parts.append(
            f'<text x="{x(when) + 3:.1f}" y="{top + 12 + 14 * index}" '
            f'fill="#555">{label} {when:.1f} s</text>'
        )
    pids = list(dict.fromkeys(pid for _, pid, _ in follow.tables))
    for index, pid in enumerate(pids):
        points = [(t, n) for t, p, n in follow.tables if p == pid]
        gone = follow.exited.get(pid, end)
        path = [f"M{x(points[0][0]):.1f},{y(0):.1f}"]
        for t, n in points:
            path.append(f"H{x(t):.1f}V{y(n):.1f}")
        path.append(f"H{x(gone):.1f}")
        colour = colours[index % len(colours)]
        parts.append(
            f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="2" '
            f'stroke-opacity="0.8" transform="translate(0,{-2 * index})"/>'
        )
        parts.append(
            f'<text x="{left + 8 + 150 * index}" y="{bottom + 40}" fill="{colour}">'
            f"worker {index + 1} (pid {pid})</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--verify", type=int, default=5, help="openssl s_client -status checks")
    parser.add_argument("--no-haproxy", action="store_true")
    parser.add_argument("--crt-store", action="store_true", help="load the bundles in a crt-store")
    parser.add_argument("--scrape", action="store_true", help="time /metrics (exporter frontend)")
    parser.add_argument("--scrapes", type=int, default=3, help="GET /metrics this many times")
    parser.add_argument(
        "--cold", action="store_true", help="no stored staples: fetch all from a fast responder"
    )
    parser.add_argument("--reload", action="store_true", help="SIGUSR2 under a client load")
    parser.add_argument("--clients", type=int, default=1, help="client threads for --reload")
    parser.add_argument("--svg", type=Path, help="plot the workers' tables (docs/img/scale.svg)")
    parser.add_argument("--timeline", action="store_true", help="print the log's key lines")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    args.metrics_port = free_port()

    print(calibration(), flush=True)
    print(
        f"cpus={os.cpu_count()} python={sys.version.split()[0]} staplegate --workers "
        f"{args.workers}, {args.count:,} certificates (one shared P-256 leaf key) in a "
        f"{'crt-store' if args.crt_store else 'crt-list'}, stored staples in --state-dir",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    backend = EchoBackend()
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    args.backend_port = backend.port
    try:
        if args.cold:
            responder = PresignedResponder()
            threading.Thread(target=responder.serve_forever, daemon=True).start()
            try:
                setup = generate(work, args.count, responder.url, store=False)
                responder.responses = setup.responses
                print(f"generated in {setup.seconds:.1f} s (no stored staples)", flush=True)
                sg, follow = run_staplegate(args, setup, work)
                sg.update(cold_rates(responder.answered, follow, args.count))
                responder_requests = len(responder.answered)
            finally:
                responder.shutdown()
                responder.server_close()
        else:
            with counting_listener() as (url, requests):
                setup = generate(work, args.count, url)
                print(f"generated in {setup.seconds:.1f} s", flush=True)
                sg, follow = run_staplegate(args, setup, work)
                responder_requests = requests[0]
        hp = {} if args.no_haproxy else run_haproxy(args, setup, work)
    finally:
        backend.shutdown()
        backend.server_close()
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
    target = "(from cold: see below)" if args.cold else f"< 10 s: {ok(stapled_after < 10)}"
    print(
        f"| every worker stapled, after serving | {stapled_after:.1f} s "
        f"({sg['stapled']:.1f} s after start) | no staples loaded | {target} |"
    )
    if args.cold:
        print(f"| responder requests | {responder_requests} | — | {args.count} |")
    else:
        print(
            f"| responder requests | {responder_requests} | — | 0: {ok(responder_requests == 0)} |"
        )
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
    if args.cold:
        limit = 250.0  # ocsp-update.rate-limit's default, per responder host
        print(
            f"cold start at ocsp-update.rate-limit {limit:.0f}/s: {args.count:,} answers in "
            f"{sg['cold fetch seconds']:.1f} s from the first request (first at "
            f"{sg['cold first fetch']:.1f} s), {sg['cold fetch rate']:.1f}/s = "
            f"{sg['cold fetch rate'] / limit:.1%} of the limit; every worker stapled all "
            f"{sg['cold stapled seconds']:.1f} s after the first request: "
            f"{sg['cold stapled rate']:.1f}/s = {sg['cold stapled rate'] / limit:.1%} "
            f"(target >= 95 %: {ok(sg['cold stapled rate'] >= 0.95 * limit)})"
        )
    if args.scrape:
        print(
            f"/metrics at {args.count:,} certificates: scrape {sg['scrape seconds']:.3f} s "
            f"(median of {args.scrapes}, max {sg['scrape max seconds']:.3f} s), "
            f"{sg['scrape bytes'] / MIB:.1f} MiB, {sg['scrape lines']:,.0f} lines; the "
            f"master's render {sg['render seconds']:.2f} s ({sg['render loop seconds']:.2f} s "
            f"reading on its loop), every max(1 s, 5 x render); the first 200 came "
            f"{sg['scrape first answer']:.1f} s after the first render was logged "
            f"({sg['scrape 503s']:.0f} answers 503 before)"
        )
    if args.reload:
        print(
            f"reload (SIGUSR2) with {args.count:,} certificates under {args.clients} client "
            f"thread(s): new generation serving after {sg['reload serving']:.1f} s, its workers "
            f"stapled after {sg['reload stapled']:.1f} s, old workers gone after "
            f"{sg['reload drained']:.1f} s; {sg['reload failed']:.0f} of "
            f"{sg['reload connections']:,.0f} connections failed "
            f"({sg['reload during']:,.0f} during the reload), {sg['reload unstapled']:.0f} "
            f"handshakes without a staple; peak sum of Pss {sg['reload peak pss'] / MIB:,.0f} MiB"
        )
    if args.timeline:
        for when, line in follow.events:
            print(f"{when:8.2f} s  {line[:150]}")
    if args.svg is not None:
        args.svg.write_text(plot(follow, sg, args.count), encoding="utf-8")
        print(f"plot: {args.svg}")
    print(calibration(), flush=True)
    failed = sg.get("reload failed", 0) + sg.get("reload unstapled", 0)
    return 0 if sg["verified_ok"] == sg["verified"] and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
