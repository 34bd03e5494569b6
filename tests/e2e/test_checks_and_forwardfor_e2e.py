"""`http-check send` and `option forwardfor except` end to end (issue 18): a live
staplegate, a real TLS client, real backends recording what they receive.

Both come from the real-world corpus (Kazoo's CouchDB balancer, the OCSP-stapling demo, the
RHEL default): the check request is what the server sees (method, URI, version, headers),
and the forwarded-for header is left out for the excepted network only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, poll, staplegate
from .test_http_mode_e2e import HOST, backends, get, started, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
backend checked
    option httpchk
    http-check send meth GET uri /check-me ver HTTP/1.1 hdr Host svc.example.test \
        hdr X-Check yes
    http-check expect status 200
    server a 127.0.0.1:{checked} check inter 200ms

backend plain
    server p 127.0.0.1:{plain}

frontend local_excepted
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    option forwardfor except 127.0.0.0/8
    default_backend plain

frontend others_excepted
    bind 127.0.0.1:{second} ssl crt-list {crt_list}
    option forwardfor except 10.0.0.0/8 header X-Client
    default_backend plain
"""


def test_http_check_send_and_forwardfor_except(tmp_path: Path, pki: Pki) -> None:
    second = free_port()
    with backends("checked", "plain") as (checked, plain):
        config, port = write_config(
            tmp_path, pki, CONFIG, checked=checked.port, plain=plain.port, second=second
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)

            def check_seen() -> dict[str, str] | None:
                with checked.lock:
                    for path, headers in checked.requests:
                        if path == "/check-me":
                            return headers
                return None

            headers = poll(
                check_seen, timeout=10, failure=lambda: f"no check request: {checked.requests}"
            )
            assert headers["host"] == "svc.example.test"
            assert headers["x-check"] == "yes"
            assert get(port, pki, "/one")[:2] == (200, b"plain /one")
            assert get(second, pki, "/two")[:2] == (200, b"plain /two")
            (_, first_headers), (_, second_headers) = plain.requests
            assert "x-forwarded-for" not in first_headers  # the client is in 127.0.0.0/8
            assert second_headers["x-client"] == "127.0.0.1"
            assert first_headers["host"] == HOST
