"""The keyword registry: each keyword a section module knows, its class and its handler.

A keyword HAProxy accepts but staplegate does not implement is either *ignored* (it cannot
change what clients or servers see: process management, logging cosmetics, tuning) and gets
a warning, or *refused* (it would change traffic) and gets an error. A keyword with a handler
is parsed (an ignored one with a handler is read, stored where useful, then warned about).
Anything not in a table is unknown, with a difflib suggestion taken from every keyword of
that table. Adding a keyword is one entry in its section module's table.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

H = TypeVar("H")


class Section(enum.Enum):
    GLOBAL = "global"
    DEFAULTS = "defaults"
    FRONTEND = "frontend"
    BACKEND = "backend"
    LISTEN = "listen"
    CRT_STORE = "crt-store"
    USERLIST = "userlist"


PROXY_SECTIONS = frozenset({Section.DEFAULTS, Section.FRONTEND, Section.BACKEND, Section.LISTEN})

# keywords whose second word is part of the keyword (`timeout client`, `option httplog`)
TWO_WORD_HEADS = frozenset(
    {
        "stats",
        "timeout",
        "option",
        "http-request",
        "http-response",
        "http-after-response",
        "tcp-request",
        "tcp-response",
        "email-alert",
        "capture",
        "stick",
        "monitor",
        "external-check",
    }
)


class KeywordClass(enum.Enum):
    SUPPORTED = "supported"
    IGNORED = "ignored"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Keyword(Generic[H]):
    """One registered keyword: its class, why it is ignored, and who parses it."""

    name: str
    kind: KeywordClass
    handler: H | None = None
    reason: str = ""
    takes_value: bool = False  # option tables (bind, server): the next word is its value
    # values of an otherwise ignored keyword that would change traffic or security: refused
    refused_values: Mapping[str, str] = field(default_factory=dict)

    @property
    def parsed(self) -> bool:
        return self.handler is not None


def supported(name: str, handler: H | None = None, *, takes_value: bool = False) -> Keyword[H]:
    return Keyword(name, KeywordClass.SUPPORTED, handler, takes_value=takes_value)


def ignored(
    name: str,
    reason: str,
    handler: H | None = None,
    *,
    takes_value: bool = False,
    refused_values: Mapping[str, str] | None = None,
) -> Keyword[H]:
    return Keyword(
        name,
        KeywordClass.IGNORED,
        handler,
        reason,
        takes_value,
        refused_values or {},
    )


def refused(name: str, handler: H | None = None, *, takes_value: bool = False) -> Keyword[H]:
    return Keyword(name, KeywordClass.REFUSED, handler, takes_value=takes_value)


def refused_all(names: Iterable[str], *, takes_value: bool = False) -> list[Keyword[H]]:
    return [Keyword(name, KeywordClass.REFUSED, takes_value=takes_value) for name in names]


class KeywordTable(Generic[H]):
    """The keywords of one section family (or one option list), by name.

    `families` are handlers for a first word whose second word the handler reads itself
    (`option <name>`, `http-request <action>`): they take a line no keyword handler took.
    `ignored_prefixes` turns unknown keywords with a prefix (`tune.`) into warnings.
    """

    def __init__(
        self,
        entries: Iterable[Keyword[H]],
        *,
        families: Mapping[str, H] | None = None,
        ignored_prefixes: Mapping[str, str] | None = None,
    ) -> None:
        self._entries: dict[str, Keyword[H]] = {}
        for entry in entries:
            if entry.name in self._entries:
                raise ValueError(f"keyword '{entry.name}' is registered twice")
            self._entries[entry.name] = entry
        self.families: Mapping[str, H] = families or {}
        self.ignored_prefixes: Mapping[str, str] = ignored_prefixes or {}

    def get(self, name: str) -> Keyword[H] | None:
        return self._entries.get(name)

    def __iter__(self) -> Iterator[Keyword[H]]:
        return iter(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def classify(self, name: str) -> KeywordClass:
        entry = self._entries.get(name)
        return entry.kind if entry is not None else KeywordClass.UNKNOWN

    def names(self) -> frozenset[str]:
        """Every keyword of the table: the candidates for a typo suggestion."""
        return frozenset(self._entries)

    def of_kind(self, kind: KeywordClass) -> frozenset[str]:
        return frozenset(e.name for e in self._entries.values() if e.kind is kind)

    def parsed(self) -> frozenset[str]:
        """Keywords a handler reads (supported, or ignored after reading their value)."""
        return frozenset(e.name for e in self._entries.values() if e.parsed)

    def reasons(self, *, parsed: bool | None = None) -> dict[str, str]:
        """Ignored keywords with their reasons; `parsed` selects read or unread ones."""
        return {
            e.name: e.reason
            for e in self._entries.values()
            if e.kind is KeywordClass.IGNORED and (parsed is None or e.parsed is parsed)
        }

    def reason(self, name: str) -> str:
        entry = self._entries.get(name)
        return entry.reason if entry is not None and entry.reason else "it does not change traffic"


def keyword_of(args: Sequence[str]) -> str:
    """The (possibly two-word) keyword a line starts with; `no option X` is `option X`."""
    if args[0] == "no" and len(args) > 2 and args[1] == "option":
        return f"option {args[2]}"
    if args[0] in TWO_WORD_HEADS and len(args) > 1:
        return f"{args[0]} {args[1]}"
    return args[0]


def suggest(keyword: str, candidates: frozenset[str] | set[str]) -> str | None:
    """The closest known keyword, if one is close enough to be a likely typo."""
    matches = difflib.get_close_matches(keyword, sorted(candidates), n=1, cutoff=0.7)
    return matches[0] if matches else None


#: HAProxy features staplegate leaves out on purpose (issue 18): a configuration that needs
#: them keeps HAProxy, and `staplegate sidecar` staples its certificates
_OUT_OF_SCOPE = (
    (("lua", "http-request lua.", "http-response lua.", "tcp-request content lua."), "Lua"),
    (("http-request send-spoe-group", "tcp-request content send-spoe-group"), "SPOE"),
    (("stick", "http-request track-sc", "tcp-request content track-sc"), "stick tables"),
    (
        ("tcp-request connection track-sc", "http-request sc-", "tcp-request content sc-"),
        "stick tables",
    ),
    (("resolvers", "server-template"), "DNS resolvers"),
)
_SIDECAR = (
    "; this is out of staplegate's scope ({family}): keep HAProxy for it and run "
    "'staplegate sidecar' beside it for the stapling (docs/how-to/sidecar-haproxy.md)"
)


def refused_message(keyword: str) -> str:
    message = (
        f"'{keyword}' is a HAProxy keyword that staplegate does not support "
        "and it would change traffic"
    )
    for prefixes, family in _OUT_OF_SCOPE:
        if keyword.startswith(prefixes):
            return message + _SIDECAR.format(family=family)
    return message


def ignored_message(keyword: str, reason: str) -> str:
    return (
        f"'{keyword}' is a HAProxy keyword that staplegate does not support "
        f"and it is ignored ({reason})"
    )


def parsed_ignored_message(keyword: str, reason: str) -> str:
    return f"'{keyword}' is accepted but ignored by staplegate ({reason})"


def unknown_message(keyword: str, section: Section, candidates: frozenset[str]) -> str:
    hint = suggest(keyword, candidates)
    suffix = f"; did you mean '{hint}' maybe ?" if hint else "."
    return f"unknown keyword '{keyword}' in '{section.value}' section{suffix}"
