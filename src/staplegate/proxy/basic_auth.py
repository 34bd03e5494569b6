"""HTTP Basic credentials checked against a `userlist` (`http_auth`, `http_auth_group`).

The request's first `Authorization: Basic <base64(user:password)>` header is decoded (bad
base64, no colon, a user name that is not UTF-8: no credentials, never an exception) and
the user's password checked by `config.passwords`. A crypt(3) hash costs milliseconds in
pure Python (SHA-512 at 5,000 rounds ~3 ms, bcrypt cost 10 ~60 ms) and a page with two
ACLs asks twice per request, so each worker keeps the last `VERDICT_CACHE_SIZE` verdicts
for hashed passwords, keyed by the list (one generation's object), the user and a SHA-256
digest of the password (the password itself is not kept). Clear-text passwords
(`insecure-password`) are compared at once, uncached. The cache is bounded; a client trying
a new password on every request still pays one hash per try, as it does with HAProxy.
"""

from __future__ import annotations

import binascii
import collections
import hashlib
from typing import Final

from staplegate.config.model import PasswordScheme, Userlist, UserlistRef
from staplegate.config.passwords import password_matches
from staplegate.proxy.http_request import RequestHead

#: verdicts a worker remembers for hashed passwords (oldest dropped first)
VERDICT_CACHE_SIZE: Final = 1024

_Key = tuple[Userlist, str, bytes]
_verdicts: collections.OrderedDict[_Key, bool] = collections.OrderedDict()


def basic_credentials(head: RequestHead | None) -> tuple[str, bytes] | None:
    """(user, password) from the first Authorization header, when it is Basic."""
    if head is None:
        return None
    for name, value in head.headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, token = value.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = binascii.a2b_base64(token.strip(), strict_mode=True)
        except binascii.Error:
            return None
        user, colon, password = decoded.partition(b":")
        if not colon:
            return None
        try:
            return user.decode("utf-8"), password
        except UnicodeDecodeError:
            return None
    return None


def authenticated_user(ref: UserlistRef | None, head: RequestHead | None) -> str | None:
    """The user the request's Basic credentials authenticate in the list, or None."""
    userlist = ref.userlist if ref is not None else None
    credentials = basic_credentials(head) if userlist is not None else None
    if credentials is None or userlist is None:
        return None
    name, password = credentials
    user = userlist.users.get(name)
    if user is None or user.scheme is None:
        return None
    if user.scheme is PasswordScheme.INSECURE:
        return name if password_matches(user.scheme, user.secret, password) else None
    key = (userlist, name, hashlib.sha256(password).digest())
    verdict = _verdicts.get(key)
    if verdict is None:
        verdict = password_matches(user.scheme, user.secret, password)
        _verdicts[key] = verdict
        if len(_verdicts) > VERDICT_CACHE_SIZE:
            _verdicts.popitem(last=False)
    else:
        _verdicts.move_to_end(key)
    return name if verdict else None


def cached_verdicts() -> int:
    """How many verdicts this process holds (for tests and the cache's bound)."""
    return len(_verdicts)
