"""The certificate value types: key types as HAProxy names them, and no DER in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519

from staplegate.certs.model import KeyAlgorithm, KeyType, OcspFile


def test_key_types_print_as_haproxys_algorithm_names() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    assert KeyType.of(rsa_key) == KeyType(KeyAlgorithm.RSA, bits=2048)
    assert KeyType.of(rsa_key).haproxy_name == "RSA2048"
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert KeyType.of(p256) == KeyType(KeyAlgorithm.ECDSA, bits=256, curve="secp256r1")
    assert KeyType.of(p256).haproxy_name == "EC256"
    dsa_key = dsa.generate_private_key(key_size=2048).public_key()
    assert KeyType.of(dsa_key).haproxy_name == "DSA2048"
    assert KeyType.of(ed25519.Ed25519PrivateKey.generate().public_key()).haproxy_name == "ED25519"
    assert KeyType.of(ed448.Ed448PrivateKey.generate().public_key()).haproxy_name == "ED448"


def test_a_key_that_cannot_sign_a_certificate_is_refused() -> None:
    with pytest.raises(TypeError, match="unsupported certificate key type"):
        KeyType.of(x25519.X25519PrivateKey.generate().public_key())


def test_an_ocsp_file_repr_shows_its_size_not_its_bytes() -> None:
    sidecar = OcspFile(Path("/etc/ssl/site.pem.ocsp"), b"\x30\x82" + b"\x00" * 98)
    assert repr(sidecar) == "OcspFile(path='/etc/ssl/site.pem.ocsp', 100 bytes)"
