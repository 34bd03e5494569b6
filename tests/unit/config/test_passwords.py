"""crypt(3) hashes of `userlist` passwords: recognised, verified, and refused."""

from __future__ import annotations

import pytest
from passlib.hash import bcrypt, md5_crypt, sha256_crypt, sha512_crypt

from staplegate.config.model import PasswordScheme
from staplegate.config.passwords import hash_scheme, password_matches


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        (sha512_crypt.using(rounds=5000).hash("pw"), PasswordScheme.SHA512_CRYPT),
        (sha256_crypt.using(rounds=5000).hash("pw"), PasswordScheme.SHA256_CRYPT),
        (md5_crypt.hash("pw"), PasswordScheme.MD5_CRYPT),
        (bcrypt.using(ident="2y", rounds=4).hash("pw"), PasswordScheme.BCRYPT),
        (bcrypt.using(ident="2b", rounds=4).hash("pw"), PasswordScheme.BCRYPT),
    ],
)
def test_each_scheme_verifies_its_password(text: str, scheme: PasswordScheme) -> None:
    assert hash_scheme(text) is scheme
    assert password_matches(scheme, text, b"pw")
    assert not password_matches(scheme, text, b"pW")
    assert not password_matches(scheme, text, b"")
    assert not password_matches(scheme, text, b"\xff\xfe" * 50)  # never raises


def test_mkpasswd_output_from_the_corpus_style_is_read() -> None:
    # `mkpasswd -m sha-512 password1`, as HAProxy users paste it
    text = (
        "$6$yMgsow58.g/Z$mBjHfdVzqcF/LN.iwV23Eyqg.yGPTsp9pOwaStsJ6c4I4zL7BhucVVAkv5guf7OVRr8Pw0m"
        "HF4NrWBRCG5ci7/"
    )
    assert hash_scheme(text) is PasswordScheme.SHA512_CRYPT
    assert password_matches(PasswordScheme.SHA512_CRYPT, text, b"password1")


@pytest.mark.parametrize(
    "text",
    ["$y$j9T$salt$hash", "abcdefghijklm", "$6$saltonly", "$6$", "$1$", "$2y$99$x", "", "pw"],
)
def test_other_or_malformed_hashes_are_not_accepted(text: str) -> None:
    assert hash_scheme(text) is None


def test_clear_text_passwords_compare_exactly() -> None:
    assert password_matches(PasswordScheme.INSECURE, "s3cret", b"s3cret")
    assert not password_matches(PasswordScheme.INSECURE, "s3cret", b"s3cret ")
    assert password_matches(PasswordScheme.INSECURE, "pässword", "pässword".encode())
