"""Interop: our CA directory is a real openssl `ca` directory, and `openssl ocsp` serves it.

Every openssl call is the one-shot form (no `-port`): `openssl ocsp -reqin/-respout`.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from staplegate.testpki.ca import CAError, CAErrorReason, CertificateAuthority, IssuedCertificate
from staplegate.testpki.index import EntryStatus, read_index, write_index

pytestmark = pytest.mark.openssl


def _openssl(*args: str | Path, returncode: int = 0) -> str:
    """Run openssl, fail the test with its stderr on another exit status, return stdout+stderr."""
    result = subprocess.run(
        ["openssl", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == returncode, f"openssl {args}: {result.stderr}"
    return result.stdout + result.stderr


def _openssl_issue(ca: CertificateAuthority, name: str, *extra: str) -> Path:
    """Issue CN=name with `openssl req` + `openssl ca -config DIR/openssl.cnf -batch`."""
    work = ca.directory.parent
    key, csr, cert = (work / f"{name}.key", work / f"{name}.csr", work / f"{name}.crt")
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
        "-out", csr,
    )  # fmt: skip
    _openssl("ca", "-config", ca.config_path, "-batch", "-notext", "-in", csr, "-out", cert, *extra)
    return cert


# Field patterns of an index.txt line as openssl 3 writes it.
_FIELDS = (
    re.compile(r"[VRE]"),
    re.compile(r"\d{12}Z|\d{14}Z"),
    re.compile(r"(\d{12}Z(,[A-Za-z]+)?)?"),
    re.compile(r"([0-9A-F]{2})+"),
    re.compile(r"unknown"),
    re.compile(r"(/[A-Za-z]+=[^/]+)+"),
)


def _fields(line: str) -> list[str]:
    fields = line.split("\t")
    assert len(fields) == 6, line
    for pattern, field in zip(_FIELDS, fields, strict=True):
        assert pattern.fullmatch(field), (field, line)
    return fields


# `openssl ca -status` prints the status and then exits 1 even when it found the serial.


def test_index_lines_are_what_openssl_ca_writes(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca")
    ours = ca.issue("ours.test")
    theirs_path = _openssl_issue(ca, "theirs.test")
    theirs = x509.load_pem_x509_certificate(theirs_path.read_bytes())
    # openssl took the next serial from our serial file, and we take the next from its.
    assert theirs.serial_number == ours.serial + 1
    after = ca.issue("after.test")
    assert after.serial == theirs.serial_number + 1
    assert (ca.directory / "newcerts" / f"{theirs.serial_number:X}.pem").exists()

    raw = ca.index_path.read_text(encoding="ascii")
    lines = raw.splitlines()
    assert len(lines) == 3
    ours_fields, theirs_fields, _ = (_fields(line) for line in lines)
    assert ours_fields[0] == theirs_fields[0] == "V"
    assert ours_fields[3] == f"{ours.serial:X}"
    assert theirs_fields[3] == f"{theirs.serial_number:X}"
    assert ours_fields[5] == "/CN=ours.test"
    assert theirs_fields[5] == "/CN=theirs.test"
    assert ours_fields[1] == ours.certificate.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    assert theirs_fields[1] == theirs.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    # Our reader + writer reproduce openssl's file byte for byte.
    write_index(ca.index_path, read_index(ca.index_path))
    assert ca.index_path.read_text(encoding="ascii") == raw

    for serial in (ours.serial, theirs.serial_number):
        assert f"{serial:X}=Valid (V)" in _openssl(
            "ca", "-config", ca.config_path, "-status", f"{serial:X}", returncode=1
        )

    # Revoke one each way with the same reason; the lines must look the same.
    _openssl("ca", "-config", ca.config_path, "-revoke", theirs_path, "-crl_reason", "superseded")
    ca.revoke(ours.serial, reason="superseded")
    lines = ca.index_path.read_text(encoding="ascii").splitlines()
    ours_fields, theirs_fields, _ = (_fields(line) for line in lines)
    assert ours_fields[0] == theirs_fields[0] == "R"
    assert re.fullmatch(r"\d{12}Z,superseded", ours_fields[2])
    assert re.fullmatch(r"\d{12}Z,superseded", theirs_fields[2])
    for serial in (ours.serial, theirs.serial_number):
        assert f"{serial:X}=Revoked (R)" in _openssl(
            "ca", "-config", ca.config_path, "-status", f"{serial:X}", returncode=1
        )
    _openssl("ca", "-config", ca.config_path, "-updatedb")
    assert [e.status for e in read_index(ca.index_path)] == [
        EntryStatus.REVOKED,
        EntryStatus.REVOKED,
        EntryStatus.VALID,
    ]


def test_openssl_updatedb_expires_our_expired_certificate(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca")
    now = ca.clock.now()
    expired = ca.issue("old.test", not_before=now - dt.timedelta(days=10), days=1)
    fresh = ca.issue("new.test")
    _openssl("ca", "-config", ca.config_path, "-updatedb")
    reopened = CertificateAuthority.open(ca.directory)
    assert reopened.resolve(expired.serial).status is EntryStatus.EXPIRED
    assert reopened.resolve(fresh.serial).status is EntryStatus.VALID


def test_openssl_ca_revoke_is_seen_by_our_api(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", intermediate=True)
    issued = ca.issue("www.test")
    _openssl(
        "ca", "-config", ca.config_path, "-revoke", issued.bundle_path,
        "-crl_reason", "keyCompromise",
    )  # fmt: skip
    entry = CertificateAuthority.open(ca.directory).resolve("www.test")
    assert entry.serial == issued.serial
    assert entry.status is EntryStatus.REVOKED
    assert entry.revocation_reason == "keyCompromise"
    assert entry.revoked_at is not None


def test_openssl_ca_extension_sections(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", ocsp_url="http://127.0.0.1:8181")
    staple = _openssl_issue(ca, "staple.test", "-extensions", "server_cert_must_staple")
    assert "status_request" in _openssl("x509", "-in", staple, "-noout", "-ext", "tlsfeature")
    assert _openssl("x509", "-in", staple, "-noout", "-ocsp_uri").strip() == (
        "http://127.0.0.1:8181"
    )
    signer = _openssl_issue(ca, "signer.test", "-extensions", "ocsp_signer_nocheck")
    text = _openssl("x509", "-in", signer, "-noout", "-text")
    assert "OCSP Signing" in text
    assert "OCSP No Check" in text
    _openssl("verify", "-CAfile", ca.root_cert_path, staple)


def _ocsp_status(
    ca: CertificateAuthority,
    leaf: IssuedCertificate,
    signer_cert: Path,
    signer_key: Path,
    work: Path,
) -> str:
    """Ask `openssl ocsp -index` (one-shot) about `leaf` and verify the answer with openssl."""
    request, response = work / "req.der", work / "resp.der"
    _openssl(
        "ocsp", "-issuer", ca.ca_cert_path, "-cert", leaf.bundle_path, "-no_nonce",
        "-reqout", request,
    )  # fmt: skip
    _openssl(
        "ocsp", "-index", ca.index_path, "-CA", ca.ca_cert_path, "-rsigner", signer_cert,
        "-rkey", signer_key, "-reqin", request, "-respout", response, "-ndays", "1",
    )  # fmt: skip
    return _openssl(
        "ocsp", "-respin", response, "-issuer", ca.ca_cert_path, "-cert", leaf.bundle_path,
        "-CAfile", ca.root_cert_path, "-verify_other", ca.chain_path, "-resp_text",
    )  # fmt: skip


@pytest.mark.parametrize("intermediate", [False, True], ids=["root", "intermediate"])
@pytest.mark.parametrize("delegated", [False, True], ids=["ca-signed", "delegated"])
def test_openssl_ocsp_serves_our_ca(tmp_path: Path, intermediate: bool, delegated: bool) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", intermediate=intermediate)
    leaf = ca.issue("www.test")
    if delegated:
        signer = ca.ocsp_signer()
        signer_cert, signer_key = signer.cert_path, signer.key_path
    else:
        signer_cert, signer_key = ca.ca_cert_path, ca.ca_key_path

    text = _ocsp_status(ca, leaf, signer_cert, signer_key, tmp_path)
    assert "Response verify OK" in text
    assert f"{leaf.bundle_path}: good" in text
    assert "Next Update:" in text

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "staplegate",
            "ca",
            "revoke",
            str(ca.directory),
            "www.test",
            "--reason",
            "superseded",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = _ocsp_status(ca, leaf, signer_cert, signer_key, tmp_path)
    assert "Response verify OK" in text
    assert f"{leaf.bundle_path}: revoked" in text
    assert "Reason: superseded" in text


def test_chain_urls_staple_and_crl_with_openssl(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", intermediate=True)
    leaf = ca.issue("www.test", must_staple=True, ocsp_url="http://127.0.0.1:8888")
    # The bundle carries its chain: it verifies against the root alone.
    assert f"{leaf.bundle_path}: OK" in _openssl(
        "verify", "-CAfile", ca.root_cert_path, "-untrusted", leaf.bundle_path, leaf.bundle_path
    )
    assert f"{leaf.bundle_path}: OK" in _openssl(
        "verify", "-CAfile", ca.root_cert_path, "-untrusted", ca.ca_cert_path, leaf.bundle_path
    )
    assert _openssl("x509", "-in", leaf.bundle_path, "-noout", "-ocsp_uri").strip() == (
        "http://127.0.0.1:8888"
    )
    assert "status_request" in _openssl(
        "x509", "-in", leaf.bundle_path, "-noout", "-ext", "tlsfeature"
    )
    # The key in the bundle is the certificate's key.
    cert_pub = _openssl("x509", "-in", leaf.bundle_path, "-noout", "-pubkey")
    key_pub = _openssl("pkey", "-in", leaf.bundle_path, "-pubout")
    assert cert_pub == key_pub

    ca.revoke("www.test", reason="keyCompromise")
    crl_text = _openssl("crl", "-in", ca.crl(), "-noout", "-text", "-CAfile", ca.chain_path)
    assert "verify OK" in crl_text
    assert f"Serial Number: {leaf.serial:X}" in crl_text
    assert "Key Compromise" in crl_text


def test_openssl_ca_honours_our_unique_subject_and_we_honour_its(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca")
    ca.issue("ours.test")
    result = subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(tmp_path / "k"), "-subj", "/CN=ours.test",
         "-out", str(tmp_path / "csr")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result = subprocess.run(
        ["openssl", "ca", "-config", str(ca.config_path), "-batch", "-in", str(tmp_path / "csr"),
         "-out", str(tmp_path / "dup.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "There is already a certificate for /CN=ours.test" in result.stdout + result.stderr
    _openssl_issue(ca, "theirs.test")
    with pytest.raises(CAError) as caught:
        ca.issue("theirs.test")
    assert caught.value.reason is CAErrorReason.ALREADY_ISSUED
