"""Fuzz target: the runtime API's pure grammar (`runtime/grammar.py`) and the client's answer
parser (`runtime/textparse.py`).

One input is a connection's bytes. Checks, besides "nothing raises" (the grammar has no
exception of its own: bad input becomes a `UsageError`, `TooLong` or `PayloadRefused` event):
- chunking does not matter: the bytes fed whole and fed in small pieces give the same events;
- a payload is never handed over for a command the socket's level may not run, nor over the
  cap; nothing follows a `TooLong` or `PayloadRefused` (the connection cannot resynchronise);
- words survive a round trip: a line's words, re-escaped and split again, are the same words;
- `split_line` (a regex tokenizer) agrees with a plain character-by-character reference;
- `parse_answer` turns any answer text into JSON-ready data for every `show` command.
"""

from __future__ import annotations

import json

from staplegate.config.model import StatsLevel
from staplegate.runtime.grammar import (
    Command,
    Framer,
    PayloadRefused,
    Request,
    TooLong,
    UsageError,
    split_line,
)
from staplegate.runtime.textparse import parse_answer
from tests.fuzz_targets import Disagreement

NAME = "runtime_grammar"

#: Small caps so short inputs reach them.
MAX_LINE = 96
MAX_PAYLOAD = 256

SHOW_COMMANDS = (
    "show info",
    "show stat",
    "show servers state",
    "show ssl ocsp-updates",
    "show ssl ocsp-response",
    "show ssl ocsp-response text 3030",
    "show ssl cert",
    "show ssl cert /x.pem",
    "show ssl crt-list",
    "help",
)


def seeds() -> list[bytes]:
    return [
        b"show info\n",
        b"prompt\nshow stat\nquit\n",
        b"show servers state be_app; show servers state nope\r\n",
        b"help \\<<\nset server be\\;x/s1 state maint\n",
        b"set ssl cert /a.pem <<\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\n",
        b"set ssl ocsp-response <<\nMIIB\r\nAAAA\n\r\nshow info\n",
        b"show info <<\nx\n\n",
        b"\x00\xff\xfe<<\n\n;;\\\\ \t\\",
        b"Name: staplegate\nPid: 12\n",
        b'# pxname,svname,status,\nfe,FRONTEND,OPEN,\nbe,s1,"UP, 1",\n',
        b"1\n# be_id be_name srv_id srv_name\n3 be_app 1 app1\n",
        b"Certificate Path | Section | Next Update\n/x.pem | - | 2026\n",
        b"# Certificate IDs\nCertificate ID key : 3030\n  Certificate path : /x.pem\n",
        b"# transaction\n*/x.pem\n# filename\n/x.pem\n",
        b"# /etc/crt.lst\n/x.pem:2 [alpn h2] www.example.test !*.example.test\n",
    ]


def run_one(data: bytes) -> None:
    level = StatsLevel(data[0] % 3 + 1) if data else StatsLevel.USER
    whole = _frame(data, level, [len(data) or 1])
    pieces = _frame(data, level, [1 + (byte % 7) for byte in data[:64]] or [1])
    if whole != pieces:
        raise Disagreement(f"chunking changed the events: {whole!r} != {pieces!r}")
    _check_events(whole, level)
    text = data.decode("utf-8", errors="replace")
    for line in text.splitlines()[:8]:
        _check_words(line)
    for command in SHOW_COMMANDS:
        json.dumps(parse_answer(command, text))


def _frame(data: bytes, level: StatsLevel, sizes: list[int]) -> list[object]:
    framer = Framer(max_line=MAX_LINE, max_payload=MAX_PAYLOAD, level=level)
    events: list[object] = []
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        events += framer.feed(data[position : position + size])
        position += size
        index += 1
    events += framer.eof()
    return events


def _check_events(events: list[object], level: StatsLevel) -> None:
    for index, event in enumerate(events):
        if isinstance(event, TooLong | PayloadRefused) and index != len(events) - 1:
            raise Disagreement(f"events after the framer stopped: {events[index:]!r}")
        if isinstance(event, TooLong):
            continue
        request = event.request if isinstance(event, PayloadRefused) else event
        if not isinstance(request, Request):
            raise Disagreement(f"unexpected event {event!r}")
        for command in request.commands:
            if isinstance(command, UsageError):
                if not command.words or not command.message:
                    raise Disagreement(f"empty usage error {command!r}")
                continue
            if not isinstance(command, Command):
                raise Disagreement(f"unexpected command {command!r}")
            if command.payload is None:
                continue
            if isinstance(event, PayloadRefused):
                raise Disagreement(f"a refused payload was handed over: {command!r}")
            if command.spec.level > level or not command.spec.takes_payload:
                raise Disagreement(f"payload handed over at level {level.name}: {command!r}")
            if len(command.payload.encode("utf-8", errors="replace")) > MAX_PAYLOAD * 3:
                raise Disagreement(f"payload over the cap: {len(command.payload)} characters")


def _check_words(line: str) -> None:
    groups = split_line(line)
    reference = _reference_split_line(line)
    if groups != reference:
        raise Disagreement(f"split_line({line!r}) = {groups!r}, reference {reference!r}")
    for words in groups:
        if not words or "" in words:
            raise Disagreement(f"an empty command or word from {line!r}")
    rebuilt = "; ".join(" ".join(_escape(word) for word in words) for words in groups)
    again = split_line(rebuilt)
    if again != groups:
        raise Disagreement(f"words changed in a round trip: {groups!r} -> {again!r}")


def _escape(word: str) -> str:
    return "".join("\\" + char if char in " \t;\\" else char for char in word)


def _reference_split_line(line: str) -> list[list[str]]:
    """HAProxy's CLI word splitting, one character at a time (the grammar's first version)."""
    commands: list[list[str]] = []
    words: list[str] = []
    word: list[str] = []
    in_word = escaped = False
    for char in line:
        if escaped:
            word.append(char)
            in_word, escaped = True, False
        elif char == "\\":
            escaped = True
        elif char in " \t;":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            if char == ";":
                commands.append(words)
                words = []
        else:
            word.append(char)
            in_word = True
    if in_word:
        words.append("".join(word))
    commands.append(words)
    return [c for c in commands if c]
