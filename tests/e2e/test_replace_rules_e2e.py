"""`replace-header`, `replace-value`, `replace-path` (requests) and `http-response
replace-value` end to end: a live staplegate and Debian's HAProxy 2.6 with the same
configuration in one run send the same rewritten request to a real recording server and
the same rewritten answer to the client."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, debian_haproxy, free_port, staplegate
from .test_errorfile_e2e import answer, exchange
from .test_http_mode_e2e import RecordingBackend, backends, started, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
frontend web
    bind 127.0.0.1:{http}
    http-request replace-header X-Cookie foo=([^;]*);(.*) foo=\\1;seen;\\2
    http-request replace-value X-Forwarded-For ^192\\.168\\.(.*)$ 172.16.\\1
    http-request replace-path /old/(.*) /new/\\1
    http-response replace-value Content-Type ^text/(.*)$ application/\\1
    default_backend app

backend app
    server s 127.0.0.1:{server}
"""

REQUEST = (
    b"GET /old/a?x=1 HTTP/1.1\r\nHost: r.test\r\nX-Cookie: foo=bar;rest\r\n"
    b"X-Forwarded-For: 10.0.0.1, 192.168.1.5\r\nX-Untouched: foo=1\r\n\r\n"
)


def run_and_check(port: int, server: RecordingBackend) -> None:
    status, headers, body = answer(exchange(port, REQUEST))
    assert (status, body) == (200, b"s /new/a?x=1")
    assert headers["content-type"] == "application/plain"
    path, seen = server.requests[-1]
    assert path == "/new/a?x=1"
    assert seen["x-cookie"] == "foo=bar;seen;rest"
    assert seen["x-forwarded-for"].replace(" ", "") == "10.0.0.1,172.16.1.5"
    assert seen["x-untouched"] == "foo=1"


def test_replace_rules_like_haproxy(tmp_path: Path, pki: Pki) -> None:
    with backends("s") as (server,):
        ports = {"http": free_port(), "server": server.port}
        config, _ = write_config(tmp_path, pki, CONFIG, **ports)
        check_accepts(config)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            run_and_check(ports["http"], server)

        ha_ports = {"http": free_port(), "server": server.port}
        (tmp_path / "ha").mkdir()
        ha_config, _ = write_config(tmp_path / "ha", pki, CONFIG, **ha_ports)
        with debian_haproxy(ha_config, ha_ports["http"], tmp_path / "haproxy.log"):
            run_and_check(ha_ports["http"], server)
