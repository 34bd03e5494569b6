"""The TLS front end as clients see it: staples per name and key type, routing, h2, resumption.

Real parts only: staplegate as a subprocess (2 workers) fed by the `pki` responder, `openssl
s_client` and `curl` as clients, backends on 127.0.0.1 that say which backend and which
staplegate worker carried the request (they look the proxy's socket up in /proc), and nginx
speaking cleartext h2 behind the proxy. One deployment serves the read-only tests of this
module; the failover test starts its own because it kills a server.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from staplegate.testpki.ca import KeyKind
from staplegate.testpki.pytest_plugin import Pki, make_pki

from .harness import StaplegateProcess, free_port, staplegate, wait_for_output

pytestmark = [pytest.mark.slow, pytest.mark.openssl]

CONFIG = """\
global
    log stdout format raw local0 info
    ocsp-update.mode on

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list} alpn h2,http/1.1
    use_backend api if {{ ssl_fc_sni -i api.example.test }}
    use_backend h2 if {{ ssl_fc_sni -i h2.example.test }}
    default_backend web

backend web
    server web1 127.0.0.1:{web}

backend api
    server api1 127.0.0.1:{api}

backend h2
    server nginx 127.0.0.1:{nginx}
"""

NAMES = ("www.example.test", "api.example.test", "site.rsa", "site.ecdsa", "h2.example.test")
REVOKED = "revoked.example.test"
RSA_SIGALGS = "rsa_pss_rsae_sha256:RSA+SHA256"
ECDSA_SIGALGS = "ECDSA+SHA256"


# --- backends that say who carried the request --------------------------------------------


def _socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the 127.0.0.1:local_port → :remote_port TCP socket (/proc/net/tcp)."""
    local = f"0100007F:{local_port:04X}"
    remote = f"0100007F:{remote_port:04X}"
    for line in Path("/proc/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[9]
    return None


def _owner(pids: list[int], inode: str) -> int | None:
    wanted = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                    return pid
            except OSError:
                continue
    return None


class WhoAmIBackend:
    """A tiny HTTP/1.0 server answering `backend NAME worker PID` (the staplegate worker)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.workers: Callable[[], list[int]] = list
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn, peer[1]), daemon=True).start()

    def _answer(self, conn: socket.socket, peer_port: int) -> None:
        with conn:
            conn.settimeout(10)
            request = b""
            try:
                while b"\r\n\r\n" not in request and b"\n\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
            except OSError:
                return
            inode = _socket_inode(peer_port, self.port)
            worker = _owner(self.workers(), inode) if inode else None
            body = f"backend {self.name} worker {worker}\n".encode()
            head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            try:
                conn.sendall(head.encode() + body)
            except OSError:
                return

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept(); close alone would leave it listening
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def nginx_h2c(directory: Path) -> Iterator[int]:
    """Debian's nginx speaking cleartext HTTP/2 (prior knowledge) on 127.0.0.1; yields the port."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "needs Debian's nginx: apt-get install -y nginx-light"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (directory / "nginx.conf").write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{ return 200 "nginx answered over $server_protocol\\n"; }}
    }}
}}
""",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not _port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start: {process.stderr!r}")
            time.sleep(0.01)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


# --- clients ---------------------------------------------------------------------------------


def s_client(port: int, *args: str, request: bool = False) -> str:
    """`openssl s_client` output (stdout + stderr); with `request`, one HTTP/1.0 GET."""
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args]
    if request:
        command.append("-ign_eof")  # read the answer until the server closes
    result = subprocess.run(
        command,
        input="GET / HTTP/1.0\r\n\r\n" if request else "",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    return result.stdout + result.stderr


def curl(port: int, host: str, cafile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """curl through the proxy; HTTP/1.1 unless `args` say otherwise (the bind offers h2)."""
    if "--http2" not in args:
        args = ("--http1.1", *args)
    return subprocess.run(
        [
            "curl", "--silent", "--show-error", "--max-time", "10", "--cacert", str(cafile),
            "--resolve", f"{host}:{port}:127.0.0.1", *args, f"https://{host}:{port}/",
        ],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip


def subject_cn(output: str) -> str:
    found = re.search(r"^subject=CN = (\S+)$", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def staple_serial(output: str) -> int:
    """The serial number of the certificate the staple's CertID names."""
    found = re.search(r"Serial Number: ([0-9A-F]+)", output)
    assert found, output
    return int(found.group(1), 16)


# --- the deployment shared by the read-only tests ---------------------------------------------


