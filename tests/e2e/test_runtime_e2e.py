"""The runtime API of a running staplegate, through socat and `staplegate ctl`."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from staplegate.testpki.faults import FaultKind
from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, http_backend, s_client_status, staplegate, wait_for_staple

pytestmark = pytest.mark.slow

CONFIG = """\
global
    log stdout format raw local0 info
    stats socket {admin} mode 600 level admin
    stats socket {user} mode 600 level user
    ocsp-update.mode on

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt {crt}
    default_backend web

backend web
    server web1 127.0.0.1:{backend}
"""


def socat(sock: Path, command: str) -> str:
    result = subprocess.run(
        ["socat", "stdio", f"unix-connect:{sock}"],
        input=command + "\n", capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return result.stdout


def ctl(sock: Path, *command: str, payload: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "staplegate", "ctl", "-S", str(sock), *command],
        input=payload, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def setup(tmp_path: Path, pki: Pki, backend: int) -> tuple[Path, int, Path, Path, Path]:
    issued = pki.issue("www.example.test")
    port = free_port()
    admin, user = tmp_path / "admin.sock", tmp_path / "user.sock"
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(admin=admin, user=user, port=port, crt=issued.bundle_path, backend=backend),
        encoding="utf-8",
    )
    return config, port, admin, user, issued.bundle_path


def test_ocsp_commands_levels_and_saving_the_staple(tmp_path: Path, pki: Pki) -> None:
    with http_backend() as backend:
        config, port, admin, user, bundle = setup(tmp_path, pki, backend)
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(r'1 "Update successful" 0 1')
            proc.wait_for("runtime API listening")
            assert (admin.stat().st_mode & 0o777) == 0o600
            listing = socat(user, "show ssl ocsp-response")
            assert listing.startswith("# Certificate IDs\nCertificate ID key : 30")
            assert f"Certificate path : {bundle}" in listing
            cert_id = listing.split("Certificate ID key : ")[1].split()[0]

            updates = ctl(user, "show ssl ocsp-updates")
            assert "Update successful" in updates
            info = dict(
                line.split(": ", 1) for line in socat(user, "show info").splitlines() if line
            )
            assert info["Name"] == "staplegate"
            assert info["DroppedLogs"] == "0"  # the master's log router: nothing lost
            # user level may read but not push or refresh
            assert socat(user, f"update ssl ocsp-response {bundle}").strip() == (
                "Permission denied"
            )
            assert socat(user, "set ssl ocsp-response AAAA").strip() == "Permission denied"

            # the seed page's step: save the current response to a .ocsp file
            encoded = socat(admin, f"show ssl ocsp-response base64 {cert_id}").strip()
            saved = Path(f"{bundle}.ocsp")
            saved.write_bytes(base64.b64decode(encoded))
            text = subprocess.run(
                ["openssl", "ocsp", "-respin", str(saved), "-resp_text", "-noverify"],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            assert "Cert Status: good" in text.stdout

            # a forged push is refused with its reason and the staple stays
            pki.responder.set_fault(FaultKind.ROGUE_SIGNER)
            forged = _fetch_raw(pki, bundle)
            answer = socat(admin, f"set ssl ocsp-response {base64.b64encode(forged).decode()}")
            assert "OCSP response" in answer, answer
            assert "The current response is kept" in answer, answer
            assert "Cert Status: good" in s_client_status(port, "www.example.test")

            # an operator-level refresh waits and reports its outcome
            pki.responder.clear_faults()
            refreshed = socat(admin, f"update ssl ocsp-response {bundle}")
            assert '1 "Update successful"' in refreshed
            assert proc.stop() == 0

        # restart with an empty state dir and the responder down: the saved .ocsp is served
        pki.responder.stop()
        with staplegate(config, tmp_path / "state2") as proc:
            proc.wait_for("staplegate started")
            assert "Cert Status: good" in s_client_status(port, "www.example.test")
            proc.stop()


def _fetch_raw(pki: Pki, bundle: Path) -> bytes:
    out = bundle.with_suffix(".forged")
    subprocess.run(
        [
            "openssl", "ocsp", "-issuer", str(pki.ca.ca_cert_path), "-cert", str(bundle),
            "-url", pki.responder.url, "-respout", str(out), "-noverify",
        ],
        capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    return out.read_bytes()


def test_renewed_certificate_committed_over_the_socket_gets_its_own_staple(
    tmp_path: Path, pki: Pki
) -> None:
    with http_backend() as backend:
        config, port, admin, _user, bundle = setup(tmp_path, pki, backend)
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(r'1 "Update successful" 0 1')
            old_serial = pki.issued["www.example.test"].serial
            pki.revoke("www.example.test", reason="superseded")
            renewed = pki.issue("www.example.test", out_dir=tmp_path / "renewed")
            pem = renewed.bundle_path.read_text()
            answer = ctl(admin, "set", "ssl", "cert", str(bundle), "<<", payload=pem)
            assert "Transaction created" in answer, answer
            committed = ctl(admin, "commit", "ssl", "cert", str(bundle))
            assert "Success!" in committed, committed
            # the renewed certificate is served at once, with its own (good) staple
            served = subprocess.run(
                ["openssl", "x509", "-noout", "-serial"],
                input=_server_cert(port), capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
            assert served.strip() == f"serial={renewed.serial:X}"
            output = wait_for_staple(port, "www.example.test")
            assert "Cert Status: good" in output, output  # never the old, revoked answer
            proc.wait_for(r'www\.example\.test\.pem 1 "Update successful" 0 1', count=2)
            assert renewed.serial != old_serial
            assert proc.stop() == 0


def _server_cert(port: int) -> str:
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
         "-servername", "www.example.test", "-showcerts"],
        input="", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    text = result.stdout
    start = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return text[start:end] + "\n"


def test_reload_over_the_socket_reports_a_broken_configuration(tmp_path: Path, pki: Pki) -> None:
    with http_backend() as backend:
        config, port, admin, user, _bundle = setup(tmp_path, pki, backend)
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for("runtime API listening")
            assert socat(user, "show reload").strip() == "No reload yet."
            assert socat(user, "reload").strip() == "Permission denied"
            good = config.read_text()
            config.write_text(good.replace("default_backend web", "default_backend missing"))
            answer = socat(admin, "reload")
            assert answer.startswith("Success=0\n--\nreload failed, still serving generation 1")
            assert f"parsing [{config}:" in answer
            assert "missing" in answer
            assert socat(user, "show reload") == answer
            assert "Cert Status: good" in wait_for_staple(port, "www.example.test")
            config.write_text(good)
            answer = socat(admin, "reload")
            assert answer.startswith("Success=1\n--\nreloaded: generation 2"), answer
            assert proc.stop() == 0


HTTP_CONFIG = """\
global
    log stdout format raw local0 info
    stats socket {operator} mode 600 level operator

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt {crt}
    default_backend web

