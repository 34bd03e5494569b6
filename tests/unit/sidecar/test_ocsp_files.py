"""`--write-ocsp`: each staple beside its certificate, atomically; deleted when withdrawn."""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path

import pytest

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.ocsp_files import OcspFiles
from staplegate.sidecar.targets import SidecarCertificate
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.driver import UpdaterEntry


class _Reloads:
    def __init__(self) -> None:
        self.requests = 0

    def request(self) -> None:
        self.requests += 1

    async def close(self) -> None:
        return None


def _certificate(pki: Pki, name: str, ocsp_file: Path | None) -> SidecarCertificate:
    issued = pki.issue(name)
    entry = UpdaterEntry(issued.certificate, issued.issuer, str(issued.bundle_path), None)
    cert_id = CertId.for_certificate(issued.certificate, issued.issuer)
    return SidecarCertificate(entry, cert_id, "haproxy.cfg:1", ocsp_file)


def test_staples_are_written_once_and_deleted_when_withdrawn(tmp_path: Path, pki: Pki) -> None:
    target = tmp_path / "a.pem.ocsp"
    a = _certificate(pki, "a.test", target)
    no_file = _certificate(pki, "b.test", None)
    reloads = _Reloads()
    files = OcspFiles([a, no_file], reloader=reloads)

    async def scenario() -> None:
        await files.deliver({a.cert_id: b"first", no_file.cert_id: b"ignored"}, [])
        assert target.read_bytes() == b"first"
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        target.chmod(0o640)
        await files.deliver({a.cert_id: b"first"}, [])  # same bytes: nothing to do
        assert reloads.requests == 1
        await files.deliver({a.cert_id: b"second"}, [])
        assert target.read_bytes() == b"second"
        assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode
        await files.deliver({}, [a.cert_id])
        await files.deliver({}, [a.cert_id])  # already gone

    asyncio.run(scenario())
    assert not target.exists()
    assert reloads.requests == 3
    assert files.writes == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_file_that_cannot_be_written_is_one_warning(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "missing-directory" / "a.pem.ocsp"
    a = _certificate(pki, "a.test", target)
    files = OcspFiles([a])

    async def scenario() -> None:
        await files.deliver({a.cert_id: b"one"}, [])
        await files.deliver({a.cert_id: b"two"}, [])

    with caplog.at_level(logging.WARNING, "staplegate.sidecar"):
        asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1
    assert said[0].startswith(f"cannot update '{target}': No such file or directory")
