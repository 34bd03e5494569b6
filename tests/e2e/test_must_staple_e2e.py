"""Must-staple certificates and readiness (issue 19 item 3): listeners serve at once, but
systemd's READY=1 waits until every must-staple certificate has a staple, at most
`ocsp-update.must-staple-wait`, then comes with a warning naming those still without one.

The notify socket is a real AF_UNIX datagram socket, as systemd's; the responder is slowed
or stopped with the test responder's faults.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from staplegate.testpki.ca import KeyKind
from staplegate.testpki.faults import Fault, FaultKind
from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, s_client_status, staplegate, wait_for_output

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
    bind 127.0.0.1:{port} ssl crt {crt}
    default_backend web

backend web
    server web1 127.0.0.1:9
"""


@contextmanager
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    try:
        yield listener
    finally:
        listener.close()


def _config(tmp_path: Path, crt: Path, extra: str = "") -> tuple[Path, int]:
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, crt=crt, extra=extra), encoding="utf-8")
    return config, port


def test_ready_waits_for_the_must_staple_staple_while_listeners_already_serve(
    tmp_path: Path, pki: Pki
) -> None:
    leaf = pki.issue("strict.example.test", must_staple=True)
    pki.responder.set_faults(Fault(FaultKind.DELAY, seconds=4, times=1))
    config, port = _config(tmp_path, leaf.bundle_path)
    with notify_socket(tmp_path) as listener:
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        with staplegate(config, tmp_path / "state", env=env) as proc:
            proc.wait_for("waiting up to 30 s for 1 must-staple certificate")
            # serving already (unstapled: the responder is still thinking), not READY yet
            assert "OCSP response: no response sent" in s_client_status(port, leaf.name)
            listener.settimeout(0.5)
            with pytest.raises(TimeoutError):
                listener.recv(4096)
            listener.settimeout(20)
            assert listener.recv(4096) == b"READY=1"
            assert "Cert Status: good" in s_client_status(port, leaf.name)
            assert "ready without a staple" not in proc.output
            assert proc.stop() == 0


def test_ready_comes_after_the_wait_with_a_warning_when_no_staple_can_be_had(
    tmp_path: Path, pki: Pki
) -> None:
    leaf = pki.issue("strict.example.test", must_staple=True)
    pki.responder.set_fault(FaultKind.HTTP_500)
    config, _ = _config(tmp_path, leaf.bundle_path, "    ocsp-update.must-staple-wait 1s\n")
    with notify_socket(tmp_path) as listener:
        listener.settimeout(20)
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
        with staplegate(config, tmp_path / "state", env=env) as proc:
            assert listener.recv(4096) == b"READY=1"
            (line,) = proc.wait_for("ready without a staple for 1 must-staple certificate")
            assert str(leaf.bundle_path) in line
            assert "ocsp-update.must-staple-wait 1 s passed" in line
            assert proc.stop() == 0


def test_an_unstapled_must_staple_certificate_gives_way_to_another_for_the_same_name(
    tmp_path: Path, pki: Pki
) -> None:
    """An ECDSA must-staple certificate and an RSA one for the same name: while the ECDSA
    one has no staple, a client accepting both gets the RSA one; once stapled, the ECDSA."""
    name = "both.example.test"
    strict = pki.issue("strict-ec", sans=[name], must_staple=True)
    plain = pki.issue("plain-rsa", sans=[name], key=KeyKind.RSA2048)
    pki.responder.set_faults(Fault(FaultKind.HTTP_500, serial=strict.serial, times=1))
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(
            port=port,
            crt=f"{strict.bundle_path} crt {plain.bundle_path}",
            extra="    ocsp-update.mindelay 1\n    ocsp-update.maxdelay 2\n",
        ),
        encoding="utf-8",
    )
    with staplegate(config, tmp_path / "state") as proc:
        proc.wait_for(r'plain-rsa\.pem 1 "Update successful"')
        proc.wait_for(r'strict-ec\.pem 2 "HTTP error')
        assert "subject=CN = plain-rsa" in s_client_status(port, name)
        proc.wait_for(r'strict-ec\.pem 1 "Update successful"', timeout=30)
        stapled = wait_for_output(
            lambda: s_client_status(port, name),
            "subject=CN = strict-ec",
            timeout=10,
            failure="the stapled must-staple certificate was never chosen again",
        )
        assert "Cert Status: good" in stapled
        assert proc.stop() == 0
