"""A real MariaDB server (Debian's `mariadb-server`) for `option mysql-check` tests:
127.0.0.1, a free port, a fresh data directory in tmp_path, stopped by PID.

Never the system service: each test installs its own data directory (`mariadb-install-db`,
about a second) and runs `mariadbd` as the current user (with `--user=root` when that is
root, which mariadbd otherwise refuses). `sql()` runs statements as its root user over the
UNIX socket, so a test can create the check user it needs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MariaDbServer:
    """One mariadbd process on 127.0.0.1:`port`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.socket = directory / "mysqld.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def _user(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> None:
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mariadb-install-db", "--no-defaults", f"--datadir={data}",
                "--auth-root-authentication-method=normal", "--skip-test-db", *self._user(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )  # fmt: skip
        self.process = subprocess.Popen(
            [
                "mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={self.socket}",
                f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                f"--pid-file={self.directory / 'mysqld.pid'}",
                f"--log-error={self.directory / 'error.log'}", "--skip-log-bin",
                "--innodb-buffer-pool-size=8M", *self._user(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "error.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"mariadbd did not answer on port {self.port}:\n{log}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                return len(conn.recv(64)) > 4  # the server's handshake packet
        except OSError:
            return False

    def sql(self, statements: str) -> None:
        subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root", "-e", statements],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def mariadb_server(tmp_path: Path) -> Iterator[MariaDbServer]:
    if shutil.which("mariadbd") is None:
        if os.environ.get("CI"):
            pytest.fail("mariadbd is not installed (./dev installs Debian's mariadb-server)")
        pytest.skip("mariadbd is not installed here (./dev installs Debian's mariadb-server)")
    server = MariaDbServer(tmp_path / "mariadb")
    server.start()
    try:
        yield server
    finally:
        server.stop()
