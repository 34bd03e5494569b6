"""Accepting through the event loop's own server, on stock asyncio and on uvloop (the workers'
loop): maxconn holds even when a burst of connections is accepted at once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest
import uvloop

from tests.integration.tls.tls_harness import RunningProxy, TlsPki, client_context, tls_bind


class _UvloopPolicy(asyncio.DefaultEventLoopPolicy):
    """New loops are uvloop's (what `worker_main` runs), without uvloop's deprecated policy."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return uvloop.new_event_loop()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = asyncio.get_event_loop_policy()
    if request.param == "uvloop":
        asyncio.set_event_loop_policy(_UvloopPolicy())
    try:
        yield str(request.param)
    finally:
        asyncio.set_event_loop_policy(previous)


def _echo(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    assert sock.recv(100) == data


def test_a_burst_past_maxconn_waits_unread_then_is_served(
    proxy_pki: TlsPki, loop_kind: str
) -> None:
    context = client_context(proxy_pki)
    with RunningProxy(tls_bind(proxy_pki, "default.test"), maxconn=2) as proxy:
        assert type(proxy.loop).__module__.startswith(loop_kind)

        def connect_while_the_loop_is_busy() -> list[socket.socket]:
            # runs on the proxy's loop: all five wait in the backlog, then arrive as one burst
            return [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(5)]

        raw = proxy.call(connect_while_the_loop_is_busy)
        proxy.wait_until(lambda: len(proxy.frontend.connections) == 2)
        assert proxy.call(lambda: proxy.frontend.stats.accepted) == 2
        assert not proxy.call(lambda: proxy.frontend.accepting)
        socks = [context.wrap_socket(s, server_hostname="default.test") for s in raw[:2]]
        for sock in socks:
            _echo(sock, b"first two")
        waiting = raw[2:]
        while waiting:
            socks.pop(0).close()  # a slot frees: the next one is served
            sock = context.wrap_socket(waiting.pop(0), server_hostname="default.test")
            sock.settimeout(10)
            _echo(sock, b"next")
            socks.append(sock)
        assert proxy.call(lambda: proxy.frontend.stats.accepted) == 5
        assert proxy.call(lambda: proxy.frontend.stats.max_active) == 2
        for sock in socks:
            sock.close()
        proxy.wait_until(lambda: len(proxy.records) == 5)
        proxy.wait_until(lambda: proxy.frontend.accepting)


def test_stopping_closes_connections_still_waiting_for_a_slot(
    proxy_pki: TlsPki, loop_kind: str
) -> None:
    context = client_context(proxy_pki)
    with RunningProxy(tls_bind(proxy_pki, "default.test"), maxconn=1) as proxy:
        raw = proxy.call(
            lambda: [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(3)]
        )
        try:
            proxy.wait_until(lambda: len(proxy.frontend.connections) == 1)
            # stock asyncio accepts the whole burst (two wait unread); uvloop stops at maxconn
            # (they stay in the kernel's backlog, which belongs to the master)
            parked = proxy.call(lambda: len(proxy.frontend.parked))
            assert parked == (2 if loop_kind == "asyncio" else 0)
            first = context.wrap_socket(raw[0], server_hostname="default.test")
            _echo(first, b"served")
            proxy.request_stop()
            for sock in raw[1 : 1 + parked]:  # never started: closed by the stop
                sock.settimeout(10)
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(10) == b""
            assert proxy.call(lambda: not proxy.frontend.parked)
            _echo(first, b"still served while draining")
            first.close()
            proxy.wait_serving_done()
            assert len(proxy.records) == 1  # nothing logged for the ones that never started
        finally:
            for sock in raw:
                sock.close()
