"""Client certificates end to end: `verify`, `ca-file`, `crl-file`, `*-ignore-err` on a bind
and per crt-list line, with openssl s_client and curl presenting real certificates.

Four clients: none, a good one, one revoked in the CRL, one from another CA; the backend
records what the `ssl_c_*` sample fetches put in the request headers.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from staplegate.testpki.ca import IssuedCertificate
from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, staplegate
from .test_http_mode_e2e import RecordingBackend, backends

pytestmark = pytest.mark.slow

REQUIRED = "required.example.test"  # crt-list line: verify required + crl-file
OPTIONAL = "optional.example.test"  # crt-list line: verify optional
PLAIN = "plain.example.test"  # crt-list line without client-certificate options
BIND = "bind.example.test"  # second bind: verify required on the bind line itself

CONFIG = """\
global
    log stdout format raw local0 info

defaults
    mode http
    option httplog
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    bind 127.0.0.1:{bind_port} ssl crt {bind_crt} verify required ca-file {ca} crl-file {crl} \
crt-ignore-err X509_V_ERR_CERT_REVOKED
    http-request set-header X-Used %[ssl_c_used]
    http-request set-header X-Verify %[ssl_c_verify]
    http-request set-header X-Subject %[ssl_c_s_dn]
    http-request set-header X-CN %[ssl_c_s_dn(cn)]
    http-request set-header X-Issuer %[ssl_c_i_dn]
    http-request set-header X-Serial %[ssl_c_serial,hex]
    http-request set-header X-Der %[ssl_c_der,base64]
    http-request deny if {{ ssl_c_used }} !{{ ssl_c_verify 0 }}
    default_backend web

backend web
    server a 127.0.0.1:{backend}
