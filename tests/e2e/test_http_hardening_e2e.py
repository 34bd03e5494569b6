"""Issue 14 in `mode http`, end to end: Host confusion, PROXY v1 addresses that would inject a
header, and the `%[sample]` expressions of `set-header`.

staplegate runs as a subprocess; clients are Python ssl sockets speaking raw HTTP/1.1 (so a
request can be as malformed as an attacker makes it); backends record the raw bytes they get.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from OpenSSL import SSL

from staplegate.proxy.proxyproto import build_v1
from staplegate.testpki.pytest_plugin import Pki

from .harness import staplegate
from .test_http_mode_e2e import HOST, client_context, raw_exchange, started, write_config

pytestmark = pytest.mark.slow


class RawBackend:
    """Records each request head as raw bytes; answers `200 <name>` and closes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.heads: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                head = b""
                try:
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                except OSError:
                    continue
                self.heads.append(head)
                body = self.name.encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%b"
                    % (len(body), body)
                )

    def close(self) -> None:
        self.sock.close()


HOSTS = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    http-request deny if {{ hdr(host) -i admin.test }}
    use_backend api if {{ hdr(host) -i api.test }}
    default_backend web

backend web
    server web 127.0.0.1:{web}

backend api
    server api 127.0.0.1:{api}
"""


def test_host_confusion_is_400_and_the_absolute_target_is_the_host(
    tmp_path: Path, pki: Pki
) -> None:
    web, api = RawBackend("web"), RawBackend("api")
    try:
        config, port = write_config(tmp_path, pki, HOSTS, web=web.port, api=api.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)

            def send(head: str) -> bytes:
                return raw_exchange(port, pki, head.encode() + b"\r\n")

            # two different Hosts: the rule saw the first, the server may use the second
            answer = send("GET / HTTP/1.1\r\nHost: www.test\r\nHost: admin.test\r\n")
            assert answer.startswith(b"HTTP/1.1 400 "), answer
            answer = send("GET / HTTP/1.1\r\nHost: api.test\r\nHost: admin.test\r\n")
            assert answer.startswith(b"HTTP/1.1 400 "), answer
            # the same on the slow (chunked) parser
            answer = send(
                "POST / HTTP/1.1\r\nHost: www.test\r\nTransfer-Encoding: chunked\r\n"
                "Host: admin.test\r\n\r\n0\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 400 "), answer
            # an absolute-form target whose authority differs from Host
            answer = send("GET http://admin.test/ HTTP/1.1\r\nHost: www.test\r\n")
            assert answer.startswith(b"HTTP/1.1 400 "), answer
            answer = send("GET http://x@admin.test/ HTTP/1.1\r\nHost: x\r\n")
            assert answer.startswith(b"HTTP/1.1 400 "), answer
            assert web.heads == []
            assert api.heads == []
            # the authority is what rules and routing see
            answer = send("GET http://admin.test/ HTTP/1.1\r\nHost: ADMIN.test\r\n")
            assert answer.startswith(b"HTTP/1.1 403 "), answer
            answer = send("GET http://api.test/x HTTP/1.1\r\nConnection: close\r\n")
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            assert answer.endswith(b"api"), answer
            # as HAProxy: the same Host twice is one Host
            answer = send("GET /y HTTP/1.1\r\nHost: api.test\r\nhost: API.test\r\n")
            assert answer.endswith(b"api"), answer
            assert len(api.heads) == 2
            assert api.heads[0].startswith(b"GET http://api.test/x HTTP/1.1\r\n")
            assert api.heads[1].lower().count(b"\r\nhost:") == 1
            assert web.heads == []
            proc.wait_for(r"www~ www/<NOSRV> .* 400 .* PR-- ", count=5)
            assert proc.stop() == 0
    finally:
        web.close()
        api.close()


PROXY_PROTOCOL = """\
frontend www
    bind 127.0.0.1:{port} accept-proxy ssl crt-list {crt_list}
    option forwardfor
    default_backend web

backend web
    server web 127.0.0.1:{web}
