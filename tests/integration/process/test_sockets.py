"""The master's listening sockets: opened per bind, reused across a reload by address."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from staplegate.clock import SystemClock
from staplegate.deploy.generation import load_generation
from staplegate.deploy.plan import ServePlan, build_plan
from staplegate.process.sockets import open_sockets, sockets_by_address
from staplegate.testpki.pytest_plugin import Pki

CONFIG = """\
defaults
    mode tcp
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend www
    bind 127.0.0.1:{port} ssl crt {crt}
    default_backend web
backend web
    server web1 127.0.0.1:9
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def plan_for(tmp_path: Path, pki: Pki, port: int) -> ServePlan:
    config = tmp_path / "haproxy.cfg"
    leaf = pki.issue("www.example.test")
    config.write_text(CONFIG.format(port=port, crt=leaf.bundle_path), encoding="utf-8")
    generation = load_generation([str(config)], now=SystemClock().now(), err=io.StringIO())
    assert generation is not None
    assert generation.ok
    plan, _ = build_plan(generation, number=1)
    assert plan is not None
    return plan


def test_each_bind_gets_a_listening_socket_that_a_reload_reuses(tmp_path: Path, pki: Pki) -> None:
    plan = plan_for(tmp_path, pki, free_port())
    sockets = open_sockets(plan, {})
    try:
        [sock] = sockets[("www", 0)]
        assert not sock.getblocking()
        with socket.create_connection(sock.getsockname()[:2], timeout=1):
            pass  # listening
        reusable = sockets_by_address(plan, sockets)
        assert list(reusable.values()) == [sock]
        assert open_sockets(plan, reusable)[("www", 0)] == [sock]  # same socket, not a new one
    finally:
        for socks in sockets.values():
            for sock in socks:
                sock.close()


def test_an_address_in_use_fails_the_whole_plan(tmp_path: Path, pki: Pki) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        plan = plan_for(tmp_path, pki, taken.getsockname()[1])
        with pytest.raises(OSError, match="in use"):
            open_sockets(plan, {})
