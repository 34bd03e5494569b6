"""`--socket`: staplegate's runtime API in front of the sidecar's updater."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from cryptography.x509 import ocsp

from staplegate.ocsp.certid import CertId
from staplegate.runtime.contract import CommitError, UnknownServer
from staplegate.sidecar.haproxy_config import read_haproxy_config
from staplegate.sidecar.haproxy_push import RuntimeAddress, runtime_command
from staplegate.sidecar.runtime import Sidecar, SidecarRuntime
from staplegate.sidecar.service import SidecarService
from staplegate.store import FileStapleStore
from staplegate.testpki.pytest_plugin import Pki
from tests.integration.sidecar.test_service import Recorder

if TYPE_CHECKING:
    from staplegate.certs.model import LoadedCertificate
    from staplegate.proxy.backends import AdminState


def test_the_sidecars_socket_shows_and_updates_its_staples(tmp_path: Path, pki: Pki) -> None:
    a = pki.issue("a.test")
    a_id = CertId.for_certificate(a.certificate, a.issuer)
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"frontend f\n    bind :443 ssl crt {a.bundle_path}\n")

    recorder = Recorder()
    socket_path = tmp_path / "sidecar.sock"
    discovery = read_haproxy_config([str(config)], env={}, update_all=True).discovery
    service = SidecarService(
        lambda: discovery,
        lambda d: [recorder],
        discovery,
        store=FileStapleStore(tmp_path / "state"),
        runtime_socket=str(socket_path),
    )
    address = RuntimeAddress(path=str(socket_path))

    async def main() -> dict[str, str]:
        task = asyncio.get_running_loop().create_task(service.run())
        async with asyncio.timeout(10):
            while not (service.started.is_set() and a_id in recorder.held):
                await asyncio.sleep(0.01)
        answers = {}
        try:
            pki.revoke("a.test")
            for command in (
                "show info",
                "show ssl ocsp-response",
                f"update ssl ocsp-response {a.bundle_path}",
                f"show ssl ocsp-response {a_id.hex}",
                "reload",
                "show ssl cert",
            ):
                answers[command.split()[0] + " " + command.split()[-1]] = await runtime_command(
                    address, command
                )
            async with asyncio.timeout(10):  # the fetched answer reached the delivery
                while _status(recorder.held[a_id]) is not ocsp.OCSPCertStatus.REVOKED:
                    await asyncio.sleep(0.01)
        finally:
            service.stop()
            await task
        return answers

    answers = asyncio.run(main())
    assert "Name: staplegate-sidecar" in answers["show info"]
    assert a_id.hex in answers["show ocsp-response"]
    assert "Cert Status: revoked" in answers[f"show {a_id.hex}"]
    assert "re-read" in answers["reload reload"]
    assert answers["show cert"].startswith("# filename")
    assert not socket_path.exists() or stat.S_IMODE(socket_path.stat().st_mode) == 0o600


def _status(der: bytes) -> ocsp.OCSPCertStatus:
    return ocsp.load_der_ocsp_response(der).certificate_status


def test_committing_a_certificate_is_refused_with_what_to_do_instead() -> None:
    view = SidecarRuntime(cast("Sidecar", object()))
    with pytest.raises(CommitError, match="replace the file"):
        asyncio.run(view.commit_certificate("x.pem", cast("LoadedCertificate", None)))
    assert view.servers() == ()
    assert view.stats() == ()
    with pytest.raises(UnknownServer):
        view.set_server_state("b", "s", cast("AdminState", None))
