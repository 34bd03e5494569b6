"""Open one connection to a backend server: TCP connect, PROXY header, then TLS if asked.

The PROXY header (`send-proxy[-v2]`) goes out in clear before anything else, so the socket
is connected and the header written by hand before asyncio wraps it in a transport (with
TLS when the server line says `ssl`). Server TLS uses the standard library's `ssl`: it is a
client-side concern with nothing to staple, and `verify required` checks the chain against
`ca-file` and the name against `sni` (HAProxy checks the SNI name when one is sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Callable
from typing import TypeVar

from staplegate.config.model import TlsVersion
from staplegate.proxy.backends import BackendServer, SendProxy, ServerTls
from staplegate.proxy.proxyproto import build_v1, build_v2

P = TypeVar("P", bound=asyncio.BaseProtocol)
# the stdlib's protocol versions for the model's `TlsVersion` (server connections use `ssl`)
_TLS_VERSIONS = {
    TlsVersion.SSLV3: ssl.TLSVersion.SSLv3,
    TlsVersion.TLSV10: ssl.TLSVersion.TLSv1,
    TlsVersion.TLSV11: ssl.TLSVersion.TLSv1_1,
    TlsVersion.TLSV12: ssl.TLSVersion.TLSv1_2,
    TlsVersion.TLSV13: ssl.TLSVersion.TLSv1_3,
}


@functools.lru_cache(maxsize=64)
def client_context(tls: ServerTls) -> ssl.SSLContext:
    """One context per distinct server TLS setting (shared, so sessions resume)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_alpn_protocols(["http/1.1"])
    if tls.ciphers:
        context.set_ciphers(tls.ciphers)
    if tls.min_version:
        context.minimum_version = _TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = _TLS_VERSIONS[tls.max_version]
    if tls.verify:
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = tls.sni is not None or tls.sni_from_client
        if tls.ca_file:
            context.load_verify_locations(cafile=tls.ca_file)
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def open_server(
    server: BackendServer,
    protocol_factory: Callable[[], P],
    *,
    client_address: tuple[str, int],
    frontend_address: tuple[str, int],
    client_sni: str | None = None,
) -> tuple[asyncio.Transport, P]:
    """Connect, send the PROXY header if the server wants one, then start TLS if asked."""
    loop = asyncio.get_running_loop()
    if server.send_proxy is SendProxy.NONE and server.tls is None:
        transport, protocol = await loop.create_connection(
            protocol_factory, server.host, server.port
        )
        _nodelay(transport.get_extra_info("socket"))
        return transport, protocol
    infos = await loop.getaddrinfo(server.host, server.port, type=socket.SOCK_STREAM)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        _nodelay(sock)
        await loop.sock_connect(sock, address)
        if server.send_proxy is SendProxy.V1:
            await loop.sock_sendall(sock, build_v1(client_address, frontend_address))
        elif server.send_proxy is SendProxy.V2:
            await loop.sock_sendall(sock, build_v2(client_address, frontend_address))
        if server.tls is None:
            transport, protocol = await loop.create_connection(protocol_factory, sock=sock)
        else:
            name = server.tls.sni or (client_sni if server.tls.sni_from_client else None)
            transport, protocol = await loop.create_connection(
                protocol_factory,
                sock=sock,
                ssl=client_context(server.tls),
                server_hostname=name or "",
            )
    except BaseException:
        sock.close()
        raise
    return transport, protocol


def _nodelay(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
