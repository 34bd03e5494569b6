"""Turn a runtime-API connection's byte stream into commands (pure: no I/O, no clock).

Theory of operation (HAProxy's CLI framing, docs/reference/runtime-api.md). The client sends lines.
A line holds one or more commands separated by `;`; words are separated by spaces or tabs, and a
backslash makes the next character literal (`\\;`, `\\ `). A line whose last word is `<<` starts a
payload: the following lines, up to the first empty one, are attached to the last command of that
line. `Framer.feed()` takes bytes as they arrive, in any chunking, and returns one `Request` per
complete line (with its payload); what is incomplete waits for more bytes. A line, or a payload,
longer than the caps is answered with `TooLong` and the framer stops: the server answers and closes,
because it cannot know where the next command starts.

A payload is read only for a command that takes one and that the socket's level allows:
otherwise the `<<` line is answered at once (`PayloadRefused`: `Permission denied`, or the
usage text) and the framer stops before a byte of the payload is buffered, so a low-level
client can make the server hold no more than one line. A payload accumulates as bytes, not
as a list of line strings (a megabyte of short lines would otherwise cost tens of megabytes).

`parse_words()` maps a command's words to a `Command` (a known command name, its arguments
and payload) or a `UsageError` for unknown commands; per-command argument checks and the
HAProxy answers belong to handlers.py. Access levels (`config.model.StatsLevel`) are declared
here with each command so the handlers, the help text and the tests read the same table.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from staplegate.config.model import StatsLevel

#: Longest command line accepted (HAProxy's default buffer is 16 KiB).
MAX_LINE = 16 * 1024
#: Longest payload accepted: a PEM bundle with a long chain fits many times over.
MAX_PAYLOAD = 1024 * 1024
PAYLOAD_MARK = "<<"


class CommandName(enum.Enum):
    HELP = "help"
    PROMPT = "prompt"
    QUIT = "quit"
    SHOW_INFO = "show info"
    SHOW_STAT = "show stat"
    SHOW_SERVERS_STATE = "show servers state"
    DISABLE_SERVER = "disable server"
    ENABLE_SERVER = "enable server"
    SET_SERVER = "set server"
    SHOW_SSL_CERT = "show ssl cert"
    SHOW_SSL_CRT_LIST = "show ssl crt-list"
    NEW_SSL_CERT = "new ssl cert"
    SET_SSL_CERT = "set ssl cert"
    COMMIT_SSL_CERT = "commit ssl cert"
    ABORT_SSL_CERT = "abort ssl cert"
    DEL_SSL_CERT = "del ssl cert"
    SHOW_SSL_OCSP_RESPONSE = "show ssl ocsp-response"
    SET_SSL_OCSP_RESPONSE = "set ssl ocsp-response"
    UPDATE_SSL_OCSP_RESPONSE = "update ssl ocsp-response"
    SHOW_SSL_OCSP_UPDATES = "show ssl ocsp-updates"
    SHOW_SSL_CRL_WATCH = "show ssl crl-watch"
    UPDATE_SSL_CRL = "update ssl crl"
    RELOAD = "reload"
    SHOW_RELOAD = "show reload"


@dataclass(frozen=True)
class CommandSpec:
    """One command: its words, the level it needs, and its help line."""

    name: CommandName
    level: StatsLevel
    usage: str
    summary: str
    takes_payload: bool = False

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.name.value.split())


#: Every command, in the order `help` lists them. Levels: `user` reads, `operator` may ask
#: for an OCSP update, `admin` changes anything (HAProxy 3.2 does not check OCSP commands;
#: we do, see docs/reference/runtime-api.md).
COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        CommandName.HELP, StatsLevel.USER, "help [<command>]", "list matching or all commands"
    ),
    CommandSpec(
        CommandName.PROMPT, StatsLevel.USER, "prompt", "toggle interactive mode with prompt"
    ),
    CommandSpec(CommandName.QUIT, StatsLevel.USER, "quit", "disconnect"),
    CommandSpec(
        CommandName.SHOW_INFO,
        StatsLevel.USER,
        "show info",
        "report information about the running process",
    ),
    CommandSpec(
        CommandName.SHOW_STAT,
        StatsLevel.USER,
        "show stat",
        "report counters for each proxy and server (CSV)",
    ),
    CommandSpec(
        CommandName.SHOW_SERVERS_STATE,
        StatsLevel.USER,
        "show servers state [<backend>]",
        "dump volatile server information (all or for a single backend)",
    ),
    CommandSpec(
        CommandName.DISABLE_SERVER,
        StatsLevel.ADMIN,
        "disable server (DEPRECATED)",
        "disable a server for maintenance (use 'set server' instead)",
    ),
    CommandSpec(
        CommandName.ENABLE_SERVER,
        StatsLevel.ADMIN,
        "enable server (DEPRECATED)",
        "enable a disabled server (use 'set server' instead)",
    ),
    CommandSpec(
        CommandName.SET_SERVER,
        StatsLevel.ADMIN,
        "set server <bk>/<srv> state ready|drain|maint",
        "change a server's administrative state",
    ),
    CommandSpec(
        CommandName.SHOW_SSL_CERT,
        StatsLevel.USER,
        "show ssl cert [<certfile>]",
        "display the SSL certificates used in memory, or the details of a file",
    ),
    CommandSpec(
        CommandName.SHOW_SSL_CRT_LIST,
        StatsLevel.USER,
        "show ssl crt-list [-n] [<list>]",
        "show the list of crt-lists or the content of a crt-list file <list>",
    ),
    CommandSpec(
        CommandName.NEW_SSL_CERT,
        StatsLevel.ADMIN,
        "new ssl cert <certfile>",
        "create a new certificate file to be used in a crt-list or a directory",
    ),
    CommandSpec(
        CommandName.SET_SSL_CERT,
        StatsLevel.ADMIN,
        "set ssl cert <certfile> <payload>",
        "replace a certificate file",
        takes_payload=True,
    ),
    CommandSpec(
        CommandName.COMMIT_SSL_CERT,
        StatsLevel.ADMIN,
        "commit ssl cert <certfile>",
        "commit a certificate file",
    ),
    CommandSpec(
        CommandName.ABORT_SSL_CERT,
        StatsLevel.ADMIN,
        "abort ssl cert <certfile>",
        "abort a transaction for a certificate file",
    ),
    CommandSpec(
        CommandName.DEL_SSL_CERT,
        StatsLevel.ADMIN,
        "del ssl cert <certfile>",
        "delete an unused certificate file",
    ),
    CommandSpec(
        CommandName.SHOW_SSL_OCSP_RESPONSE,
        StatsLevel.USER,
        "show ssl ocsp-response [[text|base64] <id|path>]",
        "display the IDs of the OCSP tree entries, or the details of one",
    ),
    CommandSpec(
        CommandName.SET_SSL_OCSP_RESPONSE,
        StatsLevel.ADMIN,
        "set ssl ocsp-response <resp|payload>",
        "update a certificate's OCSP response from a base64-encode DER (verified first)",
        takes_payload=True,
    ),
    CommandSpec(
        CommandName.UPDATE_SSL_OCSP_RESPONSE,
        StatsLevel.OPERATOR,
        "update ssl ocsp-response <certfile>",
        "fetch a certificate's OCSP response now and report the outcome",
    ),
    CommandSpec(
        CommandName.SHOW_SSL_OCSP_UPDATES,
        StatsLevel.USER,
        "show ssl ocsp-updates",
        "display information about the next 'ocsp-update' updates",
    ),
    CommandSpec(
        CommandName.SHOW_SSL_CRL_WATCH,
        StatsLevel.USER,
        "show ssl crl-watch",
        "display every watched certificate's CRL verdict (staplegate extension)",
    ),
    CommandSpec(
        CommandName.UPDATE_SSL_CRL,
        StatsLevel.OPERATOR,
        "update ssl crl <url|certfile>",
        "fetch a watched CRL now and report its verdicts (staplegate extension)",
    ),
    CommandSpec(
        CommandName.RELOAD,
        StatsLevel.ADMIN,
        "reload",
        "reload the configuration (as SIGUSR2) and report the outcome",
    ),
    CommandSpec(
        CommandName.SHOW_RELOAD,
        StatsLevel.USER,
        "show reload",
        "report the outcome of the last reload",
    ),
)

SPECS: dict[CommandName, CommandSpec] = {spec.name: spec for spec in COMMANDS}
_BY_LENGTH = sorted(COMMANDS, key=lambda spec: len(spec.words), reverse=True)


@dataclass(frozen=True)
class Command:
    """A recognised command: its name, the words after the command words, its payload."""

    name: CommandName
    args: tuple[str, ...] = ()
    payload: str | None = None

    @property
    def spec(self) -> CommandSpec:
        return SPECS[self.name]


@dataclass(frozen=True)
class UsageError:
    """Words that name no command; `words` is never empty."""

    words: tuple[str, ...]

    @property
    def message(self) -> str:
        return f"Unknown command: '{self.words[0]}'"


@dataclass(frozen=True)
class Request:
    """One line: its commands in order (possibly none: an empty line)."""

    commands: tuple[Command | UsageError, ...]


@dataclass(frozen=True)
class TooLong:
    """A line or payload exceeded its cap; the connection cannot be resynchronised."""

    what: str
    limit: int

    @property
    def message(self) -> str:
        return (
            f"Command {self.what} too long: the runtime API accepts at most {self.limit} bytes "
            f"per {self.what}; use a payload (`<command> <<`) for long data."
        )


@dataclass(frozen=True)
class PayloadRefused:
    """A `<<` line whose payload will not be read: its last command takes no payload, names
    no command, or needs a higher level than the socket's. The line's commands are answered
    without a payload (the refusal says why) and the connection is closed."""

    request: Request


Event = Request | TooLong | PayloadRefused


#: One token of a command line: an escaped character, a trailing lone backslash (dropped),
#: a run of plain characters, a run of blanks, or a `;`. Runs, not characters: a 16 KiB line
#: costs a few objects, not sixteen thousand.
_TOKEN = re.compile(r"\\(.)|\\\Z|([^ \t;\\]+)|([ \t]+)|(;)", re.DOTALL)


def split_line(line: str) -> list[list[str]]:
    """Split one line into commands (`;`) and words (spaces, tabs), honouring `\\` escapes."""
    commands: list[list[str]] = []
    words: list[str] = []
    word: list[str] = []
    for match in _TOKEN.finditer(line):
        escaped, plain, blank, semicolon = match.groups()
        text = escaped if escaped is not None else plain
        if text is not None:
            word.append(text)
            continue
        if blank is None and semicolon is None:
            continue  # a lone backslash at the end of the line escapes nothing
        if word:
            words.append("".join(word))
            word = []
        if semicolon is not None:
            commands.append(words)
            words = []
    if word:
        words.append("".join(word))
    commands.append(words)
    return [c for c in commands if c]


def parse_words(
    words: list[str] | tuple[str, ...], payload: str | None = None
) -> Command | UsageError:
    """Map one command's words to a `Command` (longest matching command words) or an error."""
    words = tuple(words)
    for spec in _BY_LENGTH:
        count = len(spec.words)
        if words[:count] == spec.words:
            return Command(spec.name, words[count:], payload)
    return UsageError(words or ("",))


