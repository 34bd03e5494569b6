"""The mission, end to end: staplegate fetches, verifies, staples, persists and survives.

Real parts only: our OCSP responder on 127.0.0.1 (the `pki` fixture), staplegate as a
subprocess with worker processes, `openssl s_client -status` and `curl --cert-status` as
clients, a real HTTP backend.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from staplegate.testpki.faults import FaultKind
from staplegate.testpki.pytest_plugin import Pki

from .harness import (
    curl_cert_status,
    free_port,
    http_backend,
    s_client_status,
    staplegate,
    wait_for_staple,
)

pytestmark = pytest.mark.slow

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
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

backend web
    server web1 127.0.0.1:{backend}
"""

SUCCESS = r'<OCSP-UPDATE> .*www\.example\.test\.pem 1 "Update successful"'


def write_config(tmp_path: Path, pki: Pki, backend: int, *names: str) -> tuple[Path, int]:
    lines = []
    for name in names:
        issued = pki.issued[name]
        lines.append(f"{issued.bundle_path} {name}\n")
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text("".join(lines), encoding="utf-8")
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(port=port, crt_list=crt_list, backend=backend), encoding="utf-8"
    )
    return config, port


def test_fetches_verifies_and_staples_for_openssl_and_curl(
    tmp_path: Path, pki_factory: Callable[..., Pki]
) -> None:
    # curl looks for the issuer in the chain the server sends: use an intermediate CA.
    pki = pki_factory(intermediate=True)
    pki.issue("www.example.test")
    pki.issue("api.example.test")
    with http_backend() as backend:
        config, port = write_config(tmp_path, pki, backend, "www.example.test", "api.example.test")
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(SUCCESS)
            proc.wait_for(r'api\.example\.test\.pem 1 "Update successful" 0 1')
            output = wait_for_staple(port, "www.example.test")
            assert "Cert Status: good" in output
            assert "subject=CN = www.example.test" in output
            api = wait_for_staple(port, "api.example.test")
            assert "subject=CN = api.example.test" in api
            result = curl_cert_status(port, "www.example.test", pki.ca.root_cert_path)
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("hello from backend")
            assert proc.stop() == 0
        # the staples were persisted, named by CertId
        assert len(list((tmp_path / "state").glob("*.ocsp"))) == 2


def test_restart_with_responder_down_serves_the_persisted_staple(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    with http_backend() as backend:
        config, port = write_config(tmp_path, pki, backend, "www.example.test")
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(SUCCESS)
            assert proc.stop() == 0
        requests_before = len(pki.responder.requests)
        pki.responder.stop()
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for("staplegate started")
            output = s_client_status(port, "www.example.test")
            assert "Cert Status: good" in output, proc.output
            assert "<OCSP-UPDATE>" not in proc.output  # nothing was refetched
            assert proc.stop() == 0
        assert len(pki.responder.requests) == requests_before


def test_revoked_answer_is_stapled_and_alerted(
    tmp_path: Path, pki_factory: Callable[..., Pki]
) -> None:
    pki = pki_factory(intermediate=True)
    pki.issue("www.example.test")
    pki.revoke("www.example.test", reason="keyCompromise")
    with http_backend() as backend:
        config, port = write_config(tmp_path, pki, backend, "www.example.test")
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(SUCCESS)
            proc.wait_for("revoked")
            output = wait_for_staple(port, "www.example.test")
            assert "Cert Status: revoked" in output
            result = curl_cert_status(port, "www.example.test", pki.ca.root_cert_path)
            assert result.returncode != 0  # curl refuses a revoked certificate
            proc.stop()


def test_forged_response_is_never_stapled(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    pki.responder.set_fault(FaultKind.ROGUE_SIGNER)
    with http_backend() as backend:
        config, port = write_config(tmp_path, pki, backend, "www.example.test")
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(r'www\.example\.test\.pem 4 "OCSP response check failure')
            output = s_client_status(port, "www.example.test")
            assert "OCSP response: no response sent" in output
            proc.stop()
    assert not list((tmp_path / "state").glob("*.ocsp"))


def test_a_killed_worker_is_restarted_and_still_staples(tmp_path: Path, pki: Pki) -> None:
    pki.issue("www.example.test")
    with http_backend() as backend:
        config, port = write_config(tmp_path, pki, backend, "www.example.test")
        with staplegate(config, tmp_path / "state", workers=2) as proc:
            proc.wait_for(SUCCESS)
            wait_for_staple(port, "www.example.test")
            victim = proc.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            proc.wait_for(rf"\({victim}\) exited with status -9; restarting it")
            pids = proc.worker_pids()
            assert victim not in pids
            assert len(pids) == 2
            for _ in range(4):  # whichever worker accepts, it staples
                assert "Cert Status: good" in s_client_status(port, "www.example.test")
            assert proc.stop() == 0
