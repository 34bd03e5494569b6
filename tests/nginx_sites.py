"""Certificate files laid out the way nginx sites keep them, from the test CA.

nginx wants the leaf first in `ssl_certificate` (with the intermediates after it, a
"fullchain") and the key in its own file; the test CA writes HAProxy bundles instead. Shared
by the nginx sidecar's unit and end-to-end tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from staplegate.testpki.ca import IssuedCertificate, KeyKind
from staplegate.testpki.pytest_plugin import Pki


@dataclass(frozen=True)
class Site:
    """One certificate written for nginx: `<name>.crt` (+ issuer when fullchain), `<name>.key`."""

    issued: IssuedCertificate
    crt: Path
    key: Path


def write_site(
    pki: Pki,
    directory: Path,
    name: str,
    *,
    key: KeyKind = KeyKind.EC256,
    fullchain: bool = True,
    ocsp: bool = True,
) -> Site:
    """Issue CN=`name` and write its nginx files in `directory`.

    `fullchain=False` writes the leaf alone, so the issuer must come from
    `ssl_trusted_certificate`; `ocsp=False` issues it without an OCSP URI.
    """
    directory.mkdir(parents=True, exist_ok=True)
    options: dict[str, object] = {"key": key, "out_dir": directory / "ca-out"}
    if not ocsp:
        options["ocsp_url"] = None
    issued = pki.issue(name, **options)
    pem = serialization.Encoding.PEM
    parts = [issued.certificate.public_bytes(pem)]
    if fullchain:
        parts.append(issued.issuer.public_bytes(pem))
    crt = directory / f"{name}.crt"
    crt.write_bytes(b"".join(parts))
    key_path = directory / f"{name}.key"
    key_path.write_bytes(
        issued.private_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return Site(issued=issued, crt=crt, key=key_path)


def write_ca_file(pki: Pki, path: Path) -> Path:
    """The CA certificate alone, for `ssl_trusted_certificate`."""
    path.write_bytes(pki.ca.certificate.public_bytes(serialization.Encoding.PEM))
    return path
