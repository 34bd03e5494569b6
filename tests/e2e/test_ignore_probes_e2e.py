"""`option http-ignore-probes` end to end: a connection that never sends a byte (a browser's
pre-connect) is closed at `timeout http-request` without a 408 and without a log line, while
a frontend without the option answers it 408; side by side with Debian's HAProxy 2.6."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, debian_haproxy, free_port, staplegate
from .test_http_mode_e2e import backends, started, write_config

pytestmark = pytest.mark.slow

CONFIG = """\
frontend quiet
    bind 127.0.0.1:{quiet}
    timeout http-request 300ms
    option http-ignore-probes
    default_backend web

frontend plain
    bind 127.0.0.1:{plain}
    timeout http-request 300ms
    default_backend web

backend web
    server w 127.0.0.1:{web}
"""


def silent_connection(port: int) -> bytes:
    """Connect, send nothing, read until the proxy closes."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while chunk := sock.recv(4096):
            data += chunk
    return data


def check(ports: dict[str, int]) -> None:
    assert silent_connection(ports["quiet"]) == b""  # closed, nothing said
    assert silent_connection(ports["plain"]).startswith(b"HTTP/1.1 408")


def test_probes_are_closed_quietly_like_haproxy(tmp_path: Path, pki: Pki) -> None:
    with backends("w") as (web,):
        ports = {"quiet": free_port(), "plain": free_port(), "web": web.port}
        config, _ = write_config(tmp_path, pki, CONFIG, **ports)
        check_accepts(config)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            check(ports)
            proc.wait_for(r" plain plain/<NOSRV> .* 408 .* cR-- ")
            assert not any(" quiet " in line for line in proc.lines)  # no log line at all

        ha_ports = dict(ports, quiet=free_port(), plain=free_port())
        (tmp_path / "ha").mkdir()
        ha_config, _ = write_config(tmp_path / "ha", pki, CONFIG, **ha_ports)
        with debian_haproxy(ha_config, ha_ports["plain"], tmp_path / "haproxy.log"):
            check(ha_ports)