"""


def test_proxy_v1_scope_id_never_reaches_x_forwarded_for(tmp_path: Path, pki: Pki) -> None:
    web = RawBackend("web")
    try:
        config, port = write_config(tmp_path, pki, PROXY_PROTOCOL, web=web.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
            for line in (
                b"PROXY TCP6 fe80::1%a\nX-Injected:1 ::1 40000 443\r\n",
                b"PROXY TCP4 203.0.113.7 127.0.0.1 +40000 443\r\n",
                b"PROXY TCP4 203.0.113.7 127.0.0.1 40000\n 443\r\n",
            ):
                with pytest.raises((ConnectionError, OSError)):
                    raw_exchange(port, pki, request, prefix=line)
            assert web.heads == []
            v1 = build_v1(("203.0.113.7", 40000), ("127.0.0.1", port))
            assert raw_exchange(port, pki, request, prefix=v1).startswith(b"HTTP/1.1 200")
            assert len(web.heads) == 1
            assert b"\r\nX-Forwarded-For: 203.0.113.7\r\n" in web.heads[0]
            assert proc.stop() == 0
    finally:
        web.close()


SAMPLES = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    http-request set-header X-Src %[src]
    http-request set-header X-Src-Port %[src_port]
    http-request set-header X-Sni %[ssl_fc_sni]
    http-request set-header X-Tls %[ssl_fc]
    http-request add-header X-Mixed "from %[src]:%[src_port] 100%%"
    default_backend web

backend web
    server web 127.0.0.1:{web}
"""


def test_set_header_sample_fetches_in_the_docs_work(tmp_path: Path, pki: Pki) -> None:
    web = RawBackend("web")
    try:
        config, port = write_config(tmp_path, pki, SAMPLES, web=web.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            client_port = raw.getsockname()[1]
            with client_context(pki).wrap_socket(raw, server_hostname=HOST) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                assert tls.recv(65536).startswith(b"HTTP/1.1 200")
            head = web.heads[0].decode("latin-1")
            assert "\r\nX-Src: 127.0.0.1\r\n" in head
            assert "\r\nX-Sni: www.example.test\r\n" in head
            assert "\r\nX-Tls: 1\r\n" in head
            assert f"\r\nX-Src-Port: {client_port}\r\n" in head
            assert f"\r\nX-Mixed: from 127.0.0.1:{client_port} 100%\r\n" in head
            assert proc.stop() == 0
    finally:
        web.close()


def _pyopenssl_exchange(port: int, pki: Pki, server_name: bytes, request: bytes) -> bytes:
    """A TLS exchange whose SNI bytes are exactly `server_name` (Python's ssl would refuse
    to send control bytes; OpenSSL's client sends what it is given)."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.load_verify_locations(str(pki.ca.root_cert_path))
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 10, 0))
    conn = SSL.Connection(context, sock)
    conn.set_connect_state()
    conn.set_tlsext_host_name(server_name)
    received = b""
    try:
        conn.do_handshake()
        conn.sendall(request)
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    except (SSL.Error, OSError):
        pass
    finally:
        sock.close()
    return received


@pytest.mark.parametrize("certificates", [1, 2])  # 2: staplegate reads the ClientHello itself
def test_sni_control_bytes_never_reach_a_header(
    tmp_path: Path, pki: Pki, certificates: int
) -> None:
    web = RawBackend("web")
    try:
        config, port = write_config(tmp_path, pki, SAMPLES, web=web.port)
        if certificates == 2:
            other = pki.issue("other.example.test")
            crt_list = tmp_path / "crt-list.txt"
            with crt_list.open("a", encoding="utf-8") as lines:
                lines.write(f"{other.bundle_path} other.example.test\n")
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
            _pyopenssl_exchange(port, pki, HOST.encode() + b"\r\nX-Injected: 1", request)
            for head in web.heads:  # refused (2 certificates) or sent on without the name
                assert b"\r\nX-Injected" not in head
            assert _pyopenssl_exchange(port, pki, HOST.encode(), request).startswith(
                b"HTTP/1.1 200"
            )
            assert f"\r\nX-Sni: {HOST}\r\n".encode() in web.heads[-1]
            assert proc.stop() == 0
    finally:
        web.close()


TUNNEL = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend ws

backend ws
    timeout tunnel 300ms
    server ws 127.0.0.1:{ws}
"""


def test_timeout_tunnel_closes_an_idle_websocket(tmp_path: Path, pki: Pki) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def upgrade_then_hold() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\n"
                )
                while conn.recv(65536):
                    pass

    threading.Thread(target=upgrade_then_hold, daemon=True).start()
    try:
        config, port = write_config(tmp_path, pki, TUNNEL, ws=listener.getsockname()[1])
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            request = (
                f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\n"
                "Upgrade: websocket\r\n\r\n"
            ).encode()
            begun = time.monotonic()
            answer = raw_exchange(port, pki, request)  # reads until the proxy closes
            assert answer.startswith(b"HTTP/1.1 101 "), answer
            assert time.monotonic() - begun < 5  # `timeout client 10s` would be later
            assert proc.stop() == 0
    finally:
        listener.close()
