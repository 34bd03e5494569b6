"""Two real certificates from the test CA, loaded by the real loader (TLS unit tests)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from staplegate.certs.loader import load_certificate
from staplegate.certs.model import LoadedCertificate
from staplegate.certs.source import CertificateSource, ExtraFiles
from staplegate.testpki.ca import CertificateAuthority, KeyKind


@dataclass
class UnitPki:
    ca: CertificateAuthority
    ec: LoadedCertificate
    must: LoadedCertificate
    rsa: LoadedCertificate


def build_unit_pki(directory: Path) -> UnitPki:
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.init(directory / "ca")

    def load(
        name: str, *, key: KeyKind = KeyKind.EC256, must_staple: bool = False
    ) -> LoadedCertificate:
        issued = ca.issue(name, key=key, must_staple=must_staple)
        return load_certificate(
            CertificateSource.from_path(issued.bundle_path), extra=ExtraFiles(), now=now
        )

    return UnitPki(
        ca=ca,
        ec=load("ec.test"),
        must=load("must.test", must_staple=True),
        rsa=load("rsa.test", key=KeyKind.RSA2048),
    )
