"""Plain (non-TLS) binds end to end: staplegate as a subprocess, curl and Python clients,
real HTTP backends; `mode http` and `mode tcp`, `accept-proxy`, and a frontend with both a
TLS and a plain bind."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from staplegate.proxy.proxyproto import build_v1
from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, staplegate
from .test_http_mode_e2e import HOST, backends, get, started, write_config

pytestmark = pytest.mark.slow

PLAIN = """\
frontend web
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    bind 127.0.0.1:{http}
    bind 127.0.0.1:{proxied} accept-proxy
    option forwardfor
    http-request set-header X-Ssl %[ssl_fc]
    http-request set-header X-Sni sni=%[ssl_fc_sni]
    http-request set-header X-Plain yes unless {{ ssl_fc }}
    default_backend web

frontend raw
    mode tcp
    option tcplog
    bind 127.0.0.1:{tcp}
    default_backend web

backend web
    server a 127.0.0.1:{a}
"""


def plain_get(port: int, path: str, *, prefix: bytes = b"") -> tuple[int, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if prefix:
        sock.sendall(prefix)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.sock = sock
    try:
        conn.request("GET", path, headers={"Host": "plain.test"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_plain_http_and_tcp_binds_forward(tmp_path: Path, pki: Pki) -> None:
    ports = {"http": free_port(), "proxied": free_port(), "tcp": free_port()}
    with backends("a") as (a,):
        config, tls_port = write_config(tmp_path, pki, PLAIN, a=a.port, **ports)
        check = subprocess.run(
            [sys.executable, "-m", "staplegate", "-c", "-f", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            # mode http, plain: ssl_fc false, ssl_fc_sni empty, an httplog line without `~`
            assert plain_get(ports["http"], "/one") == (200, b"a /one")
            path, headers = a.requests[-1]
            assert (path, headers["x-ssl"], headers["x-sni"]) == ("/one", "0", "sni=")
            assert headers["x-plain"] == "yes"
            assert headers["x-forwarded-for"] == "127.0.0.1"
            proc.wait_for(r' web web/a .* 200 \d+ - - ---- .*"GET /one HTTP/1\.1"')
            # the TLS bind of the same frontend still terminates TLS
            assert get(tls_port, pki, "/two")[:2] == (200, b"a /two")
            _, headers = a.requests[-1]
            assert (headers["x-ssl"], headers["x-sni"]) == ("1", f"sni={HOST}")
            assert "x-plain" not in headers
            proc.wait_for(r' web~ web/a .*"GET /two HTTP/1\.1"')
            # accept-proxy on a plain bind: the header's source is the client
            header = build_v1(("192.0.2.7", 4242), ("127.0.0.1", ports["proxied"]))
            assert plain_get(ports["proxied"], "/three", prefix=header) == (200, b"a /three")
            _, headers = a.requests[-1]
            assert headers["x-forwarded-for"] == "192.0.2.7"
            proc.wait_for(r'^192\.0\.2\.7:4242 .* web web/a .*"GET /three HTTP/1\.1"')
            # mode tcp, plain: the bytes as they are, and a tcplog line without `~`
            assert plain_get(ports["tcp"], "/four") == (200, b"a /four")
            proc.wait_for(r" raw web/a -?\d+/-?\d+/\d+ \d+ -- ")
            if shutil.which("curl"):
                curl = subprocess.run(
                    ["curl", "-s", f"http://127.0.0.1:{ports['http']}/five"],
                    capture_output=True,
                    text=True,
                    timeout=20,
                    check=False,
                )
                assert curl.stdout == "a /five"
            assert proc.stop() == 0
