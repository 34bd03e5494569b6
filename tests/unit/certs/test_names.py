"""Host names of a certificate and HAProxy's one-label wildcard rule."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from staplegate.certs import certificate_names, names_match

from .certs_pki import Pki, issue


@pytest.mark.parametrize(
    ("pattern", "hostname", "expected"),
    [
        ("www.example.test", "www.example.test", True),
        ("www.example.test", "WWW.Example.TEST", True),
        ("www.example.test", "www.example.test.", True),
        ("www.example.test", "example.test", False),
        ("*.example.test", "www.example.test", True),
        ("*.example.test", "API.example.test", True),
        ("*.example.test", "example.test", False),
        ("*.example.test", "x.y.example.test", False),
        ("*.example.test", ".example.test", False),
        ("*.example.test", "wwwexample.test", False),
        ("*.a.b", "a.b", False),
        ("*.a.b", "x.y.a.b", False),
        ("*.a.b", "x.a.b", True),
        ("w*.example.test", "www.example.test", False),  # partial wildcards are literal
        ("w*.example.test", "w*.example.test", True),
        ("", "", False),
        ("*.example.test", "", False),
    ],
)
def test_names_match(pattern: str, hostname: str, expected: bool) -> None:
    assert names_match(pattern, hostname) is expected


def test_names_are_sans_then_cn_without_duplicates(pki: Pki) -> None:
    assert certificate_names(pki.rsa_leaf.cert) == ("www.example.test", "*.example.test")


def test_cn_only_certificate(pki: Pki) -> None:
    assert certificate_names(pki.no_uri_leaf.cert) == ("nouri.example.test",)


def test_cn_not_in_sans_is_kept_last(pki: Pki) -> None:
    cert = issue(
        "legacy.example.test",
        ec.generate_private_key(ec.SECP256R1()),
        issuer=pki.intermediate,
        serial=77,
        dns_names=("a.example.test", "*.b.example.test"),
    ).cert
    assert certificate_names(cert) == ("a.example.test", "*.b.example.test", "legacy.example.test")
