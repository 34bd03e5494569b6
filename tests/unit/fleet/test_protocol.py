"""The fleet's sans-IO protocol: key names, messages, times of untrusted DER, TTLs."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from staplegate.fleet.protocol import (
    CHANNEL,
    RELEASE_SCRIPT,
    RENEW_SCRIPT,
    announcement,
    lease_key,
    parse_message,
    staple_key,
    staple_times,
    ttl_ms,
)
from staplegate.ocsp.certid import CertId
from tests.unit.ocsp.ocsp_pki import NOW, Pki, sign_response

CERT_ID = CertId("sha1", b"\x01" * 20, b"\x02" * 20, 0x1234)


def test_keys_and_channel_name_the_certid() -> None:
    assert staple_key(CERT_ID) == f"staplegate:staple:{CERT_ID.hex}"
    assert lease_key(CERT_ID) == f"staplegate:lease:{CERT_ID.hex}"
    assert CHANNEL == "staplegate:staples"


def test_scripts_compare_the_token_before_touching_the_lease() -> None:
    for script in (RENEW_SCRIPT, RELEASE_SCRIPT):
        assert "redis.call('get', KEYS[1]) == ARGV[1]" in script


def test_messages_are_certid_hex_and_origin_or_nothing() -> None:
    assert parse_message(announcement(CERT_ID, "0a1b").encode()) == (CERT_ID.hex, "0a1b")
    assert parse_message(CERT_ID.hex.upper()) == (CERT_ID.hex, None)  # written by hand
    junk: list[object] = [b"", b"\xff\xfe", "not hex at all", 42, None, "ab" * 500, b"0" * 39]
    junk += [f"{CERT_ID.hex} x y", f"{CERT_ID.hex} not-hex", f"{CERT_ID.hex} {'a' * 65}"]
    for message in junk:
        assert parse_message(message) is None


@given(st.binary(max_size=300))
def test_staple_times_never_raise_on_untrusted_bytes(data: bytes) -> None:
    staple_times(data)  # returns None for garbage; must not raise


def test_staple_times_read_a_real_response(pki: Pki) -> None:
    der = sign_response(
        certificate=pki.ec_ca.leaf,
        issuer=pki.ec_ca.certificate,
        signer=pki.ec_ca.signer,
        this_update=NOW,
        next_update=NOW + dt.timedelta(hours=2),
    )
    times = staple_times(der)
    assert times is not None
    assert (times.this_update, times.next_update) == (NOW, NOW + dt.timedelta(hours=2))
    assert staple_times(der[:-40]) is None


@pytest.mark.parametrize(
    ("next_update", "expected"),
    [(NOW + dt.timedelta(seconds=90), 90_000), (NOW, None), (NOW - dt.timedelta(1), None)],
)
def test_ttl_runs_until_next_update(next_update: dt.datetime, expected: int | None) -> None:
    assert ttl_ms(next_update, NOW) == expected
