"""A real staplegate starting on bad OCSP files (issue 14, defects 2 and 6).

Before the fixes, a `.ocsp` sidecar whose ResponderID CN has the wrong ASN.1 type crashed
start-up with a traceback, and a state-directory file whose CertId uses MD5 left the master
alive but never started: no log line, no staples, SIGTERM and SIGINT ignored. Now each bad
file is skipped with a warning naming it, and the certificates are stapled from the responder.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.testpki.pytest_plugin import Pki
from tests.ocsp_der import BIT_STRING, malformed_name_response, with_md5_cert_id

from .harness import free_port, staplegate, wait_for_staple

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
    server web1 127.0.0.1:9
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_bad_sidecar_and_md5_state_file_are_skipped_and_the_master_starts(
    tmp_path: Path, pki: Pki, stop: signal.Signals
) -> None:
    www = pki.issue("www.example.test")
    api = pki.issue("api.example.test")
    sidecar = Path(f"{www.bundle_path}.ocsp")
    sidecar.write_bytes(
        malformed_name_response(www.certificate, www.issuer, pki.ca.private_key, tag=BIT_STRING)
    )
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    api_id = CertId.for_certificate(api.certificate, api.issuer)
    md5_file = state / f"{with_md5_cert_id(api_id.der).hex()}.ocsp"
    md5_file.write_bytes(with_md5_cert_id(pki.ca.good_response(api)))
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(f"{www.bundle_path}\n{api.bundle_path}\n", encoding="utf-8")
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, crt_list=crt_list), encoding="utf-8")

    with staplegate(config, state, workers=1) as proc:
        proc.wait_for("staplegate started")
        proc.wait_for(r'1 "Update successful"', count=2)
        wait_for_staple(port, "www.example.test")
        wait_for_staple(port, "api.example.test")
        assert proc.stop(stop) in (0, 130)
        output = proc.output
    assert "Traceback" not in output
    config_warning, loading_warning = [
        line for line in output.splitlines() if "Loading: Unable to parse OCSP response" in line
    ]
    assert config_warning.startswith(f"[WARNING] config : parsing [{crt_list}:1] : Loading: ")
    assert loading_warning.startswith(f"{www.bundle_path}: Loading: ")
    assert "malformed ResponderID name" in loading_warning
    (state_warning,) = [line for line in output.splitlines() if str(md5_file) in line]
    assert "unsupported hash algorithm" in state_warning
