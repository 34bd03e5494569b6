"""The listening sockets: opened by the master before it forks, kept across reloads.

The master owns every listener for the life of the process; workers inherit them at fork. A
reload reuses the socket of every address present in both configurations, so no client
queued on it is lost.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

from staplegate.config.values import AddressFamily, SocketAddress
from staplegate.deploy.plan import ServePlan

SocketKey = tuple[str, str, int]  # (family, host, port)
#: a plan's sockets: (frontend name, bind index) -> that bind's listening sockets
PlanSockets = dict[tuple[str, int], list[socket.socket]]


def open_listening_socket(address: SocketAddress, *, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening socket; the master owns it for the life of the process."""
    host = address.host
    family = socket.AF_INET6 if address.family is AddressFamily.IPV6 else socket.AF_INET
    if host in ("", "*"):
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, address.port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def socket_key(address: SocketAddress) -> SocketKey:
    return (address.family.value, address.host, address.port)


def open_sockets(plan: ServePlan, reusable: Mapping[SocketKey, socket.socket]) -> PlanSockets:
    """Sockets for every bind of `plan`, reusing `reusable` ones for the same address."""
    opened: list[socket.socket] = []
    sockets: PlanSockets = {}
    try:
        for fplan in plan.frontends:
            for index, bplan in enumerate(fplan.binds):
                for address in bplan.addresses:
                    sock = reusable.get(socket_key(address))
                    if sock is None:
                        sock = open_listening_socket(address)
                        opened.append(sock)
                    sockets.setdefault((fplan.name, index), []).append(sock)
    except OSError:
        for sock in opened:
            sock.close()
        raise
    return sockets


def sockets_by_address(plan: ServePlan, sockets: PlanSockets) -> dict[SocketKey, socket.socket]:
    """The listening socket of each address `plan` binds (what a reload may reuse)."""
    found: dict[SocketKey, socket.socket] = {}
    for fplan in plan.frontends:
        for index, bplan in enumerate(fplan.binds):
            for address, sock in zip(
                bplan.addresses, sockets.get((fplan.name, index), []), strict=False
            ):
                found[socket_key(address)] = sock
    return found
