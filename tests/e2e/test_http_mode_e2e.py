"""`mode http` end to end: staplegate as a subprocess, real TLS clients, real HTTP backends.

Backends are small threaded Python HTTP servers that record every request (and Debian's
nginx in one test); clients are Python's http.client over ssl and curl.
"""

from __future__ import annotations

import http.client
import http.server
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from staplegate.proxy.proxyproto import build_v1, build_v2
from staplegate.testpki.pytest_plugin import Pki

from .harness import StaplegateProcess, free_port, staplegate

pytestmark = pytest.mark.slow

HOST = "www.example.test"


class RecordingBackend:
    """A threaded HTTP/1.1 server that records (path, headers); `/slow` sleeps first."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.peers: list[tuple[str, tuple[str, int]]] = []  # (path, client address) per request
        self.health_status = 200
        self.slow_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with backend.lock:
                    backend.peers.append((self.path, self.client_address[:2]))
                if self.path == "/health":
                    self.send_response(backend.health_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with backend.lock:
                    backend.requests.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()})
                    )
                    backend.in_flight += 1
                    backend.max_in_flight = max(backend.max_in_flight, backend.in_flight)
                try:
                    if self.path.startswith("/slow"):  # a slow server: the behaviour under test
                        time.sleep(backend.slow_s)
                finally:
                    with backend.lock:
                        backend.in_flight -= 1
                body = f"{backend.name} {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        with self.lock:
            return [p for p, _ in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def backends(*names: str) -> Iterator[list[RecordingBackend]]:
    started = [RecordingBackend(name) for name in names]
    try:
        yield started
    finally:
        for backend in started:
            with_suppress_stop(backend)


def with_suppress_stop(backend: RecordingBackend) -> None:
    with suppress(OSError):
        backend.stop()


def write_config(tmp_path: Path, pki: Pki, body: str, **values: object) -> tuple[Path, int]:
    issued = pki.issued.get(HOST) or pki.issue(HOST)
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(f"{issued.bundle_path} {HOST}\n", encoding="utf-8")
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    head = """\
global
    log stdout format raw local0 info

defaults
    mode http
    option httplog
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout http-request 5s

"""
    config.write_text(head + body.format(port=port, crt_list=crt_list, **values), encoding="utf-8")
    return config, port


def client_context(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca.root_cert_path))


def connect(port: int, pki: Pki) -> http.client.HTTPSConnection:
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sock = client_context(pki).wrap_socket(raw, server_hostname=HOST)
    return conn


def get(
    port: int, pki: Pki, path: str = "/", headers: dict[str, str] | None = None
) -> tuple[int, bytes, http.client.HTTPResponse]:
    conn = connect(port, pki)
    try:
        conn.request("GET", path, headers={"Host": HOST, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read(), response
    finally:
        conn.close()


def raw_exchange(port: int, pki: Pki, data: bytes, *, prefix: bytes = b"") -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if prefix:
        sock.sendall(prefix)
    with client_context(pki).wrap_socket(sock, server_hostname=HOST) as tls:
        tls.sendall(data)
        received = bytearray()
        while True:
            try:
                chunk = tls.recv(65536)
            except (ssl.SSLError, ConnectionError):
                break
            if not chunk:
                break
            received += chunk
        return bytes(received)


def started(proc: StaplegateProcess) -> None:
    proc.wait_for("staplegate started")


WEIGHTED = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    option forwardfor
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request return status 200 content-type text/plain string pong \
        if {{ hdr(host) -i ping.test }}
    http-request deny if {{ hdr(host) -i deny.test }}
    http-request redirect scheme https code 301 if {{ hdr(host) -i old.test }}
    http-request del-header X-Secret
    http-request add-header X-Via staplegate
    use_backend api if {{ hdr(host) -i api.test }}
    default_backend web

backend web
    balance roundrobin
    server a 127.0.0.1:{a} weight 3
    server b 127.0.0.1:{b} weight 1

backend api
    server api 127.0.0.1:{api}
"""


