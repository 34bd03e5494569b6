"""The test CA's Python API: layout, certificates, database updates and refusals."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from staplegate.clock import ManualClock
from staplegate.ocsp.verify import CertStatus, VerificationError, verify_response
from staplegate.testpki.ca import (
    CAError,
    CAErrorReason,
    CertificateAuthority,
    KeyKind,
    looks_like_hostname,
    subject_oneline,
)
from staplegate.testpki.index import EntryStatus, read_index

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path / "ca", clock=clock)


def _ocsp_urls(certificate: x509.Certificate) -> list[str]:
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return []
    return [
        str(d.access_location.value)
        for d in aia.value
        if d.access_method == AuthorityInformationAccessOID.OCSP
    ]


def _pem_blocks(data: bytes) -> list[str]:
    text = data.decode()
    return [line.removeprefix("-----BEGIN ") for line in text.splitlines() if "BEGIN" in line]


def test_init_writes_openssl_layout(ca: CertificateAuthority) -> None:
    d = ca.directory
    for name in ("certs", "newcerts", "crl", "private", "issued"):
        assert (d / name).is_dir(), name
    assert (d / "index.txt").read_text() == ""
    assert (d / "index.txt.attr").read_text() == "unique_subject = yes\n"
    serial_text = (d / "serial").read_text()
    assert serial_text.endswith("\n")
    assert len(serial_text.strip()) % 2 == 0
    assert serial_text.strip() == serial_text.strip().upper()
    assert (d / "crlnumber").read_text() == "01\n"
    assert stat.S_IMODE((d / "private").stat().st_mode) == 0o700
    assert stat.S_IMODE(ca.ca_key_path.stat().st_mode) == 0o600
    cnf = ca.config_path.read_text()
    assert f"dir = {d}\n" in cnf
    assert "authorityInfoAccess = OCSP;URI:http://127.0.0.1:8080\n" in cnf
    assert ca.certificate == ca.root  # no intermediate: the root issues
    assert ca.certificate.subject.rfc4514_string() == "CN=staplegate Test CA"
    basic = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.value.ca
    assert basic.critical
    assert ca.certificate.not_valid_before_utc == NOW - dt.timedelta(days=30)


def test_init_refuses_an_existing_ca(ca: CertificateAuthority) -> None:
    with pytest.raises(CAError) as caught:
        CertificateAuthority.init(ca.directory)
    assert caught.value.reason is CAErrorReason.ALREADY_A_CA
    assert str(ca.directory) in str(caught.value)


def test_open_refuses_a_plain_directory(tmp_path: Path) -> None:
    with pytest.raises(CAError) as caught:
        CertificateAuthority.open(tmp_path)
    assert caught.value.reason is CAErrorReason.NOT_A_CA
    assert "staplegate ca init" in str(caught.value)


def test_intermediate_is_the_issuing_ca(tmp_path: Path, clock: ManualClock) -> None:
    ca = CertificateAuthority.init(
        tmp_path / "ca", name="Inter", intermediate=True, key=KeyKind.EC384, clock=clock
    )
    assert ca.certificate != ca.root
    assert ca.certificate.issuer == ca.root.subject
    assert ca.root.subject.rfc4514_string() == "CN=Inter Root"
    ca.certificate.verify_directly_issued_by(ca.root)
    basic = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.path_length == 0
    assert stat.S_IMODE(ca.root_key_path.stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates(ca.chain_path.read_bytes())
    assert chain == [ca.certificate, ca.root]
    issued = ca.issue("www.test")
    issued.certificate.verify_directly_issued_by(ca.certificate)
    assert issued.chain == (ca.certificate,)
    reopened = CertificateAuthority.open(ca.directory)
    assert reopened.certificate == ca.certificate
    assert reopened.root == ca.root
    assert reopened.intermediates == (ca.certificate,)


def test_issue_writes_bundle_issuer_and_index(ca: CertificateAuthority) -> None:
    first_serial = int((ca.directory / "serial").read_text(), 16)
    issued = ca.issue("www.test")
    assert issued.serial == first_serial
    assert issued.certificate.serial_number == first_serial
    assert int((ca.directory / "serial").read_text(), 16) == first_serial + 1
    assert issued.bundle_path == ca.directory / "issued" / "www.test.pem"
    assert stat.S_IMODE(issued.bundle_path.stat().st_mode) == 0o600
    bundle = issued.bundle_path.read_bytes()
    assert _pem_blocks(bundle) == ["CERTIFICATE-----", "PRIVATE KEY-----"]
    assert x509.load_pem_x509_certificates(bundle) == [issued.certificate]
    key = serialization.load_pem_private_key(bundle, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == issued.certificate.public_key()
    assert issued.issuer_path.name == "www.test.pem.issuer"
    assert x509.load_pem_x509_certificate(issued.issuer_path.read_bytes()) == ca.certificate
    newcert = ca.directory / "newcerts" / f"{first_serial:X}.pem"
    assert x509.load_pem_x509_certificate(newcert.read_bytes()) == issued.certificate
    (entry,) = read_index(ca.index_path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(ca.index_path.stat().st_mode) == 0o644 & ~umask  # as openssl leaves it
    assert entry.status is EntryStatus.VALID
    assert entry.serial == first_serial
    assert entry.subject == "/CN=www.test"
    assert entry.expires == issued.certificate.not_valid_after_utc
    issued.certificate.verify_directly_issued_by(ca.certificate)


def test_issue_extensions(ca: CertificateAuthority) -> None:
    cert = ca.issue("www.test").certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.test"]
    assert _ocsp_urls(cert) == ["http://127.0.0.1:8080"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.TLSFeature)
    assert cert.not_valid_before_utc < NOW
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=90)


def test_issue_options(ca: CertificateAuthority) -> None:
    staple = ca.issue(
        "api.test", sans=["api.test", "127.0.0.1"], must_staple=True, key=KeyKind.RSA2048
    )
    feature = staple.certificate.extensions.get_extension_for_class(x509.TLSFeature).value
    assert list(feature) == [x509.TLSFeatureType.status_request]
    san = staple.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert isinstance(staple.private_key, rsa.RSAPrivateKey)
    ku = staple.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_encipherment

    no_url = ca.issue("quiet.test", ocsp_url=None)
    assert _ocsp_urls(no_url.certificate) == []
    custom = ca.issue("custom.test", ocsp_url="http://127.0.0.1:9999/ocsp")
    assert _ocsp_urls(custom.certificate) == ["http://127.0.0.1:9999/ocsp"]

    not_host = ca.issue("my_cert@lab")
    with pytest.raises(x509.ExtensionNotFound):
        not_host.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_issue_with_root_in_chain_and_other_out_dir(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = ca.issue("www.test", include_root=True, out_dir=tmp_path / "haproxy" / "certs")
    assert issued.bundle_path == tmp_path / "haproxy" / "certs" / "www.test.pem"
    assert x509.load_pem_x509_certificates(issued.bundle_path.read_bytes()) == [
        issued.certificate,
        ca.root,
    ]


def test_expired_and_not_yet_valid(ca: CertificateAuthority) -> None:
    expired = ca.issue("old.test", not_before=NOW - dt.timedelta(days=10), days=1)
    assert expired.certificate.not_valid_after_utc == NOW - dt.timedelta(days=9)
    future = ca.issue("new.test", not_before=NOW + dt.timedelta(days=1))
    assert future.certificate.not_valid_before_utc == NOW + dt.timedelta(days=1)
    exact = ca.issue("exact.test", not_after=NOW + dt.timedelta(hours=1))
    assert exact.certificate.not_valid_after_utc == NOW + dt.timedelta(hours=1)
    with pytest.raises(CAError) as caught:
        ca.issue("bad.test", not_after=NOW - dt.timedelta(days=30))
    assert caught.value.reason is CAErrorReason.BAD_ARGUMENT


def test_unique_subject(ca: CertificateAuthority) -> None:
    first = ca.issue("www.test")
    with pytest.raises(CAError) as caught:
        ca.issue("www.test")
    assert caught.value.reason is CAErrorReason.ALREADY_ISSUED
    assert caught.value.path == ca.index_path
    assert f"{first.serial:X}" in str(caught.value)
    ca.revoke("www.test")
    second = ca.issue("www.test")  # a revoked subject may be issued again, as in openssl
    assert second.serial == first.serial + 1
    assert ca.resolve("www.test").serial == second.serial


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "x" * 65, "sp ace"])
def test_bad_names(ca: CertificateAuthority, name: str) -> None:
    with pytest.raises(CAError) as caught:
        ca.issue(name)
    assert caught.value.reason is CAErrorReason.BAD_NAME
    assert read_index(ca.index_path) == []


def test_ocsp_signer(ca: CertificateAuthority) -> None:
    signer = ca.ocsp_signer(nocheck=True)
    assert signer.cert_path == ca.directory / "certs" / "ocsp-signer.pem"
    assert signer.key_path == ca.directory / "private" / "ocsp-signer.key"
    assert stat.S_IMODE(signer.key_path.stat().st_mode) == 0o600
    eku = signer.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    signer.certificate.extensions.get_extension_for_class(x509.OCSPNoCheck)
    signer.certificate.verify_directly_issued_by(ca.certificate)
    assert ca.resolve(signer.serial).subject == "/CN=staplegate OCSP Responder"

    plain = ca.ocsp_signer(cn="Second Responder")
    assert plain.cert_path.name == "second-responder.pem"
    with pytest.raises(x509.ExtensionNotFound):
        plain.certificate.extensions.get_extension_for_class(x509.OCSPNoCheck)

    rogue = ca.ocsp_signer(cn="No EKU", ocsp_signing_eku=False)
    eku = rogue.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert ExtendedKeyUsageOID.OCSP_SIGNING not in eku.value
    with pytest.raises(CAError) as caught:
        ca.ocsp_signer(nocheck=True)
    assert caught.value.reason is CAErrorReason.ALREADY_ISSUED


def test_revoke_by_name_and_serial(ca: CertificateAuthority, clock: ManualClock) -> None:
    a = ca.issue("a.test")
    b = ca.issue("b.test")
    clock.advance(60)
    entry = ca.revoke("a.test", reason="KEYCOMPROMISE")
    assert entry.status is EntryStatus.REVOKED
    assert entry.revocation_reason == "keyCompromise"
    assert entry.revoked_at == NOW + dt.timedelta(seconds=60)
    lines = ca.index_path.read_text().splitlines()
    assert lines[0].split("\t")[2] == "260301120100Z,keyCompromise"
    assert lines[1].split("\t")[0] == "V"

    ca.revoke(f"{b.serial:X}", when=NOW + dt.timedelta(hours=1))
    assert ca.index_path.read_text().splitlines()[1].split("\t")[2] == "260301130000Z"
    reopened = CertificateAuthority.open(ca.directory)
    assert reopened.entry(a.serial) is not None
    assert reopened.resolve(a.serial).status is EntryStatus.REVOKED
    assert reopened.resolve(b.serial).revocation_reason is None


def test_revoke_refusals(ca: CertificateAuthority) -> None:
    issued = ca.issue("www.test")
    with pytest.raises(CAError) as caught:
        ca.revoke("www.test", reason="because")
    assert caught.value.reason is CAErrorReason.UNKNOWN_REASON
    assert "superseded" in str(caught.value)
    with pytest.raises(CAError) as caught:
        ca.revoke(issued.serial + 100)
    assert caught.value.reason is CAErrorReason.UNKNOWN_SERIAL
    with pytest.raises(CAError) as caught:
        ca.revoke("no-such-host.test")
    assert caught.value.reason is CAErrorReason.UNKNOWN_NAME
    ca.revoke(issued.serial)
    with pytest.raises(CAError) as caught:
        ca.revoke(issued.serial)
    assert caught.value.reason is CAErrorReason.ALREADY_REVOKED
    assert ca.entry(issued.serial + 100) is None


def test_crl(ca: CertificateAuthority, clock: ManualClock) -> None:
    kept = ca.issue("kept.test")
    gone = ca.issue("gone.test")
    ca.revoke("gone.test", reason="superseded")
    path = ca.crl()
    crl = x509.load_pem_x509_crl(path.read_bytes())
    ca_key = ca.certificate.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    assert crl.is_signature_valid(ca_key)
    assert crl.issuer == ca.certificate.subject
    assert crl.get_revoked_certificate_by_serial_number(kept.serial) is None
    revoked = crl.get_revoked_certificate_by_serial_number(gone.serial)
    assert revoked is not None
    reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.superseded
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert crl.next_update_utc == NOW + dt.timedelta(days=7)
    assert (ca.directory / "crlnumber").read_text() == "02\n"
    assert (ca.directory / "crlnumber.old").read_text() == "01\n"
    second = x509.load_pem_x509_crl(ca.crl().read_bytes())
    assert second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2


def test_set_default_ocsp_url(ca: CertificateAuthority) -> None:
    ca.set_default_ocsp_url("http://127.0.0.1:4567")
    reopened = CertificateAuthority.open(ca.directory)
    assert reopened.default_ocsp_url == "http://127.0.0.1:4567"
    assert _ocsp_urls(reopened.issue("www.test").certificate) == ["http://127.0.0.1:4567"]
    assert "URI:http://127.0.0.1:4567\n" in ca.config_path.read_text()
    ca.set_default_ocsp_url(None)
    assert "authorityInfoAccess" not in ca.config_path.read_text()
    assert _ocsp_urls(ca.issue("other.test").certificate) == []


def test_init_without_ocsp_url(tmp_path: Path, clock: ManualClock) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", ocsp_url=None, clock=clock)
    assert _ocsp_urls(ca.issue("www.test").certificate) == []
    assert _ocsp_urls(ca.issue("x.test", ocsp_url="http://127.0.0.1:1").certificate) == [
        "http://127.0.0.1:1"
    ]


def test_helpers() -> None:
    assert looks_like_hostname("www.example.test")
    assert looks_like_hostname("*.example.test")
    assert looks_like_hostname("::1")
    assert not looks_like_hostname("my_cert@lab")
    assert not looks_like_hostname("-bad.test")
    name = x509.Name.from_rfc4514_string("CN=x,O=Org,C=DE")
    assert subject_oneline(name) == "/C=DE/O=Org/CN=x"


def test_good_response_verifies_for_the_leaf(ca: CertificateAuthority, clock: ManualClock) -> None:
    issued = ca.issue("www.example.test")
    other = ca.issue("other.example.test")
    der = ca.good_response(issued, valid_for=dt.timedelta(hours=6))
    staple = verify_response(
        der, certificate=issued.certificate, issuer=issued.issuer, now=clock.now()
    )
    assert staple.status is CertStatus.GOOD
    assert staple.this_update == clock.now() - dt.timedelta(minutes=1)
    assert staple.next_update == clock.now() + dt.timedelta(hours=6)
    with pytest.raises(VerificationError):  # it answers for its own leaf only
        verify_response(der, certificate=other.certificate, issuer=other.issuer, now=clock.now())


def test_crl_seconds_sets_a_short_next_update(ca: CertificateAuthority) -> None:
    crl = x509.load_pem_x509_crl(ca.crl(seconds=90).read_bytes())
    assert crl.next_update_utc == NOW + dt.timedelta(seconds=90)


def test_issue_with_a_crl_url_and_several_or_no_ocsp_urls(ca: CertificateAuthority) -> None:
    both = ca.issue(
        "dp.test", ocsp_url=["http://127.0.0.1:1/a", "http://127.0.0.1:2/b"], crl_url="http://c/crl"
    )
    assert _ocsp_urls(both.certificate) == ["http://127.0.0.1:1/a", "http://127.0.0.1:2/b"]
    points = both.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert [name.value for p in points.value for name in p.full_name or ()] == ["http://c/crl"]
    crl_only = ca.issue("crl-only.test", ocsp_url=None, crl_url="http://c/crl")
    assert _ocsp_urls(crl_only.certificate) == []
    plain = ca.issue("plain.test")
    with pytest.raises(x509.ExtensionNotFound):
        plain.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
