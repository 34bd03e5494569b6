"""The runtime-API grammar: words, `;`, escapes, payloads, partial input, caps (pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from staplegate.config.model import StatsLevel
from staplegate.runtime.grammar import (
    COMMANDS,
    Command,
    CommandName,
    Framer,
    PayloadRefused,
    Request,
    TooLong,
    UsageError,
    parse_line,
    parse_words,
    split_line,
)


def test_words_and_commands_split_on_blanks_and_semicolons() -> None:
    assert split_line("show  info;show\tstat ; ;help") == [
        ["show", "info"],
        ["show", "stat"],
        ["help"],
    ]


def test_backslash_escapes_separators() -> None:
    assert split_line(r"set ssl cert a\;b\ c") == [["set", "ssl", "cert", "a;b c"]]


def test_longest_command_words_win() -> None:
    command = parse_words(["show", "ssl", "ocsp-response", "base64", "abcd"])
    assert command == Command(CommandName.SHOW_SSL_OCSP_RESPONSE, ("base64", "abcd"))
    assert parse_words(["show", "ssl", "ocsp-updates"]) == Command(
        CommandName.SHOW_SSL_OCSP_UPDATES
    )


def test_unknown_command_is_a_usage_error() -> None:
    error = parse_words(["frobnicate", "now"])
    assert isinstance(error, UsageError)
    assert error.message == "Unknown command: 'frobnicate'"


def test_payload_goes_to_the_last_command_of_the_line() -> None:
    request = parse_line("show info; set ssl ocsp-response", "QUJD")
    assert request.commands == (
        Command(CommandName.SHOW_INFO),
        Command(CommandName.SET_SSL_OCSP_RESPONSE, (), "QUJD"),
    )


def test_levels_of_the_ocsp_and_certificate_commands() -> None:
    levels = {spec.name: spec.level for spec in COMMANDS}
    assert levels[CommandName.SHOW_SSL_OCSP_RESPONSE] is StatsLevel.USER
    assert levels[CommandName.SHOW_SSL_CERT] is StatsLevel.USER
    assert levels[CommandName.UPDATE_SSL_OCSP_RESPONSE] is StatsLevel.OPERATOR
    assert levels[CommandName.SET_SSL_OCSP_RESPONSE] is StatsLevel.ADMIN
    assert levels[CommandName.COMMIT_SSL_CERT] is StatsLevel.ADMIN
    assert levels[CommandName.SET_SERVER] is StatsLevel.ADMIN


def test_framer_waits_for_the_newline() -> None:
    framer = Framer()
    assert framer.feed(b"show in") == []
    assert framer.feed(b"fo\r") == []
    assert framer.feed(b"\n") == [Request((Command(CommandName.SHOW_INFO),))]


def test_framer_collects_a_payload_until_the_empty_line() -> None:
    framer = Framer()
    events = framer.feed(b"set ssl cert /a.pem <<\n-----BEGIN X-----\nAAA\n")
    assert events == []
    events = framer.feed(b"-----END X-----\n\nshow info\n")
    assert events == [
        Request(
            (
                Command(
                    CommandName.SET_SSL_CERT,
                    ("/a.pem",),
                    "-----BEGIN X-----\nAAA\n-----END X-----",
                ),
            )
        ),
        Request((Command(CommandName.SHOW_INFO),)),
    ]


def test_escaped_payload_mark_is_a_word() -> None:
    assert Framer().feed(b"help \\<<\n") == [Request((Command(CommandName.HELP, ("<<",)),))]


def test_final_line_without_newline_runs_at_eof() -> None:
    framer = Framer()
    assert framer.feed(b"show stat") == []
    assert framer.eof() == [Request((Command(CommandName.SHOW_STAT),))]


def test_overlong_line_breaks_the_framer() -> None:
    framer = Framer(max_line=32)
    events = framer.feed(b"x" * 33)
    assert events == [TooLong("line", 32)]
    assert "at most 32 bytes" in TooLong("line", 32).message
    assert framer.feed(b"\nshow info\n") == []


def test_overlong_payload_breaks_the_framer() -> None:
    framer = Framer(max_payload=10)
    assert framer.feed(b"set ssl ocsp-response <<\n") == []
    assert framer.feed(b"0123456789ABCDEF\n") == [TooLong("payload", 10)]


def test_payload_for_a_command_above_the_level_is_refused_unread() -> None:
    framer = Framer(level=StatsLevel.USER)
    events = framer.feed(b"show info; set ssl cert /a.pem <<\n-----BEGIN PRIVATE KEY-----\n")
    assert events == [
        PayloadRefused(
            Request(
                (Command(CommandName.SHOW_INFO), Command(CommandName.SET_SSL_CERT, ("/a.pem",)))
            )
        )
    ]
    assert framer.broken
    assert framer.feed(b"more\n\nshow info\n") == []
    assert framer.eof() == []


def test_payload_only_for_commands_that_take_one() -> None:
    for line in (b"show info <<\n", b"frobnicate <<\n", b"<<\n"):
        events = Framer().feed(line + b"data\n\n")
        assert len(events) == 1
        assert isinstance(events[0], PayloadRefused)
    operator = Framer(level=StatsLevel.OPERATOR).feed(b"set ssl ocsp-response <<\n")
    assert operator == [PayloadRefused(Request((Command(CommandName.SET_SSL_OCSP_RESPONSE),)))]
    admin = Framer(level=StatsLevel.ADMIN).feed(b"set ssl ocsp-response <<\nQUJD\r\nREVG\n\r\n")
    assert admin == [Request((Command(CommandName.SET_SSL_OCSP_RESPONSE, (), "QUJD\nREVG"),))]


def test_many_short_payload_lines_in_one_chunk() -> None:
    lines = [f"{n:015d}" for n in range(5000)]
    data = b"set ssl cert /a.pem <<\n" + "".join(f"{x}\n" for x in lines).encode() + b"\n"
    (event,) = Framer().feed(data)
    assert event == Request((Command(CommandName.SET_SSL_CERT, ("/a.pem",), "\n".join(lines)),))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(min_value=1, max_value=64), max_size=20))
def test_framer_never_raises_and_ignores_chunking(data: bytes, cuts: list[int]) -> None:
    whole = Framer(max_line=200, max_payload=300)
    expected = whole.feed(data) + whole.eof()
    pieces = Framer(max_line=200, max_payload=300)
    got = []
    position = 0
    for cut in cuts:
        got += pieces.feed(data[position : position + cut])
        position += cut
    got += pieces.feed(data[position:])
    got += pieces.eof()
    assert got == expected
    for event in got:
        assert isinstance(event, Request | TooLong | PayloadRefused)


@given(st.text(max_size=200))
def test_parse_line_never_raises(line: str) -> None:
    request = parse_line(line)
    for command in request.commands:
        assert isinstance(command, Command | UsageError)
