"""Drive the parser: files in order, lines to the keyword registry of their section.

Theory of operation: `ConfigParser.feed()` is called once per file, in order, like HAProxy's
`-f` list; each file starts outside any section. A line is looked up in its section's
keyword table (`global_section`, `proxies`, `crt_store`): a keyword with a handler is read by it
(supported keywords update immutable settings with `dataclasses.replace`); a family handler
(`option <name>`) takes the rest of its family; anything else is classified from the table
into a warning (ignored) or an error (refused or unknown). Nothing is raised: every problem
becomes a diagnostic and parsing continues, so one run reports them all. `finish()` returns a
`ParsedConfig`; the semantic pass (`semantic.py`) merges defaults and checks references.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.lexer import lex
from staplegate.config.model import CrtStore, Defaults
from staplegate.config.parser.conditional import ConditionalBlocks, ConditionError
from staplegate.config.parser.crt_store import CRT_STORE, open_crt_store
from staplegate.config.parser.global_section import GLOBAL
from staplegate.config.parser.proxies import PROXY, open_proxy
from staplegate.config.parser.registry import (
    KeywordClass,
    KeywordTable,
    Section,
    ignored,
    keyword_of,
    refused_all,
    supported,
)
from staplegate.config.parser.state import Handler, ParsedConfig, ParserState
from staplegate.config.parser.userlist import (
    USERLIST,
    check_references,
    close_userlist,
    open_userlist,
)
from staplegate.config.samples import forget_compiled

_TABLES: dict[Section, KeywordTable[Handler]] = {
    Section.GLOBAL: GLOBAL,
    Section.DEFAULTS: PROXY,
    Section.FRONTEND: PROXY,
    Section.BACKEND: PROXY,
    Section.LISTEN: PROXY,
    Section.CRT_STORE: CRT_STORE,
    Section.USERLIST: USERLIST,
}

_NO_USE = "staplegate supports none of the keywords that could use it"
_BLOCK_DIRECTIVES = frozenset((".if", ".elif", ".else", ".endif"))
_MESSAGES = frozenset((".notice", ".warning", ".alert", ".diag"))

# the section keywords: the ones staplegate reads, and HAProxy's others, whose only uses are
# keywords staplegate refuses anyway (ignored), or that would change traffic (refused)
SECTIONS: KeywordTable[None] = KeywordTable(
    [
        *(supported(section.value) for section in Section),
        *(
            ignored(name, _NO_USE)
            for name in (
                "peers",
                "resolvers",
                "mailers",
                "program",
                "http-errors",
                "ring",
                "cache",
                "fcgi-app",
                "traces",
                "acme",
            )
        ),
        *refused_all(["log-forward"]),
    ]
)


class ConfigParser:
    """Feeds files in order and accumulates a ParsedConfig; see the module docstring."""

    def __init__(
        self, *, env: Mapping[str, str], read_file: Callable[[str], str] | None = None
    ) -> None:
        """`read_file` reads the pattern files of `acl … -f FILE` (the loader's I/O)."""
        forget_compiled()  # each reading reads its map files again (a reload sees edits)
        self._env = env
        self._state = ParserState()
        if read_file is not None:
            self._state.read_pattern_file = read_file

    def feed(self, text: str, *, file: str) -> None:
        """Parse one file; sections never continue across files (HAProxy's rule)."""
        state = self._state
        state.files.append(file)
        result = lex(text, file=file, env=self._env)
        state.sink.extend(result.diagnostics)
        blocks = ConditionalBlocks(self._env)
        last = SourceLocation(file, 0)
        for line in result.lines:
            args = list(line.args)
            where = last = SourceLocation(file, line.number)
            head = args[0]
            if head in _BLOCK_DIRECTIVES:
                try:
                    blocks.directive(head, args[1:])
                except ConditionError as error:
                    state.error(where, head, str(error), Reason.SYNTAX)
                continue
            if not blocks.active:
                continue
            if head in _MESSAGES:
                self._message(head, args[1:], where)
                continue
            self._line(args, where)
        if blocks.open_blocks:
            state.error(last, ".if", "missing '.endif' at the end of the file.", Reason.SYNTAX)
        self._close_section()

    def _message(self, head: str, words: list[str], where: SourceLocation) -> None:
        """`.warning`/`.alert` speak as HAProxy does (an alert is fatal); `.notice` and
        `.diag` say nothing staplegate reports."""
        text = " ".join(words)
        if head == ".warning":
            self._state.warn(where, head, text, Reason.IGNORED)
        elif head == ".alert":
            self._state.error(where, head, text, Reason.INVALID_VALUE)

    def finish(self) -> ParsedConfig:
        self._close_section()
        state = self._state
        check_references(state)
        return ParsedConfig(
            state.global_,
            tuple(state.defaults),
            tuple(state.proxies),
            tuple(state.stores),
            tuple(state.files),
            state.sink.snapshot(),
            tuple(state.userlists.values()),
        )

    def _close_section(self) -> None:
        state = self._state
        if state.proxy is not None:
            state.proxies.append(state.proxy.build())
            state.proxy = None
        if state.defaults_builder is not None:
            b = state.defaults_builder
            defaults = Defaults(b.location, b.name, b.settings)
            state.defaults.append(defaults)
            state.last_defaults = defaults
            state.defaults_builder = None
        if state.store is not None:
            s = state.store
            state.stores.append(
                CrtStore(s.location, s.name, s.crt_base, s.key_base, tuple(s.loads))
            )
            state.store = None
        close_userlist(state)
        state.section = None
        state.ignored_section = False

    def _line(self, args: list[str], where: SourceLocation) -> None:
        state = self._state
        head = args[0]
        section_entry = SECTIONS.get(head)
        if section_entry is not None:
            self._close_section()
            self._open_section(section_entry.name, args, where)
            return
        if head.startswith("."):
            state.error(
                where,
                head,
                f"unknown directive '{head}' (staplegate knows .if, .elif, .else, .endif, "
                ".notice, .warning, .alert and .diag)",
                Reason.UNSUPPORTED,
            )
            return
        if state.ignored_section:
            return
        section = state.section
        if section is None:
            state.error(
                where, head, f"unknown keyword '{head}' out of section.", Reason.UNKNOWN_KEYWORD
            )
            return
        table = _TABLES[section]
        entry = table.get(keyword_of(args))
        if entry is not None and entry.handler is not None:
            entry.handler(state, args, where)
            return
        family = table.families.get(head)
        if family is not None:
            family(state, args, where)
            return
        state.classify_rest(section, table, args, where)

    def _open_section(self, head: str, args: list[str], where: SourceLocation) -> None:
        state = self._state
        entry = SECTIONS.get(head)
        assert entry is not None
        if entry.kind is not KeywordClass.SUPPORTED:
            if entry.kind is KeywordClass.REFUSED:
                state.error(
                    where,
                    head,
                    f"'{head}' sections are not supported by staplegate and would change traffic",
                    Reason.UNSUPPORTED,
                )
            else:
                state.warn(where, head, f"'{head}' section is ignored: {entry.reason}")
            state.ignored_section = True
            return
        section = Section(head)
        state.section = section
        if section is Section.CRT_STORE:
            open_crt_store(state, args, where)
        elif section is Section.USERLIST:
            open_userlist(state, args, where)
        elif section is not Section.GLOBAL:
            open_proxy(state, args, where)


def parse_texts(texts: Sequence[tuple[str, str]], *, env: Mapping[str, str]) -> ParsedConfig:
    """Parse (file name, text) pairs in order; the pure entry point used by tests."""
    parser = ConfigParser(env=env)
    for file, text in texts:
        parser.feed(text, file=file)
    return parser.finish()
