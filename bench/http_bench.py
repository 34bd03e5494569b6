"""Keep-alive HTTPS requests through staplegate (mode http), HAProxy 2.6 and nginx, per core.

Each proxy terminates TLS on 127.0.0.1 with the same certificate and OCSP staple (an
RSA-2048 leaf from `staplegate.testpki` with a GOOD response: staplegate and HAProxy load
the `.ocsp` sidecar, nginx gets `ssl_stapling_file`) and forwards to the same tiny backend
(nginx answering `return 200 "ok"`) over upstream keep-alive; wrk drives keep-alive
connections. The proxy is pinned to one CPU, wrk and the backend to the other. Proxy CPU is
utime+stime from /proc for every proxy process (staplegate's master and worker, nginx's
master and worker); "per core" is requests per second of proxy CPU, the fair comparison
when a proxy does not fill its core. Each round runs every proxy once (interleaved, so a
disturbance hits all of them alike); the report shows the median of the rounds.

    flock /tmp/bench.lock .venv/bin/python bench/http_bench.py --duration 8 --rounds 3

Needs: wrk, haproxy (Debian: 2.6), nginx (nginx-light), openssl, taskset.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from staplegate.testpki.ca import CertificateAuthority, KeyKind

HOST = "bench.example.test"
TICK = os.sysconf("SC_CLK_TCK")
PROXIES = ("staplegate", "haproxy", "nginx")
# opt-in reference: the same TLS front in `mode tcp` (no HTTP layer), a bound for mode http
VARIANTS = (*PROXIES, "staplegate-tcp", "probe-http")
# opt-in ceiling: bench/design_probe.py's leanest `mode http` on staplegate's TLS design

BACKEND_CONF = """\
worker_processes 1;
master_process off;
pid {tmp}/backend.pid;
error_log {tmp}/backend-error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/b-body;
    proxy_temp_path {tmp}/b-proxy;
    fastcgi_temp_path {tmp}/b-fastcgi;
    uwsgi_temp_path {tmp}/b-uwsgi;
    scgi_temp_path {tmp}/b-scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""

NGINX_PROXY_CONF = """\
worker_processes 1;
pid {tmp}/proxy.pid;
error_log {tmp}/proxy-error.log;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/p-body;
    proxy_temp_path {tmp}/p-proxy;
    fastcgi_temp_path {tmp}/p-fastcgi;
    uwsgi_temp_path {tmp}/p-uwsgi;
    scgi_temp_path {tmp}/p-scgi;
    keepalive_requests 1000000;
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pem};
        ssl_certificate_key {pem};
        ssl_stapling on;
        ssl_stapling_file {ocsp};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""

# HAProxy's configuration; staplegate reads the same text (minus the HAProxy-only lines)
HAPROXY_CONF = """\
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend www
    bind 127.0.0.1:{port} ssl crt {pem}
    default_backend web

backend web
    http-reuse always
    server s1 127.0.0.1:{backend}
"""


@dataclasses.dataclass(frozen=True)
class Files:
    tmp: Path
    pem: Path  # certificate, chain and key in one file; `<pem>.ocsp` next to it
    ocsp: Path


@dataclasses.dataclass(frozen=True)
class Sample:
    proxy: str
    rate: float  # requests per second
    cores: float  # proxy CPU seconds per second
    stapled: bool

    @property
    def per_core(self) -> float:
        return self.rate / self.cores if self.cores > 0 else 0.0

    @property
    def us_per_request(self) -> float:
        return 1e6 * self.cores / self.rate if self.rate > 0 else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def descendants(pid: int) -> list[int]:
    found = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text(encoding="ascii")
            for child in children.split():
                found.extend(descendants(int(child)))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime+stime of the processes, all threads included."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1]
            parts = fields.split()
            total += int(parts[11]) + int(parts[12])
    return total / TICK


@contextlib.contextmanager
def running(args: list[str], cpu: int, **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        ["taskset", "-c", str(cpu), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kwargs,  # type: ignore[call-overload]
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_files(tmp: Path) -> Files:
    """A P-256 CA, an RSA-2048 leaf for HOST in a HAProxy bundle, and a GOOD OCSP response."""
    ca = CertificateAuthority.init(tmp / "ca", key=KeyKind.EC256, ocsp_url=None)
    issued = ca.issue(
        HOST, sans=[HOST], key=KeyKind.RSA2048, ocsp_url="http://127.0.0.1:9/", out_dir=tmp / "leaf"
    )  # the OCSP URL is never contacted: ocsp-update stays off
    staple = Path(f"{issued.bundle_path}.ocsp")
    staple.write_bytes(ca.good_response(issued, valid_for=dt.timedelta(days=3)))
    return Files(tmp, issued.bundle_path, staple)


def stapled(port: int) -> bool:
    """Whether a handshake that asks for a staple gets a successful OCSP response."""
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", HOST, "-status"],
        input="", capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    return "OCSP Response Status: successful" in result.stdout


def wrk(port: int, seconds: int, connections: int, cpu: int) -> float:
    result = subprocess.run(
        ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         f"https://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if "Non-2xx" in result.stdout or "Socket errors" in result.stdout:
        raise RuntimeError(f"wrk saw errors on port {port}:\n{result.stdout}")
    if match is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{result.stdout}")
    return float(match.group(1))


CALIBRATION_LOOP = """
import statistics, time
def loop():
    table = {}
    total = 0
    for i in range(200_000):
        table[i & 255] = i
        total += i * 3 % 7
    return total
