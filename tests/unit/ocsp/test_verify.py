"""verify_response: one test per failure reason, with real DER signed by real keys."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509 import ocsp

from staplegate.ocsp.certid import CertId
from staplegate.ocsp.verify import (
    CertStatus,
    FailureReason,
    VerificationError,
    VerifiedStaple,
    verify_response,
)
from staplegate.testpki.index import EntryStatus, IndexEntry, write_index
from tests.ocsp_der import BOOLEAN, INTEGER, resign, retag_string

from .ocsp_pki import NOW, Pki, Signer, make_certificate, resign_with_singles, sign_response

SECOND = dt.timedelta(seconds=1)


def _fail(der: bytes, certificate: x509.Certificate, issuer: x509.Certificate) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify_response(der, certificate=certificate, issuer=issuer, now=NOW)
    return caught.value


def _ec_response(pki: Pki, **kwargs: Any) -> bytes:
    ca = pki.ec_ca
    return sign_response(
        certificate=ca.leaf,
        issuer=ca.certificate,
        signer=ca.signer,
        **kwargs,
    )


# --- responses that verify ---


def test_rsa_ca_signed_by_key_hash_verifies_good(pki: Pki) -> None:
    ca = pki.rsa_ca
    der = sign_response(certificate=ca.leaf, issuer=ca.certificate, signer=ca.signer)
    staple = verify_response(der, certificate=ca.leaf, issuer=ca.certificate, now=NOW)
    assert staple.status is CertStatus.GOOD
    assert staple.der == der
    assert staple.responder == "issuer"
    assert staple.cert_id == CertId.for_certificate(ca.leaf, ca.certificate)
    assert staple.this_update == NOW - dt.timedelta(hours=1)
    assert staple.next_update == NOW + dt.timedelta(days=7)
    assert staple.produced_at.tzinfo is not None
    assert staple.revocation_time is None
    assert staple.revocation_reason is None


def test_ec_ca_signed_by_name_verifies(pki: Pki) -> None:
    der = _ec_response(pki, encoding=ocsp.OCSPResponderEncoding.NAME)
    staple = verify_response(der, certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, now=NOW)
    assert (staple.status, staple.responder) == (CertStatus.GOOD, "issuer")


@pytest.mark.parametrize("encoding", list(ocsp.OCSPResponderEncoding))
def test_delegated_responder_with_eku_verifies(
    pki: Pki, encoding: ocsp.OCSPResponderEncoding
) -> None:
    ca = pki.ec_ca
    der = sign_response(
        certificate=ca.leaf,
        issuer=ca.certificate,
        signer=pki.delegate,
        encoding=encoding,
        include=[pki.delegate.certificate],
    )
    staple = verify_response(der, certificate=ca.leaf, issuer=ca.certificate, now=NOW)
    assert staple.responder == "CN=EC CA OCSP Responder"


def test_sha256_certid_verifies_and_keeps_the_sha1_table_key(pki: Pki) -> None:
    der = _ec_response(pki, certid_hash=hashes.SHA256())
    assert ocsp.load_der_ocsp_response(der).hash_algorithm.name == "sha256"
    staple = verify_response(der, certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, now=NOW)
    assert staple.cert_id.hash_algorithm == "sha1"
    assert staple.cert_id == CertId.for_certificate(pki.ec_ca.leaf, pki.ec_ca.certificate)


def test_revoked_with_reason_verifies_as_revoked(pki: Pki) -> None:
    revoked_at = NOW - dt.timedelta(days=2)
    der = _ec_response(
        pki,
        status=ocsp.OCSPCertStatus.REVOKED,
        revocation_time=revoked_at,
        revocation_reason=x509.ReasonFlags.key_compromise,
    )
    staple = verify_response(der, certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, now=NOW)
    assert staple.status is CertStatus.REVOKED
    assert staple.revocation_time == revoked_at
    assert staple.revocation_reason == "keyCompromise"


def test_ed25519_issuer_signature_verifies() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    ca = x509.CertificateBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Ed CA")])
    )
    ca_cert = (
        ca.issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Ed CA")]))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, None)
    )
    leaf = make_certificate(subject="ed.test", key=rsa.generate_private_key(65537, 2048))
    der = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            leaf, ca_cert, hashes.SHA1(), ocsp.OCSPCertStatus.GOOD, NOW, NOW + SECOND * 3600,
            None, None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca_cert)
        .sign(key, None)
        .public_bytes(serialization.Encoding.DER)
    )  # fmt: skip
    staple = verify_response(der, certificate=leaf, issuer=ca_cert, now=NOW)
    assert staple.status is CertStatus.GOOD


def test_expire_and_servable_follow_haproxy(pki: Pki) -> None:
    der = _ec_response(pki, next_update=NOW + dt.timedelta(seconds=1000))
    staple = verify_response(der, certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, now=NOW)
    assert staple.expire() == NOW + dt.timedelta(seconds=700)
    assert staple.servable(NOW + dt.timedelta(seconds=700))
    assert not staple.servable(NOW + dt.timedelta(seconds=701))


def test_check_signature_false_skips_only_the_signature(pki: Pki) -> None:
    der = sign_response(certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, signer=pki.rogue)
    staple = verify_response(
        der,
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        now=NOW,
        check_signature=False,
    )
    assert staple.responder == "unchecked"


def test_naive_now_is_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_response(
            _ec_response(pki),
            certificate=pki.ec_ca.leaf,
            issuer=pki.ec_ca.certificate,
            now=NOW.replace(tzinfo=None),
        )


# --- one test per failure reason, in check order ---


@pytest.mark.parametrize("der", [b"", b"garbage", b"\x30\x03\x0a\x01"])
def test_unparsable(pki: Pki, der: bytes) -> None:
    error = _fail(der, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.UNPARSABLE
    assert error.message == "Unable to parse OCSP response"
    assert error.haproxy_status == 4
    assert error.haproxy_detail == "d2i_OCSP_RESPONSE() failed"


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (ocsp.OCSPResponseStatus.MALFORMED_REQUEST, "1: malformedrequest"),
        (ocsp.OCSPResponseStatus.INTERNAL_ERROR, "2: internalerror"),
        (ocsp.OCSPResponseStatus.TRY_LATER, "3: trylater"),
        (ocsp.OCSPResponseStatus.SIG_REQUIRED, "5: sigrequired"),
        (ocsp.OCSPResponseStatus.UNAUTHORIZED, "6: unauthorized"),
    ],
)
def test_not_successful_keeps_which_status(
    pki: Pki, status: ocsp.OCSPResponseStatus, text: str
) -> None:
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
    error = _fail(der, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.NOT_SUCCESSFUL
    assert error.message == "OCSP response status not successful"
    assert error.detail == text
    assert error.status is status
    assert error.haproxy_detail == f"OCSP response not successful ({text})"
    assert str(error) == f"OCSP response status not successful ({text})"


def test_not_basic(pki: Pki) -> None:
    basic_oid = bytes.fromhex("06092b0601050507300101")  # id-pkix-ocsp-basic
    der = _ec_response(pki)
    assert der.count(basic_oid) == 1
    other = der.replace(basic_oid, bytes.fromhex("06092b0601050507300163"))
    error = _fail(other, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.NOT_BASIC
    assert error.message == "Failed to get basic response from OCSP Response"
    assert error.haproxy_detail == "OCSP_response_get1_basic() failed"


def test_signer_not_authorized_when_responder_unknown(pki: Pki) -> None:
    der = sign_response(certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, signer=pki.rogue)
    error = _fail(der, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.SIGNER_NOT_AUTHORIZED
    assert error.message == "OCSP response signer not authorized"
    assert error.detail is not None
    assert "neither the issuer" in error.detail
    assert error.haproxy_detail == "OCSP_basic_verify() failed"


@pytest.mark.parametrize(
    ("signer_name", "why"),
    [
        ("delegate_no_eku", "lacks the OCSPSigning extended key usage"),
        ("delegate_expired", "is valid from"),
        ("foreign_delegate", "was not issued by"),
        ("rogue", "was not issued by"),
    ],
)
def test_signer_not_authorized_for_bad_delegates(pki: Pki, signer_name: str, why: str) -> None:
    signer: Signer = getattr(pki, signer_name)
    der = sign_response(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        signer=signer,
        include=[signer.certificate],
    )
    error = _fail(der, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.SIGNER_NOT_AUTHORIZED
    assert error.detail is not None
    assert why in error.detail


def test_delegate_of_the_wrong_issuer_is_not_authorized_for_another_ca(pki: Pki) -> None:
    # The EC CA's delegate answers for the RSA CA's leaf: not issued by that issuer.
    der = sign_response(
        certificate=pki.rsa_ca.leaf,
        issuer=pki.rsa_ca.certificate,
        signer=pki.delegate,
        include=[pki.delegate.certificate],
    )
    error = _fail(der, pki.rsa_ca.leaf, pki.rsa_ca.certificate)
    assert error.reason is FailureReason.SIGNER_NOT_AUTHORIZED


def test_signature_invalid_when_a_rogue_key_claims_the_issuer_name(pki: Pki) -> None:
    der = sign_response(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        signer=pki.rogue,
        encoding=ocsp.OCSPResponderEncoding.NAME,
    )
    error = _fail(der, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.SIGNATURE_INVALID
    assert error.message == "OCSP response signature invalid"
    assert error.haproxy_detail == "OCSP_basic_verify() failed"


def test_signature_invalid_when_bytes_are_altered(pki: Pki) -> None:
    ca = pki.rsa_ca
    der = sign_response(certificate=ca.leaf, issuer=ca.certificate, signer=ca.signer)
    tampered = der[:-1] + bytes([der[-1] ^ 0x01])  # last byte of the RSA signature
    error = _fail(tampered, ca.leaf, ca.certificate)
    assert error.reason is FailureReason.SIGNATURE_INVALID


def test_multiple_single_responses(pki: Pki) -> None:
    der = resign_with_singles(_ec_response(pki), pki.ec_ca.signer, copies=2)
    error = _fail(der, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.MULTIPLE_RESPONSES
    assert error.message == "OCSP response ignored because contains multiple single responses"
    assert error.detail == "2"
    assert error.haproxy_status == 5
    assert error.haproxy_detail == (
        "OCSP response ignored because contains multiple single responses (2)"
    )


def test_no_single_response(pki: Pki) -> None:
    der = resign_with_singles(_ec_response(pki), pki.ec_ca.signer, copies=0)
    error = _fail(der, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.NO_SINGLE_RESPONSE
    assert error.message == "Failed to get OCSP single response"


def test_resigned_single_still_verifies(pki: Pki) -> None:
    # The surgery itself is sound: one copy re-signed is a valid response.
    der = resign_with_singles(_ec_response(pki), pki.ec_ca.signer, copies=1)
    staple = verify_response(der, certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, now=NOW)
    assert staple.status is CertStatus.GOOD


def test_status_unknown(pki: Pki) -> None:
    error = _fail(
        _ec_response(pki, status=ocsp.OCSPCertStatus.UNKNOWN),
        pki.ec_ca.leaf,
        pki.ec_ca.certificate,
    )
    assert error.reason is FailureReason.STATUS_UNKNOWN
    assert error.message == "OCSP single response: certificate status is unknown"
    assert error.haproxy_status == 5
    assert error.haproxy_detail == "OCSP single response: certificate status is unknown"


def test_next_update_missing(pki: Pki) -> None:
    error = _fail(_ec_response(pki, next_update=None), pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.NEXT_UPDATE_MISSING
    assert error.message == "OCSP single response: missing nextupdate"


@pytest.mark.parametrize(
    ("this_update", "next_update", "why"),
    [
        (NOW + 1000 * SECOND, NOW + 7200 * SECOND, "thisUpdate"),  # future
        (NOW - 7200 * SECOND, NOW - 400 * SECOND, "before 2026"),  # stale
        (NOW + 100 * SECOND, NOW + 50 * SECOND, "before thisUpdate"),  # inverted
    ],
)
def test_not_valid_now(
    pki: Pki, this_update: dt.datetime, next_update: dt.datetime, why: str
) -> None:
    error = _fail(
        _ec_response(pki, this_update=this_update, next_update=next_update),
        pki.ec_ca.leaf,
        pki.ec_ca.certificate,
    )
    assert error.reason is FailureReason.NOT_VALID_NOW
    assert error.message == "OCSP single response: no longer valid."
    assert error.detail is not None
    assert why in error.detail


def test_skew_is_a_parameter(pki: Pki) -> None:
    der = _ec_response(pki, this_update=NOW + 200 * SECOND)
    issuer, leaf = pki.ec_ca.certificate, pki.ec_ca.leaf
    assert verify_response(der, certificate=leaf, issuer=issuer, now=NOW).status
    with pytest.raises(VerificationError) as caught:
        verify_response(der, certificate=leaf, issuer=issuer, now=NOW, skew=100 * SECOND)
    assert caught.value.reason is FailureReason.NOT_VALID_NOW


def test_cert_id_mismatch_for_another_certificate(pki: Pki) -> None:
    ca = pki.ec_ca
    der = sign_response(certificate=ca.other_leaf, issuer=ca.certificate, signer=ca.signer)
    error = _fail(der, ca.leaf, ca.certificate)
    assert error.reason is FailureReason.CERT_ID_MISMATCH
    assert error.message == (
        "OCSP single response: Certificate ID does not match certificate and issuer"
    )
    assert error.detail == "response names serial 21, certificate has serial 20"


def test_cert_id_in_an_unaccepted_hash_is_a_mismatch(pki: Pki) -> None:
    error = _fail(
        _ec_response(pki, certid_hash=hashes.SHA512()), pki.ec_ca.leaf, pki.ec_ca.certificate
    )
    assert error.reason is FailureReason.CERT_ID_MISMATCH
    assert error.detail is not None
    assert "sha512" in error.detail


@pytest.mark.parametrize("seconds", [200, 0, -100, -299])
def test_expires_too_soon(pki: Pki, seconds: int) -> None:
    der = _ec_response(pki, next_update=NOW + seconds * SECOND)
    error = _fail(der, pki.ec_ca.leaf, pki.ec_ca.certificate)
    assert error.reason is FailureReason.EXPIRES_TOO_SOON
    assert error.message == (
        "OCSP single response: no longer valid. Must be valid during at least 300s."
    )
    assert error.haproxy_detail == error.message


def test_exactly_300_seconds_left_is_accepted(pki: Pki) -> None:
    der = _ec_response(pki, next_update=NOW + 300 * SECOND)
    staple = verify_response(der, certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, now=NOW)
    assert isinstance(staple, VerifiedStaple)
    assert staple.servable(NOW)


def test_every_reason_has_a_hint() -> None:
    for reason in FailureReason:
        assert VerificationError(reason).hint


# --- malformed bytes: every failure is a VerificationError (issue 14, defect 2) ---

_WRONG_TAGS = [pytest.param(BOOLEAN, id="boolean"), pytest.param(INTEGER, id="integer"),
               pytest.param(0x03, id="bit-string"), pytest.param(0x05, id="null")]  # fmt: skip


@pytest.mark.parametrize("tag", _WRONG_TAGS)
@pytest.mark.parametrize("signed_again", [False, True], ids=["tampered", "resigned"])
def test_responder_name_attribute_of_the_wrong_type_is_unparsable(
    pki: Pki, tag: int, signed_again: bool
) -> None:
    """cryptography parses the ResponderID name lazily; a BOOLEAN CN raised TypeError or
    ValueError out of verify_response, before any signature check."""
    ca = pki.ec_ca
    der = _ec_response(pki, encoding=ocsp.OCSPResponderEncoding.NAME)
    bad = retag_string(der, ca.name, tag=tag)
    if signed_again:
        bad = resign(bad, ca.signer.key)
    error = _fail(bad, ca.leaf, ca.certificate)
    assert error.reason is FailureReason.UNPARSABLE
    assert error.detail is not None
    assert "ResponderID name" in error.detail
    assert error.haproxy_status == 4


@pytest.mark.parametrize("tag", _WRONG_TAGS)
@pytest.mark.parametrize("encoding", list(ocsp.OCSPResponderEncoding))
def test_embedded_certificate_subject_of_the_wrong_type_is_refused(
    pki: Pki, tag: int, encoding: ocsp.OCSPResponderEncoding
) -> None:
    ca = pki.ec_ca
    der = sign_response(
        certificate=ca.leaf,
        issuer=ca.certificate,
        signer=pki.delegate,
        encoding=encoding,
        include=[pki.delegate.certificate],
    )
    subject = "EC CA OCSP Responder"
    occurrence = 1 if encoding is ocsp.OCSPResponderEncoding.NAME else 0  # 0: ResponderID
    bad = resign(retag_string(der, subject, tag=tag, occurrence=occurrence), pki.delegate.key)
    error = _fail(bad, ca.leaf, ca.certificate)
    assert error.reason in (FailureReason.UNPARSABLE, FailureReason.SIGNER_NOT_AUTHORIZED)


def test_a_malformed_extra_certificate_does_not_hide_the_issuer_signature(pki: Pki) -> None:
    """Signed by the issuer itself: the included certificates are never looked at."""
    ca = pki.ec_ca
    der = _ec_response(pki, include=[pki.delegate.certificate])
    bad = resign(retag_string(der, "EC CA OCSP Responder"), ca.signer.key)
    staple = verify_response(bad, certificate=ca.leaf, issuer=ca.certificate, now=NOW)
    assert staple.responder == "issuer"


def test_check_signature_false_on_a_malformed_name_is_still_a_verification_error(
    pki: Pki,
) -> None:
    ca = pki.ec_ca
    bad = retag_string(_ec_response(pki, encoding=ocsp.OCSPResponderEncoding.NAME), ca.name)
    # without the signature check the ResponderID is never read: the rest is fine
    staple = verify_response(
        bad, certificate=ca.leaf, issuer=ca.certificate, now=NOW, check_signature=False
    )
    assert staple.responder == "unchecked"


# --- interop: openssl ocsp as the responder ---


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(path, 0o600)


@pytest.mark.openssl
def test_openssl_ocsp_responses_verify_good_then_revoked(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is required (./dev setup installs it)")
    now = dt.datetime.now(dt.UTC)  # openssl stamps thisUpdate with the real clock
    ca_key = rsa.generate_private_key(65537, 2048)
    ca = make_certificate(
        subject="Interop CA", key=ca_key, ca=True, not_before=now - dt.timedelta(days=1)
    )
    leaf = make_certificate(
        subject="interop.test",
        key=rsa.generate_private_key(65537, 2048),
        issuer_name="Interop CA",
        issuer_key=ca_key,
        serial=0x0A1B2C3D,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=90),
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(tmp_path / "ca.key", ca_key)
    cert_id = CertId.for_certificate(leaf, ca)
    (tmp_path / "req.der").write_bytes(cert_id.request().public_bytes(serialization.Encoding.DER))
    entry = IndexEntry(
        status=EntryStatus.VALID,
        expires=leaf.not_valid_after_utc,
        serial=leaf.serial_number,
        subject="/CN=interop.test",
    )

    def respond() -> bytes:
        subprocess.run(
            [
                "openssl", "ocsp", "-index", "index.txt", "-CA", "ca.pem",
                "-rsigner", "ca.pem", "-rkey", "ca.key", "-reqin", "req.der",
                "-respout", "resp.der", "-ndays", "1",
            ],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )  # fmt: skip
        return (tmp_path / "resp.der").read_bytes()

    write_index(tmp_path / "index.txt", [entry])
    good = verify_response(respond(), certificate=leaf, issuer=ca, now=now)
    assert good.status is CertStatus.GOOD
    assert good.responder == "issuer"
    assert good.cert_id == cert_id
    assert dt.timedelta(hours=23) < good.next_update - now <= dt.timedelta(days=1, seconds=5)

    revoked_at = (now - dt.timedelta(hours=1)).replace(microsecond=0)
    write_index(tmp_path / "index.txt", [entry.revoked(revoked_at, "keyCompromise")])
    revoked = verify_response(respond(), certificate=leaf, issuer=ca, now=now)
    assert revoked.status is CertStatus.REVOKED
    assert revoked.revocation_time == revoked_at
    assert revoked.revocation_reason == "keyCompromise"
