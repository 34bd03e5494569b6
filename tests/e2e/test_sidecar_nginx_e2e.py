"""`staplegate sidecar --nginx`: Debian's real nginx kept stapled through ssl_stapling_file.

The sidecar runs as a subprocess (as an operator runs it), the test CA's responder answers,
nginx serves two names from one 127.0.0.1 port, and real clients check: `openssl s_client
-status`, `curl --cert-status` and a pyOpenSSL handshake that hands back the stapled DER.
"""

from __future__ import annotations

import datetime as dt
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography.x509 import ocsp

from staplegate.clock import CLOCK_OFFSET_VARIABLE
from staplegate.sidecar.nginx_delivery import PLACEHOLDER
from staplegate.testpki.ca import KeyKind
from staplegate.testpki.pytest_plugin import Pki
from tests.e2e.harness import (
    StaplegateProcess,
    curl_cert_status,
    poll,
    pyopenssl_staple,
    s_client_status,
    wait_for_output,
)
from tests.e2e.sidecar_haproxy import runtime
from tests.e2e.sidecar_nginx import Nginx, needs_nginx
from tests.nginx_sites import write_ca_file, write_site

pytestmark = [needs_nginx, pytest.mark.slow, pytest.mark.openssl]

NAMES = ("a.test", "b.test")
T = TypeVar("T")


class ShiftedClock:
    """The responder's clock, moved forward with the sidecar's (STAPLEGATE_CLOCK_OFFSET)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@contextmanager
def sidecar(
    nginx: Nginx, state_dir: Path, *, reload_cmd: str | None, offset_s: int = 0
) -> Iterator[StaplegateProcess]:
    args = ["sidecar", "--nginx", str(nginx.conf), "--state-dir", str(state_dir)]
    if reload_cmd is not None:
        args += ["--reload-cmd", reload_cmd]
    process = StaplegateProcess(args, {CLOCK_OFFSET_VARIABLE: str(offset_s)})
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.stop(signal.SIGTERM)
        process.close()


def _successful(path: Path) -> bytes | None:
    """The file's bytes once they are a successful OCSP response."""
    try:
        der = path.read_bytes()
        response = ocsp.load_der_ocsp_response(der)
    except (OSError, ValueError):
        return None
    return der if response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL else None


def _staple_in(path: Path, *, unlike: bytes | None = None) -> Callable[[], bytes | None]:
    """A probe: the file's successful OCSP response, once it differs from `unlike`."""

    def probe() -> bytes | None:
        der = _successful(path)
        return der if der != unlike else None

    return probe


def _serves(nginx: Nginx, name: str, der: bytes) -> Callable[[], bool | None]:
    """A probe: nginx staples exactly `der` for `name`."""

    def probe() -> bool | None:
        return pyopenssl_staple(nginx.port, name) == der or None

    return probe


def _wait_until(probe: Callable[[], T | None], what: str, process: StaplegateProcess) -> T:
    return poll(probe, timeout=20, failure=lambda: f"{what}; sidecar said:\n{process.output}")


@pytest.fixture
def site_pki(pki_factory: Callable[..., Pki]) -> tuple[Pki, ShiftedClock]:
    clock = ShiftedClock()
    return pki_factory(clock=clock), clock


def test_nginx_is_stapled_after_the_first_run_and_a_refresh_rewrites_and_reloads(
    site_pki: tuple[Pki, ShiftedClock], tmp_path: Path
) -> None:
    pki, responder_clock = site_pki
    sites = [(name, write_site(pki, tmp_path / "certs", name)) for name in NAMES]
    nginx = Nginx(tmp_path, sites)
    state = tmp_path / "state"
    cafile = write_ca_file(pki, tmp_path / "ca.pem")
    try:
        # 1. The first run writes both files before nginx even starts (nginx refuses to start
        #    without them); nginx then staples both.
        with sidecar(nginx, state, reload_cmd=nginx.reload_command) as first:
            staples = {
                name: _wait_until(_staple_in(path), f"no staple in {path}", first)
                for name, path in nginx.staple_files.items()
            }
            nginx.start()
            for name in NAMES:
                output = s_client_status(nginx.port, name)
                assert "OCSP Response Status: successful" in output, output
                assert "Cert Status: good" in output, output
                assert pyopenssl_staple(nginx.port, name) == staples[name]
                result = curl_cert_status(nginx.port, name, cafile)
                assert result.returncode == 0, result.stderr
                assert result.stdout == f"hello from {name}\n"
            assert "ssl_stapling_file" in first.output
        responses_before = len(pki.responder.requests)

        # 2. 56 minutes later (both clocks moved on) the hour-long staples are within the
        #    withdrawal margin: a restarted sidecar fetches new ones, rewrites each file and
        #    reloads nginx, which then staples the new DER.
        shift = 56 * 60
        responder_clock.offset = dt.timedelta(seconds=shift)
        reloads_before = nginx.reloads()
        with sidecar(nginx, state, reload_cmd=nginx.reload_command, offset_s=shift) as second:
            renewed = {
                name: _wait_until(
                    _staple_in(path, unlike=staples[name]), f"{path} not refreshed", second
                )
                for name, path in nginx.staple_files.items()
            }
            second.wait_for(r"reload command .* succeeded")
            for name in NAMES:
                poll(
                    _serves(nginx, name, renewed[name]),
                    timeout=10,
                    failure=lambda: f"nginx still staples the old answer:\n{second.output}",
                )
        assert len(pki.responder.requests) > responses_before
        assert nginx.reloads() > reloads_before
    finally:
        nginx.stop()


