"""Lexer: HAProxy quoting, escapes, comments, environment expansion, positions, round-trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from staplegate.config.diagnostics import Severity
from staplegate.config.lexer import lex, lex_line, quote

ENV = {"HOME_DIR": "/srv/www", "PORTS": "80 443  8443", "EMPTY": ""}


def words(raw: str, env: dict[str, str] | None = None) -> list[str]:
    found, problems = lex_line(raw, file="t.cfg", number=1, env=ENV if env is None else env)
    assert problems == ()
    return [w.text for w in found]


def test_spaces_and_tabs_separate_words() -> None:
    assert words("  bind\t:443   ssl ") == ["bind", ":443", "ssl"]


def test_hash_starts_a_comment_outside_quotes_only() -> None:
    assert words("log global # trailing") == ["log", "global"]
    assert words("a \"b # c\" 'd#e' f\\#g") == ["a", "b # c", "d#e", "f#g"]
    assert words("word#comment") == ["word"]


def test_double_quotes_keep_spaces_and_honour_escapes() -> None:
    assert words('x "a b\\tc\\"d"') == ["x", 'a b\tc"d']


def test_single_quotes_are_literal() -> None:
    assert words("x 'a\\tb $HOME_DIR ${HOME_DIR}'") == ["x", "a\\tb $HOME_DIR ${HOME_DIR}"]


def test_adjacent_pieces_concatenate() -> None:
    assert words("\"a b\"'c d'e\\ f") == ["a bc de f"]


def test_backslash_escapes() -> None:
    assert words(r"a\ b \\ \' \" \$ \x41\x7a \n") == ["a b", "\\", "'", '"', "$", "Az", "\n"]


def test_unknown_escape_is_kept_for_regexes() -> None:
    assert words(r"^\d+\.example$") == ["^\\d+\\.example$"]


def test_environment_in_double_quotes_and_bare_words() -> None:
    assert words('crt-base "${HOME_DIR}/certs" $HOME_DIR ${HOME_DIR}x') == [
        "crt-base",
        "/srv/www/certs",
        "/srv/www",
        "/srv/wwwx",
    ]


def test_environment_default_and_split() -> None:
    assert words("${MISSING-127.0.0.1}:514") == ["127.0.0.1:514"]
    assert words("bind ${PORTS[*]}") == ["bind", "80", "443", "8443"]


def test_unset_variable_drops_a_bare_word_but_keeps_a_quoted_one() -> None:
    assert words("a $MISSING b") == ["a", "b"]
    assert words('a "$EMPTY" b') == ["a", "", "b"]


def test_lone_dollar_is_literal() -> None:
    assert words("cost $5 $") == ["cost", "$5", "$"]


def test_columns_and_lines_are_kept() -> None:
    result = lex("global\n\n  # comment\n    maxconn  100\n", file="f.cfg", env={})
    assert [(line.number, line.args) for line in result.lines] == [
        (1, ("global",)),
        (4, ("maxconn", "100")),
    ]
    second = result.lines[1].words[1]
    assert (second.file, second.line, second.column) == ("f.cfg", 4, 14)


def test_unmatched_quote_is_an_error_with_position() -> None:
    result = lex('ok\nbind ":443\n', file="f.cfg", env={})
    assert [line.args for line in result.lines] == [("ok",)]
    (problem,) = result.diagnostics
    assert problem.severity is Severity.ERROR
    assert (problem.file, problem.line) == ("f.cfg", 2)
    assert str(problem) == "[ALERT] config : parsing [f.cfg:2] : unmatched quote at position 11"


def test_bad_hex_escape_and_brace_are_errors() -> None:
    _, bad_hex = lex_line(r"a\x4", file="f", number=3, env={})
    assert bad_hex[0].message == "truncated or invalid hexadecimal sequence at position 2"
    _, brace = lex_line("a ${NAME", file="f", number=4, env={})
    assert brace[0].message == "unmatched brace in environment variable name at position 3"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_lexer_never_crashes(raw: str) -> None:
    result = lex(raw, file="fuzz.cfg", env=ENV)
    for line in result.lines:
        assert line.words
    for problem in result.diagnostics:
        assert problem.severity is Severity.ERROR


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), max_size=8))
def test_quote_round_trips(items: list[str]) -> None:
    found, problems = lex_line(quote(items), file="rt.cfg", number=1, env=ENV)
    assert problems == ()
    assert [w.text for w in found] == items


def test_a_bare_crypt_hash_is_kept_as_written() -> None:
    """`user … password $6$salt$hash`: HAProxy keeps bare words; staplegate, which expands
    bare variables, keeps a word shaped as a crypt(3) string whatever the environment."""
    env = {"salt": "X", "HOME": "/root", "y": "Y"}
    result = lex("user a password $6$salt$hash.x/ $y$j9T$a$b $HOME\n", file="t", env=env)
    assert result.lines[0].args == (
        "user",
        "a",
        "password",
        "$6$salt$hash.x/",
        "$y$j9T$a$b",
        "/root",
    )
    assert lex('x "$HOME$y"\n', file="t", env=env).lines[0].args == ("x", "/rootY")