frontend plain
    mode tcp
    bind 127.0.0.1:{plain} ssl crt {crt}
    default_backend raw

backend web
    balance leastconn
    server web1 127.0.0.1:{backend}
    server web2 127.0.0.1:{backend}

backend raw
    mode tcp
    server raw1 127.0.0.1:{backend}
"""


def test_show_stat_reports_each_proxys_mode_and_balance_algorithm(tmp_path: Path, pki: Pki) -> None:
    issued = pki.issue("www.example.test")
    operator = tmp_path / "operator.sock"  # `algo` is shown from level operator up
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        HTTP_CONFIG.format(
            operator=operator,
            port=free_port(),
            plain=free_port(),
            crt=issued.bundle_path,
            backend=free_port(),
        ),
        encoding="utf-8",
    )
    with staplegate(config, tmp_path / "state") as proc:
        proc.wait_for("runtime API listening")
        answer = socat(operator, "show stat")
    lines = answer.strip("\n").split("\n")
    names = lines[0].removeprefix("# ").rstrip(",").split(",")
    rows = {
        (row["pxname"], row["svname"]): row
        for row in (dict(zip(names, line.split(","), strict=False)) for line in lines[1:])
    }
    seen = {key: (row["mode"], row["algo"]) for key, row in rows.items()}
    assert seen == {
        ("www", "FRONTEND"): ("http", ""),
        ("plain", "FRONTEND"): ("tcp", ""),
        ("web", "web1"): ("http", ""),
        ("web", "web2"): ("http", ""),
        ("web", "BACKEND"): ("http", "leastconn"),
        ("raw", "raw1"): ("tcp", ""),
        ("raw", "BACKEND"): ("tcp", "roundrobin"),
    }
