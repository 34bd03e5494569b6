"""CertId must match what openssl (and therefore HAProxy) computes, byte for byte."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from staplegate.ocsp.certid import CertId


def _make_pair(serial: int = 0x0A1B2C3D) -> tuple[x509.Certificate, x509.Certificate]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CertId Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.test")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return leaf, ca


def test_certid_der_layout_and_hex() -> None:
    leaf, ca = _make_pair()
    cert_id = CertId.for_certificate(leaf, ca)
    der = cert_id.der
    # SEQUENCE { sha1 AlgorithmIdentifier with NULL, 20-byte hashes, INTEGER serial }
    assert der.startswith(bytes.fromhex("303d300906052b0e03021a05000414"))
    assert der.endswith(bytes.fromhex("02040a1b2c3d"))
    assert len(der) == 0x3D + 2
    assert cert_id.hex == der.hex()
    assert cert_id.matches(leaf, ca)


def test_sha256_certid_is_different_but_matches() -> None:
    leaf, ca = _make_pair()
    sha256_id = CertId.for_certificate(leaf, ca, "sha256")
    assert sha256_id != CertId.for_certificate(leaf, ca)
    assert sha256_id.matches(leaf, ca)
    # A CertId names issuer + serial: another serial from the same issuer must not match.
    assert not sha256_id.matches(leaf, _make_pair()[1])


@pytest.mark.openssl
def test_request_is_byte_identical_to_openssl(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is required (./dev setup installs it)")
    leaf, ca = _make_pair()
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    subprocess.run(
        [
            "openssl", "ocsp", "-issuer", "ca.pem", "-cert", "leaf.pem",
            "-no_nonce", "-reqout", "req.der",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )  # fmt: skip
    openssl_request = (tmp_path / "req.der").read_bytes()
    cert_id = CertId.for_certificate(leaf, ca)
    assert cert_id.request().public_bytes(serialization.Encoding.DER) == openssl_request
    assert openssl_request.endswith(cert_id.der)
