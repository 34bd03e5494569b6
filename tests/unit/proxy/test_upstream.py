"""Opening server connections (`upstream`): the PROXY header goes out first and in clear,
and a server without TLS gets none; server TLS contexts are shared per setting."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from staplegate.proxy.backends import BackendServer, SendProxy, ServerTls
from staplegate.proxy.proxyproto import build_v1, build_v2
from staplegate.proxy.upstream import client_context, open_server


@pytest.mark.parametrize(
    ("send_proxy", "header"),
    [
        (SendProxy.NONE, b""),
        (SendProxy.V1, build_v1(("192.0.2.7", 5555), ("198.51.100.1", 443))),
        (SendProxy.V2, build_v2(("192.0.2.7", 5555), ("198.51.100.1", 443))),
    ],
)
def test_the_proxy_header_comes_first(send_proxy: SendProxy, header: bytes) -> None:
    async def scenario() -> bytes:
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.set_result(await reader.read())
            writer.close()

        listener = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            server = BackendServer("s1", "127.0.0.1", port, send_proxy=send_proxy)
            transport, _ = await open_server(
                server,
                asyncio.Protocol,
                client_address=("192.0.2.7", 5555),
                frontend_address=("198.51.100.1", 443),
            )
            transport.write(b"hello")
            transport.write_eof()
            data = await asyncio.wait_for(received, 5)
            transport.close()
        finally:
            listener.close()
            await listener.wait_closed()
        return data

    assert asyncio.run(scenario()) == header + b"hello"


def test_one_client_context_per_server_tls_setting() -> None:
    unverified = client_context(ServerTls(verify=False))
    assert unverified is client_context(ServerTls(verify=False))
    assert unverified.verify_mode is ssl.CERT_NONE
    assert not unverified.check_hostname
    verified = client_context(ServerTls(verify=True, sni="a.test"))
    assert verified.verify_mode is ssl.CERT_REQUIRED
    assert verified.check_hostname
