"""The shared sidecar vocabulary: a Discovery's verdict, a Delivery as a structural type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from staplegate.ocsp.certid import CertId
from staplegate.sidecar.targets import Delivery, Discovery, SidecarCertificate
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.driver import UpdaterEntry


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[CertId, bytes], list[CertId]]] = []

    async def deliver(self, changed: Mapping[CertId, bytes], removed: Sequence[CertId]) -> None:
        self.calls.append((dict(changed), list(removed)))

    async def close(self) -> None:
        pass


def test_a_discovery_with_an_alert_is_not_ok(pki: Pki) -> None:
    issued = pki.issue("a.example")
    entry = UpdaterEntry(
        issued.certificate, issued.issuer, str(issued.bundle_path), pki.responder.url
    )
    certificate = SidecarCertificate(
        entry=entry,
        cert_id=CertId.for_certificate(issued.certificate, issued.issuer),
        source="haproxy.cfg:3",
        ocsp_file=Path(f"{issued.bundle_path}.ocsp"),
    )
    assert Discovery((certificate,)).ok
    assert not Discovery((certificate,), errors=("[ALERT] haproxy.cfg:3 : nope",)).ok


def test_a_recorder_is_a_delivery() -> None:
    delivery: Delivery = _Recorder()  # mypy checks the structure
    assert hasattr(delivery, "deliver")
