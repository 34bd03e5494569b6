"""Run `staplegate` as a user would (a subprocess) and talk to it with real TLS clients."""

from __future__ import annotations

import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from OpenSSL import SSL


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class StaplegateProcess:
    """A running `staplegate -f CONFIG`; collects its output lines as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "staplegate", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 20.0) -> list[str]:
        """Block until `count` output lines match `pattern` (a regex); return them."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"staplegate exited ({self.process.returncode}) before printing "
                        f"{pattern!r}:\n{self.output_unlocked()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout}s:\n{self.output_unlocked()}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def output_unlocked(self) -> str:
        return "\n".join(self.lines)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def close(self) -> None:
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(5)


@contextmanager
def staplegate(
    config: Path,
    state_dir: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> Iterator[StaplegateProcess]:
    proc = StaplegateProcess(
        ["-f", str(config), "--state-dir", str(state_dir), "--workers", str(workers)]
        + (extra_args or []),
        env,
    )
    try:
        yield proc
    finally:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait(10)
        proc.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        address = self.server.server_address
        assert isinstance(address, tuple)  # an AF_INET server: (host, port)
        body = f"hello from backend {address[1]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def http_backend() -> Iterator[int]:
    """A small HTTP server on 127.0.0.1; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def s_client_status(port: int, servername: str, *, cafile: Path | None = None) -> str:
    """`openssl s_client -status` output for one fresh full handshake."""
    args = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}",
        "-servername", servername, "-status",
    ]  # fmt: skip
    if cafile is not None:
        args += ["-CAfile", str(cafile)]
    result = subprocess.run(args, input="", capture_output=True, text=True, timeout=20, check=False)
    return result.stdout + result.stderr


T = TypeVar("T")


def poll(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    failure: Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Call `probe` until it returns something other than None; its result.

    A running staplegate changes state in other processes (workers get the table over a pipe,
    the updater writes files off its loop), so tests observe it by polling with a deadline;
    `failure()` says what never happened, with the last thing seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(failure())
        time.sleep(interval)


def wait_for_output(
    probe: Callable[[], str], needle: str, *, timeout: float, failure: str, interval: float = 0.1
) -> str:
    """Poll `probe` until its output holds `needle`; that output."""
    last = ""

    def seen() -> str | None:
        nonlocal last
        last = probe()
        return last if needle in last else None

    return poll(seen, timeout=timeout, interval=interval, failure=lambda: f"{failure}:\n{last}")


def wait_for_staple(port: int, servername: str, *, timeout: float = 20.0) -> str:
    """Poll with fresh handshakes until one carries a staple; return that output."""
    return wait_for_output(
        lambda: s_client_status(port, servername),
        "OCSP Response Status: successful",
        timeout=timeout,
        failure=f"no staple within {timeout}s",
    )


def curl_cert_status(port: int, host: str, cafile: Path) -> subprocess.CompletedProcess[str]:
    """`curl --cert-status` through the proxy (fails when the staple is missing or bad)."""
    return subprocess.run(
        [
            "curl", "--silent", "--show-error", "--cert-status", "--cacert", str(cafile),
            "--resolve", f"{host}:{port}:127.0.0.1", f"https://{host}:{port}/",
        ],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip


def pyopenssl_staple(port: int, servername: str, *, request: bytes | None = None) -> bytes:
    """One full pyOpenSSL handshake asking for a staple; the staple (b"" when none).

    With `request`, it is sent after the handshake and the reply (read to EOF) must be
    `HTTP/1.0 200`; a client that checks the whole round trip, not only the hello.
    """
    staple = b""

    def on_staple(_conn: SSL.Connection, data: bytes, _arg: object) -> bool:
        nonlocal staple
        staple = data
        return True

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_ocsp_client_callback(on_staple)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.settimeout(None)  # pyOpenSSL wants a blocking socket (the test has a timeout)
        conn = SSL.Connection(context, raw)
        conn.set_tlsext_host_name(servername.encode())
        conn.request_ocsp()
        conn.set_connect_state()
        conn.do_handshake()
        if request is None:
            return staple
        conn.sendall(request)
        reply = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                break
            if not chunk:
                break
            reply += chunk
        if not reply.startswith(b"HTTP/1.0 200"):
            raise AssertionError(f"bad reply {reply[:80]!r}")
    return staple


def check_accepts(config: Path) -> str:
    """`staplegate -c -f CONFIG` as a user runs it: it must accept; its output."""
    result = subprocess.run(
        [sys.executable, "-m", "staplegate", "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def debian_haproxy(config: Path, port: int, log: Path) -> Iterator[None]:
    """Debian's `haproxy -db -f CONFIG`, for a side-by-side run, until it listens on
    127.0.0.1:`port`. CI installs the package (`./dev`): its absence fails the test."""
    import shutil

    binary = shutil.which("haproxy")
    if binary is None:
        raise AssertionError("Debian's haproxy is not installed: `./dev setup` installs it")
    with log.open("wb") as sink:
        process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=sink, stderr=sink)
        try:
            poll(
                lambda: True if _listening(port) else None,
                timeout=10,
                failure=lambda: log.read_text(errors="replace"),
            )
            yield
        finally:
            process.terminate()
            process.wait(10)
