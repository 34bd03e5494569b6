"""Basic credentials against a userlist: decoding, verdicts, and the bounded cache."""

from __future__ import annotations

import base64
from types import MappingProxyType

import pytest
from passlib.hash import sha512_crypt

from staplegate.config.diagnostics import SourceLocation
from staplegate.config.model import PasswordScheme, Userlist, UserlistRef, UserlistUser
from staplegate.config.passwords import password_matches
from staplegate.proxy import basic_auth
from staplegate.proxy.basic_auth import (
    VERDICT_CACHE_SIZE,
    authenticated_user,
    basic_credentials,
    cached_verdicts,
)
from staplegate.proxy.http_request import RequestHead

HASH = sha512_crypt.using(rounds=1000).hash("hashed-pw")


def userlist() -> Userlist:
    users = {
        "alice": UserlistUser("alice", PasswordScheme.INSECURE, "clear", frozenset({"admin"})),
        "bob": UserlistUser("bob", PasswordScheme.SHA512_CRYPT, HASH, frozenset()),
        "carol": UserlistUser("carol", None, ""),
    }
    return Userlist(SourceLocation("t.cfg", 1), "ops", MappingProxyType(users))


def head(*headers: tuple[bytes, bytes]) -> RequestHead:
    return RequestHead("GET", b"/", "1.1", list(headers), keep_alive=True)


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    return b"Authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def test_credentials_are_read_from_the_first_authorization_header() -> None:
    assert basic_credentials(head(basic("alice", "a:b"))) == ("alice", b"a:b")
    assert basic_credentials(head((b"authorization", b"basic YTpi"))) == ("a", b"b")
    assert basic_credentials(head((b"Authorization", b"Bearer abc"), basic("a", "b"))) is None
    assert basic_credentials(head((b"Authorization", b"Basic !!!"))) is None
    assert (
        basic_credentials(head((b"Authorization", b"Basic " + base64.b64encode(b"nocolon"))))
        is None
    )
    assert (
        basic_credentials(head((b"Authorization", b"Basic " + base64.b64encode(b"\xff:x")))) is None
    )
    assert basic_credentials(head()) is None
    assert basic_credentials(None) is None


def test_users_authenticate_with_their_password_only() -> None:
    ref = UserlistRef("ops", {"ops": userlist()})
    assert authenticated_user(ref, head(basic("alice", "clear"))) == "alice"
    assert authenticated_user(ref, head(basic("alice", "Clear"))) is None
    assert authenticated_user(ref, head(basic("bob", "hashed-pw"))) == "bob"
    assert authenticated_user(ref, head(basic("bob", "clear"))) is None
    assert authenticated_user(ref, head(basic("carol", ""))) is None  # no password: never
    assert authenticated_user(ref, head(basic("dave", "clear"))) is None
    assert authenticated_user(UserlistRef("gone", {}), head(basic("alice", "clear"))) is None


def test_hashed_verdicts_are_cached_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    basic_auth._verdicts.clear()
    ref = UserlistRef("ops", {"ops": userlist()})
    calls: list[bytes] = []

    def counting(scheme: PasswordScheme, secret: str, password: bytes) -> bool:
        calls.append(password)
        return password_matches(scheme, secret, password)

    monkeypatch.setattr(basic_auth, "password_matches", counting)
    for _ in range(3):
        assert authenticated_user(ref, head(basic("bob", "hashed-pw"))) == "bob"
        assert authenticated_user(ref, head(basic("bob", "wrong"))) is None
    assert calls == [b"hashed-pw", b"wrong"]  # one hash per distinct password
    assert all(b"hashed-pw" not in key for key in basic_auth._verdicts)  # digests only
    monkeypatch.setattr(basic_auth, "password_matches", lambda *_: False)
    for index in range(VERDICT_CACHE_SIZE + 10):
        authenticated_user(ref, head(basic("bob", f"try{index}")))
    assert cached_verdicts() == VERDICT_CACHE_SIZE
