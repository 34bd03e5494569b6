"""Split HAProxy configuration text into words, keeping file:line:column for each word.

Theory of operation: HAProxy's quoting (configuration manual §2.2-2.3) is applied one line
at a time by a small character state machine:

- outside quotes, space and tab separate words and an unescaped `#` starts a comment;
- `\\` escapes the next character: `\\ `, `\\#`, `\\\\`, `\\'`, `\\"`, `\\$` give the character,
  `\\n`, `\\r`, `\\t` and `\\xNN` give control characters, any other pair is kept as written
  (so regexes such as `\\d` survive);
- double quotes ("weak") keep spaces, `#` and `'` literal but still honour escapes and
  environment variables;
- single quotes ("strong") keep everything literal up to the next single quote;
- `$NAME`, `${NAME}`, `${NAME-default}` and `${NAME[*]}` expand from the supplied
  environment in bare words and inside double quotes. HAProxy expands only inside double
  quotes; staplegate also expands bare words (documented divergence), except a bare word
  written as a crypt(3) hash (`$6$salt$hash`), kept as written for `userlist`. `[*]` splits the
  value into several words. An unset variable expands to nothing; a bare word made only of
  empty expansions disappears, a quoted one stays as an empty word.

Adjacent quoted and unquoted pieces concatenate (`"a b"'c'd` is one word). Lexing never
raises: problems become diagnostics and the offending line yields no words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from staplegate.config.diagnostics import Diagnostic, Reason, Severity

_SEPARATORS = frozenset(" \t\r\f\v")
_SIMPLE_ESCAPES = {" ": " ", "#": "#", "\\": "\\", "'": "'", '"': '"', "$": "$"}
_CONTROL_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a bare word written as a crypt(3) string (`$6$salt$hash`, `$2y$10$…`, `$y$j9T$…`): kept
# as written, as HAProxy keeps every bare word, so `user … password $6$…` lines survive
_CRYPT_HASH = re.compile(r"\$[A-Za-z0-9]{1,4}\$[A-Za-z0-9./=,$+-]*(?=[ \t\r\f\v]|$)")


@dataclass(frozen=True)
class Word:
    """One configuration word after quoting, escaping and expansion."""

    text: str
    file: str
    line: int
    column: int
    quoted: bool


@dataclass(frozen=True)
class Line:
    """The words of one non-empty configuration line."""

    file: str
    number: int
    words: tuple[Word, ...]

    @property
    def args(self) -> tuple[str, ...]:
        return tuple(word.text for word in self.words)


@dataclass(frozen=True)
class LexResult:
    """Every non-empty line of a text plus the problems met while splitting it."""

    lines: tuple[Line, ...]
    diagnostics: tuple[Diagnostic, ...]


class _LexError(Exception):
    """Internal: abandons the current line; turned into a diagnostic by the caller."""

    def __init__(self, column: int, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


class _WordBuilder:
    """Accumulates the pieces of the word being read and the finished words."""

    def __init__(self, file: str, line: int) -> None:
        self.file = file
        self.line = line
        self.words: list[Word] = []
        self.chars: list[str] = []
        self.started = False
        self.quoted = False
        self.column = 0

    def begin(self, column: int) -> None:
        if not self.started:
            self.started = True
            self.column = column

    def add(self, text: str, column: int) -> None:
        self.begin(column)
        self.chars.append(text)

    def finish(self) -> None:
        if self.started:
            text = "".join(self.chars)
            if text or self.quoted:
                self.words.append(Word(text, self.file, self.line, self.column, self.quoted))
        self.chars = []
        self.started = False
        self.quoted = False


def lex_line(
    raw: str, *, file: str, number: int, env: Mapping[str, str]
) -> tuple[tuple[Word, ...], tuple[Diagnostic, ...]]:
    """Split one line (without its newline) into words, or report why it cannot be."""
    try:
        return _lex_line(raw, file, number, env), ()
    except _LexError as exc:
        message = f"{exc.message} at position {exc.column}"
        return (), (Diagnostic(Severity.ERROR, file, number, "", message, Reason.SYNTAX),)


def lex(text: str, *, file: str, env: Mapping[str, str]) -> LexResult:
    """Split a whole configuration text; blank and comment-only lines are dropped."""
    lines: list[Line] = []
    diagnostics: list[Diagnostic] = []
    for index, raw in enumerate(text.split("\n"), start=1):
        words, problems = lex_line(raw, file=file, number=index, env=env)
        diagnostics.extend(problems)
        if words:
            lines.append(Line(file, index, words))
    return LexResult(tuple(lines), tuple(diagnostics))


def _lex_line(raw: str, file: str, number: int, env: Mapping[str, str]) -> tuple[Word, ...]:
    builder = _WordBuilder(file, number)
    i = 0
    length = len(raw)
    quote: str | None = None
    while i < length:
        char = raw[i]
        column = i + 1
        if quote == "'":
            if char == "'":
                quote = None
            else:
                builder.add(char, column)
            i += 1
            continue
        if char == "\\":
            i = _escape(raw, i, builder)
            continue
        if char == "$":
            crypt = _CRYPT_HASH.match(raw, i) if quote is None and not builder.started else None
            if crypt is not None:  # `$6$salt$hash`: a password hash, never variables
                builder.add(crypt.group(0), column)
                i = crypt.end()
                continue
            i = _expand(raw, i, builder, env, quoted=quote == '"')
            continue
        if quote == '"':
            if char == '"':
                quote = None
            else:
                builder.add(char, column)
            i += 1
            continue
        if char in _SEPARATORS:
            builder.finish()
        elif char == "#":
            break
        elif char in "'\"":
            quote = char
            builder.begin(column)
            builder.quoted = True
        else:
            builder.add(char, column)
        i += 1
    if quote is not None:
        raise _LexError(length + 1, "unmatched quote")
    builder.finish()
    return tuple(builder.words)


def _escape(raw: str, i: int, builder: _WordBuilder) -> int:
    """Handle a backslash at `raw[i]`; returns the index after the escape sequence."""
    column = i + 1
    if i + 1 >= len(raw):
        builder.add("\\", column)
        return i + 1
    nxt = raw[i + 1]
    if nxt in _SIMPLE_ESCAPES:
        builder.add(_SIMPLE_ESCAPES[nxt], column)
        return i + 2
    if nxt in _CONTROL_ESCAPES:
        builder.add(_CONTROL_ESCAPES[nxt], column)
        return i + 2
    if nxt == "x":
        digits = raw[i + 2 : i + 4]
        if len(digits) != 2 or not all(d in _HEX for d in digits):
            raise _LexError(column, "truncated or invalid hexadecimal sequence")
        builder.add(chr(int(digits, 16)), column)
        return i + 4
    builder.add("\\" + nxt, column)
    return i + 2


def _expand(
    raw: str, i: int, builder: _WordBuilder, env: Mapping[str, str], *, quoted: bool
) -> int:
    """Expand an environment variable reference at `raw[i]` (a `$`)."""
    column = i + 1
    split = False
    default: str | None = None
    if raw.startswith("${", i):
        close = raw.find("}", i + 2)
        if close < 0:
            raise _LexError(column, "unmatched brace in environment variable name")
        inner = raw[i + 2 : close]
        match = _ENV_NAME.match(inner)
        if match is None:
            raise _LexError(column, f"invalid environment variable name '{inner}'")
        name = match.group(0)
        rest = inner[match.end() :]
        if rest == "[*]":
            split = True
        elif rest.startswith("-"):
            default = rest[1:]
        elif rest:
            raise _LexError(column, f"invalid environment variable name '{inner}'")
        end = close + 1
    else:
        match = _ENV_NAME.match(raw, i + 1)
        if match is None:
            builder.add("$", column)
            return i + 1
        name = match.group(0)
        end = match.end()
    value = env.get(name)
    if value is None:
        value = default if default is not None else ""
    builder.begin(column)
    if quoted:
        builder.quoted = True
    if not split:
        builder.chars.append(value)
        return end
    pieces = value.split()
    for index, piece in enumerate(pieces):
        if index:
            builder.finish()
            builder.begin(column)
        builder.chars.append(piece)
    return end


def quote_word(word: str) -> str:
    """Return a spelling of `word` that lexes back to exactly `word`, whatever it contains."""
    if word and all(c.isalnum() or c in "-_./:@,=+%" for c in word):
        return word
    out: list[str] = []
    plain: list[str] = []

    def flush() -> None:
        if plain:
            out.append("'" + "".join(plain) + "'")
            plain.clear()

    for char in word:
        if char == "'":
            flush()
            out.append("\\'")
        elif char == "\n":
            flush()
            out.append("\\n")
        else:
            plain.append(char)
    flush()
    return "".join(out) if out else "''"


def quote(words: Iterable[str]) -> str:
    """Join words into one configuration line that lexes back to the same words."""
    return " ".join(quote_word(word) for word in words)