def parse_line(line: str, payload: str | None = None) -> Request:
    """The commands of one line; a payload belongs to the line's last command."""
    groups = split_line(line)
    commands: list[Command | UsageError] = []
    for index, words in enumerate(groups):
        last = index == len(groups) - 1
        commands.append(parse_words(words, payload if last else None))
    return Request(tuple(commands))


def _payload_head(line: str) -> str | None:
    """The line without its trailing ` <<` when it starts a payload, else None."""
    stripped = line.rstrip(" \t")
    if stripped == PAYLOAD_MARK:
        return ""
    if stripped.endswith(PAYLOAD_MARK) and stripped[-3] in " \t" and not _escaped_at(stripped, -3):
        return stripped[:-2]
    return None


def _escaped_at(text: str, index: int) -> bool:
    """True when the character at `index` is preceded by an odd run of backslashes."""
    position = len(text) + index if index < 0 else index
    count = 0
    while position - 1 - count >= 0 and text[position - 1 - count] == "\\":
        count += 1
    return count % 2 == 1


@dataclass
class Framer:
    """Incremental splitter of one connection's bytes into `Request`s (see module docstring).

    `level` is the socket's: a payload is buffered only for a command it may run.
    """

    max_line: int = MAX_LINE
    max_payload: int = MAX_PAYLOAD
    level: StatsLevel = StatsLevel.ADMIN
    _buffer: bytearray = field(default_factory=bytearray)
    _head: str | None = None  # the command line waiting for its payload
    _payload: bytearray = field(default_factory=bytearray)
    broken: bool = False

    def feed(self, data: bytes) -> list[Event]:
        """Take more bytes; return the events for every line they complete."""
        if self.broken:
            return []
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        start = 0  # lines are sliced from a cursor; the consumed prefix is dropped once
        while True:
            newline = buffer.find(b"\n", start)
            if newline < 0:
                break
            raw = bytes(buffer[start:newline])
            start = newline + 1
            event = self._line(raw)
            if event is not None:
                events.append(event)
            if self.broken:
                return events
        del buffer[:start]
        pending = len(buffer) - buffer.endswith(b"\r")  # a final CR may belong to the CRLF
        if self._head is None and pending > self.max_line:
            events.append(self._break("line", self.max_line))
        elif self._head is not None and len(self._payload) + pending > self.max_payload:
            events.append(self._break("payload", self.max_payload))
        return events

    def eof(self) -> list[Event]:
        """The client closed its side: a final line without newline still counts."""
        if self.broken:
            return []
        events: list[Event] = []
        if self._buffer:
            raw = bytes(self._buffer)
            self._buffer.clear()
            event = self._line(raw)
            if event is not None:
                events.append(event)
        if self._head is not None and not self.broken:  # never terminated: run what arrived
            events.append(self._finish_payload())
        return events

    def _line(self, raw: bytes) -> Event | None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if self._head is not None:
            if not raw:
                return self._finish_payload()
            self._payload += raw
            self._payload += b"\n"
            if len(self._payload) > self.max_payload:
                return self._break("payload", self.max_payload)
            return None
        if len(raw) > self.max_line:
            return self._break("line", self.max_line)
        line = _decode(raw)
        head = _payload_head(line)
        if head is None:
            return parse_line(line)
        request = parse_line(head)
        if not self._payload_allowed(request):
            self._break("payload", self.max_payload)
            return PayloadRefused(request)
        self._head = head
        self._payload = bytearray()
        return None

    def _payload_allowed(self, request: Request) -> bool:
        """Whether the line's last command may receive a payload on this socket."""
        if not request.commands:
            return False
        last = request.commands[-1]
        if not isinstance(last, Command):
            return False
        return last.spec.takes_payload and last.spec.level <= self.level

    def _finish_payload(self) -> Request:
        head, payload_bytes = self._head or "", self._payload
        del payload_bytes[-1:]  # the last line's newline is not part of the payload
        self._head, self._payload = None, bytearray()
        payload = payload_bytes.decode("utf-8", errors="replace")
        return parse_line(head, payload)

    def _break(self, what: str, limit: int) -> TooLong:
        self.broken = True
        self._buffer.clear()
        self._head, self._payload = None, bytearray()
        return TooLong(what, limit)


def _decode(raw: bytes) -> str:
    # Commands are ASCII; anything else is kept visible rather than failing the connection.
    return raw.decode("utf-8", errors="replace")
