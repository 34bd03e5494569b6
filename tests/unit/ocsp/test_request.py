"""build_request / http_request_for against the spec's synthetic example (Appendix A)."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from hypothesis import given
from hypothesis import strategies as st

from staplegate import __version__
from staplegate.fetch.client import USER_AGENT
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.request import (
    HttpMethod,
    OcspUriError,
    UriProblem,
    build_request,
    get_url,
    http_request_for,
)

# Appendix A: CA "Example Test CA", leaf serial 0x0A1B2C3D.
EXAMPLE_CERT_ID = CertId(
    hash_algorithm="sha1",
    issuer_name_hash=bytes.fromhex("8762C9C5611139AB8766F02AE4ED5040F6D65BEB"),
    issuer_key_hash=bytes.fromhex("2EB538D213BD6F7EABAEBF95BCEDE5340529803A"),
    serial_number=0x0A1B2C3D,
)
EXAMPLE_KEY = (
    "303d300906052b0e03021a050004148762c9c5611139ab8766f02ae4ed5040f6d65beb04142eb538d213bd"
    "6f7eabaebf95bcede5340529803a02040a1b2c3d"
)
EXAMPLE_REQUEST_B64 = (
    "MEUwQzBBMD8wPTAJBgUrDgMCGgUABBSHYsnFYRE5q4dm8Crk7VBA9tZb6wQULrU40"
    "hO9b36rrr+VvO3lNAUpgDoCBAobLD0="
)
EXAMPLE_GET_URL = (
    "http://ocsp.example.test/MEUwQzBBMD8wPTAJBgUrDgMCGgUABBSHYsnFYRE5q4dm8Crk7VBA9tZb6wQULrU40"
    "hO9b36rrr%2BVvO3lNAUpgDoCBAobLD0%3D"
)
UA = f"staplegate/{__version__}"


def test_request_der_matches_the_spec_example() -> None:
    der = build_request(EXAMPLE_CERT_ID)
    assert len(der) == 71
    assert base64.b64encode(der).decode() == EXAMPLE_REQUEST_B64
    assert EXAMPLE_CERT_ID.hex == EXAMPLE_KEY
    parsed = ocsp.load_der_ocsp_request(der)
    assert isinstance(parsed.hash_algorithm, hashes.SHA1)
    assert list(parsed.extensions) == []  # no nonce


def test_get_url_and_headers_match_the_spec_example() -> None:
    request = http_request_for(
        "http://ocsp.example.test", base64.b64decode(EXAMPLE_REQUEST_B64), user_agent=USER_AGENT
    )
    assert request.method is HttpMethod.GET
    assert request.url == EXAMPLE_GET_URL
    assert request.headers == (
        ("Host", "ocsp.example.test"),
        ("Accept", "*/*"),
        ("User-Agent", UA),
    )
    assert request.body == b""
    assert request.host == "ocsp.example.test"


def test_slash_is_appended_even_after_a_trailing_slash() -> None:
    der = build_request(EXAMPLE_CERT_ID)
    assert get_url("http://ocsp.example.test/", der).startswith("http://ocsp.example.test//MEUw")


def test_host_keeps_the_port_as_written_and_drops_user_info() -> None:
    der = build_request(EXAMPLE_CERT_ID)
    assert (
        http_request_for("http://127.0.0.1:8080/ocsp", der, user_agent=USER_AGENT).host
        == "127.0.0.1:8080"
    )
    assert (
        http_request_for("https://u:p@[::1]:8443", der, user_agent=USER_AGENT).host == "[::1]:8443"
    )


def test_get_post_boundary_is_haproxys_255_rule() -> None:
    der = build_request(EXAMPLE_CERT_ID)  # 71 bytes
    prefix = "http://ocsp.example.test/"
    just_get = prefix + "a" * (254 - len(der) - len(prefix))
    just_post = just_get + "a"
    assert len(der) + len(just_get) == 254
    assert http_request_for(just_get, der, user_agent=USER_AGENT).method is HttpMethod.GET
    post = http_request_for(just_post, der, user_agent=USER_AGENT)
    assert post.method is HttpMethod.POST
    assert post.url == just_post
    assert post.body == der
    assert post.headers == (
        ("Content-Type", "application/ocsp-request"),
        ("Host", "ocsp.example.test"),
        ("Accept", "*/*"),
        ("User-Agent", UA),
    )


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", UriProblem.EMPTY),
        ("ldap://ocsp.example.test", UriProblem.UNSUPPORTED_SCHEME),
        ("ocsp.example.test", UriProblem.UNSUPPORTED_SCHEME),
        ("http:///path", UriProblem.NO_HOST),
    ],
)
def test_unusable_uris_say_why(uri: str, reason: UriProblem) -> None:
    with pytest.raises(OcspUriError) as caught:
        http_request_for(uri, build_request(EXAMPLE_CERT_ID), user_agent=USER_AGENT)
    assert caught.value.reason is reason
    assert "AIA" in str(caught.value)


@given(st.binary(min_size=1, max_size=200))
def test_get_url_is_unreserved_characters_and_decodes_back(der: bytes) -> None:
    url = get_url("http://h", der)
    tail = url.removeprefix("http://h/")
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%")
    assert set(tail) <= allowed
    assert "%2b" not in tail  # uppercase hex
    assert base64.b64decode(unquote(tail)) == der
