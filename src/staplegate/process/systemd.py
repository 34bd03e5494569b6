"""systemd's readiness protocol (`Type=notify`): tell it when we are ready, reloading, stopping."""

from __future__ import annotations

import contextlib
import os
import socket


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state, if it is listening."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)
