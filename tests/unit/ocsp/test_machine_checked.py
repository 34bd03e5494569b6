"""Start.checked: candidates a forked copy of the updater checked with the machine's `check`."""

from __future__ import annotations

import datetime as dt

import pytest

from staplegate.ocsp.machine import Install, Log, LogLevel, MachineMisuse, Start

from .ocsp_pki import NOW, Pki, sign_response
from .test_machine import PATH, make_machine, of, response


def test_check_gives_the_staple_or_the_refusal_text(pki: Pki) -> None:
    machine = make_machine(pki)
    good = response(pki.ec_ca)
    staple = machine.check(good, NOW)
    assert not isinstance(staple, str)
    assert staple.der == good
    assert staple.cert_id == machine.cert_id
    refusal = machine.check(response(pki.rsa_ca), NOW)  # another CA's leaf
    assert isinstance(refusal, str)
    assert refusal
    assert machine.staple is None  # checking installs nothing


def test_checked_candidates_start_the_machine_like_stored_ones(pki: Pki) -> None:
    older = response(pki.ec_ca, this_update=NOW - dt.timedelta(hours=2))
    newer = response(pki.ec_ca)
    forged = sign_response(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        signer=pki.rogue,
        include=[pki.rogue.certificate],
    )
    checker = make_machine(pki)
    checked = tuple(checker.check(der, NOW) for der in (forged, newer, older))

    by_checked = make_machine(pki)
    by_stored = make_machine(pki)
    actions = by_checked.handle(Start(NOW, checked=checked))
    expected = by_stored.handle(Start(NOW, (forged, newer, older)))

    (install,) = of(Install, actions)
    assert install.staple.der == newer  # the newest thisUpdate wins, as from the store
    assert [a.message for a in of(Log, actions)] == [a.message for a in of(Log, expected)]
    (warning,) = [a for a in of(Log, actions) if a.level is LogLevel.WARNING]
    assert warning.message.startswith(f"{PATH}: Loading: ")
    assert warning.message.endswith(". Content will be ignored.")
    assert by_checked.state is by_stored.state
    assert by_checked.next_attempt == by_stored.next_attempt


def test_a_staple_checked_for_another_certificate_is_a_bug(pki: Pki) -> None:
    other = make_machine(pki)
    other.certificate = pki.ec_ca.other_leaf
    other.__post_init__()
    der = sign_response(
        certificate=pki.ec_ca.other_leaf, issuer=pki.ec_ca.certificate, signer=pki.ec_ca.signer
    )
    staple = other.check(der, NOW)
    assert not isinstance(staple, str)
    with pytest.raises(MachineMisuse, match="checked for"):
        make_machine(pki).handle(Start(NOW, checked=(staple,)))
