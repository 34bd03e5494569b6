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

from staplegate.config.model import SourceBinding, TlsVersion, UseSrc
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
    transparent: bool = True,
) -> tuple[asyncio.Transport, P]:
    """Connect (from the `source` address, presenting `usesrc`'s unless `transparent` is
    False, as for health checks), send the PROXY header if the server wants one, then start
    TLS if asked."""
    loop = asyncio.get_running_loop()
    source = server.source
    if server.send_proxy is SendProxy.NONE and server.tls is None and source is None:
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
        if source is not None:
            bind_source(sock, source, client_address if transparent else None)
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


# Linux's IP_TRANSPARENT / IPV6_TRANSPARENT (the socket module lacks the IPv6 one)
_IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)
_IPV6_TRANSPARENT = 75
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
_ANY = ("0.0.0.0", "::")


def source_address(
    source: SourceBinding, client_address: tuple[str, int] | None
) -> tuple[str, int, bool] | None:
    """(host, port, transparent) to bind before connecting, or None to let the system pick.

    `client_address` None means no client (a health check): `usesrc` does not apply.
    """
    if client_address is not None and source.usesrc is not None:
        if source.usesrc is UseSrc.CLIENT:
            return client_address[0], client_address[1], True
        if source.usesrc is UseSrc.CLIENT_IP:
            return client_address[0], 0, True
        assert source.usesrc_host is not None
        return source.usesrc_host, source.usesrc_port, True
    if source.host in _ANY and source.port == 0:
        return None
    return source.host, source.port, False


def bind_source(
    sock: socket.socket, source: SourceBinding, client_address: tuple[str, int] | None
) -> None:
    """Bind an unconnected server socket as `source` says (OSError when it cannot be).

    A presented (`usesrc`) address that is not this host's needs IP_TRANSPARENT, which needs
    CAP_NET_ADMIN or CAP_NET_RAW; without it the bind fails with EADDRNOTAVAIL and the
    connection attempt fails like a refused connect. An address of this host (the client on
    loopback, say) binds without it.
    """
    chosen = source_address(source, client_address)
    if chosen is None:
        return
    host, port, transparent = chosen
    if transparent:
        level, option = (
            (socket.IPPROTO_IPV6, _IPV6_TRANSPARENT)
            if sock.family == socket.AF_INET6
            else (socket.IPPROTO_IP, _IP_TRANSPARENT)
        )
        with contextlib.suppress(OSError):  # not privileged: local addresses still bind
            sock.setsockopt(level, option, 1)
    if port:
        # `usesrc client` reuses the client's own port towards another destination
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    else:
        with contextlib.suppress(OSError):  # pick the port at connect(): no 64k bind limit
            sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
    sock.bind((host, port))


def _nodelay(sock: socket.socket | None) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
