"""Request smuggling against `staplegate` run as a user runs it, with a raw-bytes backend.

The attack of issue 14 defect 1, from a configuration file: an upgrade request with a
Content-Length and no body, then a request whose body is a request the `http-request
deny` rule refuses. Before the fix the backend read that inner request on the pooled
server connection and the second client got its answer.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki
from tests.integration.proxy.raw_backend import RawBackend

from .harness import staplegate
from .test_http_mode_e2e import HOST, client_context, raw_exchange, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
global
    tune.http.maxhdr 20

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    http-request deny if {{ hdr(host) -i admin.test }}
    default_backend web

backend web
    server raw 127.0.0.1:{raw}
"""


def connect(port: int, pki: Pki) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return client_context(pki).wrap_socket(raw, server_hostname=HOST)


def one_response(tls: ssl.SSLSocket) -> tuple[int, bytes]:
    response = http.client.HTTPResponse(tls)
    response.begin()
    return response.status, response.read()


def test_upgrade_with_a_body_cannot_smuggle_past_deny_and_maxhdr_is_read(
    tmp_path: Path, pki: Pki
) -> None:
    backend = RawBackend(answer_before_body=True)
    try:
        config, port = write_config(tmp_path, pki, CONFIG, raw=backend.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            proc.wait_for("staplegate started")
            smuggled = b"GET /admin HTTP/1.1\r\nHost: admin.test\r\n\r\n"
            carrier = b"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
            attack = (
                b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Content-Length: %d\r\n\r\n" % len(carrier)
            )
            attacker = connect(port, pki)
            attacker.sendall(attack)
            refused = one_response(attacker)  # the connection stays open meanwhile
            with connect(port, pki) as tls:
                tls.sendall(carrier + smuggled)
                answer = one_response(tls)
            attacker.close()
            seen = [(r.method, r.target) for r in backend.since(0)]
            assert ("GET", "/admin") not in seen  # the deny bypass of defect 1
            assert answer == (200, b"conn 1 req 1 POST /ok")  # not the /admin answer
            assert seen == [("POST", "/ok")]
            assert refused[0] == 400
            many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 19 + b"\r\n"
            assert raw_exchange(port, pki, many).startswith(b"HTTP/1.1 400 ")
            assert len(backend.since(0)) == 1
            proc.wait_for(r'"<BADREQ>"', count=2)
            assert proc.stop() == 0
    finally:
        backend.close()
