"""A real master's runtime API under many low-level clients: its memory comes back down."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, http_backend, staplegate

pytestmark = pytest.mark.slow

CONFIG = """\
global
    log stdout format raw local0 info
    stats socket {user} mode 600 level user

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt {crt}
    default_backend web

backend web
    server web1 127.0.0.1:{backend}
"""

CLIENTS = 40
#: A certificate push a user-level socket may not make, with a payload just under the 1 MiB
#: cap in 16-byte lines (the shape that took the master from 57 to 112 MiB: each line became
#: a string of its own), sent in full, then the client leaves.
PAYLOAD_LINE = b"A" * 15 + b"\n"
PUSH = b"set ssl cert /etc/x.pem <<\n" + PAYLOAD_LINE * (1_000_000 // len(PAYLOAD_LINE))
#: Interactive mode, then as many lines just under the 16 KiB cap as fit in a megabyte.
LONG_LINES = b"prompt\n" + (b"show servers state " + b"x" * 16_000 + b"\n") * 64
#: Answers asked for and never read.
UNREAD = b"prompt\n" + b"show stat\n" * 5_000
#: A line over the cap that never ends.
OVERLONG = b"show info " + b"y" * 1_000_000
ATTACKS = (PUSH, LONG_LINES, UNREAD, OVERLONG)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_and_leave(path: Path, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(15)
        client.connect(str(path))
        with contextlib.suppress(OSError):  # refused early and closed: that is the point
            client.sendall(data)
    # leaving without reading what was asked for


def show_info(path: Path) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(15)
        client.connect(str(path))
        client.sendall(b"show info\n")
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def test_forty_user_clients_leave_the_master_rss_where_it_was(tmp_path: Path, pki: Pki) -> None:
    issued = pki.issue("www.example.test")
    user = tmp_path / "user.sock"
    with http_backend() as backend:
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(user=user, port=free_port(), crt=issued.bundle_path, backend=backend),
            encoding="utf-8",
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            proc.wait_for("runtime API listening")
            pid = proc.process.pid
            assert "Name: staplegate" in show_info(user)  # warm the path once
            before = rss_kib(pid)
            threads = [
                threading.Thread(target=send_and_leave, args=(user, ATTACKS[n % len(ATTACKS)]))
                for n in range(CLIENTS)
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert "Name: staplegate" in show_info(user)  # the master still answers
            after = rss_kib(pid)
            elapsed = time.monotonic() - started
            assert after - before < 10 * 1024, (before, after, elapsed)
            assert elapsed < 10
            assert "Traceback" not in proc.output
            assert proc.stop() == 0
