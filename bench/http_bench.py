"""Keep-alive HTTPS requests through staplegate (mode http), HAProxy and nginx, one core each.

Each proxy terminates TLS on 127.0.0.1 with the same certificate and forwards to the same
tiny backend (nginx answering `return 200 "ok"`) over upstream keep-alive; wrk drives it
with keep-alive connections. The proxy is pinned to one CPU and wrk plus the backend to the
other, so the figure is requests per second per proxy core.

    .venv/bin/python bench/http_bench.py --duration 10 --connections 50

Needs: wrk, haproxy (Debian: 2.6), nginx (nginx-light), openssl, taskset.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

BACKEND_CONF = """\
worker_processes 1;
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
events {{ worker_connections 1024; }}
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
        {stapling}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


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


def make_certificate(tmp: Path) -> Path:
    """A self-signed RSA-2048 certificate and key in one PEM (HAProxy's and nginx's format)."""
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=bench.example.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    pem = tmp / "bench.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    pem.chmod(0o600)
    key.unlink()
    return pem


def wrk(port: int, duration: int, connections: int, cpu: int) -> float:
    result = subprocess.run(
        ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
         f"https://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if match is None or "Non-2xx" in result.stdout or "errors" in result.stdout.lower():
        print(result.stdout, file=sys.stderr)
    if match is None:
        raise RuntimeError("wrk printed no Requests/sec")
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--proxy-cpu", type=int, default=1)
    parser.add_argument("--load-cpu", type=int, default=0)
    options = parser.parse_args()
    for tool in ("wrk", "haproxy", "nginx", "openssl", "taskset"):
        if shutil.which(tool) is None:
            print(f"needs {tool} on PATH (apt-get install wrk haproxy nginx-light)")
            return 2
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        pem = make_certificate(tmp)
        backend = free_port()
        conf = tmp / "backend.conf"
        conf.write_text(BACKEND_CONF.format(tmp=tmp, port=backend))
        with running(["nginx", "-c", str(conf), "-p", str(tmp)], options.load_cpu):
            wait_port(backend)
            # staplegate, one worker
            port = free_port()
            crt_list = tmp / "crt-list.txt"
            crt_list.write_text(f"{pem}\n")
            cfg = tmp / "staplegate.cfg"
            cfg.write_text(
                HAPROXY_CONF.replace("nbthread 1\n", "")
                .replace("    http-reuse always\n", "")
                .replace("ssl crt {pem}", "ssl crt-list {crt_list}")
                .format(port=port, backend=backend, crt_list=crt_list)
            )
            python = str(Path(sys.executable))
            args = [python, "-m", "staplegate", "-f", str(cfg), "--state-dir", str(tmp / "st")]
            with running([*args, "--workers", "1"], options.proxy_cpu, env=os.environ.copy()):
                wait_port(port)
                wrk(port, 2, options.connections, options.load_cpu)  # warm-up
                results["staplegate"] = wrk(
                    port, options.duration, options.connections, options.load_cpu
                )
            # HAProxy 2.6, one thread
            port = free_port()
            cfg = tmp / "haproxy.cfg"
            cfg.write_text(HAPROXY_CONF.format(port=port, backend=backend, pem=pem))
            with running(["haproxy", "-db", "-f", str(cfg)], options.proxy_cpu):
                wait_port(port)
                wrk(port, 2, options.connections, options.load_cpu)
                results["haproxy"] = wrk(
                    port, options.duration, options.connections, options.load_cpu
                )
            # nginx, one worker
            port = free_port()
            conf = tmp / "proxy.conf"
            conf.write_text(
                NGINX_PROXY_CONF.format(tmp=tmp, port=port, backend=backend, pem=pem, stapling="")
            )
            with running(["nginx", "-c", str(conf), "-p", str(tmp)], options.proxy_cpu):
                wait_port(port)
                wrk(port, 2, options.connections, options.load_cpu)
                results["nginx"] = wrk(
                    port, options.duration, options.connections, options.load_cpu
                )
    base = results["haproxy"]
    print(f"keep-alive HTTPS GET, {options.connections} connections, {options.duration}s, "
          f"proxy on CPU {options.proxy_cpu}")  # fmt: skip
    for name, value in results.items():
        print(f"  {name:<11} {value:>10.0f} req/s   {value / base:5.2f}x HAProxy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