def test_an_expired_staple_is_replaced_by_the_placeholder_and_nginx_reloads(
    site_pki: tuple[Pki, ShiftedClock], tmp_path: Path
) -> None:
    """Never leave an expired answer to be served: the responder is down, the staple's time
    is up, so the file becomes a tryLater placeholder and nginx reloads it."""
    pki, _clock = site_pki
    sites = [("a.test", write_site(pki, tmp_path / "certs", "a.test"))]
    nginx = Nginx(tmp_path, sites)
    state = tmp_path / "state"
    path = nginx.staple_files["a.test"]
    try:
        with sidecar(nginx, state, reload_cmd=None) as first:
            _wait_until(_staple_in(path), "no staple", first)
        nginx.start()
        assert "Cert Status: good" in s_client_status(nginx.port, "a.test")
        pki.responder.stop()
        with sidecar(nginx, state, reload_cmd=nginx.reload_command, offset_s=2 * 3600) as later:
            _wait_until(lambda: path.read_bytes() == PLACEHOLDER or None, "no placeholder", later)
            later.wait_for(r"reload command .* succeeded")
            poll(
                lambda: "trylater" in s_client_status(nginx.port, "a.test") or None,
                timeout=10,
                failure=lambda: f"nginx still staples the expired answer:\n{later.output}",
            )
            assert "tryLater placeholder" in later.output
    finally:
        nginx.stop()


def test_a_failing_reload_command_is_logged_and_the_files_are_still_kept(
    pki: Pki, tmp_path: Path
) -> None:
    nginx = Nginx(tmp_path, [("a.test", write_site(pki, tmp_path / "certs", "a.test"))])
    path = nginx.staple_files["a.test"]
    with sidecar(nginx, tmp_path / "state", reload_cmd="echo nginx is down >&2; exit 3") as run:
        _wait_until(_staple_in(path), "no staple", run)
        (line,) = run.wait_for(r"reload command .* failed")
    assert "exit status 3" in line
    assert "nginx is down" in line
    assert "retrying in" in line
    assert "Traceback" not in run.output


def _sidecar_exit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "staplegate", "sidecar", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("check_only", [True, False])
def test_a_syntax_error_exits_1_naming_file_and_line(tmp_path: Path, check_only: bool) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n    server {\n        listen 443 ssl\n    }\n}\n")
    result = _sidecar_exit(
        "--nginx",
        str(conf),
        "--state-dir",
        str(tmp_path / "state"),
        *(["-c"] if check_only else []),
    )
    assert result.returncode == 1
    assert f'[{conf}:4] : directive "listen" is not terminated by ";"' in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_lists_certificates_and_an_unreadable_one_is_an_alert(
    pki: Pki, tmp_path: Path
) -> None:
    nginx = Nginx(tmp_path, [("a.test", write_site(pki, tmp_path / "certs", "a.test"))])
    result = _sidecar_exit("--nginx", str(nginx.conf), "-c")
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'certs' / 'a.test.crt'}\ton\t{pki.responder.url}" in result.stdout
    assert "1 certificate(s) kept stapled" in result.stdout

    (tmp_path / "certs" / "a.test.crt").unlink()
    result = _sidecar_exit("--nginx", str(nginx.conf), "-c")
    assert result.returncode == 1
    assert "[ALERT] nginx : parsing [" in result.stderr
    assert "cannot read ssl_certificate file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_extra_config_brings_staplegates_ocsp_settings_to_the_nginx_sidecar(
    pki: Pki, tmp_path: Path
) -> None:
    nginx = Nginx(tmp_path, [("a.test", write_site(pki, tmp_path / "certs", "a.test"))])
    extra = tmp_path / "extra.cfg"
    extra.write_text("global\n    ocsp-update.maxdelay 600\n    maxconn 10\n")
    result = _sidecar_exit("--nginx", str(nginx.conf), "--extra-config", str(extra), "-c")
    assert result.returncode == 0, result.stderr
    assert f"[{extra}:3] : --extra-config: only OCSP settings are read" in result.stderr

    result = _sidecar_exit("--nginx", str(nginx.conf), "--extra-config", str(tmp_path / "no"), "-c")
    assert result.returncode == 1
    assert "Could not open --extra-config file" in result.stderr


