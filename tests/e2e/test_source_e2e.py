"""`source … [usesrc …]` end to end: a live staplegate connects to real recording backends
from the configured address, or presents the client's (full transparent proxy).

Every address is on loopback (127.0.0.0/8 is all this host's), so binding a client's address
needs no privilege and no packet leaves the machine. Clients bind distinct 127.0.0.x sources
so that the backend's view of the peer proves which address staplegate used.
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, free_port, poll, staplegate
from .test_http_mode_e2e import backends, started, write_config

pytestmark = pytest.mark.slow

SOURCES = """\
frontend web
    bind 127.0.0.1:{http}
    default_backend transparent

frontend pinned
    bind 127.0.0.1:{pinned}
    default_backend fixed

frontend raw
    mode tcp
    bind 127.0.0.1:{tcp}
    default_backend whole

backend transparent
    source 127.0.0.30 usesrc clientip
    option httpchk GET /health
    server a 127.0.0.1:{a} check inter 100ms

backend fixed
    source 127.0.0.33
    server b 127.0.0.1:{b} source 127.0.0.34

backend whole
    mode tcp
    source 0.0.0.0 usesrc client
    server c 127.0.0.1:{c}
"""


def get_from(source: tuple[str, int], port: int, paths: list[str]) -> list[int]:
    """GET each path over one keep-alive connection made from `source`."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # `usesrc client` shares it
    sock.settimeout(10)
    sock.bind(source)
    sock.connect(("127.0.0.1", port))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.sock = sock
    statuses = []
    try:
        for path in paths:
            conn.request("GET", path, headers={"Host": "source.test"})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()
    return statuses


def free_port_on(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def test_servers_see_the_source_or_the_client_address(tmp_path: Path, pki: Pki) -> None:
    ports = {"http": free_port(), "pinned": free_port(), "tcp": free_port()}
    with backends("a", "b", "c") as (a, b, c):
        config, _ = write_config(tmp_path, pki, SOURCES, a=a.port, b=b.port, c=c.port, **ports)
        check_accepts(config)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            # health checks come from `source`'s own address, never a client's
            poll(
                lambda: True if any(path == "/health" for path, _ in a.peers) else None,
                timeout=10,
                failure=lambda: f"no health check reached a; it saw {a.peers}",
            )
            checks = {peer[0] for path, peer in a.peers if path == "/health"}
            assert checks == {"127.0.0.30"}

            # `usesrc clientip`: each client's own address; the connection made for one
            # client never carries another's request (two clients, two keep-alive rounds)
            assert get_from(("127.0.0.41", 0), ports["http"], ["/one", "/two"]) == [200, 200]
            assert get_from(("127.0.0.42", 0), ports["http"], ["/three"]) == [200]
            assert get_from(("127.0.0.41", 0), ports["http"], ["/four"]) == [200]
            seen = {path: peer[0] for path, peer in a.peers if path != "/health"}
            assert seen == {
                "/one": "127.0.0.41",
                "/two": "127.0.0.41",
                "/three": "127.0.0.42",
                "/four": "127.0.0.41",
            }

            # a server's own `source` wins over its backend's
            assert get_from(("127.0.0.43", 0), ports["pinned"], ["/pinned"]) == [200]
            assert [peer[0] for _, peer in b.peers] == ["127.0.0.34"]

            # `usesrc client` in mode tcp: the client's address and port
            client = ("127.0.0.44", free_port_on("127.0.0.44"))
            assert get_from(client, ports["tcp"], ["/whole"]) == [200]
            assert c.peers == [("/whole", client)]
