"""HAProxy's conditional blocks (`.if`, `.elif`, `.else`, `.endif`) and messages
(`.notice`, `.warning`, `.alert`, `.diag`), evaluated while the lines are read.

A condition is HAProxy's expression language: terms joined by `&&` and `||` (`&&` first),
`!` to negate, parentheses, and the predicates `defined(VAR)`, `feature(NAME)`,
`streq(A,B)`, `strneq(A,B)`, `strstr(A,B)`, `version_atleast(V)`, `version_before(V)`,
`openssl_version_atleast(V)`, `openssl_version_before(V)`; a bare word is true unless it
is empty or `0`. staplegate answers as the HAProxy version whose semantics it follows
(`HAPROXY_VERSION`) and with the features it has (`FEATURES`): a block written for QUIC or
Lua is skipped, as on an HAProxy built without them.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

#: the HAProxy version staplegate's configuration semantics follow (DESIGN: 3.2)
HAPROXY_VERSION = "3.2"
#: `feature(NAME)` is true for these (HAProxy's build options that staplegate has)
FEATURES = frozenset({"OPENSSL", "PROMEX", "LINUX_SPLICE"})
_TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!&|]+(?:\([^)]*\))?)")


class ConditionError(ValueError):
    """A condition staplegate cannot read; the message says which part."""


@dataclass
class _Block:
    """One open `.if`: whether its lines are read now, and whether a branch was taken."""

    active: bool
    taken: bool
    parent_active: bool
    seen_else: bool = False


class ConditionalBlocks:
    """The stack of open `.if` blocks of one file."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._stack: list[_Block] = []

    @property
    def active(self) -> bool:
        """Whether ordinary lines are read now."""
        return not self._stack or self._stack[-1].active

    @property
    def open_blocks(self) -> int:
        return len(self._stack)

    def directive(self, head: str, words: list[str]) -> None:
        """Apply `.if/.elif/.else/.endif`; raises ConditionError (message for the line)."""
        if head == ".if":
            parent = self.active
            holds = parent and evaluate(words, self._env)
            self._stack.append(_Block(holds, holds, parent))
            return
        if not self._stack:
            raise ConditionError(f"'{head}' without a matching '.if'.")
        block = self._stack[-1]
        if head == ".endif":
            self._stack.pop()
        elif block.seen_else:
            raise ConditionError(f"'{head}' after '.else' in the same block.")
        elif head == ".elif":
            holds = block.parent_active and not block.taken and evaluate(words, self._env)
            block.active = holds
            block.taken = block.taken or holds
        else:  # .else
            block.seen_else = True
            block.active = block.parent_active and not block.taken
            block.taken = True


def evaluate(words: list[str], env: Mapping[str, str]) -> bool:
    """One `.if` condition's truth; raises ConditionError for what it cannot read."""
    tokens = _TOKEN.findall(" ".join(words))
    if not tokens or "".join(tokens).replace(" ", "") != "".join(words).replace(" ", ""):
        raise ConditionError(f"cannot parse the condition '{' '.join(words)}'.")
    position, value = _or(tokens, 0, env)
    if position != len(tokens):
        raise ConditionError(f"unexpected '{tokens[position]}' in the condition.")
    return value


def _or(tokens: list[str], i: int, env: Mapping[str, str]) -> tuple[int, bool]:
    i, value = _and(tokens, i, env)
    while i < len(tokens) and tokens[i] == "||":
        i, right = _and(tokens, i + 1, env)
        value = value or right
    return i, value


def _and(tokens: list[str], i: int, env: Mapping[str, str]) -> tuple[int, bool]:
    i, value = _unary(tokens, i, env)
    while i < len(tokens) and tokens[i] == "&&":
        i, right = _unary(tokens, i + 1, env)
        value = value and right
    return i, value


def _unary(tokens: list[str], i: int, env: Mapping[str, str]) -> tuple[int, bool]:
    if i >= len(tokens):
        raise ConditionError("the condition ends too early.")
    token = tokens[i]
    if token == "!":
        i, value = _unary(tokens, i + 1, env)
        return i, not value
    if token == "(":
        i, value = _or(tokens, i + 1, env)
        if i >= len(tokens) or tokens[i] != ")":
            raise ConditionError("missing ')' in the condition.")
        return i + 1, value
    return i + 1, _term(token, env)


def _term(token: str, env: Mapping[str, str]) -> bool:
    name, paren, rest = token.partition("(")
    if not paren:
        return token not in ("", "0")
    args = [a.strip() for a in rest[:-1].split(",")] if rest[:-1] else []
    if name == "defined" and len(args) == 1:
        return args[0] in env
    if name == "feature" and len(args) == 1:
        return args[0] in FEATURES
    if name in ("streq", "strneq", "strstr") and len(args) == 2:
        a, b = args
        return {"streq": a == b, "strneq": a != b, "strstr": b in a}[name]
    if name in ("version_atleast", "version_before") and len(args) == 1:
        newer = _version(HAPROXY_VERSION) >= _version(args[0])
        return newer if name == "version_atleast" else not newer
    if name in ("openssl_version_atleast", "openssl_version_before") and len(args) == 1:
        have = ".".join(str(n) for n in ssl.OPENSSL_VERSION_INFO[:3])
        newer = _version(have) >= _version(args[0])
        return newer if name == "openssl_version_atleast" else not newer
    raise ConditionError(f"unknown or malformed predicate '{token}' in the condition.")


def _version(text: str) -> tuple[int, ...]:
    numbers = re.findall(r"[0-9]+", text)
    if not numbers:
        raise ConditionError(f"'{text}' is not a version.")
    return tuple(int(n) for n in numbers)