@dataclass
class Deployment:
    pki: Pki
    port: int
    proc: StaplegateProcess
    web: WhoAmIBackend
    api: WhoAmIBackend

    @property
    def root(self) -> Path:
        return self.pki.ca.root_cert_path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("frontend")
    # curl finds the issuer in the chain the server sends: use an intermediate CA.
    pki = make_pki(tmp / "ca", intermediate=True)
    try:
        pki.issue("www.example.test")
        pki.issue("api.example.test")
        pki.issue("h2.example.test")
        pki.issue("site.rsa", sans=["site.example.test"], key=KeyKind.RSA2048)
        pki.issue("site.ecdsa", sans=["site.example.test"], key=KeyKind.EC256)
        pki.issue(REVOKED)
        pki.revoke(REVOKED, reason="keyCompromise")
        crt_list = tmp / "crt-list.txt"
        crt_list.write_text(
            "".join(f"{pki.issued[n].bundle_path}\n" for n in (*NAMES, REVOKED)), encoding="utf-8"
        )
        web, api = WhoAmIBackend("web"), WhoAmIBackend("api")
        port = free_port()
        with nginx_h2c(tmp / "nginx") as nginx_port:
            config = tmp / "haproxy.cfg"
            config.write_text(
                CONFIG.format(
                    port=port, crt_list=crt_list, web=web.port, api=api.port, nginx=nginx_port
                ),
                encoding="utf-8",
            )
            with staplegate(config, tmp / "state", workers=2) as proc:
                web.workers = api.workers = proc.worker_pids
                proc.wait_for(r'1 "Update successful"', count=len(NAMES) + 1)
                yield Deployment(pki, port, proc, web, api)
                assert proc.stop() == 0
        web.close()
        api.close()
    finally:
        pki.responder.stop()


def wait_until_stapled(deployment: Deployment, name: str) -> None:
    """Workers get the table over a pipe just after the update line; poll briefly."""
    wait_for_output(
        lambda: s_client(deployment.port, "-servername", name, "-status"),
        "OCSP Response Status: successful",
        timeout=10,
        interval=0.05,
        failure=f"no staple for {name}",
    )


CASES = [
    # (SNI, -sigalgs or None, certificate expected)
    ("www.example.test", None, "www.example.test"),
    ("api.example.test", None, "api.example.test"),
    ("site.example.test", RSA_SIGALGS, "site.rsa"),
    ("site.example.test", ECDSA_SIGALGS, "site.ecdsa"),
]


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_gets_a_verified_good_staple_for_each_name_and_key_type(
    deployment: Deployment, version: str
) -> None:
    wait_until_stapled(deployment, "www.example.test")
    for name, sigalgs, expected in CASES:
        args = [version, "-servername", name, "-status", "-CAfile", str(deployment.root)]
        args += ["-verify_return_error"]
        if sigalgs:
            args += ["-sigalgs", sigalgs]
        output = s_client(deployment.port, *args)
        label = f"{name} {sigalgs} {version}"
        assert subject_cn(output) == expected, label
        assert "Verify return code: 0 (ok)" in output, output
        assert "OCSP Response Status: successful (0x0)" in output, output
        assert "Cert Status: good" in output, output
        # the staple is the one for the certificate served, not another name's
        assert staple_serial(output) == deployment.pki.issued[expected].serial, label
        protocol = "TLSv1.2" if version == "-tls1_2" else "TLSv1.3"
        assert re.search(rf"^New, {protocol}, Cipher is", output, re.MULTILINE), output


@pytest.mark.parametrize(
    ("host", "tls_args", "expected"),
    [
        ("www.example.test", [], "www.example.test"),
        ("api.example.test", [], "api.example.test"),
        # curl has no --sigalgs: a TLS 1.2 cipher suite decides which key type it can use
        ("site.example.test", ["--tls-max", "1.2", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256"],
         "site.rsa"),
        ("site.example.test", ["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"],
         "site.ecdsa"),
        ("site.example.test", ["--tlsv1.3"], "site.ecdsa"),
    ],
)  # fmt: skip
def test_curl_cert_status_verifies_the_staple(
    deployment: Deployment, host: str, tls_args: list[str], expected: str
) -> None:
    wait_until_stapled(deployment, host)
    result = curl(deployment.port, host, deployment.root, "--cert-status", "-v", *tls_args)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"subject: CN={re.escape(expected)}\b", result.stderr), result.stderr
    assert "SSL certificate status: good" in result.stderr, result.stderr
    assert result.stdout.startswith("backend "), result.stdout


def test_a_revoked_certificate_gets_a_revoked_staple_and_curl_refuses_it(
    deployment: Deployment,
) -> None:
    wait_until_stapled(deployment, REVOKED)
    for version in ("-tls1_2", "-tls1_3"):
        output = s_client(deployment.port, version, "-servername", REVOKED, "-status")
        assert "Cert Status: revoked" in output, output
        assert "Revocation Reason: keyCompromise" in output, output
    result = curl(deployment.port, REVOKED, deployment.root, "--cert-status")
    assert result.returncode != 0
    assert "revocation reason: keycompromise" in result.stderr.lower(), result.stderr