runs = []
for _ in range(5):
    started = time.perf_counter()
    loop()
    runs.append(time.perf_counter() - started)
print(f"{statistics.median(runs) / 200_000 * 1e9:.1f}")
"""


def calibration(cpu: int) -> str:
    """How fast this machine runs Python right now, on the proxy's CPU: the in-process HTTP
    layer (`http_layer_bench.py`) and a fixed pure-Python loop. Ratios between proxies are
    read against these: a machine where they are slower moves the Python fronts more."""
    layer = subprocess.run(
        ["taskset", "-c", str(cpu), sys.executable,
         str(Path(__file__).resolve().parent / "http_layer_bench.py"),
         "--requests", "20000", "--runs", "3"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"([\d.]+) µs per keep-alive request", layer.stdout)
    loop = subprocess.run(
        ["taskset", "-c", str(cpu), sys.executable, "-c", CALIBRATION_LOOP],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return (
        f"calibration (CPU {cpu}): HTTP layer in process "
        f"{found.group(1) + ' µs per request' if found else 'failed: ' + layer.stderr[-200:]}, "
        f"pure-Python loop {loop.stdout.strip() or 'failed'} ns per iteration"
    )


def proxy_command(name: str, files: Files, port: int, backend: int) -> list[str]:
    tmp = files.tmp
    if name == "haproxy":
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(HAPROXY_CONF.format(port=port, backend=backend, pem=files.pem))
        return ["haproxy", "-db", "-f", str(cfg)]
    if name == "nginx":
        (tmp / "nginx").mkdir(exist_ok=True)
        conf = tmp / "nginx" / "proxy.conf"
        conf.write_text(
            NGINX_PROXY_CONF.format(
                tmp=tmp / "nginx", port=port, backend=backend, pem=files.pem, ocsp=files.ocsp
            )
        )
        return ["nginx", "-c", str(conf), "-p", str(tmp / "nginx")]
    if name == "probe-http":
        probe = Path(__file__).resolve().parent / "design_probe.py"
        return [sys.executable, str(probe), "http", str(files.pem), str(files.ocsp), str(port),
                str(backend)]  # fmt: skip
    cfg = tmp / f"{name}.cfg"
    crt_list = tmp / "crt-list.txt"
    crt_list.write_text(f"{files.pem}\n")
    text = (
        HAPROXY_CONF.replace("    nbthread 1\n", "")
        .replace("    http-reuse always\n", "")
        .replace("ssl crt {pem}", "ssl crt-list {crt_list}")
        .format(port=port, backend=backend, crt_list=crt_list)
    )
    if name == "staplegate-tcp":
        text = text.replace("mode http", "mode tcp").replace("    option forwardfor\n", "")
    cfg.write_text(text)
    return [sys.executable, "-m", "staplegate", "-f", str(cfg), "--state-dir", str(tmp / name),
            "--workers", "1"]  # fmt: skip


def measure(
    name: str, pid: int, port: int, options: argparse.Namespace, has_staple: bool
) -> Sample:
    wrk(port, 1, options.connections, options.load_cpu)  # warm-up: handshakes, pools
    pids = descendants(pid)
    before, started = cpu_seconds(pids), time.monotonic()
    rate = wrk(port, options.duration, options.connections, options.load_cpu)
    cores = (cpu_seconds(pids) - before) / (time.monotonic() - started)
    return Sample(name, rate, cores, has_staple)


def median_sample(samples: list[Sample]) -> Sample:
    """The round with the median per-core rate (its own rate and CPU, consistent)."""
    ordered = sorted(samples, key=lambda s: s.per_core)
    return ordered[len(ordered) // 2]


def report(
    medians: dict[str, Sample], options: argparse.Namespace, calibrations: Sequence[str] = ()
) -> None:
    print(
        f"\nkeep-alive HTTPS GET through each proxy (mode http), wrk -t1 -c{options.connections}"
        f" {options.duration}s x {options.rounds} rounds, proxy on CPU {options.proxy_cpu},"
        f" median round\n"
    )
    print("| proxy | req/s | proxy cores | req/s per core | proxy CPU per request | staple |")
    print("|---|---:|---:|---:|---:|---|")
    for name, s in medians.items():
        print(
            f"| {name} | {s.rate:,.0f} | {s.cores:.2f} | {s.per_core:,.0f} |"
            f" {s.us_per_request:.1f} µs | {'yes' if s.stapled else 'NO'} |"
        )
    if calibrations:
        print()
        for line in calibrations:
            print(line)
    ours = medians.get("staplegate")
    if ours is None:
        return
    print()
    for other in ("haproxy", "nginx", "probe-http"):
        theirs = medians.get(other)
        if theirs is not None and theirs.per_core > 0:
            print(
                f"staplegate ÷ {other}: {ours.rate / theirs.rate:.2f} absolute, "
                f"{ours.per_core / theirs.per_core:.2f} per core"
                + (
                    " (floor 0.70)"
                    if other != "probe-http"
                    else " (the design's ceiling, ADR 0004)"
                )
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--proxy-cpu", type=int, default=1)
    parser.add_argument("--load-cpu", type=int, default=0)
    parser.add_argument(
        "--proxies",
        default=",".join(PROXIES),
        help=f"comma-separated, from {', '.join(VARIANTS)}",
    )
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    options = parser.parse_args(argv)
    names = [n for n in options.proxies.split(",") if n]
    unknown = set(names) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown proxies: {', '.join(sorted(unknown))}")
    for tool in ("wrk", "haproxy", "nginx", "openssl", "taskset"):
        if shutil.which(tool) is None:
            print(f"needs {tool} on PATH (apt-get install wrk haproxy nginx-light)")
            return 2
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    calibrations = [calibration(options.proxy_cpu) + " (before)"]
    print(calibrations[0], flush=True)
    with tempfile.TemporaryDirectory(prefix="http-bench-") as name, contextlib.ExitStack() as stack:
        files = make_files(Path(name))
        backend = free_port()
        conf = files.tmp / "backend.conf"
        conf.write_text(BACKEND_CONF.format(tmp=files.tmp, port=backend))
        stack.enter_context(
            running(["nginx", "-c", str(conf), "-p", str(files.tmp)], options.load_cpu)
        )
        wait_port(backend)
        proxies: dict[str, tuple[int, int, bool]] = {}
        for proxy in names:  # all started up front; an idle proxy costs the others nothing
            port = free_port()
            process = stack.enter_context(
                running(
                    proxy_command(proxy, files, port, backend),
                    options.proxy_cpu,
                    env=os.environ.copy(),
                )
            )
            wait_port(port)
            proxies[proxy] = (process.pid, port, stapled(port))
        for round_number in range(1, options.rounds + 1):
            for proxy, (pid, port, has_staple) in proxies.items():
                sample = measure(proxy, pid, port, options, has_staple)
                samples[proxy].append(sample)
                print(
                    f"round {round_number} {proxy:<10} {sample.rate:>8,.0f} req/s"
                    f" @ {sample.cores:.2f} cores = {sample.per_core:>8,.0f} per core,"
                    f" {sample.us_per_request:5.1f} µs/request",
                    flush=True,
                )
    calibrations.append(calibration(options.proxy_cpu) + " (after)")
    medians = {proxy: median_sample(runs) for proxy, runs in samples.items()}
    report(medians, options, calibrations)
    if options.json is not None:
        options.json.write_text(
            json.dumps(
                {p: [dataclasses.asdict(s) for s in runs] for p, runs in samples.items()},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
