"""OpenShift router idioms end to end, side by side with Debian's HAProxy 2.6 in one run:
`tcp-request content` in a `mode http` frontend (`accept if HTTP`, a `reject`), and SNI
passthrough routed by `use_backend %[req.ssl_sni,lower,map_reg(FILE)]` in `mode tcp`.
Real clients, real recording servers, every address on 127.0.0.1 (the rejected client
connects from 127.0.0.66, which is this host too)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, debian_haproxy, free_port, poll, staplegate
from .test_http_mode_e2e import RecordingBackend, backends, started, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
frontend public
    bind 127.0.0.1:{http}
    tcp-request inspect-delay 5s
    tcp-request content reject if {{ src 127.0.0.66 }}
    tcp-request content accept if HTTP
    default_backend web

frontend public_ssl
    mode tcp
    bind 127.0.0.1:{tls}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req_ssl_hello_type 1 }}
    acl sni req.ssl_sni -m found
    acl sni_passthrough req.ssl_sni,lower,map_reg({dir}/sni.map) -m found
    use_backend %[req.ssl_sni,lower,map_reg({dir}/sni.map)] if sni sni_passthrough
    default_backend other_tls

backend web
    server w 127.0.0.1:{web}

backend passthrough
    mode tcp
    server p 127.0.0.1:{passthrough}

backend other_tls
    mode tcp
    server o 127.0.0.1:{other}
"""


class FirstBytes:
    """A real TCP server that records the first bytes of each connection, then closes."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                self.seen.append(conn.recv(4096))

    def close(self) -> None:
        self.sock.close()


def hello_to(port: int, server_name: str) -> None:
    """Start a TLS handshake naming `server_name`; the recording server ends it."""
    context = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        contextlib.suppress(ssl.SSLError, OSError),
    ):
        context.wrap_socket(raw, server_hostname=server_name)


def http_from(source: str, port: int) -> bytes:
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: r.test\r\n\r\n")
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(4096):
                data += chunk
                if b"\r\n\r\n" in data and data.endswith(b"/x"):
                    break
        return data


def run_and_check(
    ports: dict[str, int], web: RecordingBackend, passthrough: FirstBytes, other: FirstBytes
) -> None:
    served = len(web.requests)
    assert http_from("127.0.0.1", ports["http"]).startswith(b"HTTP/1.1 200")
    assert len(web.requests) == served + 1
    assert http_from("127.0.0.66", ports["http"]) == b""  # rejected: closed, no answer
    assert len(web.requests) == served + 1
    before = (len(passthrough.seen), len(other.seen))
    hello_to(ports["tls"], "App.Apps.test")
    hello_to(ports["tls"], "unknown.test")
    poll(
        lambda: (
            True
            if (len(passthrough.seen), len(other.seen)) == (before[0] + 1, before[1] + 1)
            else None
        ),
        timeout=10,
        failure=lambda: f"passthrough {passthrough.seen}, other {other.seen}",
    )
    # the ClientHello reached the chosen server unchanged, TLS not terminated
    assert passthrough.seen[-1][:1] == b"\x16"
    assert b"App.Apps.test" in passthrough.seen[-1]
    assert b"unknown.test" in other.seen[-1]


def test_router_idioms_like_haproxy(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "sni.map").write_text("^[^.]*\\.apps\\.test$ passthrough\n", encoding="utf-8")
    passthrough, other = FirstBytes(), FirstBytes()
    try:
        with backends("w") as (web,):
            ports = {
                "http": free_port(),
                "tls": free_port(),
                "web": web.port,
                "passthrough": passthrough.port,
                "other": other.port,
            }
            config, _ = write_config(tmp_path, pki, CONFIG, dir=tmp_path, **ports)
            check_accepts(config)
            with staplegate(config, tmp_path / "state", workers=1) as proc:
                started(proc)
                run_and_check(ports, web, passthrough, other)
                proc.wait_for(r"public public/<NOSRV> .* PR-- ")

            ha_ports = dict(ports, http=free_port(), tls=free_port())
            (tmp_path / "ha").mkdir()
            ha_config, _ = write_config(tmp_path / "ha", pki, CONFIG, dir=tmp_path, **ha_ports)
            with debian_haproxy(ha_config, ha_ports["http"], tmp_path / "haproxy.log"):
                run_and_check(ha_ports, web, passthrough, other)
    finally:
        passthrough.close()
        other.close()