def test_a_renewed_certificate_gets_its_own_staple_and_nginx_is_reloaded(
    pki: Pki, tmp_path: Path
) -> None:
    """certbot-style renewal: new certificate and key replace the old files. The sidecar
    notices (a stat every 5 s), re-reads, writes the new certificate's staple and reloads
    nginx; the old certificate's answer is not left for the new certificate."""
    site = write_site(pki, tmp_path / "certs", "a.test")
    nginx = Nginx(tmp_path, [("a.test", site)])
    path = nginx.staple_files["a.test"]
    try:
        with sidecar(nginx, tmp_path / "state", reload_cmd=nginx.reload_command) as run:
            old = _wait_until(_staple_in(path), "no staple", run)
            nginx.start()
            assert pyopenssl_staple(nginx.port, "a.test") == old
            renewed = write_site(pki, tmp_path / "renewal", "a.test-renewed")
            for source, target in ((renewed.key, site.key), (renewed.crt, site.crt)):
                staged = target.with_name(target.name + ".new")
                staged.write_bytes(source.read_bytes())
                staged.replace(target)
            serial = renewed.issued.certificate.serial_number

            def serves_the_new_certificates_staple() -> bool | None:
                der = pyopenssl_staple(nginx.port, "a.test")
                response = ocsp.load_der_ocsp_response(der)
                good = response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
                return (good and response.serial_number == serial) or None

            poll(
                serves_the_new_certificates_staple,
                timeout=40,
                interval=0.3,
                failure=lambda: f"nginx does not staple the renewed certificate:\n{run.output}",
            )
            assert "re-reading the configuration" in run.output
            assert _successful(path) == pyopenssl_staple(nginx.port, "a.test")
    finally:
        nginx.stop()


def test_ready_means_every_file_exists_so_nginx_starts_even_with_the_responder_down(
    pki: Pki, tmp_path: Path
) -> None:
    """systemd's READY=1 comes after the first delivery round: a unit ordered Before=nginx
    lets nginx start (it refuses to without its ssl_stapling_file), responder down or not."""
    nginx = Nginx(tmp_path, [("a.test", write_site(pki, tmp_path / "certs", "a.test"))])
    pki.responder.stop()
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(20)
    process = StaplegateProcess(
        ["sidecar", "--nginx", str(nginx.conf), "--state-dir", str(tmp_path / "state")],
        {"NOTIFY_SOCKET": str(notify_path)},
    )
    try:
        assert listener.recv(4096) == b"READY=1"
        assert nginx.staple_files["a.test"].read_bytes() == PLACEHOLDER
        nginx.start()
        assert "OCSP Response Status: trylater" in s_client_status(nginx.port, "a.test")
    finally:
        nginx.stop()
        listener.close()
        if process.process.poll() is None:
            process.stop(signal.SIGTERM)
        process.close()


def test_a_revoked_answer_is_written_with_the_alert_and_nginx_staples_it(
    site_pki: tuple[Pki, ShiftedClock], tmp_path: Path
) -> None:
    """A revoked answer is the truth: written and stapled, with staplegate's ALERT line."""
    pki, responder_clock = site_pki
    nginx = Nginx(tmp_path, [("a.test", write_site(pki, tmp_path / "certs", "a.test"))])
    path = nginx.staple_files["a.test"]
    state = tmp_path / "state"
    try:
        with sidecar(nginx, state, reload_cmd=None) as first:
            good = _wait_until(_staple_in(path), "no staple", first)
        nginx.start()
        pki.revoke("a.test", reason="keyCompromise")
        shift = 56 * 60  # the next refresh is due: the staple nears its withdrawal
        responder_clock.offset = dt.timedelta(seconds=shift)
        with sidecar(nginx, state, reload_cmd=nginx.reload_command, offset_s=shift) as later:
            _wait_until(_staple_in(path, unlike=good), "not refreshed", later)
            later.wait_for(r"reload command .* succeeded")
            output = wait_for_output(
                lambda: s_client_status(nginx.port, "a.test"),
                "Cert Status: revoked",
                timeout=10,
                failure="nginx does not staple the revoked answer",
            )
            assert "Revocation Reason: keyCompromise" in output
            assert "is REVOKED (since" in later.output  # the updater's ALERT line
    finally:
        nginx.stop()