def test_weights_rules_forwardfor_and_httplog(tmp_path: Path, pki: Pki) -> None:
    with backends("a", "b", "api") as (a, b, api):
        config, port = write_config(tmp_path, pki, WEIGHTED, a=a.port, b=b.port, api=api.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            conn = connect(port, pki)
            for i in range(8):
                conn.request("GET", f"/r{i}", headers={"Host": HOST, "X-Secret": "s"})
                response = conn.getresponse()
                assert response.status == 200
                response.read()
            conn.close()
            # weight 3:1, interleaved: a a b a | a a b a
            assert len(a.paths()) == 6
            assert b.paths() == ["/r2", "/r6"]
            _path, headers = a.requests[0]
            assert headers["x-forwarded-for"] == "127.0.0.1"
            assert headers["x-forwarded-proto"] == "https"
            assert headers["x-via"] == "staplegate"
            assert "x-secret" not in headers
            assert get(port, pki, "/", {"Host": "api.test"})[:2] == (200, b"api /")
            status, body, _ = get(port, pki, "/", {"Host": "ping.test"})
            assert (status, body) == (200, b"pong")
            status, body, _ = get(port, pki, "/", {"Host": "deny.test"})
            assert status == 403
            status, _, response = get(port, pki, "/x?y=1", {"Host": "old.test"})
            assert status == 301
            assert response.getheader("location") == "https://old.test/x?y=1"
            lines = proc.wait_for(
                r'www~ web/[ab] .* 200 \d+ - - ---- .*"GET /r\d HTTP/1\.1"', count=8
            )
            assert any(" web/b " in line for line in lines)
            proc.wait_for(r'www~ www/<NOSRV> .* 403 \d+ - - PR-- .*"GET / HTTP/1\.1"')
            assert proc.stop() == 0


ERRORS = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    timeout http-request 500ms
    use_backend empty if {{ hdr(host) -i empty.test }}
    default_backend web

backend web
    server a 127.0.0.1:{a}

backend empty
    server gone 127.0.0.1:{dead} disabled
"""


def test_error_statuses(tmp_path: Path, pki: Pki) -> None:
    with backends("a") as (a,):
        config, port = write_config(tmp_path, pki, ERRORS, a=a.port, dead=free_port())
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n"
            assert raw_exchange(port, pki, big).startswith(b"HTTP/1.1 431 ")
            slow = b"GET / HTTP/1.1\r\nHost: x\r\n"
            assert raw_exchange(port, pki, slow).startswith(b"HTTP/1.1 408 ")
            bad = b"GET / HTTP/1.1\r\nHost x\r\n\r\n"
            assert raw_exchange(port, pki, bad).startswith(b"HTTP/1.1 400 ")
            status, body, _ = get(port, pki, "/", {"Host": "empty.test"})
            assert status == 503
            assert b"No server is available" in body
            proc.wait_for(r"www~ www/<NOSRV> .* 408 .* cR-- ")
            proc.wait_for(r"www~ empty/<NOSRV> .* 503 .* SC-- ")
            assert a.requests == []
            assert proc.stop() == 0


HEALTH = """\
backend web
    option httpchk GET /health
    http-check expect status 200
    server a 127.0.0.1:{a} check inter 200ms rise 2 fall 2
    server b 127.0.0.1:{b} check inter 200ms rise 2 fall 2
    server spare 127.0.0.1:{spare} backup

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web
"""


def test_health_checks_take_servers_out_and_back_and_backup_only_when_all_down(
    tmp_path: Path, pki: Pki
) -> None:
    with backends("a", "b", "spare") as (a, b, spare):
        config, port = write_config(tmp_path, pki, HEALTH, a=a.port, b=b.port, spare=spare.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            for _ in range(4):
                assert get(port, pki)[0] == 200
            assert len(a.paths()) == 2
            assert len(b.paths()) == 2
            assert spare.paths() == []
            b.health_status = 500  # layer 7 failure
            proc.wait_for(r"Server web/b is DOWN, reason: Layer7 wrong status, code: 500")
            before = len(a.paths())
            for _ in range(3):
                assert get(port, pki)[1].startswith(b"a ")
            assert len(a.paths()) == before + 3
            a_port = a.port
            a.stop()  # killed: layer 4 failure
            proc.wait_for(r"Server web/a is DOWN, reason: Layer4 connection problem")
            assert get(port, pki)[1] == b"spare /"  # backup only now
            b.health_status = 200
            proc.wait_for(r"Server web/b is UP, reason: Layer7 check passed, code: 200")
            assert get(port, pki)[1] == b"b /"
            revived = RecordingBackend("a2", a_port)
            try:
                proc.wait_for(r"Server web/a is UP")
                # the old process' idle keep-alive connection may still answer for "a"
                seen = {get(port, pki)[1][:1] for _ in range(4)}
                assert seen == {b"a", b"b"}
            finally:
                revived.stop()
            assert proc.stop() == 0


BALANCE = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

backend web
    balance {algorithm}
    timeout queue 5s
    server a 127.0.0.1:{a} {extra}
    server b 127.0.0.1:{b} {extra}
"""


def test_leastconn_sends_new_requests_to_the_idle_server(tmp_path: Path, pki: Pki) -> None:
    with backends("a", "b") as (a, b):
        a.slow_s = b.slow_s = 1.5
        config, port = write_config(
            tmp_path, pki, BALANCE, algorithm="leastconn", a=a.port, b=b.port, extra=""
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            slow = connect(port, pki)
            slow.request("GET", "/slow", headers={"Host": HOST})  # occupies one server
            deadline = time.monotonic() + 5
            while a.in_flight + b.in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            busy = a if a.in_flight else b
            idle = b if busy is a else a
            for _ in range(4):
                assert get(port, pki, "/quick")[0] == 200
            assert idle.paths().count("/quick") == 4
            assert busy.paths().count("/quick") == 0
            assert slow.getresponse().status == 200
            slow.close()
            assert proc.stop() == 0


def test_source_is_sticky(tmp_path: Path, pki: Pki) -> None:
    with backends("a", "b") as (a, b):
        config, port = write_config(
            tmp_path, pki, BALANCE, algorithm="source", a=a.port, b=b.port, extra=""
        )
        with staplegate(config, tmp_path / "state", workers=2) as proc:
            started(proc)
            answers = {get(port, pki)[1].split()[0] for _ in range(6)}
            assert len(answers) == 1  # one client address, one server, every worker
            assert proc.stop() == 0


def test_maxconn_queues_and_timeout_queue_answers_503(tmp_path: Path, pki: Pki) -> None:
    with backends("a", "b") as (a, b):
        a.slow_s = b.slow_s = 0.8
        config, port = write_config(
            tmp_path, pki, BALANCE, algorithm="roundrobin", a=a.port, b=b.port,
            extra="maxconn 1",
        )  # fmt: skip
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            results: list[int] = []
            threads = [
                threading.Thread(target=lambda: results.append(get(port, pki, "/slow")[0]))
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)
            assert results == [200, 200, 200, 200]
            assert a.max_in_flight == 1
            assert b.max_in_flight == 1
            lines = proc.wait_for(r"web/[ab] \d+/(\d+)/", count=4)
            waited = [int(line.split()[4].split("/")[1]) for line in lines]
            assert sum(1 for w in waited if w >= 500) == 2  # two requests queued ~0.8 s
            assert proc.stop() == 0


PROXY_PROTO = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list} accept-proxy
    option forwardfor
    default_backend web

backend web
    server a 127.0.0.1:{a} send-proxy
    server b 127.0.0.1:{b} send-proxy-v2
"""


class ProxyProtocolBackend:
    """Reads a PROXY header then one HTTP request; records the header, answers 200."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = self._recv(conn, 16)
                if data.startswith(b"\r\n\r\n"):  # v2: fixed part, then the addresses
                    data += self._recv(conn, int.from_bytes(data[14:16], "big"))
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                data += head
                self.received.append(data)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")

    @staticmethod
    def _recv(conn: socket.socket, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = conn.recv(count - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def test_accept_proxy_forwardfor_and_send_proxy(tmp_path: Path, pki: Pki) -> None:
    a, b = ProxyProtocolBackend(), ProxyProtocolBackend()
    try:
        config, port = write_config(tmp_path, pki, PROXY_PROTO, a=a.port, b=b.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
            v1 = build_v1(("203.0.113.7", 40000), ("127.0.0.1", port))
            assert raw_exchange(port, pki, request, prefix=v1).startswith(b"HTTP/1.1 200")
            v2 = build_v2(("2001:db8::9", 40001), ("2001:db8::1", port))
            assert raw_exchange(port, pki, request, prefix=v2).startswith(b"HTTP/1.1 200")
            first, second = a.received[0], b.received[0]
            assert first.startswith(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 ")
            assert b"\r\nX-Forwarded-For: 203.0.113.7\r\n" in first
            assert second.startswith(b"\r\n\r\n\x00\r\nQUIT\n\x21\x21")  # v2, TCP over IPv6
            assert b"\r\nX-Forwarded-For: 2001:db8::9\r\n" in second
            proc.wait_for(r"^203\.0\.113\.7:40000 \[.*www~ web/a ")
            assert proc.stop() == 0
    finally:
        a.close()
        b.close()


SERVER_TLS = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    option forwardfor
    default_backend web

backend web
    server nginx 127.0.0.1:{nginx} ssl verify required ca-file {ca} sni str({host})
"""

NGINX_CONF = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
daemon off;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {host};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 200 "nginx saw $http_x_forwarded_for $ssl_server_name\\n"; }}
    }}
}}
"""


def test_tls_to_an_nginx_backend_with_verify_and_sni(tmp_path: Path, pki: Pki) -> None:
    nginx_binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx_binary is None:
        pytest.fail("Debian's nginx-light is required (./dev setup installs it)")
    issued = pki.issue("backend.example.test")
    nginx_port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp_path, port=nginx_port, host="backend.example.test",
            cert=issued.bundle_path, key=issued.bundle_path,
        ),
        encoding="utf-8",
    )  # fmt: skip
    nginx = subprocess.Popen(
        [nginx_binary, "-c", str(conf), "-p", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", nginx_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                assert nginx.poll() is None, nginx.stderr.read() if nginx.stderr else ""
                time.sleep(0.05)
        config, port = write_config(
            tmp_path, pki, SERVER_TLS, nginx=nginx_port, ca=pki.ca.root_cert_path,
            host="backend.example.test",
        )  # fmt: skip
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            status, answer, _ = get(port, pki)
            assert status == 200
            assert answer == b"nginx saw 127.0.0.1 backend.example.test\n"
            assert proc.stop() == 0
        assert "GET / HTTP/1.1" in (tmp_path / "nginx-access.log").read_text()
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
        if nginx.stderr is not None:
            nginx.stderr.close()


def test_h2_is_never_negotiated_in_mode_http(tmp_path: Path, pki: Pki) -> None:
    body = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list} alpn h2,http/1.1
    default_backend web

backend web
    server a 127.0.0.1:{a}
"""
    with backends("a") as (a,):
        config, port = write_config(tmp_path, pki, body, a=a.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            assert "HTTP/1.1 only" in proc.output
            context = client_context(pki)
            context.set_alpn_protocols(["h2", "http/1.1"])
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            with context.wrap_socket(raw, server_hostname=HOST) as tls:
                assert tls.selected_alpn_protocol() == "http/1.1"
            result = subprocess.run(
                ["curl", "-s", "--http2", "--cacert", str(pki.ca.root_cert_path),
                 "--resolve", f"{HOST}:{port}:127.0.0.1", f"https://{HOST}:{port}/c"],
                capture_output=True, text=True, timeout=20, check=False,
            )  # fmt: skip
            assert result.stdout == "a /c"
            assert proc.stop() == 0
