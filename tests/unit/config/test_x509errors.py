"""`ca-ignore-err`/`crt-ignore-err` lists: numbers, OpenSSL names, `all`, and what is refused."""

from __future__ import annotations

import pytest

from staplegate.config.model import IGNORE_ALL_ERRORS
from staplegate.config.x509errors import MAX_ERROR_CODE, X509_V_ERRORS, parse_ignore_errors


def test_numbers_names_and_all_mix() -> None:
    parsed = parse_ignore_errors("10,X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,all")
    assert parsed == frozenset({10, 18, IGNORE_ALL_ERRORS})
    assert parse_ignore_errors(str(MAX_ERROR_CODE)) == frozenset({MAX_ERROR_CODE})
    assert parse_ignore_errors("X509_V_ERR_CERT_HAS_EXPIRED") == frozenset({10})


@pytest.mark.parametrize("text", ["0", str(MAX_ERROR_CODE + 1), "-1", "X509_V_ERR_NOPE", "", "1,"])
def test_the_first_word_that_is_not_a_code_is_named(text: str) -> None:
    message = parse_ignore_errors(text)
    assert isinstance(message, str)
    assert message.startswith("unknown verify error '")
    assert f"a number from 1 to {MAX_ERROR_CODE}" in message


def test_the_table_is_openssls_numbering() -> None:
    # spot checks against x509_vfy.h: a shifted table would ignore the wrong failures
    assert X509_V_ERRORS["X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"] == 20
    assert X509_V_ERRORS["X509_V_ERR_CERT_REVOKED"] == 23
    assert X509_V_ERRORS["X509_V_ERR_HOSTNAME_MISMATCH"] == 62
    assert len(set(X509_V_ERRORS.values())) == len(X509_V_ERRORS)
    assert all(0 < code <= MAX_ERROR_CODE for code in X509_V_ERRORS.values())
