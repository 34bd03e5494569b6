"""Load-balancer keywords of the real-world corpus end to end (issue 18): a live
staplegate, a real TLS client, real backends recording what they receive.

`http-check send` (Kazoo's CouchDB balancer, the OCSP-stapling demo), `option forwardfor
except` (the RHEL default), `monitor-uri` with `monitor fail` on `nbsrv` (Cloud Foundry),
`server … port` (Patroni) and `balance random` (HAProxy's quick-test example).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, poll, staplegate
from .test_http_mode_e2e import HOST, backends, connect, get, started, write_config

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


MONITOR = """\
backend web
    option httpchk GET /health
    server w 127.0.0.1:{web} check inter 100ms rise 1 fall 1

backend sorry
    server s 127.0.0.1:{sorry}

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    monitor-uri /healthz
    acl web_down nbsrv(web) lt 1
    monitor fail if web_down
    use_backend sorry if {{ nbsrv(web) eq 0 }}
    default_backend web
"""

MONITOR_OK = b"<html><body><h1>200 OK</h1>\nService ready.\n</body></html>\n"


def test_monitor_uri_and_monitor_fail_on_nbsrv(tmp_path: Path, pki: Pki) -> None:
    """An outer balancer's probe: 200 while `web` has a usable server, 503 (and requests
    routed to `sorry`, decided per request on a kept-alive connection) once it has none."""
    with backends("web", "sorry") as (web, sorry):
        config, port = write_config(tmp_path, pki, MONITOR, web=web.port, sorry=sorry.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            status, body, response = get(port, pki, "/healthz")
            assert (status, body) == (200, MONITOR_OK)
            assert response.getheader("content-type") == "text/html"
            conn = connect(port, pki)
            conn.request("GET", "/a", headers={"Host": HOST})
            response = conn.getresponse()
            assert response.read() == b"web /a"
            web.health_status = 500
            proc.wait_for(r"Server web/w is DOWN")
            poll(
                lambda: True if get(port, pki, "/healthz")[0] == 503 else None,
                timeout=10,
                failure=lambda: "the monitor never answered 503",
            )
            conn.request("GET", "/b", headers={"Host": HOST})
            response = conn.getresponse()
            assert response.read() == b"sorry /b"
            conn.close()
            assert get(port, pki, "/healthz")[1].startswith(b"<html><body><h1>503 Service")
            assert "/healthz" not in web.paths() + sorry.paths()


CHECK_PORT = """\
backend web
    option httpchk GET /health
    server w 127.0.0.1:{web} check port {probe} inter 100ms rise 1 fall 1

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web
"""


def test_server_port_sends_the_checks_elsewhere(tmp_path: Path, pki: Pki) -> None:
    """Patroni's pattern: traffic to the database port, checks to the agent's port."""
    with backends("web", "probe") as (web, probe):
        config, port = write_config(tmp_path, pki, CHECK_PORT, web=web.port, probe=probe.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            assert get(port, pki, "/a")[:2] == (200, b"web /a")
            probe.health_status = 503  # the server itself would still answer 200
            proc.wait_for(r"Server web/w is DOWN, reason: Layer7 wrong status, code: 503")
            web.health_status = 503
            probe.health_status = 200
            proc.wait_for(r"Server web/w is UP")


RANDOM = """\
backend web
    balance random
    server a 127.0.0.1:{a}
    server b 127.0.0.1:{b} weight 3

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web
"""


def test_balance_random_spreads_by_weight(tmp_path: Path, pki: Pki) -> None:
    with backends("a", "b") as (a, b):
        config, port = write_config(tmp_path, pki, RANDOM, a=a.port, b=b.port)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            conn = connect(port, pki)
            for i in range(40):
                conn.request("GET", f"/r{i}", headers={"Host": HOST})
                response = conn.getresponse()
                assert response.status == 200
                response.read()
            conn.close()
            assert len(a.paths()) + len(b.paths()) == 40
            assert a.paths()  # both used
            assert len(b.paths()) > len(a.paths())  # b weighs 3 times more