def test_a_client_without_status_request_gets_no_staple(deployment: Deployment) -> None:
    wait_until_stapled(deployment, "www.example.test")
    # TLS 1.2: the staple travels in its own CertificateStatus handshake message.
    asked = s_client(
        deployment.port, "-tls1_2", "-servername", "www.example.test", "-status", "-msg"
    )
    assert "CertificateStatus" in asked, asked  # control: -msg does show it when asked
    quiet = s_client(deployment.port, "-tls1_2", "-servername", "www.example.test", "-msg")
    assert "ServerHelloDone" in quiet, quiet
    assert "CertificateStatus" not in quiet, quiet
    # TLS 1.3: the staple is a status_request extension of the Certificate entry.
    asked = s_client(
        deployment.port, "-tls1_3", "-servername", "www.example.test", "-status", "-tlsextdebug"
    )
    assert 'TLS server extension "status request"' in asked, asked  # control
    quiet = s_client(deployment.port, "-tls1_3", "-servername", "www.example.test", "-tlsextdebug")
    assert "New, TLSv1.3" in quiet, quiet
    assert 'TLS server extension "status request"' not in quiet, quiet


def test_sni_routes_to_different_backends(deployment: Deployment) -> None:
    for host, backend in [
        ("www.example.test", "web"),
        ("api.example.test", "api"),
        ("API.Example.Test", "api"),  # ssl_fc_sni -i
        ("site.example.test", "web"),
    ]:
        result = curl(deployment.port, host, deployment.root)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"backend {backend} worker "), (host, result.stdout)


def test_tcp_mode_carries_h2_when_alpn_negotiates_it(deployment: Deployment) -> None:
    result = curl(deployment.port, "h2.example.test", deployment.root, "--http2", "-v")
    assert result.returncode == 0, result.stderr
    assert "ALPN: server accepted h2" in result.stderr, result.stderr
    assert result.stdout == "nginx answered over HTTP/2.0\n"
    # a client offering only http/1.1 gets http/1.1 (the server's list is h2,http/1.1)
    plain = curl(deployment.port, "www.example.test", deployment.root, "--http1.1", "-v")
    assert "ALPN: server accepted http/1.1" in plain.stderr, plain.stderr


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_a_session_resumes_on_the_other_worker(
    deployment: Deployment, version: str, tmp_path: Path
) -> None:
    session = tmp_path / "session.pem"
    name = ["-servername", "www.example.test", version]
    first = s_client(deployment.port, *name, "-sess_out", str(session), request=True)
    assert re.search(r"^New, TLSv1\.[23]", first, re.MULTILINE), first
    issuer = int(re.findall(r"backend web worker (\d+)", first)[0])
    workers = set(deployment.proc.worker_pids())
    assert issuer in workers
    served_by: list[int] = []
    for _ in range(40):
        output = s_client(deployment.port, *name, "-sess_in", str(session), request=True)
        assert re.search(r"^Reused, TLSv1\.[23]", output, re.MULTILINE), output
        served_by.append(int(re.findall(r"backend web worker (\d+)", output)[0]))
        if len(served_by) >= 8 and set(served_by) - {issuer}:
            break
    assert set(served_by) <= workers
    assert set(served_by) - {issuer}, f"all {len(served_by)} reconnects hit worker {issuer}"


# --- failover -----------------------------------------------------------------------------------

FAILOVER_CONFIG = """\
global
    log stdout format raw local0 info

defaults
    mode tcp
    option redispatch
    retries 2
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend www
    bind 127.0.0.1:{port} ssl crt {crt}
    default_backend web

backend web
    server web1 127.0.0.1:{web1} check inter 200ms fall 1 rise 1
    server web2 127.0.0.1:{web2} check inter 200ms fall 1 rise 1
"""


def test_requests_keep_succeeding_when_a_server_dies(tmp_path: Path, pki: Pki) -> None:
    issued = pki.issue("www.example.test")
    web1, web2 = WhoAmIBackend("web1"), WhoAmIBackend("web2")
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        FAILOVER_CONFIG.format(port=port, crt=issued.bundle_path, web1=web1.port, web2=web2.port),
        encoding="utf-8",
    )
    try:
        with staplegate(config, tmp_path / "state", workers=2) as proc:
            proc.wait_for("staplegate started")
            seen = set()
            for _ in range(8):
                result = curl(port, "www.example.test", pki.ca.root_cert_path)
                assert result.returncode == 0, result.stderr
                seen.add(result.stdout.split()[1])
            assert seen == {"web1", "web2"}  # round-robin over both
            # As in HAProxy, a request that picks the dead server before a check notices retries
            # it and then redispatches to web2 (`option redispatch`): none fails.
            web1.close()
            answers = []
            for _ in range(20):
                result = curl(port, "www.example.test", pki.ca.root_cert_path)
                assert result.returncode == 0, (result.stderr, proc.output)
                answers.append(result.stdout.split()[1])
            assert set(answers) == {"web2"}
            # the master's health check saw it too (a worker may have seen it first on traffic)
            proc.wait_for(r"Server web/web1 is DOWN, reason: Layer4 connection problem, ")
            assert proc.stop() == 0
    finally:
        web1.close()
        web2.close()
