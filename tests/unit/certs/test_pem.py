"""parse_pem: block splitting by label, in file order, without leaking key material."""

from __future__ import annotations

import pytest

from staplegate.certs.pem import PemError, PemErrorKind, parse_pem

from .certs_pki import PASSPHRASE, Pki, bundle

# What `openssl ecparam -name prime256v1 -genkey` writes before the key.
EC_PARAMETERS = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"


def test_blocks_in_file_order(pki: Pki) -> None:
    data = bundle(
        pki.intermediate.cert_pem(),
        EC_PARAMETERS,
        pki.ecdsa_leaf.key_pem(),
        pki.ecdsa_leaf.cert_pem(),
    )
    pem = parse_pem(data)
    assert pem.certificates == (pki.intermediate.cert, pki.ecdsa_leaf.cert)
    assert len(pem.keys) == 1
    assert pem.has_dh_params is False  # EC parameters are not DH parameters
    assert pem.ignored == ()


def test_crlf_line_endings(pki: Pki) -> None:
    data = bundle(pki.ecdsa_leaf.cert_pem(), pki.ecdsa_leaf.key_pem()).replace(b"\n", b"\r\n")
    pem = parse_pem(data)
    assert pem.certificates == (pki.ecdsa_leaf.cert,)
    assert len(pem.keys) == 1


def test_repr_shows_counts_not_keys(pki: Pki) -> None:
    pem = parse_pem(bundle(pki.ecdsa_leaf.cert_pem(), pki.ecdsa_leaf.key_pem()))
    assert repr(pem) == ("PemContents(certificates=1, keys=1, has_dh_params=False, ignored=())")


def test_encrypted_key_is_reported_by_kind(pki: Pki) -> None:
    with pytest.raises(PemError) as caught:
        parse_pem(pki.ecdsa_leaf.key_pem(PASSPHRASE))
    assert caught.value.kind is PemErrorKind.ENCRYPTED_KEY
    assert caught.value.detail == "PEM block 1 ('ENCRYPTED PRIVATE KEY')"


def test_damaged_key_block_does_not_echo_its_content() -> None:
    block = b"-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----\n"
    with pytest.raises(PemError) as caught:
        parse_pem(block)
    assert caught.value.kind is PemErrorKind.BAD_KEY
    assert "U0VDUkVU" not in str(caught.value)


def test_no_pem_at_all() -> None:
    with pytest.raises(PemError) as caught:
        parse_pem(b"\x30\x82\x01\x00")
    assert caught.value.kind is PemErrorKind.NO_PEM
