"""A frontend's idle server connections (`http_pool`): newest first, unusable ones skipped,
swept after the idle timeout, and a server that talks while idle is dropped."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from staplegate.proxy.http_pool import (
    HttpBackendSettings,
    HttpFrontend,
    HttpSettings,
    ServerConnection,
)
from tests.unit.proxy._fakes import RecordingTransport

KEY = ("web", "s1", None)


def _connection(http: HttpFrontend) -> tuple[ServerConnection, RecordingTransport]:
    conn = ServerConnection(http, KEY)
    transport = RecordingTransport()
    conn.connection_made(cast(Any, transport))
    return conn, transport


def test_a_backend_without_settings_gets_defaults_once() -> None:
    configured = HttpBackendSettings("web", retries=1)
    http = HttpFrontend(HttpSettings(backends={"web": configured}))
    assert http.backend("web") is configured
    default = http.backend("other")
    assert default == HttpBackendSettings("other")
    assert http.backend("other") is default


def test_idle_connections_are_reused_newest_first_and_swept() -> None:
    async def scenario() -> None:
        http = HttpFrontend(HttpSettings(), idle_server_timeout_s=0.05)
        loop = asyncio.get_running_loop()
        (old, _), (new, _), (dead, dead_transport) = (_connection(http) for _ in range(3))
        for conn in (old, new, dead):
            http.put_idle(conn, loop.time())
        assert http.idle_count() == 3
        dead_transport.close()
        assert http.take_idle(KEY) is new  # the newest usable one: `dead` is skipped
        assert http.idle_count() == 1
        swept = loop.create_future()
        loop.call_later(0.2, swept.set_result, None)  # past the idle timeout and its sweep
        await swept
        assert http.idle_count() == 0
        assert http.take_idle(KEY) is None

    asyncio.run(scenario())


def test_a_server_talking_while_idle_is_closed_and_close_idle_closes_all() -> None:
    async def scenario() -> None:
        http = HttpFrontend(HttpSettings())
        (chatty, chatty_transport), (quiet, quiet_transport) = (_connection(http) for _ in range(2))
        now = asyncio.get_running_loop().time()
        http.put_idle(chatty, now)
        http.put_idle(quiet, now)
        chatty.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
        assert chatty_transport.closed
        http.discard(chatty)
        assert http.idle_count() == 1
        http.close_idle()
        assert quiet_transport.closed
        assert http.idle_count() == 0

    asyncio.run(scenario())
