"""`./dev demo`: a whole OCSP-stapling setup on localhost, built from nothing, shown working.

The demo makes its own test CA (root + intermediate, in openssl's layout) and a delegated
OCSP signer, issues certificates that point at a local OCSP responder, writes a HAProxy-syntax
configuration using the ways HAProxy enables OCSP updates (global mode, crt-list, crt-store),
checks it with `staplegate -c -V`, then starts the responder (`staplegate responder`), a
small HTTP backend and staplegate itself, waits for the first OCSP updates, and shows the
staple with `openssl s_client -status` and `curl --cert-status`. It then shows what an
operator watches: the stats socket (`staplegate ctl`, level admin, mode 600, in the demo
directory) and a stats frontend on 127.0.0.1 (the stats page at `/stats`, Prometheus
metrics at `/metrics`). Everything lives under one directory (default `./demo`) and binds
127.0.0.1 only. It serves on https://localhost:8443 until Ctrl-C; `--for SECONDS` bounds it
(0 = show the result and stop).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from staplegate.cli import describe_os_error
from staplegate.testpki.ca import CertificateAuthority, KeyKind
from staplegate.tools import ctl

CONFIG_TEMPLATE = """\
# staplegate demo configuration, in HAProxy's syntax.
global
    log stdout format raw local0 info
    stats socket {admin_socket} mode 600 level admin
    ocsp-update.mode on
    ocsp-update.mindelay 300
    ocsp-update.maxdelay 3600
    crt-base {certs}

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

crt-store demo
    crt-base {certs}
    load crt api.example.test.pem ocsp-update on alias api

frontend www
    bind 127.0.0.1:{https_port} ssl crt-list {crt_list} crt "@demo/api"
    default_backend webservers

frontend stats
    bind 127.0.0.1:{stats_port}
    mode http
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
    stats refresh 10s

backend webservers
    server web1 127.0.0.1:{backend_port} check
"""

CRT_LIST_TEMPLATE = """\
# certificate [options] [SNI filters]
www.example.test.pem [alpn http/1.1 ocsp-update on] www.example.test
legacy.example.test.pem legacy.example.test
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require_free(port: int, option: str) -> None:
    """Refuse, in one line, a fixed port something else holds (0 picks a free one later)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise OSError(
                error.errno,
                f"127.0.0.1:{port} is not free ({error.strerror}); "
                f"choose another port with {option} (0: any free port)",
            ) from error


@dataclass(frozen=True)
class DemoLayout:
    directory: Path
    config: Path
    ca: CertificateAuthority
    signer_cert: Path
    signer_key: Path
    responder_port: int
    https_port: int
    backend_port: int
    stats_port: int
    admin_socket: Path

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/stats"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/metrics"

    @property
    def www_certificate(self) -> Path:
        """The certificate the tutorial revokes (its path as `show ssl ocsp-updates` prints it)."""
        return self.directory / "certs" / "www.example.test.pem"


def build(directory: Path, *, https_port: int = 8443, stats_port: int = 8404) -> DemoLayout:
    """Create the CA, certificates and configuration under `directory` (a port 0: any free)."""
    if directory.exists():
        shutil.rmtree(directory)
    certs = directory / "certs"
    certs.mkdir(parents=True)
    responder_port = free_port()
    ca = CertificateAuthority.init(
        directory / "pki",
        name="staplegate Demo CA",
        intermediate=True,
        ocsp_url=f"http://127.0.0.1:{responder_port}",
    )
    ca.issue("www.example.test", out_dir=certs)
    ca.issue("api.example.test", key=KeyKind.RSA2048, out_dir=certs)
    ca.issue("legacy.example.test", ocsp_url=None, out_dir=certs)
    signer = ca.ocsp_signer(cn="staplegate Demo OCSP Responder")
    crt_list = directory / "crt-list.txt"
    crt_list.write_text(CRT_LIST_TEMPLATE, encoding="utf-8")
    https_port = https_port or free_port()
    backend_port = free_port()
    stats_port = stats_port or free_port()
    admin_socket = directory / "admin.sock"
    config = directory / "haproxy.cfg"
    config.write_text(
        CONFIG_TEMPLATE.format(
            certs=certs,
            crt_list=crt_list,
            https_port=https_port,
            backend_port=backend_port,
            stats_port=stats_port,
            admin_socket=admin_socket,
        ),
        encoding="utf-8",
    )
    return DemoLayout(
        directory=directory,
        config=config,
        ca=ca,
        signer_cert=signer.cert_path,
        signer_key=signer.key_path,
        responder_port=responder_port,
        https_port=https_port,
        backend_port=backend_port,
        stats_port=stats_port,
        admin_socket=admin_socket,
    )


class _Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"Hello from the demo backend, through staplegate.\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def backend(port: int) -> Iterator[None]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        child = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_for_text(path: Path, text: str, *, timeout: float, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {text!r} in {path}:\n{path.read_text()}")


def s_client(port: int, servername: str) -> str:
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", servername,
         "-status"],
        input=b"", capture_output=True, timeout=20, check=False,
    )  # fmt: skip
    return result.stdout.decode(errors="replace")


def stapled_s_client(port: int, servername: str, *, timeout: float = 5.0) -> str:
    """s_client's output once a staple comes back (the master hands a new staple to the
    workers within ~100 ms of logging it), or the last output after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        output = s_client(port, servername)
        if "OCSP Response Status" in output or time.monotonic() > deadline:
            return output
        time.sleep(0.1)


