"""The responder's pure core: request DER + index entries + signer + now -> response DER."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from staplegate.ocsp.verify import CertStatus, FailureReason, VerificationError, verify_response
from staplegate.testpki.ca import CertificateAuthority, IssuedCertificate, KeyKind
from staplegate.testpki.faults import Fault, FaultKind
from staplegate.testpki.index import EntryStatus, IndexEntry, crl_reason, read_index
from staplegate.testpki.responder_core import (
    CertState,
    ResponderCore,
    ServedIssuer,
    Signer,
)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path_factory.mktemp("core") / "ca", ocsp_url=None)


@pytest.fixture(scope="module")
def leaf(ca: CertificateAuthority) -> IssuedCertificate:
    return ca.issue("core.test")


_SIGNERS: dict[Path, Signer] = {}


def core_for(ca: CertificateAuthority, *, signer: Signer | None = None) -> ResponderCore:
    """A core for `ca` signing with a delegated signer (one per CA: subjects are unique)."""
    if signer is None:
        if ca.directory not in _SIGNERS:
            files = ca.ocsp_signer()
            _SIGNERS[ca.directory] = Signer(files.certificate, files.private_key)
        signer = _SIGNERS[ca.directory]
    return ResponderCore(
        issuers=[ServedIssuer.from_entries(ca.certificate, read_index(ca.index_path))],
        signer=signer,
        validity=HOUR,
    )


def request(
    leaf: IssuedCertificate, algorithm: hashes.HashAlgorithm | None = None, nonce: bytes = b""
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        leaf.certificate, leaf.issuer, algorithm or hashes.SHA1()
    )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def verify(der: bytes, leaf: IssuedCertificate) -> CertStatus:
    return verify_response(der, certificate=leaf.certificate, issuer=leaf.issuer, now=NOW).status


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384()])
def test_good_in_the_requested_hash(
    ca: CertificateAuthority, leaf: IssuedCertificate, algorithm: hashes.HashAlgorithm
) -> None:
    answer = core_for(ca).answer(request(leaf, algorithm), now=NOW)
    assert answer.cert_state is CertState.GOOD
    assert answer.cacheable
    assert (answer.this_update, answer.next_update) == (NOW, NOW + HOUR)
    response = ocsp.load_der_ocsp_response(answer.der)
    assert response.hash_algorithm.name == algorithm.name
    assert response.serial_number == leaf.serial
    if algorithm.name != "sha384":  # staplegate's verifier accepts SHA-1 and SHA-256 CertIds
        assert verify(answer.der, leaf) is CertStatus.GOOD


def test_revoked_with_time_and_reason(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "ca", ocsp_url=None)
    leaf = ca.issue("revoked.test")
    when = NOW - dt.timedelta(days=1)
    ca.revoke("revoked.test", reason="superseded", when=when)
    answer = core_for(ca).answer(request(leaf), now=NOW)
    response = ocsp.load_der_ocsp_response(answer.der)
    assert answer.cert_state is CertState.REVOKED
    assert response.revocation_time_utc == when.replace(microsecond=0)
    assert response.revocation_reason is x509.ReasonFlags.superseded
    assert verify(answer.der, leaf) is CertStatus.REVOKED


def test_index_reasons_map_like_openssl() -> None:
    assert crl_reason("certificateHold,holdInstructionReject") is (
        x509.ReasonFlags.certificate_hold
    )
    assert crl_reason("keyTime,20240101000000Z") is x509.ReasonFlags.key_compromise
    assert crl_reason("CAkeyTime,20240101000000Z") is x509.ReasonFlags.ca_compromise
    assert crl_reason(None) is None
    assert crl_reason("made-up") is None


def test_expired_entry_is_good_and_missing_serial_unknown(
    ca: CertificateAuthority, leaf: IssuedCertificate
) -> None:
    expired = IndexEntry(EntryStatus.EXPIRED, NOW - HOUR, leaf.serial, "/CN=core.test")
    core = ResponderCore(
        issuers=[ServedIssuer.from_entries(ca.certificate, [expired])],
        signer=Signer(ca.certificate, ca.private_key),
        validity=HOUR,
    )
    assert core.answer(request(leaf), now=NOW).cert_state is CertState.GOOD
    core.set_issuers([ServedIssuer.from_entries(ca.certificate, [])])
    unknown = core.answer(request(leaf), now=NOW)
    assert unknown.cert_state is CertState.UNKNOWN
    with pytest.raises(VerificationError) as caught:
        verify(unknown.der, leaf)
    assert caught.value.reason is FailureReason.STATUS_UNKNOWN


def test_nonce_echoed_and_not_cacheable(ca: CertificateAuthority, leaf: IssuedCertificate) -> None:
    answer = core_for(ca).answer(request(leaf, nonce=b"n" * 16), now=NOW)
    nonce = ocsp.load_der_ocsp_response(answer.der).extensions.get_extension_for_class(
        x509.OCSPNonce
    )
    assert nonce.value.nonce == b"n" * 16
    assert not answer.cacheable


def test_garbage_and_foreign_issuer(tmp_path: Path, ca: CertificateAuthority) -> None:
    core = core_for(ca)
    assert core.answer(b"\x30\x03garbage", now=NOW).response_status is (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    other = CertificateAuthority.init(tmp_path / "other", ocsp_url=None)
    foreign = core.answer(request(other.issue("foreign.test")), now=NOW)
    assert foreign.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert not foreign.cacheable


def test_rsa_ca_signs_directly_by_key_hash(tmp_path: Path) -> None:
    ca = CertificateAuthority.init(tmp_path / "rsa", key=KeyKind.RSA2048, ocsp_url=None)
    leaf = ca.issue("rsa.test")
    signer = Signer(ca.certificate, ca.private_key, by_key_hash=True, include_certificate=False)
    assert signer.key_description == "RSA-2048"
    answer = core_for(ca, signer=signer).answer(request(leaf), now=NOW)
    response = ocsp.load_der_ocsp_response(answer.der)
    assert response.responder_name is None
    assert response.certificates == []
    assert verify(answer.der, leaf) is CertStatus.GOOD


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (FaultKind.ROGUE_SIGNER, FailureReason.SIGNER_NOT_AUTHORIZED),
        (FaultKind.STALE, FailureReason.NOT_VALID_NOW),
        (FaultKind.FUTURE, FailureReason.NOT_VALID_NOW),
        (FaultKind.WRONG_CERTID, FailureReason.CERT_ID_MISMATCH),
        (FaultKind.TRY_LATER, FailureReason.NOT_SUCCESSFUL),
        (FaultKind.UNAUTHORIZED, FailureReason.NOT_SUCCESSFUL),
    ],
)
def test_ocsp_level_faults(
    ca: CertificateAuthority, leaf: IssuedCertificate, kind: FaultKind, reason: FailureReason
) -> None:
    answer = core_for(ca).answer(request(leaf), now=NOW, fault=Fault(kind))
    assert not answer.cacheable
    with pytest.raises(VerificationError) as caught:
        verify(answer.der, leaf)
    assert caught.value.reason is reason


def test_http_level_faults_do_not_change_the_answer(
    ca: CertificateAuthority, leaf: IssuedCertificate
) -> None:
    answer = core_for(ca).answer(request(leaf), now=NOW, fault=Fault(FaultKind.HTTP_500))
    assert answer.cacheable
    assert verify(answer.der, leaf) is CertStatus.GOOD


def test_validity_must_be_positive(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="validity must be positive"):
        ResponderCore(
            issuers=[], signer=Signer(ca.certificate, ca.private_key), validity=dt.timedelta(0)
        )