"""


def curl(
    port: int, host: str, pki: Pki, client: IssuedCertificate | None
) -> subprocess.CompletedProcess[str]:
    args = [
        "curl", "--silent", "--show-error", "--max-time", "10",
        "--cacert", str(pki.ca.root_cert_path),
        "--resolve", f"{host}:{port}:127.0.0.1", "-o", "/dev/null", "-w", "%{http_code}",
        f"https://{host}:{port}/",
    ]  # fmt: skip
    if client is not None:
        args += ["--cert", str(client.bundle_path), "--key", str(client.bundle_path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)


def s_client(
    port: int, host: str, client: IssuedCertificate | None, *, session: Sequence[str] = ()
) -> str:
    args = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", host,
        "-tls1_2", "-verify_quiet", "-ign_eof", *session,
    ]  # fmt: skip
    if client is not None:
        args += ["-cert", str(client.bundle_path), "-key", str(client.bundle_path)]
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    result = subprocess.run(args, input=request, capture_output=True, text=True, timeout=20)
    return result.stdout + result.stderr


def test_client_certificates(tmp_path: Path, pki: Pki, pki_factory: Callable[..., Pki]) -> None:
    other = pki_factory("other")
    good = pki.issue("alice")
    revoked = pki.issue("mallory")
    pki.revoke("mallory")
    crl = pki.ca.crl()
    stranger = other.issue("eve")
    servers = {name: pki.issue(name) for name in (REQUIRED, OPTIONAL, PLAIN, BIND)}
    ca = pki.ca.root_cert_path
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(
        f"{servers[REQUIRED].bundle_path} [verify required ca-file {ca} crl-file {crl}] "
        f"{REQUIRED}\n"
        f"{servers[OPTIONAL].bundle_path} [verify optional ca-file {ca}] {OPTIONAL}\n"
        f"{servers[PLAIN].bundle_path} {PLAIN}\n",
        encoding="utf-8",
    )
    port, bind_port = free_port(), free_port()
    with backends("web") as (web,):
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(
                port=port,
                bind_port=bind_port,
                crt_list=crt_list,
                bind_crt=servers[BIND].bundle_path,
                ca=ca,
                crl=crl,
                backend=web.port,
            ),
            encoding="utf-8",
        )
        check = subprocess.run(
            [sys.executable, "-m", "staplegate", "-c", "-f", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            proc.wait_for("staplegate started")
            _exercise(port, bind_port, pki, web, good, revoked, stranger, tmp_path / "session.pem")
            assert proc.stop() == 0


def _exercise(
    port: int,
    bind_port: int,
    pki: Pki,
    web: RecordingBackend,
    good: IssuedCertificate,
    revoked: IssuedCertificate,
    stranger: IssuedCertificate,
    tmp_session: Path,
) -> None:
    # crt-list line with verify required: no certificate, revoked, foreign CA are refused
    assert curl(port, REQUIRED, pki, None).stdout != "200"
    assert "certificate required" in s_client(port, REQUIRED, None) or "alert" in s_client(
        port, REQUIRED, None
    )
    assert curl(port, REQUIRED, pki, revoked).stdout != "200"
    assert "certificate revoked" in s_client(port, REQUIRED, revoked)
    assert curl(port, REQUIRED, pki, stranger).stdout != "200"
    assert "unknown ca" in s_client(port, REQUIRED, stranger)
    assert web.requests == []
    assert curl(port, REQUIRED, pki, good).stdout == "200"
    _path, headers = web.requests[-1]
    assert headers["x-used"] == "1"
    assert headers["x-verify"] == "0"
    assert headers["x-subject"] == "/CN=alice"
    assert headers["x-cn"] == "alice"
    assert headers["x-issuer"] == "/CN=" + pki.ca.certificate.subject.rfc4514_string()[3:]
    assert int(headers["x-serial"], 16) == good.serial
    assert "MII" in headers["x-der"]

    # verify optional: no certificate is fine, a bad one is still refused
    count = len(web.requests)
    assert curl(port, OPTIONAL, pki, None).stdout == "200"
    _path, headers = web.requests[-1]
    assert (headers["x-used"], headers["x-verify"], headers["x-subject"]) == ("0", "0", "")
    assert curl(port, OPTIONAL, pki, stranger).stdout != "200"
    assert curl(port, OPTIONAL, pki, good).stdout == "200"
    assert len(web.requests) == count + 2

    # a line without options never asks: a certificate offered is not even sent
    assert curl(port, PLAIN, pki, good).stdout == "200"
    assert web.requests[-1][1]["x-used"] == "0"

    # the bind line's options; crt-ignore-err lets the revoked one in, ssl_c_verify says 23
    # and the deny rule answers 403
    assert curl(bind_port, BIND, pki, None).stdout != "200"
    assert curl(bind_port, BIND, pki, stranger).stdout != "200"
    assert curl(bind_port, BIND, pki, good).stdout == "200"
    count = len(web.requests)
    assert curl(bind_port, BIND, pki, revoked).stdout == "403"
    assert len(web.requests) == count

    # a resumed session must not launder the forgiven error into ssl_c_verify 0: with an
    # ignore list the context does not resume at all
    saved = str(tmp_session)
    first = s_client(bind_port, BIND, revoked, session=["-sess_out", saved])
    assert "HTTP/1.1 403" in first
    if tmp_session.exists():  # no session at all is what the server should offer
        second = s_client(bind_port, BIND, revoked, session=["-sess_in", saved])
        assert "HTTP/1.1 403" in second
        assert "Reused," not in second
    assert len(web.requests) == count

    # elsewhere sessions resume, and a resumed session still carries its certificate
    tmp_session.unlink(missing_ok=True)
    s_client(port, REQUIRED, good, session=["-sess_out", saved])
    resumed = s_client(port, REQUIRED, good, session=["-sess_in", saved])
    assert "Reused," in resumed
    assert "HTTP/1.1 200" in resumed
    assert web.requests[-1][1]["x-used"] == "1"
    assert web.requests[-1][1]["x-subject"] == "/CN=alice"