def http_get(url: str, *, deadline: float) -> str:
    """The body of a GET to one of the demo's own 127.0.0.1 listeners; a `503` (the master
    has not pushed the page or the metrics yet) is asked again until `deadline`."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body: bytes = answer.read()
                return body.decode("utf-8", errors="replace")
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def stapled_metrics(text: str) -> dict[str, float]:
    """`staplegate_ocsp_stapled` per certificate, as prometheus-client reads the scrape."""
    return {
        sample.labels["certificate"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "staplegate_ocsp_stapled"
        for sample in family.samples
    }


def page_rows(page: str) -> dict[str, str]:
    """The stats page's certificates table: first path of each row -> its colour class."""
    table = page.partition('<table class="certificates">')[2].partition("</table>")[0]
    rows = re.findall(r'<tr class="(\w+)"><td class="name">([^<]*)', table)
    return {html.unescape(name): health for health, name in rows}


def show_monitoring(layout: DemoLayout, *, timeout: float = 15.0) -> bool:
    """Print what the stats socket, /metrics and /stats answer; True when all three did and
    the metrics show the www certificate stapled (the master pushes them every second)."""
    socket_path = layout.admin_socket
    mode = oct(os.stat(socket_path).st_mode & 0o777)
    print(f"[6/6] stats socket {socket_path} (level admin, mode {mode}): show ssl ocsp-updates")
    try:
        answer = ctl.send(str(socket_path), "show ssl ocsp-updates", timeout=10)
    except ctl.CtlError as error:
        print(f"    {error}")
        return False
    for line in answer.splitlines():
        print(f"    {line}")
    www = str(layout.www_certificate)
    deadline = time.monotonic() + timeout
    stapled: dict[str, float] = {}
    try:
        while stapled.get(www) != 1 and time.monotonic() < deadline:
            stapled = stapled_metrics(http_get(layout.metrics_url, deadline=deadline))
            if stapled.get(www) != 1:
                time.sleep(0.2)
        page = http_get(layout.stats_url, deadline=deadline)
    except OSError as error:  # urllib's errors are OSErrors
        print(f"    stats frontend on 127.0.0.1:{layout.stats_port} did not answer: {error}")
        return False
    print(f"    metrics {layout.metrics_url}:")
    for certificate, value in sorted(stapled.items()):
        print(f'    staplegate_ocsp_stapled{{certificate="{certificate}"}} {value:g}')
    rows = page_rows(page)
    colours = ", ".join(
        f"{name if name.startswith('@') else Path(name).name} {health}"
        for name, health in sorted(rows.items())
    )
    print(f"    stats page {layout.stats_url}: certificates {colours}")
    return stapled.get(www) == 1 and bool(rows)


def _staplegate_command() -> str:
    """How to run staplegate from a shell: the virtualenv's script when there is one."""
    script = Path(sys.executable).parent / "staplegate"
    return str(script) if script.exists() else f"{sys.executable} -m staplegate"


