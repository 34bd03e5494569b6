"""Opening server connections (`upstream`): the PROXY header goes out first and in clear,
and a server without TLS gets none; server TLS contexts are shared per setting; `source`
binds the connection (real sockets on 127.0.0.x, all loopback)."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

from staplegate.config.model import SourceBinding, UseSrc
from staplegate.proxy.backends import BackendServer, SendProxy, ServerTls
from staplegate.proxy.proxyproto import build_v1, build_v2
from staplegate.proxy.upstream import client_context, open_server, source_address


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


def _peer_seen(
    source: SourceBinding, client_address: tuple[str, int], *, transparent: bool = True
) -> tuple[str, int]:
    """The address a real listener on 127.0.0.1 sees for a connection `open_server` makes."""

    async def scenario() -> tuple[str, int]:
        seen: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.set_result(writer.get_extra_info("peername")[:2])
            writer.close()

        listener = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            server = BackendServer("s1", "127.0.0.1", port, source=source)
            transport, _ = await open_server(
                server,
                asyncio.Protocol,
                client_address=client_address,
                frontend_address=("127.0.0.1", 443),
                transparent=transparent,
            )
            peer = await asyncio.wait_for(seen, 5)
            transport.close()
        finally:
            listener.close()
            await listener.wait_closed()
        return peer

    return asyncio.run(scenario())


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def test_source_binds_the_server_connection() -> None:
    client = ("127.0.0.21", 40000)
    assert _peer_seen(SourceBinding("127.0.0.20"), client)[0] == "127.0.0.20"
    clientip = SourceBinding("127.0.0.20", 0, UseSrc.CLIENT_IP)
    assert _peer_seen(clientip, client)[0] == "127.0.0.21"
    # a health check has no client: it comes from `source`'s own address
    assert _peer_seen(clientip, client, transparent=False)[0] == "127.0.0.20"
    port = _free_port("127.0.0.22")
    whole = SourceBinding("0.0.0.0", 0, UseSrc.CLIENT)
    assert _peer_seen(whole, ("127.0.0.22", port)) == ("127.0.0.22", port)
    fixed = SourceBinding("0.0.0.0", 0, UseSrc.ADDRESS, "127.0.0.23", 0)
    assert _peer_seen(fixed, client)[0] == "127.0.0.23"


def test_source_address_choice() -> None:
    client = ("192.0.2.7", 5555)
    assert source_address(SourceBinding("0.0.0.0"), client) is None
    assert source_address(SourceBinding("::"), None) is None
    assert source_address(SourceBinding("10.0.0.1", 7000), client) == ("10.0.0.1", 7000, False)
    client_whole = SourceBinding("10.0.0.1", 0, UseSrc.CLIENT)
    assert source_address(client_whole, client) == ("192.0.2.7", 5555, True)
    assert source_address(client_whole, None) == ("10.0.0.1", 0, False)


def test_a_source_that_cannot_bind_fails_the_connect() -> None:
    # an IPv6 source for an IPv4 server cannot be bound: an OSError before any packet leaves,
    # as a refused connect would be (tests never bind an address off this host: as root,
    # IP_TRANSPARENT would let such a connection send its answers off the machine)
    async def scenario() -> None:
        listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            server = BackendServer("s1", "127.0.0.1", port, source=SourceBinding("::1"))
            with pytest.raises(socket.gaierror, match="family"):
                await open_server(
                    server,
                    asyncio.Protocol,
                    client_address=("127.0.0.1", 1),
                    frontend_address=("127.0.0.1", 443),
                )
        finally:
            listener.close()
            await listener.wait_closed()

    asyncio.run(scenario())


def test_private_connections() -> None:
    assert not BackendServer("a", "127.0.0.1", 1).private_connections
    assert BackendServer("a", "127.0.0.1", 1, send_proxy=SendProxy.V1).private_connections
    fixed = BackendServer("a", "127.0.0.1", 1, source=SourceBinding("127.0.0.9"))
    assert not fixed.private_connections
    per_client = SourceBinding("0.0.0.0", 0, UseSrc.CLIENT_IP)
    assert BackendServer("a", "127.0.0.1", 1, source=per_client).private_connections
