"""`http-response deny` and `http-response|http-after-response set-status` end to end: a
live staplegate and Debian's HAProxy 2.6, the same configuration and the same real server
in one run, give a client the same statuses, reasons and bodies."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, debian_haproxy, free_port, staplegate
from .test_errorfile_e2e import answer, exchange
from .test_http_mode_e2e import started, write_config

pytestmark = pytest.mark.slow


#: path → (status, content type) the server answers
ANSWERS = {
    "/song": (200, "audio/mp3"),
    "/broken": (500, "text/plain"),
    "/ok": (200, "text/plain"),
}

CONFIG = """\
frontend web
    bind 127.0.0.1:{http}
    http-after-response set-status 299 reason "Checked" if {{ status 200 }}
    default_backend app

backend app
    http-response deny if {{ res.hdr(content-type) audio/mp3 }}
    http-response set-status 503 reason "Try later" if {{ status 500 }}
    server s 127.0.0.1:{server}
"""


@contextmanager
def typed_server() -> Iterator[int]:
    """A real HTTP/1.1 server answering each path of ANSWERS with its status and type."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, kind = ANSWERS.get(self.path, (404, "text/plain"))
            body = f"server says {self.path}".encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def status_line(raw: bytes) -> str:
    return raw.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 1)[1]


def run_cases(port: int) -> dict[str, tuple[str, bytes]]:
    seen = {}
    for path in ANSWERS:
        raw = exchange(port, f"GET {path} HTTP/1.1\r\nHost: r.test\r\n\r\n".encode())
        _, _, body = answer(raw)
        seen[path] = (status_line(raw), body)
    return seen


def check_cases(seen: dict[str, tuple[str, bytes]]) -> None:
    # deny: the server's answer is dropped, HAProxy's 502 page instead
    status, body = seen["/song"]
    assert status == "502 Bad Gateway"
    assert b"The server returned an invalid or incomplete response." in body
    assert b"server says" not in body
    # set-status in the backend: the status line changes, the body is the server's
    assert seen["/broken"] == ("503 Try later", b"server says /broken")
    # http-after-response in the frontend, after the backend's rules
    assert seen["/ok"] == ("299 Checked", b"server says /ok")


def test_response_deny_and_set_status_like_haproxy(tmp_path: Path, pki: Pki) -> None:
    with typed_server() as server:
        ports = {"http": free_port(), "server": server}
        config, _ = write_config(tmp_path, pki, CONFIG, **ports)
        check_accepts(config)
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            started(proc)
            check_cases(run_cases(ports["http"]))
            proc.wait_for(r" web app/s .* 502 .* PH-- ")

        ha_ports = {"http": free_port(), "server": server}
        (tmp_path / "ha").mkdir()
        ha_config, _ = write_config(tmp_path / "ha", pki, CONFIG, **ha_ports)
        with debian_haproxy(ha_config, ha_ports["http"], tmp_path / "haproxy.log"):
            check_cases(run_cases(ha_ports["http"]))