def print_try_it(layout: DemoLayout) -> None:
    port = layout.https_port
    root = layout.ca.root_cert_path
    staplegate = _staplegate_command()
    sock = layout.admin_socket
    print("Try it yourself:")
    print(
        f"    openssl s_client -connect 127.0.0.1:{port} -servername www.example.test "
        f"-status -CAfile {root} </dev/null"
    )
    print(
        f"    curl --cert-status --cacert {root} "
        f"--resolve www.example.test:{port}:127.0.0.1 https://www.example.test:{port}/"
    )
    print(f"    {staplegate} -c -V -f {layout.config}")
    print(f"    {staplegate} ctl -S {sock} show ssl ocsp-updates")
    print(f"    {staplegate} ctl -S {sock} --json show stat")
    print(f"    curl -s {layout.metrics_url} | grep '^staplegate_ocsp'")
    print(f"    open {layout.stats_url} in a browser (it refreshes every 10 s)")
    print("Watch a revocation (docs/tutorial/getting-started.md, step 3):")
    pki = layout.ca.directory
    print(f"    {staplegate} ca revoke {pki} www.example.test --reason keyCompromise")
    print(f"    {staplegate} ctl -S {sock} update ssl ocsp-response {layout.www_certificate}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; a directory or file it cannot use is one line on stderr, exit status 1."""
    try:
        return _demo(argv)
    except OSError as error:
        print(f"staplegate-demo: {describe_os_error(error)}", file=sys.stderr)
        return 1


def _demo(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="staplegate-demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("demo"), help="where to build it")
    parser.add_argument(
        "--port", type=int, default=8443, help="HTTPS port on 127.0.0.1 (0: any free port)"
    )
    parser.add_argument(
        "--stats-port",
        type=int,
        default=8404,
        help="stats page and /metrics port on 127.0.0.1 (0: any free port)",
    )
    parser.add_argument(
        "--for",
        dest="duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this long (default: run until Ctrl-C; 0: stop once shown)",
    )
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    python = sys.executable
    require_free(args.port, "--port")
    require_free(args.stats_port, "--stats-port")
    print(f"== staplegate demo in {directory} ==")
    layout = build(directory, https_port=args.port, stats_port=args.stats_port)
    print("[1/6] test CA (root + intermediate), OCSP signer, 3 certificates, haproxy.cfg")
    print(f"[2/6] staplegate -c -V -f {layout.config}")
    sys.stdout.flush()
    check = subprocess.run(
        [python, "-m", "staplegate", "-c", "-V", "-f", str(layout.config)],
        stderr=subprocess.STDOUT,
        check=False,
    )
    if check.returncode != 0:
        return check.returncode
    responder_log = directory / "responder.log"
    staplegate_log = directory / "staplegate.log"
    pki = layout.ca.directory
    responder_args = [
        python, "-m", "staplegate", "responder", "-index", str(pki / "index.txt"),
        "-CA", str(layout.ca.ca_cert_path), "-rsigner", str(layout.signer_cert),
        "-rkey", str(layout.signer_key), "-port", str(layout.responder_port), "-nmin", "60",
    ]  # fmt: skip
    run_args = [
        python, "-m", "staplegate", "-f", str(layout.config),
        "--state-dir", str(directory / "state"),
    ]  # fmt: skip
    with (
        process(responder_args, responder_log),
        backend(layout.backend_port),
    ):
        wait_for_text(responder_log, "listening on", timeout=20)
        print(f"[3/6] OCSP responder on http://127.0.0.1:{layout.responder_port}, "
              f"backend on 127.0.0.1:{layout.backend_port}")  # fmt: skip
        with process(run_args, staplegate_log):
            wait_for_text(staplegate_log, '"Update successful"', timeout=30, count=2)
            print(f"[4/6] staplegate on https://127.0.0.1:{layout.https_port}; its log:")
            for line in staplegate_log.read_text().splitlines():
                print(f"    {line}")
            print("[5/6] openssl s_client -status -servername www.example.test:")
            output = stapled_s_client(layout.https_port, "www.example.test")
            for line in output.splitlines():
                if any(
                    key in line
                    for key in (
                        "OCSP Response Status",
                        "Cert Status",
                        "This Update",
                        "Next Update",
                        "subject=",
                    )
                ):
                    print(f"    {line.strip()}")  # fmt: skip
            curl = subprocess.run(
                ["curl", "--silent", "--show-error", "--cert-status",
                 "--cacert", str(layout.ca.root_cert_path),
                 "--resolve", f"www.example.test:{layout.https_port}:127.0.0.1",
                 f"https://www.example.test:{layout.https_port}/"],
                capture_output=True, text=True, timeout=20, check=False,
            )  # fmt: skip
            print(f"    curl --cert-status: {(curl.stdout or curl.stderr).strip()}")
            stapled = "Cert Status: good" in output and curl.returncode == 0
            print("Stapling works." if stapled else "Stapling did NOT work; see the logs above.")
            watched = show_monitoring(layout)
            if not watched:
                print(f"Monitoring did NOT answer; see above and {staplegate_log}.")
            stapled = stapled and watched
            if stapled and args.duration != 0:
                print_try_it(layout)
                until = "Ctrl-C" if args.duration is None else f"{args.duration:g} s"
                print(f"Serving until {until}.")
                sys.stdout.flush()
                with contextlib.suppress(KeyboardInterrupt):
                    deadline = time.monotonic() + (args.duration or float("inf"))
                    while time.monotonic() < deadline:
                        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    return 0 if stapled else 1


if __name__ == "__main__":
    sys.exit(main())
