"""The openssl.cnf of a test CA: paths kept verbatim, the OCSP URI only when there is one."""

from __future__ import annotations

from pathlib import Path

from staplegate.testpki.openssl_cnf import render_openssl_cnf


def test_the_directory_and_the_ocsp_uri_are_escaped_for_openssls_parser() -> None:
    text = render_openssl_cnf(Path("/srv/ca $1\\x"), ocsp_url="http://ocsp.test/$x")
    assert "dir = /srv/ca \\$1\\\\x\n" in text  # `$` would expand, `\` would escape
    assert "authorityInfoAccess = OCSP;URI:http://ocsp.test/\\$x\n" in text


def test_without_a_responder_no_certificate_names_one() -> None:
    text = render_openssl_cnf(Path("/srv/ca"), ocsp_url=None, default_days=30, digest="sha384")
    assert "authorityInfoAccess" not in text
    assert "default_days = 30" in text
    assert "default_md = sha384" in text
    for section in ("[ server_cert ]", "[ server_cert_must_staple ]", "[ ocsp_signer ]"):
        assert section in text
