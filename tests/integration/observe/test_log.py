"""A running staplegate sends `<OCSP-UPDATE>` lines to its configured `log` targets.

Real parts: `staplegate -f CFG` as a subprocess, the `pki` fixture's responder, a UDP socket
bound on 127.0.0.1 at a free port standing in for syslog, Unix datagram sockets in tmp_path
standing in for /dev/log. The config spells targets as operators do (`127.0.0.1:PORT`,
`udp@...`, `unix@PATH`, a bare path, `len`, `format`, levels).
"""

from __future__ import annotations

import fcntl
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

pytestmark = pytest.mark.slow

WAIT = 20.0

CONFIG = """\
global
{logs}
    ocsp-update.mode on

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

backend web
    server web1 127.0.0.1:9
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(tmp_path: Path, pki: Pki, names: list[str], logs: list[str]) -> tuple[Path, int]:
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(
        "".join(f"{pki.issue(name).bundle_path} {name}\n" for name in names), encoding="utf-8"
    )
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(logs="\n".join(f"    {line}" for line in logs), port=port, crt_list=crt_list),
        encoding="utf-8",
    )
    return config, port


class Collector:
    """Datagrams arriving on one socket (UDP or Unix), gathered by a thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(0.1)
        self.datagrams: list[bytes] = []
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._changed:
                self.datagrams.append(data)
                self._changed.notify_all()

    def wait_for(self, pattern: bytes, count: int = 1, timeout: float = WAIT) -> list[bytes]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [d for d in self.datagrams if regex.search(d)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{len(found)}/{count} datagrams match {pattern!r}: {self.datagrams[-5:]}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


@contextmanager
def udp_collector() -> Iterator[tuple[Collector, int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    collector = Collector(sock)
    try:
        yield collector, sock.getsockname()[1]
    finally:
        collector.close()


@contextmanager
def unix_collector(path: Path) -> Iterator[Collector]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    collector = Collector(sock)
    try:
        yield collector
    finally:
        collector.close()


@contextmanager
def running(
    config: Path, state: Path, *, stdout: int = subprocess.DEVNULL
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "staplegate", "-f", str(config)),
            *("--state-dir", str(state), "--workers", "1"),
        ],
        stdout=stdout,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def stop(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    code = process.wait(WAIT)
    assert process.stderr is not None
    return code, process.stderr.read().decode()


HEADER_3164 = rb"<%d>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ staplegate\[\d+\]: "


def test_udp_and_unix_targets_get_the_update_line(tmp_path: Path, pki: Pki) -> None:
    socket_path = tmp_path / "dev-log"
    bare_path = tmp_path / "bare-log"
    with (
        udp_collector() as (syslog, port),
        udp_collector() as (short, short_port),
        udp_collector() as (warnings, warn_port),
        unix_collector(socket_path) as devlog,
        unix_collector(bare_path) as bare,
    ):
        config, _ = write_config(
            tmp_path,
            pki,
            ["www.example.test"],
            [
                f"log 127.0.0.1:{port} local0",
                f"log udp@127.0.0.1:{short_port} len 80 format short local0",
                f"log 127.0.0.1:{warn_port} local0 warning",
                f"log unix@{socket_path} local1 notice",
                f"log {bare_path} format rfc5424 local2",
            ],
        )
        bundle = re.escape(str(pki.issued["www.example.test"].bundle_path).encode())
        update = bundle + rb' 1 "Update successful" 0 1\n$'
        with running(config, tmp_path / "state") as process:
            [line] = syslog.wait_for(rb"<OCSP-UPDATE> " + update)
            assert re.match(HEADER_3164 % 133 + rb"<OCSP-UPDATE> ", line), line
            [line] = devlog.wait_for(rb"<OCSP-UPDATE> ")
            assert re.fullmatch(HEADER_3164 % 141 + rb"<OCSP-UPDATE> " + update, line), line
            [line] = bare.wait_for(rb"<OCSP-UPDATE> ")
            iso = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d"
            assert re.fullmatch(
                rb"<149>1 " + iso + rb" \S+ staplegate \d+ - - <OCSP-UPDATE> " + update, line
            ), line
            [line] = short.wait_for(rb"^<5><OCSP-UPDATE> ")
            assert len(line) == 80  # len 80: 79 bytes and the newline
            assert line.endswith(b"\n")
            assert b"Update successful" not in line  # cut by len
            code, _ = stop(process)
        assert code == 0
    # `warning` hides notice: no <OCSP-UPDATE>, and nothing less severe than warning arrived
    assert not [d for d in warnings.datagrams if b"<OCSP-UPDATE>" in d]
    for datagram in warnings.datagrams:
        match = re.match(rb"<(\d+)>", datagram)
        assert match is not None
        pri = int(match.group(1))
        assert pri % 8 <= 4
    # the startup notice reached the notice-level targets
    syslog.wait_for(rb"staplegate started: 1 workers")


def test_slow_and_gone_targets_never_stall_updates(tmp_path: Path, pki: Pki) -> None:
    """stdout is a tiny pipe nobody reads, /dev/log's reader never reads, one socket is gone:
    every certificate still gets its update, the UDP target gets every line, and the
    process stops at once and reports the drops."""
    names = [f"www{i}.example.test" for i in range(40)]
    stuck_path = tmp_path / "stuck-log"
    with (
        udp_collector() as (syslog, port),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stuck,
    ):
        stuck.bind(str(stuck_path))  # bound, never read: its queue fills after 10 datagrams
        config, tls_port = write_config(
            tmp_path,
            pki,
            names,
            [
                "log stdout format raw local0",
                f"log unix@{stuck_path} local0",
                f"log unix@{tmp_path / 'nobody-listens'} local0",
                f"log 127.0.0.1:{port} local0",
            ],
        )
        with running(config, tmp_path / "state", stdout=subprocess.PIPE) as process:
            assert process.stdout is not None
            fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
            syslog.wait_for(rb'<OCSP-UPDATE> .* 1 "Update successful" 0 1\n$', count=len(names))
            started = time.monotonic()
            code, stderr = stop(process)
            assert time.monotonic() - started < 40  # a stall never ends
        assert code == 0
    counts = [
        int(n) for n in re.findall(r"\[WARNING\] staplegate: (\d+) log line\(s\) dropped", stderr)
    ]
    assert counts, stderr
    # the master lost every line to the gone socket, and more to the stuck ones
    assert max(counts) >= len(names)
    assert len(list((tmp_path / "state").glob("*.ocsp"))) == len(names)
    assert tls_port > 0
