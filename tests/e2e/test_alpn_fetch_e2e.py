"""`ssl_fc_alpn` end to end: the protocol a client's TLS handshake agreed on routes the
request, feeds a condition and a header value (OpenShift's router sets
X-Forwarded-Proto-Version from it); real TLS clients offer different ALPN lists."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, staplegate
from .test_http_mode_e2e import HOST, backends, client_context, started, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list} alpn x-probe,http/1.1
    http-request set-header X-Alpn alpn=%[ssl_fc_alpn]
    http-request set-header X-Is-Probe yes if {{ ssl_fc_alpn -i X-PROBE }}
    use_backend probe if {{ ssl_fc_alpn x-probe }}
    default_backend web

backend web
    server a 127.0.0.1:{a}

backend probe
    server b 127.0.0.1:{b}
"""


def get_offering(port: int, pki: Pki, protocols: list[str]) -> int:
    context = client_context(pki)
    if protocols:
        context.set_alpn_protocols(protocols)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.sock = context.wrap_socket(raw, server_hostname=HOST)
    try:
        conn.request("GET", "/", headers={"Host": HOST})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_ssl_fc_alpn_routes_and_fills_headers(tmp_path: Path, pki: Pki) -> None:
    with backends("a", "b") as (web, probe):
        config, port = write_config(tmp_path, pki, CONFIG, a=web.port, b=probe.port)
        check_accepts(config)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            assert get_offering(port, pki, ["x-probe"]) == 200
            _, headers = probe.requests[-1]
            assert (headers["x-alpn"], headers["x-is-probe"]) == ("alpn=x-probe", "yes")
            assert get_offering(port, pki, ["http/1.1"]) == 200
            _, headers = web.requests[-1]
            assert headers["x-alpn"] == "alpn=http/1.1"
            assert "x-is-probe" not in headers
            assert get_offering(port, pki, []) == 200  # no ALPN offered: no sample
            _, headers = web.requests[-1]
            assert headers["x-alpn"] == "alpn="
            assert len(probe.requests) == 1
