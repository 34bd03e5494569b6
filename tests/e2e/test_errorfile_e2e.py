"""`errorfile` end to end: a live staplegate answers its own errors (no usable server, a
`deny`) with the operator's files, the backend's over the frontend's, as Debian's HAProxy
2.6 does with the same configuration and files in the same run (a request the HTTP parser
refuses keeps HAProxy's own 400 page in both)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import check_accepts, debian_haproxy, free_port, staplegate
from .test_http_mode_e2e import started, write_config

pytestmark = pytest.mark.slow


BODY_503 = b"<html><body><h1>All servers are resting</h1></body></html>\n"
FILES = {
    # Debian's layout: HTTP/1.0, Connection: close, no Content-Length (ends with the connection)
    "503.http": b"HTTP/1.0 503 Service Unavailable\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\nContent-Type: text/html\r\n\r\n" + BODY_503,
    "403.http": b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Page: custom\r\n"
    b"Content-Length: 8\r\n\r\nno entry",
    "400.http": b"HTTP/1.0 400 Bad request\r\nContent-Type: text/plain\r\n\r\nmalformed\n",
    "api-503.http": b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 30\r\nContent-Length: 20\r\n\r\n" + b'{"error":"no api"}\r\n',
}

CONFIG = """\
frontend web
    bind 127.0.0.1:{http}
    errorfile 503 {dir}/503.http
    errorfile 403 {dir}/403.http
    errorfile 400 {dir}/400.http
    http-request deny if {{ path_beg /private }}
    use_backend api if {{ path_beg /api }}
    default_backend down

frontend plain
    bind 127.0.0.1:{plain}
    default_backend down

backend down
    server gone 127.0.0.1:{dead}

backend api
    errorfile 503 {dir}/api-503.http
    server gone 127.0.0.1:{dead}
"""


def exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes or a whole answer with a length came."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if sep and name.lower() == b"content-length" and len(body) >= int(value):
                    return data


def answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    return answer(exchange(port, f"GET {path} HTTP/1.1\r\nHost: err.test\r\n\r\n".encode()))


def closed_port() -> int:
    return free_port()  # nothing listens there: every connect is refused


def run_cases(port: int, plain: int) -> dict[str, tuple[int, dict[str, str], bytes]]:
    return {
        "no server": get(port, "/"),
        "backend's own": get(port, "/api/x"),
        "deny": get(port, "/private"),
        "bad request": answer(exchange(port, b"GARBAGE\r\n\r\n")),
        "no errorfile": get(plain, "/"),
    }


def check_cases(cases: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
    status, headers, body = cases["no server"]
    assert (status, body) == (503, BODY_503)
    assert headers["content-type"] == "text/html"
    assert headers.get("connection", "close") == "close"  # the body ends with the connection
    status, headers, body = cases["backend's own"]
    assert (status, body) == (503, b'{"error":"no api"}\r\n')
    assert (headers["content-type"], headers["retry-after"]) == ("application/json", "30")
    status, headers, body = cases["deny"]
    assert (status, headers["x-page"], body) == (403, "custom", b"no entry")
    # a request the HTTP parser refuses gets HAProxy's own page: HAProxy 2.6 answers these
    # before a stream exists, without the frontend's errorfiles (seen against it below)
    status, _, body = cases["bad request"]
    assert status == 400
    assert b"Your browser sent an invalid request." in body
    status, _, body = cases["no errorfile"]
    assert status == 503
    assert b"No server is available to handle this request." in body  # HAProxy's own


def test_errorfiles_answer_like_haproxy(tmp_path: Path, pki: Pki) -> None:
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    ports = {"http": free_port(), "plain": free_port(), "dead": closed_port()}
    config, _ = write_config(tmp_path, pki, CONFIG, dir=tmp_path, **ports)
    output = check_accepts(config)
    assert "errorfile" not in output  # served, so no warning
    with staplegate(config, tmp_path / "state", workers=1) as proc:
        started(proc)
        check_cases(run_cases(ports["http"], ports["plain"]))
        proc.wait_for(r" web down/gone .* 503 .* SC-- ")  # HAProxy names the server it tried

    ha_ports = {"http": free_port(), "plain": free_port(), "dead": ports["dead"]}
    (tmp_path / "ha").mkdir()
    ha_config, _ = write_config(tmp_path / "ha", pki, CONFIG, dir=tmp_path, **ha_ports)
    with debian_haproxy(ha_config, ha_ports["plain"], tmp_path / "haproxy.log"):
        check_cases(run_cases(ha_ports["http"], ha_ports["plain"]))
