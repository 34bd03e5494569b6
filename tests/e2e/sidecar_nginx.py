"""Debian's real nginx for the sidecar's tests: a configuration in tmp, a process, its reload.

nginx runs as the test's user with everything it writes under the test's directory: `-p`
prefix, `-e` early error log, `pid`, `error_log` and the temp paths in the configuration,
`daemon off` so the test owns the master process.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.e2e.harness import free_port, poll
from tests.nginx_sites import Site

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="Debian's nginx is not installed (`sudo apt-get install nginx-light`)"
)


class Nginx:
    """`nginx -c CONF -p DIR` with one TLS server per site, each with its ssl_stapling_file."""

    def __init__(self, directory: Path, sites: Sequence[tuple[str, Site]]) -> None:
        self.directory = directory
        self.port = free_port()
        self.conf = directory / "nginx.conf"
        self.error_log = directory / "error.log"
        self.pid_file = directory / "nginx.pid"
        self.staple_files = {name: directory / "staples" / f"{name}.ocsp" for name, _ in sites}
        temp = " ".join(
            f"{kind}_temp_path {directory / ('tmp-' + kind)};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        servers = "".join(
            f"""
    server {{
        listen 127.0.0.1:{self.port} ssl;
        server_name {name};
        ssl_certificate {site.crt};
        ssl_certificate_key {site.key};
        ssl_stapling on;
        ssl_stapling_file staples/{name}.ocsp;
        location / {{ return 200 "hello from {name}\\n"; }}
    }}"""
            for name, site in sites
        )
        self.conf.write_text(
            f"""daemon off;
pid {self.pid_file};
error_log {self.error_log} info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp}{servers}
}}
"""
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_command(self) -> list[str]:
        assert NGINX is not None
        return [NGINX, "-e", str(self.error_log), "-p", str(self.directory), "-c", str(self.conf)]

    @property
    def reload_command(self) -> str:
        """What the sidecar's --reload-cmd runs: `nginx ... -s reload`."""
        return shlex.join([*self.base_command, "-s", "reload"])

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.base_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        poll(self._started, timeout=10, failure=self._failure)

    def _started(self) -> bool | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(self._failure())
        return True if self.pid_file.exists() and self.pid_file.read_text().strip() else None

    def _failure(self) -> str:
        log = self.error_log.read_text() if self.error_log.exists() else "(no error log)"
        return f"nginx did not start:\n{log}"

    def reloads(self) -> int:
        """How many reloads the master has begun ("reconfiguring" lines in its log)."""
        if not self.error_log.exists():
            return 0
        return self.error_log.read_text().count("signal 1 (SIGHUP) received")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None
