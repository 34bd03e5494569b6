"""Which responder a running staplegate asks (issue 19 item 4): the AIA's OCSP URLs in order
with failover, and `ocsp-update.responder-url` / `ocsp-responder` overriding the AIA.

The test CA issues certificates with any list of OCSP URLs (`ca issue --ocsp-url` repeated);
a dead responder is a 127.0.0.1 port where nothing listens. Clients are `openssl s_client
-status`.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, staplegate, wait_for_staple

pytestmark = [pytest.mark.slow, pytest.mark.openssl]

CONFIG = """\
global
    log stdout format raw local0 info
    ocsp-update.mode on
{extra}
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

backend web
    server web1 127.0.0.1:9
"""


def _dead_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/ocsp"


def _issue(pki: Pki, name: str, *urls: str) -> Path:
    flags = [arg for url in urls for arg in ("--ocsp-url", url)] or ["--no-ocsp-url"]
    subprocess.run(
        [sys.executable, "-m", "staplegate", "ca", "issue", str(pki.directory), name, *flags],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return pki.directory / "issued" / f"{name}.pem"


def _config(tmp_path: Path, lines: list[str], extra: str = "") -> tuple[Path, int]:
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, crt_list=crt_list, extra=extra), encoding="utf-8")
    return config, port


def test_the_second_aia_url_staples_when_the_first_is_dead_and_the_log_says_so(
    tmp_path: Path, pki: Pki
) -> None:
    dead = _dead_url()
    bundle = _issue(pki, "two.example.test", dead, pki.responder.url)
    config, port = _config(tmp_path, [f"{bundle} two.example.test"])
    with staplegate(config, tmp_path / "state") as proc:
        (line,) = proc.wait_for(r"OCSP responder .* failed; .* answered", timeout=20)
        assert f"{bundle}: OCSP responder {dead} (" in line
        assert line.endswith(f"; {pki.responder.url} answered")
        proc.wait_for(rf'<OCSP-UPDATE> {re.escape(str(bundle))} 1 "Update successful" 0 1$')
        assert "Cert Status: good" in wait_for_staple(port, "two.example.test")
        assert proc.stop() == 0


def test_overrides_ask_the_mirror_instead_of_the_aia(tmp_path: Path, pki: Pki) -> None:
    """`ocsp-update.responder-url` gives a certificate without any OCSP URL a responder;
    `ocsp-responder` on a crt-list line wins over it for that certificate."""
    mirror = pki.responder.url
    no_aia = _issue(pki, "air-gapped.example.test")
    dead_aia = _issue(pki, "mirrored.example.test", _dead_url())
    config, port = _config(
        tmp_path,
        [
            f"{no_aia} air-gapped.example.test",
            f"{dead_aia} [ocsp-responder {mirror}/per-line] mirrored.example.test",
        ],
        extra=f"    ocsp-update.responder-url {mirror}\n",
    )
    with staplegate(config, tmp_path / "state") as proc:
        proc.wait_for(r'<OCSP-UPDATE> .* 1 "Update successful" 0 1$', count=2, timeout=20)
        for name in ("air-gapped.example.test", "mirrored.example.test"):
            assert "Cert Status: good" in wait_for_staple(port, name)
        paths = {record.path for record in pki.responder.requests}
        assert any(p.startswith("/per-line") for p in paths), paths
        assert "failed;" not in proc.output  # the dead AIA was never asked
        assert proc.stop() == 0


def test_a_responder_override_that_is_not_http_is_an_alert_naming_the_line(
    tmp_path: Path, pki: Pki
) -> None:
    bundle = _issue(pki, "www.example.test", pki.responder.url)
    config, _ = _config(
        tmp_path,
        [f"{bundle} www.example.test"],
        extra="    ocsp-update.responder-url ldap://directory.test/ocsp\n",
    )
    result = subprocess.run(
        [sys.executable, "-m", "staplegate", "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert (
        f"[ALERT] config : parsing [{config}:4] : 'ocsp-update.responder-url' "
        "expects an http:// or https:// URL with a host, not 'ldap://directory.test/ocsp'."
    ) in result.stderr
