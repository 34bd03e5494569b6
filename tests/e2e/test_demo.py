"""The README's first command runs this demo: it must build everything, show a staple, and
answer on its stats socket and stats frontend; the tutorial's "watch a revocation" step works
on it as written (`staplegate ca revoke`, then `staplegate ctl … update ssl ocsp-response`)."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from staplegate.tools.demo import http_get, page_rows

from .harness import free_port, poll, s_client_status, wait_for_output

pytestmark = pytest.mark.slow

DEMO = [sys.executable, "-m", "staplegate.tools.demo"]


def test_demo_builds_everything_and_staples(tmp_path: Path) -> None:
    result = subprocess.run(
        [*DEMO, "--dir", str(tmp_path / "demo"), "--port", "0", "--stats-port", "0", "--for", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Configuration file is valid" in out
    assert '<OCSP-UPDATE> @demo/api 1 "Update successful" 0 1' in out
    assert "Cert Status: good" in out
    assert "curl --cert-status: Hello from the demo backend" in out
    assert "Stapling works." in out
    assert (tmp_path / "demo" / "pki" / "index.txt").exists()
    assert len(list((tmp_path / "demo" / "state").glob("*.ocsp"))) == 2
    # the stats socket answered (mode 600, level admin) ...
    socket_path = tmp_path / "demo" / "admin.sock"
    assert f"[6/6] stats socket {socket_path} (level admin, mode 0o600)" in out
    assert "OCSP Certid | Path | Next Update" in out
    assert "| @demo/api |" in out
    # ... and so did the stats frontend: /metrics and the page
    www = tmp_path / "demo" / "certs" / "www.example.test.pem"
    assert f'staplegate_ocsp_stapled{{certificate="{www}"}} 1' in out
    assert re.search(r"stats page http://127\.0\.0\.1:\d+/stats: certificates .*api ok", out)
    assert "legacy.example.test.pem failing" in out  # no OCSP URI: red, with its reason


@contextmanager
def running_demo(directory: Path, log: Path) -> Iterator[str]:
    """The demo serving (until SIGINT, its Ctrl-C); its output so far once it serves."""
    args = [*DEMO, "--dir", str(directory), "--port", "0", "--stats-port", "0", "--for", "120"]
    with log.open("wb") as output:
        demo = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield wait_for_output(
            lambda: log.read_text(errors="replace"),
            "Serving until",
            timeout=60,
            failure="the demo never started serving",
        )
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C: it stops staplegate and the responder
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()


def ctl_json(socket_path: Path, *command: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "staplegate", "ctl", "-S", str(socket_path), "--json", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        body: bytes = answer.read()
        return body.decode()


def browser_dom(url: str, tmp_path: Path) -> str:
    """The page as headless Chromium builds it (`--dump-dom`)."""
    done = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", url],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    return done.stdout


def test_tutorial_revocation_turns_the_row_red_and_the_metric_revoked(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    with running_demo(directory, tmp_path / "demo.log") as shown:
        stats_url = re.findall(r"open (http://127\.0\.0\.1:\d+/stats) in a browser", shown)[0]
        metrics_url = stats_url.removesuffix("/stats") + "/metrics"
        revoke = re.findall(r" (ca revoke .*)$", shown, re.M)[0]
        sock = directory / "admin.sock"
        www = str(directory / "certs" / "www.example.test.pem")
        assert f"ctl -S {sock} update ssl ocsp-response {www}\n" in shown
        # the JSON forms of the commands this issue touches, before the revocation
        info = ctl_json(sock, "show", "info")
        assert info["OcspEntries"] == "2"
        stat = ctl_json(sock, "show", "stat")
        assert {row["svname"] for row in stat} >= {"FRONTEND", "BACKEND", "web1"}
        updates = ctl_json(sock, "show", "ssl", "ocsp-updates")
        assert {row["Path"] for row in updates} == {www, "@demo/api"}
        # the tutorial's step 3, as the demo printed it (our checkout's staplegate)
        subprocess.run(
            [sys.executable, "-m", "staplegate", *revoke.split()],
            check=True,
            capture_output=True,
            timeout=60,
        )
        answer = ctl_json(sock, "update", "ssl", "ocsp-response", www)
        assert answer == {
            "path": www,
            "status": 1,
            "status_text": "Update successful",
            "failures": 0,
            "successes": 2,
        }
        revoked = f'staplegate_ocsp_response_status{{certificate="{www}",status="revoked"}} 1.0'
        wait_for_output(
            lambda: get(metrics_url), revoked, timeout=15, failure="/metrics never said revoked"
        )
        poll(
            lambda: True if page_rows(get(stats_url)).get(www) == "failing" else None,
            timeout=15,
            failure=lambda: f"the page's row stayed {page_rows(get(stats_url)).get(www)}",
        )
        # what a person sees: the row in a real browser (./dev installs Debian's chromium)
        assert shutil.which("chromium") is not None, "install chromium (./dev setup)"
        seen = page_rows(browser_dom(stats_url, tmp_path))
        assert seen[www] == "failing"
        assert seen["@demo/api"] == "ok"
        # the staple stays served: a revoked answer is the truth, stapled with an alert
        assert f'staplegate_ocsp_stapled{{certificate="{www}"}} 1.0' in get(metrics_url)
        https = int(re.findall(r"staplegate on https://127\.0\.0\.1:(\d+)", shown)[0])
        wait_for_output(
            lambda: s_client_status(https, "www.example.test"),
            "Cert Status: revoked",
            timeout=15,
            failure="openssl s_client never saw the revoked staple",
        )
    assert "is REVOKED" in (directory / "staplegate.log").read_text()


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        busy = holder.getsockname()[1]
        result = subprocess.run(
            [*DEMO, "--dir", str(tmp_path / "demo"), "--port", str(free_port()),
             "--stats-port", str(busy), "--for", "0"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        f"staplegate-demo: 127.0.0.1:{busy} is not free (Address already in use); "
        "choose another port with --stats-port (0: any free port)\n"
    )
    assert not (tmp_path / "demo").exists()  # refused before building anything


def test_the_demo_asks_again_while_the_master_has_not_pushed_yet() -> None:
    """Before the master's first push a stats frontend answers 503 (docs/reference/metrics.md);
    the demo's [6/6] step asks again instead of calling the frontend dead."""
    answers = [503, 503, 200]

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = answers.pop(0)
            body = b"pushed" if status == 200 else b"not yet"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        try:
            assert http_get(url, deadline=time.monotonic() + 10) == "pushed"
            answers[:] = [503]
            with pytest.raises(urllib.error.HTTPError, match="503"):
                http_get(url, deadline=time.monotonic() - 1)  # past its deadline: the error
        finally:
            server.shutdown()
