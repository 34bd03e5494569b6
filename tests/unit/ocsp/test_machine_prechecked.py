"""Start with staples verified beforehand (updater/precheck.py): only the time checks run
again, and a staple that fails them is verified in full, refused with the reason of now."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from staplegate.ocsp.machine import Install, Log, LogLevel, MachineMisuse, Start
from staplegate.ocsp.verify import VerifiedStaple, still_valid_at, verify_response

from .ocsp_pki import NOW, Pki, sign_response
from .test_machine import PATH, make_machine, of, response

SKEW = dt.timedelta(seconds=300)


def _verified(pki: Pki, der: bytes, at: dt.datetime = NOW) -> VerifiedStaple:
    return verify_response(der, certificate=pki.ec_ca.leaf, issuer=pki.ec_ca.certificate, now=at)


def _delegated(pki: Pki) -> bytes:
    return sign_response(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        signer=pki.delegate,
        include=[pki.delegate.certificate],
    )


def test_a_prechecked_staple_starts_the_machine_as_its_der_would(pki: Pki) -> None:
    older = response(pki.ec_ca, this_update=NOW - dt.timedelta(hours=2))
    newer = response(pki.ec_ca)
    by_der, by_staple = make_machine(pki), make_machine(pki)

    expected = by_der.handle(Start(NOW, (older, newer)))
    actions = by_staple.handle(Start(NOW, (_verified(pki, older), _verified(pki, newer))))

    (install,) = of(Install, actions)
    assert install.staple.der == newer == of(Install, expected)[0].staple.der
    assert by_staple.state is by_der.state
    assert by_staple.next_attempt == by_der.next_attempt


def test_a_prechecked_staple_is_not_verified_again(pki: Pki) -> None:
    # White box: its DER is not looked at while its times still hold (the checks that do
    # not depend on the time were run by the same code in the forked precheck).
    staple = dataclasses.replace(_verified(pki, response(pki.ec_ca)), der=b"not verified again")
    (install,) = of(Install, make_machine(pki).handle(Start(NOW, (staple,))))
    assert install.staple is staple


def test_a_staple_that_expired_since_its_check_is_verified_again_and_refused(pki: Pki) -> None:
    der = response(pki.ec_ca, valid_for=3600)
    staple = _verified(pki, der)
    later = NOW + dt.timedelta(hours=2)  # past nextUpdate (and its 300 s margin)

    actions = make_machine(pki).handle(Start(later, (staple,)))

    assert not of(Install, actions)
    (warning,) = [a for a in of(Log, actions) if a.level is LogLevel.WARNING]
    assert warning.message.startswith(f"{PATH}: Loading: ")
    assert "Content will be ignored" in warning.message


def test_a_responder_certificate_that_expired_since_the_check_refuses_the_staple(
    pki: Pki,
) -> None:
    staple = _verified(pki, _delegated(pki))
    assert staple.signer_valid == (
        pki.delegate.certificate.not_valid_before_utc,
        pki.delegate.certificate.not_valid_after_utc,
    )
    after = pki.delegate.certificate.not_valid_after_utc + dt.timedelta(days=1)
    assert not still_valid_at(staple, now=after, skew=SKEW)
    assert still_valid_at(staple, now=NOW, skew=SKEW)


def test_the_time_checks_are_verify_responses_own(pki: Pki) -> None:
    this_update = NOW - dt.timedelta(hours=1)
    staple = _verified(pki, response(pki.ec_ca, this_update=this_update, valid_for=86400))
    assert staple.signer_valid is None  # the issuer signed
    assert still_valid_at(staple, now=this_update - SKEW, skew=SKEW)
    assert not still_valid_at(staple, now=this_update - SKEW - dt.timedelta(seconds=1), skew=SKEW)
    expire = staple.next_update - dt.timedelta(seconds=300)
    assert still_valid_at(staple, now=expire, skew=SKEW)
    assert not still_valid_at(staple, now=expire + dt.timedelta(seconds=1), skew=SKEW)


def test_a_staple_verified_for_another_certificate_is_a_bug(pki: Pki) -> None:
    der = sign_response(
        certificate=pki.ec_ca.other_leaf, issuer=pki.ec_ca.certificate, signer=pki.ec_ca.signer
    )
    other = verify_response(
        der, certificate=pki.ec_ca.other_leaf, issuer=pki.ec_ca.certificate, now=NOW
    )
    with pytest.raises(MachineMisuse, match="verified for"):
        make_machine(pki).handle(Start(NOW, (other,)))
