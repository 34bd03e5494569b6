"""`userlist` sections: users, groups, password hashes, and the references conditions make."""

from __future__ import annotations

from staplegate.config.model import AclFetch, PasswordScheme
from staplegate.config.parser.dispatch import parse_texts
from tests.unit.config.helpers import BACKEND, A, W, check, errors, warnings

SHA512 = (
    "$6$HJDQ.jgGV2SjZ7u4$JRMwi4.jMigDnzDXyXqEOrONoGFkmS933jLRGgPM.XioPc3kkjM1VOCHa51Ra2BSRJpLN"
    "56xPyxMBqxeZKaMl/"
)

USERS = f"""\
userlist ops
    group admin users alice
    group readonly
    user alice insecure-password s3cret
    user bob password {SHA512} groups readonly
"""

FRONTEND = """\
defaults
    mode http
frontend fe
    bind :80
    acl auth http_auth(ops)
    acl admin http_auth_group(ops) admin readonly
    http-request auth realm Ops unless auth
    http-request deny unless admin
    default_backend app
"""


def test_users_groups_and_schemes() -> None:
    parsed = parse_texts([("t.cfg", USERS)], env={})
    assert parsed.diagnostics == ()
    (userlist,) = parsed.userlists
    assert userlist.name == "ops"
    assert userlist.groups == frozenset({"admin", "readonly"})
    alice, bob = userlist.users["alice"], userlist.users["bob"]
    assert (alice.scheme, alice.groups) == (PasswordScheme.INSECURE, frozenset({"admin"}))
    assert (bob.scheme, bob.groups) == (PasswordScheme.SHA512_CRYPT, frozenset({"readonly"}))
    assert bob.secret == SHA512  # the bare `$6$…` word was not expanded as variables
    assert "s3cret" not in repr(alice)
    assert userlist.in_group("bob", ("readonly", "x"))
    assert not userlist.in_group("alice", ("readonly",))
    assert not userlist.in_group("nobody", ("admin",))


def test_conditions_resolve_the_list_even_when_it_comes_later() -> None:
    config, diags = check(FRONTEND + BACKEND + USERS)
    assert diags == []
    assert config is not None
    rules = config.frontend("fe").http_request_rules
    assert rules[0].action.__class__.__name__ == "HttpAuth"
    condition = rules[1].condition
    assert condition is not None
    (term,) = condition.terms
    assert term.fetch is AclFetch.HTTP_AUTH_GROUP
    assert term.values == ("admin", "readonly")
    assert term.auth is not None
    assert term.auth.userlist is not None
    assert term.auth.userlist.name == "ops"


def test_errors_name_the_line_and_never_the_password() -> None:
    bad_hash = "userlist u\n    user a password $y$j9T$salt$hash\n"
    (message,) = errors(bad_hash)
    assert message.startswith(A.format(2, "userlist 'u': the password of user 'a' is not"))
    assert "$y$" not in message
    assert "salt" not in message
    assert errors("userlist u\n    user a password plaintext\n")[0].startswith(
        A.format(2, "userlist 'u': the password of user 'a'")
    )
    assert errors("userlist u\n    user a insecure-password x groups g\n") == [
        A.format(2, "userlist 'u': unable to find group 'g' referenced by user 'a'.")
    ]
    assert errors("userlist u\n    group g users a,b\n    user a insecure-password x\n") == [
        A.format(2, "userlist 'u': unable to find user 'b' referenced in group 'g'.")
    ]
    assert errors(
        "userlist u\n    user a insecure-password x\n    user a insecure-password y\n"
    ) == [A.format(3, "userlist 'u': duplicated user 'a' (first declared at t.cfg:2).")]
    assert errors("userlist u\n    group g\n    group g\n") == [
        A.format(3, "userlist 'u': duplicated group 'g' (first declared at t.cfg:2).")
    ]
    assert errors("userlist u\nuserlist u\n") == [
        A.format(2, "userlist 'u' has the same name as another userlist declared at t.cfg:1.")
    ]
    assert errors("userlist u\n    user a secret x\n") == [
        A.format(2, "'user' only supports 'password', 'insecure-password' and 'groups' options.")
    ]
    assert errors("userlist u\n    group g members a\n") == [
        A.format(2, "'group' only supports 'users' option.")
    ]
    assert errors("userlist\n") == [A.format(1, "'userlist' expects <name> as argument.")]
    assert warnings("userlist u\n    user a\n") == [
        W.format(2, "userlist 'u': user 'a' has no password and can never authenticate.")
    ]


def test_references_to_missing_lists_and_groups() -> None:
    text = FRONTEND.replace("http_auth(ops)", "http_auth(nope)") + BACKEND + USERS
    assert errors(text) == [
        A.format(
            5, "unable to find userlist 'nope' referenced in arg 1 of ACL keyword 'http_auth'."
        )
    ]
    text = FRONTEND.replace("admin readonly", "admin wheel") + BACKEND + USERS
    assert errors(text) == [
        A.format(6, "group 'wheel' is not declared in userlist 'ops' (declared at t.cfg:13).")
    ]
    flagged = FRONTEND.replace("http_auth(ops)", "http_auth(ops) -i") + BACKEND + USERS
    assert "flag '-i' is not supported" in errors(flagged)[0]
