"""Three `staplegate` processes sharing one real redis-server (`ocsp-update.shared-store`).

The fleet asks the responder once per certificate, every instance staples every
certificate (checked with `openssl s_client -status` and full handshakes against each), the
Redis password comes from the environment or a file and is never printed; a URL carrying a
password is an [ALERT] naming file:line; an unreachable Redis at start is one clear line and
the instance staples on its own. Leases, fan-out, Redis dying and coming back, forged staples
and dead lease holders are in tests/integration/fleet/test_redis_share.py (same real Redis,
a movable clock).
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from staplegate.testpki.ca import IssuedCertificate
from staplegate.testpki.pytest_plugin import Pki
from tests.redis_server import RedisServer

from .harness import free_port, poll, pyopenssl_staple, s_client_status, staplegate

pytestmark = [pytest.mark.openssl]

CERTS = 6
PASSWORD = "fleet-s3cret-never-printed"

CONFIG = """\
global
    log stdout format raw local0 info
    ocsp-update.mode on
    ocsp-update.shared-store {url}
    stats socket {directory}/admin.sock mode 600 level admin
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


def write_config(directory: Path, url: str, crt_list: Path, *, extra: str = "") -> tuple[Path, int]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(
        CONFIG.format(url=url, port=port, crt_list=crt_list, extra=extra, directory=directory),
        encoding="utf-8",
    )
    return config, port


def stapled_for(port: int, leaf: IssuedCertificate) -> bool:
    staple = pyopenssl_staple(port, leaf.name)
    if not staple:
        return False
    response = ocsp.load_der_ocsp_response(staple)
    return (
        response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        and response.serial_number == leaf.serial
    )


def show_info(sock: Path) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "staplegate", "ctl", "-S", str(sock), "show", "info"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)


def wait_stapled(port: int, leaf: IssuedCertificate) -> None:
    poll(
        lambda: True if stapled_for(port, leaf) else None,
        timeout=20,
        failure=lambda: f"{leaf.name} not stapled on port {port}",
    )


def test_three_instances_one_request_per_certificate_all_stapled(tmp_path: Path, pki: Pki) -> None:
    redis = RedisServer(tmp_path / "redis", password=PASSWORD)
    redis.start()
    leaves = [pki.issue(f"site{i}.fleet.test") for i in range(CERTS)]
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text("".join(f"{leaf.bundle_path} {leaf.name}\n" for leaf in leaves), "utf-8")
    password_file = tmp_path / "redis.pass"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    try:
        with ExitStack() as stack:
            running = []
            for number in range(3):
                directory = tmp_path / f"instance{number}"
                by_file = number == 2
                extra = (
                    f"    ocsp-update.shared-store-password-file {password_file}\n"
                    if by_file
                    else ""
                )
                config, port = write_config(directory, redis.url, crt_list, extra=extra)
                env = {} if by_file else {"STAPLEGATE_REDIS_PASSWORD": PASSWORD}
                proc = stack.enter_context(
                    staplegate(config, directory / "state", workers=1, env=env)
                )
                running.append((proc, port))
            for proc, port in running:
                proc.wait_for("shared store redis://127.0.0.1:.* connected", timeout=20)
                # each staple came from a fetch (its own or a peer's, an <OCSP-UPDATE> line)
                # or, for an instance starting after the others, from Redis at start
                for leaf in leaves:
                    wait_stapled(port, leaf)
                out = s_client_status(port, leaves[0].name)
                assert "OCSP Response Status: successful" in out
                assert "Cert Status: good" in out
            # the fleet asked once per certificate, whoever asked
            assert len(pki.responder.requests) == CERTS
            info = show_info(tmp_path / "instance1" / "admin.sock")
            assert info["SharedStore"] == redis.url
            assert info["SharedStoreUp"] == "1"
            assert info["SharedStoreLeasesHeld"] == "0"
            for proc, _ in running:
                assert proc.stop() == 0
                assert PASSWORD not in proc.output
    finally:
        redis.kill()


def test_a_password_in_the_url_is_an_alert_naming_file_and_line(tmp_path: Path) -> None:
    crt_list = tmp_path / "empty.txt"
    crt_list.write_text("", encoding="utf-8")
    config, _ = write_config(tmp_path, f"redis://:{PASSWORD}@127.0.0.1:6379/0", crt_list)
    result = subprocess.run(
        [sys.executable, "-m", "staplegate", "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"[ALERT] config : parsing [{config}:4] : 'ocsp-update.shared-store'" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_unreachable_at_start_says_so_once_and_staples_on_its_own(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("alone.fleet.test")
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(f"{leaf.bundle_path} {leaf.name}\n", encoding="utf-8")
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    config, port = write_config(tmp_path, url, crt_list)
    with staplegate(config, tmp_path / "state", workers=1) as proc:
        proc.wait_for(rf"shared store {url} unavailable .*fetching on our own", timeout=20)
        wait_stapled(port, leaf)
        assert proc.stop() == 0
    assert len([line for line in proc.lines if "unavailable" in line]) == 1
