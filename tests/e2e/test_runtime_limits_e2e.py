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


def ask(path: Path, data: bytes) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(15)
        client.connect(str(path))
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def test_failing_set_ssl_cert_leaves_no_key_bytes_in_the_log(tmp_path: Path, pki: Pki) -> None:
    """Payloads holding a private key that the master refuses (no certificate with it, a key
    that matches nothing): the answers say why, the log never shows a piece of the key."""
    issued = pki.issue("www.example.test")
    other = pki.issue("other.example.test", out_dir=tmp_path / "other")
    other_pem = other.bundle_path.read_text()
    key_pem = other_pem[other_pem.index("-----BEGIN PRIVATE KEY-----") :]
    key_lines = [line for line in key_pem.splitlines() if len(line) >= 32]
    admin = tmp_path / "admin.sock"
    with http_backend() as backend:
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(user=admin, port=free_port(), crt=issued.bundle_path, backend=backend)
            .replace("level user", "level admin")
            .replace("info\n", "debug\n", 1),
            encoding="utf-8",
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            proc.wait_for("runtime API listening")
            name = str(issued.bundle_path)
            alone = ask(admin, f"set ssl cert {name} <<\n{key_pem}\n".encode())
            assert "no certificate found" in alone, alone
            garbage = ask(admin, f"set ssl cert {name}.key <<\n{key_pem[:-40]}\n".encode())
            assert "Can't update" in garbage, garbage
            stranger = ask(admin, f"set ssl cert {name}.key <<\n{key_pem}\n".encode())
            assert "Transaction" in stranger, stranger
            commit = ask(admin, f"commit ssl cert {name}\n".encode())
            assert "inconsistencies between private key and certificate" in commit, commit
            assert proc.stop() == 0
            output = proc.output
    assert "PRIVATE KEY" not in output
    for line in key_lines:
        for start in range(0, len(line) - 16, 8):
            assert line[start : start + 16] not in output
