"""verify_response's per-certificate caches never let a verdict cross to other bytes or times."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.x509 import ocsp

from staplegate.ocsp import verify
from staplegate.ocsp.verify import FailureReason, VerificationError, verify_response
from tests.ocsp_der import resign

from .ocsp_pki import NOW, Pki, sign_response


def _delegated(pki: Pki, signer_name: str = "delegate") -> bytes:
    signer = getattr(pki, signer_name)
    return sign_response(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        signer=signer,
        include=[signer.certificate],
    )


def _verify(der: bytes, pki: Pki, now: dt.datetime = NOW) -> verify.VerifiedStaple:
    return verify_response(der, certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, now=now)


def _refusal(der: bytes, pki: Pki, now: dt.datetime = NOW) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        _verify(der, pki, now)
    return caught.value


def test_a_delegate_is_checked_once_for_many_responses(pki: Pki) -> None:
    verify._delegate.cache_clear()
    for _ in range(3):
        assert _verify(_delegated(pki), pki).responder == "CN=EC CA OCSP Responder"
    info = verify._delegate.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_a_genuine_delegate_in_the_cache_does_not_vouch_for_a_lookalike(pki: Pki) -> None:
    # foreign_delegate has the same subject and serial, issued under the same CA name by
    # another key: only its bytes differ, and the cache is keyed by them.
    _verify(_delegated(pki), pki)
    error = _refusal(_delegated(pki, "foreign_delegate"), pki)
    assert error.reason is FailureReason.SIGNER_NOT_AUTHORIZED
    assert error.detail is not None
    assert "was not issued by" in error.detail


def test_a_cached_delegate_is_still_checked_against_the_time(pki: Pki) -> None:
    der = _delegated(pki)
    _verify(der, pki)
    error = _refusal(der, pki, NOW + dt.timedelta(days=40))  # after the delegate's notAfter
    assert error.reason is FailureReason.SIGNER_NOT_AUTHORIZED
    assert error.detail is not None
    assert "is valid from" in error.detail


def test_a_cached_delegate_does_not_spare_each_response_its_signature(pki: Pki) -> None:
    _verify(_delegated(pki), pki)
    # the same responder ID and embedded delegate, signed by a key that is not the delegate's
    forged = resign(_delegated(pki), pki.rogue.key)
    assert _refusal(forged, pki).reason is FailureReason.SIGNATURE_INVALID


def test_a_refused_delegate_stays_refused(pki: Pki) -> None:
    for _ in range(2):
        error = _refusal(_delegated(pki, "delegate_no_eku"), pki)
        assert error.reason is FailureReason.SIGNER_NOT_AUTHORIZED


def test_the_caches_are_bounded() -> None:
    for cached in (verify._delegate, verify._key_hash, verify._public_key):
        assert cached.cache_info().maxsize == verify.CERT_CACHE_SIZE


def test_issuer_signed_responses_verify_after_the_issuer_key_is_cached(pki: Pki) -> None:
    ca = pki.ec_ca
    for encoding in ocsp.OCSPResponderEncoding:
        der = sign_response(
            certificate=ca.leaf, issuer=ca.certificate, signer=ca.signer, encoding=encoding
        )
        assert _verify(der, pki).responder == "issuer"
    other = sign_response(
        certificate=ca.other_leaf, issuer=ca.certificate, signer=ca.signer
    )  # answers for another certificate of the same issuer
    assert _refusal(other, pki).reason is FailureReason.CERT_ID_MISMATCH
