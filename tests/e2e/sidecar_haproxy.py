"""Debian's real HAProxy for the sidecar's tests: a config, a process, its runtime API."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.ocsp.request import build_request
from staplegate.testpki.ca import IssuedCertificate
from staplegate.testpki.pytest_plugin import Pki
from tests.e2e.harness import free_port, poll

HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(
    HAPROXY is None, reason="Debian's haproxy is not installed (`sudo apt-get install haproxy`)"
)


def haproxy_config(directory: Path, crt_list: Path, *, port: int, level: str = "admin") -> Path:
    """A TLS frontend on 127.0.0.1:`port` with the crt-list, and a stats socket (admin)."""
    config = directory / "haproxy.cfg"
    config.write_text(
        f"""global
    stats socket {directory / "admin.sock"} level {level}
    pidfile {directory / "haproxy.pid"}

defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend tls
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend nowhere

backend nowhere
    server none 127.0.0.1:9
"""
    )
    return config


def runtime(socket_path: Path, command: str, *, timeout: float = 5.0) -> str:
    """One runtime API command, HAProxy's non-interactive way."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


class Haproxy:
    """`haproxy -db -f CONFIG`, started and stopped by the test."""

    def __init__(self, directory: Path, crt_list: Path, *, level: str = "admin") -> None:
        self.port = free_port()
        self.config = haproxy_config(directory, crt_list, port=self.port, level=level)
        self.socket = directory / "admin.sock"
        self.log = directory / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert HAPROXY is not None
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(self.config)], stdout=log, stderr=log
            )
        poll(self._answers, timeout=10, failure=self._failure)

    def _answers(self) -> bool | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(self._failure())
        try:
            return "Pid:" in runtime(self.socket, "show info") or None
        except OSError:
            return None

    def _failure(self) -> str:
        return f"HAProxy did not answer on {self.socket}:\n{self.log.read_text()}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def command(self, line: str) -> str:
        return runtime(self.socket, line)


def fetch_der(pki: Pki, issued: IssuedCertificate) -> bytes:
    """A fresh OCSP response for `issued` straight from the test responder."""
    cert_id = CertId.for_certificate(issued.certificate, issued.issuer)
    request = urllib.request.Request(
        pki.responder.url,
        data=build_request(cert_id),
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # 127.0.0.1 only
        der: bytes = answer.read()
    return der


class DaemonHaproxy(Haproxy):
    """`haproxy -D -p PIDFILE`: what a reload command (`-sf OLD`) can replace, as in production."""

    def __init__(self, directory: Path, crt_list: Path) -> None:
        super().__init__(directory, crt_list)
        self.pidfile = directory / "haproxy.pid"

    @property
    def reload_command(self) -> str:
        """A soft reload: a new process loads the files again and replaces the old one."""
        assert HAPROXY is not None
        return (
            f"{HAPROXY} -D -f {self.config} -p {self.pidfile} -sf $(cat {self.pidfile})"
            f" >>{self.log} 2>&1"
        )

    def start(self) -> None:
        assert HAPROXY is not None
        with self.log.open("ab") as log:
            subprocess.run(
                [HAPROXY, "-D", "-f", str(self.config), "-p", str(self.pidfile)],
                stdout=log, stderr=log, check=True, timeout=20,
            )  # fmt: skip
        poll(self._daemon_answers, timeout=10, failure=self._failure)

    def _daemon_answers(self) -> bool | None:
        try:
            return "Pid:" in runtime(self.socket, "show info") or None
        except OSError:
            return None

    def pid(self) -> int:
        return int(self.pidfile.read_text().split()[0])

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            pid = self.pid()
            os.kill(pid, signal.SIGTERM)
            poll(lambda: None if _alive(pid) else True, timeout=10, failure=self._failure)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return False
    return fields[0] != "Z"
