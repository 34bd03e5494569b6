"""The sidecar beside Debian's real HAProxy 2.6, as an operator runs it.

`staplegate sidecar --all --write-ocsp --reload-cmd … --haproxy-socket …` next to a daemon
HAProxy whose certificates have no `.ocsp` file yet: the sidecar fetches and verifies, HAProxy
2.6 refuses the push (it made no OCSP entry without a file), the files are written, the reload
command reloads HAProxy, which staples them; from then on refreshes are pushed (a revocation
reaches clients at the next refresh), a responder outage changes nothing, and a HAProxy
restart staples at once from the files and gets the pushes again.
"""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.haproxy_push import served_matches
from staplegate.testpki.pytest_plugin import Pki
from tests.e2e.harness import (
    StaplegateProcess,
    free_port,
    poll,
    pyopenssl_staple,
    s_client_status,
    wait_for_output,
)
from tests.e2e.sidecar_haproxy import DaemonHaproxy, needs_haproxy

pytestmark = [needs_haproxy, pytest.mark.slow]


def _staple(haproxy: DaemonHaproxy, name: str) -> bytes | None:
    return pyopenssl_staple(haproxy.port, name) or None


def test_the_sidecar_keeps_haproxy_26_stapled(tmp_path: Path, pki: Pki) -> None:
    a = pki.issue("a.test")
    b = pki.issue("b.test")
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(f"{a.bundle_path} a.test\n{b.bundle_path} b.test\n")
    extra = tmp_path / "extra.cfg"
    extra.write_text("global\n    ocsp-update.mindelay 1\n    ocsp-update.maxdelay 3\n")
    haproxy = DaemonHaproxy(tmp_path, crt_list)
    haproxy.start()
    metrics_port = free_port()
    sidecar = StaplegateProcess(
        ["sidecar", "-f", str(haproxy.config), "--all", "--write-ocsp",
         "--haproxy-socket", str(haproxy.socket), "--extra-config", str(extra),
         "--reload-cmd", haproxy.reload_command, "--state-dir", str(tmp_path / "state"),
         "--metrics", f"127.0.0.1:{metrics_port}"]
    )  # fmt: skip
    try:
        assert _staple(haproxy, "a.test") is None
        # 2.6 had no entry: said once per certificate, files written, HAProxy reloaded
        sidecar.wait_for("has no OCSP entry for '.*a.test.pem'")
        first_pid = haproxy.pid()
        good = poll(lambda: _staple(haproxy, "a.test"), timeout=20, failure=sidecar.output_unlocked)
        assert haproxy.pid() != first_pid
        assert good == Path(f"{a.bundle_path}.ocsp").read_bytes()
        a_id = CertId.for_certificate(a.certificate, a.issuer)
        assert served_matches(haproxy.command(f"show ssl ocsp-response {a_id.hex}"), good)
        assert "Cert Status: good" in s_client_status(haproxy.port, "b.test")
        # --metrics: the sidecar's staples in Prometheus' format
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            scrape = r.read().decode()
        assert f'staplegate_ocsp_stapled{{certificate="{a.bundle_path}"}} 1.0' in scrape
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/stats", timeout=10) as r:
            page = r.read().decode()
        assert f'<td class="name">{a.bundle_path}</td>' in page  # the certificates table
        sidecar.wait_for("restarted or reloaded")  # the new process is noticed

        # a revocation reaches clients at the next refresh, by a push
        pki.revoke("a.test")
        wait_for_output(
            lambda: s_client_status(haproxy.port, "a.test"),
            "Cert Status: revoked",
            timeout=20,
            failure="HAProxy never stapled the revoked answer",
        )
        sidecar.wait_for("pushed the staple for '.*a.test.pem' to HAProxy .*: shown back")
        revoked = pyopenssl_staple(haproxy.port, "a.test")

        # the responder down: the last good answer stays stapled
        pki.responder.stop()
        sidecar.wait_for("<OCSP-UPDATE>.*a.test.pem 2 ", timeout=20)  # 2: HTTP error
        assert pyopenssl_staple(haproxy.port, "a.test") == revoked

        # HAProxy restarted (not reloaded) while the responder is down: stapled within 5 s
        haproxy.stop()
        haproxy.start()
        assert poll(lambda: _staple(haproxy, "a.test"), timeout=5, failure=sidecar.output_unlocked)
        assert poll(lambda: _staple(haproxy, "b.test"), timeout=5, failure=sidecar.output_unlocked)
        sidecar.wait_for("restarted or reloaded", count=2)
        assert pyopenssl_staple(haproxy.port, "a.test") == revoked
        assert sidecar.stop(signal.SIGTERM) == 0
    finally:
        if sidecar.process.poll() is None:
            sidecar.process.kill()
        sidecar.close()
        haproxy.stop()
