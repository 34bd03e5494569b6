"""HAProxy's forward-proxy example (`set-dst url_ip`, `set-dst-port url_port`, `set-uri
%[pathq]`, a server at `0.0.0.0` without a port, `url_ip` conditions) end to end: a live
staplegate and Debian's HAProxy 2.6 with the same configuration in one run take
absolute-form requests to real recording servers, one destination per request, and refuse
what the ACLs refuse. Every destination is on 127.0.0.1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, debian_haproxy, free_port, staplegate
from .test_errorfile_e2e import answer
from .test_http_mode_e2e import RecordingBackend, backends, started, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
frontend test-proxy
    bind 127.0.0.1:{http}
    acl allow_host src 127.0.0.1/32
    http-request deny if !allow_host
    acl forbidden_dst url_ip 127.0.0.99/32
    acl forbidden_dst url_ip 10.0.0.0/8
    http-request deny if forbidden_dst
    default_backend test-proxy-srv

backend test-proxy-srv
    acl valid_method method GET
    http-request deny if !valid_method
    http-request set-dst url_ip
    http-request set-dst-port url_port
    http-request set-uri %[pathq]
    server next-hop 0.0.0.0
"""


def ask(port: int, requests: list[bytes], *, source: str = "127.0.0.1") -> list[int]:
    """Send each request on one keep-alive connection; the statuses answered."""
    statuses = []
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        for request in requests:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            status, headers, body = answer(data)
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            statuses.append(status)
            if headers.get("connection") == "close":
                break
    return statuses


def get(url: str, method: str = "GET") -> bytes:
    """An absolute-form request, as a client sends it to a proxy (Host: the authority)."""
    authority = url.split("/", 3)[2]
    return f"{method} {url} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()


def run_and_check(port: int, a: RecordingBackend, b: RecordingBackend) -> None:
    # one client connection, two destinations: each request goes where its URL says
    assert ask(
        port,
        [get(f"http://127.0.0.1:{a.port}/hello?x=1"), get(f"http://127.0.0.1:{b.port}/two")],
    ) == [200, 200]
    assert a.paths()[-1] == "/hello?x=1"  # set-uri %[pathq]: origin-form to the server
    assert b.paths()[-1] == "/two"
    served = len(a.requests) + len(b.requests)
    assert ask(port, [get(f"http://127.0.0.1:{a.port}/p", "POST")]) == [403]  # not GET
    assert ask(port, [get("http://127.0.0.99:1/")]) == [403]  # forbidden_dst
    assert ask(port, [get(f"http://127.0.0.1:{a.port}/x")], source="127.0.0.5") == [403]
    assert len(a.requests) + len(b.requests) == served


def test_the_forward_proxy_example_like_haproxy(tmp_path: Path, pki: Pki) -> None:
    with backends("a", "b") as (a, b):
        ports = {"http": free_port()}
        config, _ = write_config(tmp_path, pki, CONFIG, **ports)
        check_accepts(config)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            run_and_check(ports["http"], a, b)

        ha_ports = {"http": free_port()}
        (tmp_path / "ha").mkdir()
        ha_config, _ = write_config(tmp_path / "ha", pki, CONFIG, **ha_ports)
        with debian_haproxy(ha_config, ha_ports["http"], tmp_path / "haproxy.log"):
            run_and_check(ha_ports["http"], a, b)
