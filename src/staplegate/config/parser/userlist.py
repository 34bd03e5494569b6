"""`userlist` sections: users, their passwords and groups, for `http_auth` conditions.

`group <name> [users <user>,…]` and `user <name> [password <crypt-hash> |
insecure-password <password>] [groups <group>,…]` may come in any order in a section; a
group's users and a user's groups must exist in that section (checked when it ends, with
HAProxy's messages). A `password` is checked here to be a hash staplegate can verify
(`config.passwords`); anything else is an error at its line. No message ever repeats a
password or a hash. Conditions may name a list declared later (HAProxy resolves them once
the configuration is read): `check_references` runs when parsing ends.
"""

from __future__ import annotations

from types import MappingProxyType

from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import PasswordScheme, Userlist, UserlistUser
from staplegate.config.parser.registry import KeywordTable, supported
from staplegate.config.parser.state import Handler, ParserState, UserlistBuilder
from staplegate.config.passwords import SUPPORTED_HASHES, hash_scheme


def open_userlist(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`userlist <name>`: names are unique (HAProxy ignores a second one with a warning;
    staplegate refuses it, since merging or dropping users changes who gets in)."""
    name: str | None = args[1] if len(args) > 1 else None
    if name is None:
        parser.error(
            where, "userlist", "'userlist' expects <name> as argument.", Reason.MISSING_ARGUMENT
        )
    elif not parser.valid_name(name, "userlist", where):
        name = None
    elif name in parser.userlists:
        first = parser.userlists[name]
        parser.error(
            where,
            "userlist",
            f"userlist '{name}' has the same name as another userlist declared at "
            f"{first.location}.",
            Reason.DUPLICATE,
        )
        name = None
    builder = UserlistBuilder(where, name)
    parser.userlist = builder
    if name is not None:  # reserve the name: a later duplicate is reported at once
        parser.userlists[name] = Userlist(where, name, MappingProxyType({}), frozenset())


def _names(value: str) -> tuple[str, ...]:
    return tuple(n for n in value.split(",") if n)


def _group(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    builder = parser.userlist
    assert builder is not None
    if len(args) < 2:
        parser.error(where, "group", "'group' expects <name> as argument.", Reason.SYNTAX)
        return
    name, rest = args[1], args[2:]
    users: tuple[str, ...] = ()
    while rest:
        if rest[0] == "users" and len(rest) >= 2:
            users += _names(rest[1])
            rest = rest[2:]
        else:
            parser.error(where, "group", "'group' only supports 'users' option.", Reason.SYNTAX)
            return
    if name in builder.groups:
        parser.error(
            where,
            "group",
            f"userlist '{builder.name}': duplicated group '{name}' (first declared at "
            f"{builder.groups[name][0]}).",
            Reason.DUPLICATE,
        )
        return
    builder.groups[name] = (where, users)


def _user(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    builder = parser.userlist
    assert builder is not None
    if len(args) < 2:
        parser.error(where, "user", "'user' expects <name> as argument.", Reason.SYNTAX)
        return
    name, rest = args[1], args[2:]
    scheme: PasswordScheme | None = None
    secret = ""
    groups: tuple[str, ...] = ()
    while rest:
        option = rest[0]
        if option in ("password", "insecure-password", "groups") and len(rest) >= 2:
            value = rest[1]
            rest = rest[2:]
        else:
            parser.error(
                where,
                "user",
                "'user' only supports 'password', 'insecure-password' and 'groups' options.",
                Reason.SYNTAX,
            )
            return
        if option == "groups":
            groups += _names(value)
        elif option == "insecure-password":
            scheme, secret = PasswordScheme.INSECURE, value
        else:
            scheme = hash_scheme(value)
            if scheme is None:
                parser.error(
                    where,
                    "user",
                    f"userlist '{builder.name}': the password of user '{name}' is not a "
                    f"crypt(3) hash staplegate can verify (it verifies {SUPPORTED_HASHES}; "
                    "make one with 'mkpasswd -m sha-512'), or it is malformed; "
                    "'insecure-password' takes a clear-text one",
                    Reason.UNSUPPORTED,
                )
                return
            secret = value
    if name in builder.users:
        parser.error(
            where,
            "user",
            f"userlist '{builder.name}': duplicated user '{name}' (first declared at "
            f"{builder.users[name][0]}).",
            Reason.DUPLICATE,
        )
        return
    if scheme is None:
        parser.warn(
            where,
            "user",
            f"userlist '{builder.name}': user '{name}' has no password and can never authenticate.",
            Reason.INVALID_VALUE,
        )
    builder.users[name] = (where, scheme, secret, groups)


def close_userlist(parser: ParserState) -> None:
    """The section ended: check the names its lines refer to, and publish the list."""
    builder = parser.userlist
    parser.userlist = None
    if builder is None:
        return
    memberships: dict[str, set[str]] = {user: set() for user in builder.users}
    for user, (location, _, _, groups) in builder.users.items():
        for group in groups:
            if group not in builder.groups:
                parser.error(
                    location,
                    "user",
                    f"userlist '{builder.name}': unable to find group '{group}' referenced "
                    f"by user '{user}'.",
                    Reason.MISSING_REFERENCE,
                )
            memberships[user].add(group)
    for group, (location, users) in builder.groups.items():
        for user in users:
            if user not in builder.users:
                parser.error(
                    location,
                    "group",
                    f"userlist '{builder.name}': unable to find user '{user}' referenced "
                    f"in group '{group}'.",
                    Reason.MISSING_REFERENCE,
                )
                continue
            memberships[user].add(group)
    if builder.name is None:
        return
    members = {
        user: UserlistUser(user, scheme, secret, frozenset(memberships[user]))
        for user, (_, scheme, secret, _) in builder.users.items()
    }
    parser.userlists[builder.name] = Userlist(
        builder.location, builder.name, MappingProxyType(members), frozenset(builder.groups)
    )


def check_references(parser: ParserState) -> None:
    """Every `http_auth(L)`/`http_auth_group(L) G…` names a declared list (HAProxy's
    message), and each group G one declared in it."""
    for where, keyword, ref, groups in parser.userlist_refs:
        userlist = parser.userlists.get(ref.name)
        if userlist is None:
            parser.error(
                where,
                keyword,
                f"unable to find userlist '{ref.name}' referenced in arg 1 of ACL keyword "
                f"'{keyword}'.",
                Reason.MISSING_REFERENCE,
            )
            continue
        known = {g for user in userlist.users.values() for g in user.groups}
        known.update(userlist.groups)
        for group in groups:
            if group not in known:
                parser.error(
                    where,
                    keyword,
                    f"group '{group}' is not declared in userlist '{ref.name}' "
                    f"(declared at {userlist.location}).",
                    Reason.MISSING_REFERENCE,
                )


# every keyword a userlist section knows
USERLIST: KeywordTable[Handler] = KeywordTable(
    [
        supported("group", _group),
        supported("user", _user),
    ]
)
