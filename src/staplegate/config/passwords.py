"""`userlist` passwords: which crypt(3) hash a `password` line carries, and checking one.

HAProxy hands a `password` to the C library's crypt(3), so what it accepts depends on the
libc; the hashes written in practice are SHA-512 (`$6$`, `mkpasswd -m sha-512`), SHA-256
(`$5$`), MD5 (`$1$`) and bcrypt (`$2a$`/`$2b$`/`$2y$`). staplegate verifies exactly these
through libpass (the maintained fork of passlib; Python's own `crypt` module is deprecated
and gone in 3.13) and the `bcrypt` package, and the parser refuses any other hash with the
line's location: a password that can never match would lock every user out silently.
libpass computes the SHA-crypt family in pure Python (~3 ms at the default 5,000 rounds),
which is why the data plane caches verdicts (`proxy.basic_auth`). This is the only module
importing passlib (tests/test_import_rules.py).
"""

from __future__ import annotations

import hmac
from typing import Any, Final

from passlib.hash import bcrypt, md5_crypt, sha256_crypt, sha512_crypt

from staplegate.config.model import PasswordScheme

_HANDLERS: Final[dict[PasswordScheme, Any]] = {
    PasswordScheme.MD5_CRYPT: md5_crypt,
    PasswordScheme.BCRYPT: bcrypt,
    PasswordScheme.SHA256_CRYPT: sha256_crypt,
    PasswordScheme.SHA512_CRYPT: sha512_crypt,
}

#: what the parser's message lists
SUPPORTED_HASHES = "SHA-512 ($6$), SHA-256 ($5$), MD5 ($1$) and bcrypt ($2a$, $2b$, $2y$)"


def hash_scheme(text: str) -> PasswordScheme | None:
    """The scheme of a crypt(3) string, or None when it is not one staplegate verifies
    (another scheme such as yescrypt `$y$` or DES, or a malformed hash)."""
    for scheme, handler in _HANDLERS.items():
        if text.startswith(scheme.value):
            try:
                parsed = handler.from_string(text)
            except (ValueError, TypeError):
                return None
            return scheme if parsed.checksum else None  # `$6$salt` alone matches nothing
    return None


def password_matches(scheme: PasswordScheme, secret: str, password: bytes) -> bool:
    """True when `password` (as the client sent it) is the user's; never raises on the
    client's bytes (a password bcrypt cannot take, over 72 bytes, simply does not match)."""
    if scheme is PasswordScheme.INSECURE:
        return hmac.compare_digest(secret.encode("utf-8", "surrogateescape"), password)
    try:
        return bool(_HANDLERS[scheme].verify(password, secret))
    except (ValueError, TypeError):
        return False
