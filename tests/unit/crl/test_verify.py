"""The CRL verifier's checks, each with a real CRL that fails exactly that check."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from staplegate.crl.verify import (
    CrlError,
    CrlFailure,
    CrlStatus,
    check_certificate,
    crl_urls,
    verify_crl,
)
from tests.fuzz_targets.crl_verify import (
    CRL_URL,
    LEAF_SERIAL,
    NOW,
    OTHER_SERIAL,
    build_crl,
    pki,
)


def _reason(data: bytes, *, now: dt.datetime = NOW, skew_s: int = 300) -> CrlFailure:
    world = pki()
    with pytest.raises(CrlError) as caught:
        check_certificate(data, world.leaf, world.ca, now=now, skew=dt.timedelta(seconds=skew_s))
    return caught.value.reason


def test_a_crl_not_listing_the_serial_says_good() -> None:
    world = pki()
    verdict = check_certificate(build_crl(), world.leaf, world.ca, now=NOW)
    assert verdict.status is CrlStatus.GOOD
    assert verdict.serial == LEAF_SERIAL
    assert verdict.crl_number == 7
    assert verdict.next_update == NOW + dt.timedelta(days=1)


def test_a_listed_serial_is_revoked_with_its_reason_and_time() -> None:
    world = pki()
    data = build_crl(revoked=(OTHER_SERIAL, LEAF_SERIAL))
    verdict = check_certificate(data, world.leaf, world.ca, now=NOW)
    assert verdict.status is CrlStatus.REVOKED
    assert verdict.revocation_reason == "keyCompromise"
    assert verdict.revocation_time == NOW - dt.timedelta(hours=2)


def test_pem_is_read_too() -> None:
    world = pki()
    pem = x509.load_der_x509_crl(build_crl(revoked=(LEAF_SERIAL,), reason=None)).public_bytes(
        serialization.Encoding.PEM
    )
    verdict = check_certificate(pem, world.leaf, world.ca, now=NOW)
    assert verdict.status is CrlStatus.REVOKED
    assert verdict.revocation_reason is None


@pytest.mark.parametrize("cut", [0, 1, 10, 100, -1])
def test_truncated_bytes_are_unparsable(cut: int) -> None:
    data = build_crl()
    assert _reason(data[:cut]) is CrlFailure.UNPARSABLE


def test_a_crl_from_another_ca_is_the_wrong_issuer() -> None:
    assert _reason(build_crl(other_ca=True)) is CrlFailure.WRONG_ISSUER


def test_a_crl_signed_by_another_key_under_the_same_name_is_refused() -> None:
    world = pki()
    crl = x509.load_der_x509_crl(build_crl(other_ca=True))
    # the other CA's CRL, re-signed under our CA's name by the other key
    forged = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(world.ca.subject)
        .last_update(crl.last_update_utc)
        .next_update(NOW + dt.timedelta(days=1))
        .sign(world.other_key, None)
        .public_bytes(serialization.Encoding.DER)
    )
    assert _reason(forged) is CrlFailure.SIGNATURE_INVALID
    with_aki = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(world.ca.subject)
        .last_update(crl.last_update_utc)
        .next_update(NOW + dt.timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(world.other_key.public_key()),
            critical=False,
        )
        .sign(world.other_key, None)
        .public_bytes(serialization.Encoding.DER)
    )
    assert _reason(with_aki) is CrlFailure.SIGNER_KEY_MISMATCH


def test_a_flipped_signature_byte_is_refused() -> None:
    data = bytearray(build_crl())
    data[-1] ^= 1
    assert _reason(bytes(data)) is CrlFailure.SIGNATURE_INVALID


def test_a_delta_crl_is_refused() -> None:
    assert _reason(build_crl(delta=True)) is CrlFailure.DELTA_CRL


def test_the_time_window_has_the_skew_and_no_withdrawal_margin() -> None:
    data = build_crl(this_update=NOW, next_update=NOW + dt.timedelta(hours=1))
    world = pki()
    # one second before nextUpdate + skew is still current: no OCSP-style margin
    late = NOW + dt.timedelta(hours=1, seconds=299)
    assert check_certificate(data, world.leaf, world.ca, now=late).status is CrlStatus.GOOD
    assert _reason(data, now=late + dt.timedelta(seconds=1)) is CrlFailure.EXPIRED
    assert _reason(data, now=NOW + dt.timedelta(hours=1), skew_s=0) is CrlFailure.EXPIRED
    early = NOW - dt.timedelta(seconds=300)
    assert check_certificate(data, world.leaf, world.ca, now=early).status is CrlStatus.GOOD
    assert _reason(data, now=early - dt.timedelta(seconds=1)) is CrlFailure.NOT_YET_VALID


def test_the_issuing_distribution_point_must_name_the_certificates() -> None:
    world = pki()
    matching = build_crl(idp_url=CRL_URL)
    assert check_certificate(matching, world.leaf, world.ca, now=NOW).status is CrlStatus.GOOD
    other = build_crl(idp_url="http://127.0.0.1:8080/crl/partition-2")
    assert _reason(other) is CrlFailure.DISTRIBUTION_POINT_MISMATCH


def test_a_certificate_from_another_issuer_gets_no_verdict() -> None:
    world = pki()
    verified = verify_crl(build_crl(other_ca=True), world.other_ca, now=NOW)
    with pytest.raises(CrlError) as caught:
        verified.verdict_for(world.leaf)
    assert caught.value.reason is CrlFailure.CERTIFICATE_NOT_FROM_ISSUER


def test_an_indirect_crl_is_refused_with_its_own_reason() -> None:
    world = pki()
    point = x509.IssuingDistributionPoint(
        full_name=None,
        relative_name=None,
        only_contains_user_certs=False,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=True,
        only_contains_attribute_certs=False,
    )
    data = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(world.other_ca.subject)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=1))
        .add_extension(point, critical=True)
        .sign(world.other_key, None)
        .public_bytes(serialization.Encoding.DER)
    )
    assert _reason(data) is CrlFailure.INDIRECT_CRL_UNSUPPORTED


def test_an_unknown_critical_extension_is_refused() -> None:
    world = pki()
    data = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(world.ca.subject)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"),
            critical=True,
        )
        .sign(world.ca_key, None)
        .public_bytes(serialization.Encoding.DER)
    )
    assert _reason(data) is CrlFailure.UNHANDLED_CRITICAL_EXTENSION


def test_an_issuer_without_crl_sign_cannot_sign_crls() -> None:
    world = pki()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    issuer = (
        x509.CertificateBuilder()
        .subject_name(world.ca.subject)
        .issuer_name(world.ca.subject)
        .public_key(world.ca_key.public_key())
        .serial_number(99)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(usage, critical=True)
        .sign(world.ca_key, None)
    )
    with pytest.raises(CrlError) as caught:
        check_certificate(build_crl(), world.leaf, issuer, now=NOW)
    assert caught.value.reason is CrlFailure.ISSUER_NOT_CRL_SIGNER


def test_crl_urls_lists_the_http_distribution_points() -> None:
    world = pki()
    assert crl_urls(world.leaf) == [CRL_URL]
    assert crl_urls(world.ca) == []


def test_a_naive_now_is_a_misuse() -> None:
    world = pki()
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_crl(build_crl(), world.ca, now=NOW.replace(tzinfo=None))
