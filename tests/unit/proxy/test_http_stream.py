"""An HTTP stream (`http_stream`) on stand-ins for its client connection and server
transport: a keep-alive request reuses an idle server connection and is forwarded with
X-Forwarded-For, the response comes back and the connection returns to the idle cache; no
backend is a local 503; a malformed request is a 400 that ends the connection."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from staplegate.proxy.backends import BackendPool, BackendServer
from staplegate.proxy.http_pool import (
    HttpBackendSettings,
    HttpFrontend,
    HttpSettings,
    ServerConnection,
)
from staplegate.proxy.http_request import RequestHead
from staplegate.proxy.http_stream import HttpStream
from staplegate.proxy.records import ConnectionInfo, FrontendStats
from staplegate.tls.endpoint import SessionInfo
from tests.unit.proxy._fakes import RecordingTransport

REQUEST = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class _Frontend:
    name = "fe"
    stopping = False

    def __init__(self) -> None:
        self.stats = FrontendStats()


class FakeClientSide:
    """A client connection as the stream sees it (`http_exchange.ClientSide`), minus TLS."""

    client_address = ("192.0.2.7", 5555)
    frontend_address = ("198.51.100.1", 443)
    server_name: str | None = "a.test"
    session: SessionInfo | None = None
    client_write_paused = False

    def __init__(self, pool: BackendPool | None) -> None:
        self.pool = pool
        self.frontend = _Frontend()
        self.sent: list[bytes] = []
        self.ended: list[bool] = []
        self.reading = True

    def connection_info(
        self,
        host: str | None = None,
        target: bytes | None = None,
        head: RequestHead | None = None,
    ) -> ConnectionInfo:
        return ConnectionInfo(
            "fe", self.client_address, self.server_name, None, host, target=target, head=head
        )

    def route(self, info: ConnectionInfo) -> BackendPool | None:
        return self.pool

    def send_plain(self, data: bytes | memoryview) -> None:
        self.sent.append(bytes(data))

    def pause_client_reading(self) -> None:
        self.reading = False

    def resume_client_reading(self) -> None:
        self.reading = True

    def end_http(self, *, aborted: bool) -> None:
        self.ended.append(aborted)


def _http(log_lines: list[str]) -> HttpFrontend:
    settings = HttpSettings(
        forwardfor_header=b"X-Forwarded-For",
        httplog=True,
        keep_alive_timeout_s=30.0,
        backends={"web": HttpBackendSettings("web", server_timeout_s=30.0)},
    )
    return HttpFrontend(settings, log_line=log_lines.append)


def test_a_keep_alive_request_reuses_an_idle_server_connection() -> None:
    async def scenario() -> None:
        lines: list[str] = []
        http = _http(lines)
        pool = BackendPool("web", [BackendServer("s1", "127.0.0.1", 9)])
        client = FakeClientSide(pool)
        stream = HttpStream(client, http)
        conn = ServerConnection(http, ("web", "s1", None))
        server = RecordingTransport()
        conn.connection_made(cast(Any, server))
        http.put_idle(conn, asyncio.get_running_loop().time())
        stream.client_data([REQUEST])
        assert server.written == [
            b"GET /x HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n"
        ]
        conn.data_received(RESPONSE)
        assert client.sent == [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
        assert http.stats.server_reuses == 1
        assert http.idle_count() == 1
        assert stream.exchange is None
        assert stream.served == 1
        assert not client.ended
        assert len(lines) == 1
        assert "200 " in lines[0]
        assert '"GET /x HTTP/1.1"' in lines[0]
        stream.close()
        http.close_idle()

    asyncio.run(scenario())


def test_no_backend_is_a_local_503_that_closes() -> None:
    async def scenario() -> None:
        http = _http([])
        client = FakeClientSide(None)
        stream = HttpStream(client, http)
        stream.client_data([REQUEST])
        (answer,) = client.sent
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert http.stats.responses_by_class["5xx"] == 1
        assert client.ended == [False]  # HAProxy's error pages close
        stream.close()

    asyncio.run(scenario())


def test_a_malformed_request_is_a_400_that_ends_the_connection() -> None:
    async def scenario() -> None:
        lines: list[str] = []
        client = FakeClientSide(None)
        stream = HttpStream(client, _http(lines))
        stream.client_data([b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"])
        assert client.sent[0].startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert client.ended == [False]
        assert '"<BADREQ>"' in lines[0]

    asyncio.run(scenario())