def test_update_over_the_sidecars_socket_rewrites_the_file_and_reloads_nginx(
    pki: Pki, tmp_path: Path
) -> None:
    """`--socket`: `update ssl ocsp-response <cert>` fetches now; the new answer (here: the
    certificate was just revoked) reaches nginx's file and, after the reload, its clients."""
    site = write_site(pki, tmp_path / "certs", "a.test")
    nginx = Nginx(tmp_path, [("a.test", site)])
    path = nginx.staple_files["a.test"]
    socket_path = tmp_path / "sidecar.sock"
    args = ["sidecar", "--nginx", str(nginx.conf), "--state-dir", str(tmp_path / "state")]
    args += ["--reload-cmd", nginx.reload_command, "--socket", str(socket_path)]
    process = StaplegateProcess(args)
    try:
        good = _wait_until(_staple_in(path), "no staple", process)
        nginx.start()
        assert "Cert Status: good" in s_client_status(nginx.port, "a.test")
        pki.revoke("a.test")
        answer = runtime(socket_path, f"update ssl ocsp-response {site.crt}")
        assert answer.startswith(f'<OCSP-UPDATE> {site.crt} 1 "Update successful"'), answer
        _wait_until(_staple_in(path, unlike=good), "file not rewritten", process)
        wait_for_output(
            lambda: s_client_status(nginx.port, "a.test"),
            "Cert Status: revoked",
            timeout=15,
            failure="nginx was not reloaded with the new answer",
        )
    finally:
        nginx.stop()
        if process.process.poll() is None:
            process.stop(signal.SIGTERM)
        process.close()


def test_nginx_staples_a_servers_one_file_for_every_certificate_so_the_first_keeps_it(
    pki: Pki, tmp_path: Path
) -> None:
    """The finding behind the one-file-per-server rule, on Debian's nginx: an RSA handshake
    is handed the staple of the server's ECDSA certificate (another serial)."""
    ec = write_site(pki, tmp_path / "certs", "ec.test")
    rsa = write_site(pki, tmp_path / "certs", "rsa.test", key=KeyKind.RSA2048)
    nginx = Nginx(tmp_path, [("both.test", ec)])
    conf = nginx.conf.read_text()
    conf = conf.replace(
        f"ssl_certificate_key {ec.key};",
        f"ssl_certificate_key {ec.key};\n        ssl_certificate {rsa.crt};\n"
        f"        ssl_certificate_key {rsa.key};",
    )
    nginx.conf.write_text(conf)
    discovery = _sidecar_exit("--nginx", str(nginx.conf), "-c")
    assert f"{ec.crt}\ton\t" in discovery.stdout
    assert f"{rsa.crt}\toff (shares ssl_stapling_file" in discovery.stdout
    serial_hex = f"{ec.issued.certificate.serial_number:X}"
    ec_serial = serial_hex.zfill(len(serial_hex) + len(serial_hex) % 2)  # as openssl prints it
    staple = nginx.staple_files["both.test"]
    staple.parent.mkdir()
    staple.write_bytes(pki.ca.good_response(ec.issued))
    try:
        nginx.start()
        for cipher, served in (
            ("ECDHE-ECDSA-AES128-GCM-SHA256", "ec.test"),
            ("ECDHE-RSA-AES128-GCM-SHA256", "rsa.test"),
        ):
            output = subprocess.run(
                [
                    "openssl", "s_client", "-connect", f"127.0.0.1:{nginx.port}",
                    "-servername", "both.test", "-status", "-tls1_2", "-cipher", cipher,
                ],
                input="", capture_output=True, text=True, timeout=20, check=False,
            ).stdout  # fmt: skip
            assert f"subject=CN = {served}" in output, output
            assert f"Serial Number: {ec_serial}" in output, output
    finally:
        nginx.stop()
