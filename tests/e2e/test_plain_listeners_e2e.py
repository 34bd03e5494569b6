"""Plain (non-TLS) binds end to end: staplegate as a subprocess, curl and Python clients,
real HTTP backends; `mode http` and `mode tcp`, `accept-proxy`, and a frontend with both a
TLS and a plain bind."""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from staplegate.proxy.proxyproto import build_v1
from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, free_port, staplegate
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
        check_accepts(config)
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


ROUTED = """\
frontend stats
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    bind 127.0.0.1:{http} accept-proxy
    acl api path_beg /api/
    http-request deny if {{ path_beg /admin }} !LOCALHOST
    http-request return status 200 content-type text/plain string ok if {{ path /health }}
    http-request set-header X-Always yes if TRUE
    http-request set-header X-Never yes if FALSE
    use_backend api if api
    default_backend web

backend web
    server a 127.0.0.1:{a}

backend api
    server b 127.0.0.1:{b}
"""


def test_path_beg_routes_and_not_localhost_is_denied(tmp_path: Path, pki: Pki) -> None:
    """Issue 16: `path_beg` routing on a kept-alive connection (every request is routed by
    its path) and a `!LOCALHOST` deny, seen through `accept-proxy` sources."""
    http_port = free_port()
    with backends("web", "api") as (web, api):
        config, _ = write_config(tmp_path, pki, ROUTED, a=web.port, b=api.port, http=http_port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            local = build_v1(("127.0.0.1", 5000), ("127.0.0.1", http_port))
            remote = build_v1(("192.0.2.9", 5000), ("127.0.0.1", http_port))
            sock = socket.create_connection(("127.0.0.1", http_port), timeout=10)
            sock.sendall(local)
            conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
            conn.sock = sock
            answers = []
            for path in ("/api/users?x=1", "/index.html", "/api/", "/apix", "/admin/x", "/health"):
                conn.request("GET", path, headers={"Host": "plain.test"})
                response = conn.getresponse()
                answers.append((response.status, response.read()))
            conn.close()
            assert answers == [
                (200, b"api /api/users?x=1"),
                (200, b"web /index.html"),
                (200, b"api /api/"),
                (200, b"web /apix"),
                (200, b"web /admin/x"),  # from 127.0.0.1: LOCALHOST, not denied
                (200, b"ok"),
            ]
            _, headers = web.requests[0]
            assert headers["x-always"] == "yes"
            assert "x-never" not in headers
            assert plain_get(http_port, "/admin/x", prefix=remote)[0] == 403
            assert plain_get(http_port, "/api/x", prefix=remote) == (200, b"api /api/x")
            proc.wait_for(r'^192\.0\.2\.9:5000 .* stats stats/<NOSRV> .* 403 .*"GET /admin/x ')
            assert proc.stop() == 0
