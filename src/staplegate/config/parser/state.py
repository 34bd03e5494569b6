"""What every keyword handler shares: the accumulated configuration, diagnostics, readers.

`ParserState` is the parser's memory while files are fed: the global settings, the section
being built, and the diagnostics sink. Handlers (one module per section family) receive it
with the line's words and location; they report problems through `error`/`warn` and never
raise. The shared argument readers (integers, times, names) keep HAProxy's messages in one
place. The parser's output types (`ParsedConfig` and the raw proxies and servers that the
semantic pass merges with their defaults) are defined here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from staplegate.config.diagnostics import Diagnostic, DiagnosticSink, Reason, SourceLocation
from staplegate.config.model import (
    AclTerm,
    Bind,
    CrtStore,
    CrtStoreLoad,
    Defaults,
    GlobalSettings,
    HttpRequestRule,
    MonitorFail,
    PasswordScheme,
    ProxyKind,
    ProxySettings,
    ServerOptions,
    StatsPage,
    TcpContentRule,
    UseBackendRule,
    Userlist,
    UserlistRef,
)
from staplegate.config.parser.registry import (
    TWO_WORD_HEADS,
    KeywordClass,
    KeywordTable,
    Section,
    ignored_message,
    keyword_of,
    parsed_ignored_message,
    refused_message,
    unknown_message,
)
from staplegate.config.values import (
    SocketAddress,
    TimeError,
    TimeParseFailure,
    ValueSyntaxError,
    parse_int,
    parse_time,
)

_NAME_OK = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class RawServer:
    """A `server` line before `default-server` values are applied."""

    location: SourceLocation
    name: str
    address: SocketAddress
    options: ServerOptions


@dataclass(frozen=True)
class RawProxy:
    """A frontend/backend/listen section as written, with the defaults it inherits."""

    location: SourceLocation
    kind: ProxyKind
    name: str
    defaults: Defaults | None
    settings: ProxySettings
    binds: tuple[Bind, ...] = ()
    use_backends: tuple[UseBackendRule, ...] = ()
    http_request_rules: tuple[HttpRequestRule, ...] = ()
    servers: tuple[RawServer, ...] = ()
    stats: StatsPage | None = None
    monitor_fail: tuple[MonitorFail, ...] = ()
    http_response_rules: tuple[HttpRequestRule, ...] = ()
    http_after_response_rules: tuple[HttpRequestRule, ...] = ()
    tcp_content_rules: tuple[TcpContentRule, ...] = ()


@dataclass(frozen=True)
class ParsedConfig:
    """Everything the files said, in order, plus the diagnostics so far."""

    global_: GlobalSettings
    defaults: tuple[Defaults, ...]
    proxies: tuple[RawProxy, ...]
    crt_stores: tuple[CrtStore, ...]
    files: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...] = field(default=())
    userlists: tuple[Userlist, ...] = ()


@dataclass
class ProxyBuilder:
    location: SourceLocation
    kind: ProxyKind
    name: str
    defaults: Defaults | None
    settings: ProxySettings
    binds: list[Bind] = field(default_factory=list)
    use_backends: list[UseBackendRule] = field(default_factory=list)
    rules: list[HttpRequestRule] = field(default_factory=list)
    redirect_rules: list[HttpRequestRule] = field(default_factory=list)  # `redirect` lines
    servers: list[RawServer] = field(default_factory=list)
    acls: dict[str, list[AclTerm]] = field(default_factory=dict)
    stats: StatsPage | None = None
    monitor_fail: list[MonitorFail] = field(default_factory=list)
    response_rules: list[HttpRequestRule] = field(default_factory=list)
    after_response_rules: list[HttpRequestRule] = field(default_factory=list)
    tcp_content_rules: list[TcpContentRule] = field(default_factory=list)

    def build(self) -> RawProxy:
        return RawProxy(
            self.location,
            self.kind,
            self.name,
            self.defaults,
            self.settings,
            tuple(self.binds),
            tuple(self.use_backends),
            (*self.rules, *self.redirect_rules),
            tuple(self.servers),
            self.stats,
            tuple(self.monitor_fail),
            tuple(self.response_rules),
            tuple(self.after_response_rules),
            tuple(self.tcp_content_rules),
        )


@dataclass
class DefaultsBuilder:
    location: SourceLocation
    name: str | None
    settings: ProxySettings
    acls: dict[str, list[AclTerm]] = field(default_factory=dict)


@dataclass
class UserlistBuilder:
    """A `userlist` section being read: users in order, groups with the users they name,
    and where each was declared (the checks at the section's end name those lines)."""

    location: SourceLocation
    name: str | None  # None: a duplicate or bad name (its lines are still checked)
    users: dict[str, tuple[SourceLocation, PasswordScheme | None, str, tuple[str, ...]]] = field(
        default_factory=dict
    )
    groups: dict[str, tuple[SourceLocation, tuple[str, ...]]] = field(default_factory=dict)


@dataclass
class StoreBuilder:
    location: SourceLocation
    name: str | None
    crt_base: str | None = None
    key_base: str | None = None
    loads: list[CrtStoreLoad] = field(default_factory=list)


def field_change(name: str, value: object) -> dict[str, Any]:
    """A one-field `replace()` change set for a field chosen at run time."""
    return {name: value}


def _no_pattern_files(path: str) -> str:
    raise OSError(f"no file access while parsing (cannot read '{path}')")


class ParserState:
    """The parser's memory across lines and files; see the module docstring."""

    def __init__(self) -> None:
        self.sink = DiagnosticSink()
        self.global_ = GlobalSettings()
        self.defaults: list[Defaults] = []
        self.last_defaults: Defaults | None = None
        self.proxies: list[RawProxy] = []
        self.stores: list[CrtStore] = []
        #: every crt-store entry so far by its `@store/name`, the first definition
        self.store_entries: dict[str, CrtStoreLoad] = {}
        self.files: list[str] = []
        self.section: Section | None = None
        self.ignored_section = False
        self.proxy: ProxyBuilder | None = None
        self.defaults_builder: DefaultsBuilder | None = None
        self.store: StoreBuilder | None = None
        self.userlist: UserlistBuilder | None = None
        # every `userlist` by name; conditions hold references into it (`UserlistRef`),
        # checked when parsing ends since HAProxy lets a list follow its first use
        self.userlists: dict[str, Userlist] = {}
        self.userlist_refs: list[tuple[SourceLocation, str, UserlistRef, tuple[str, ...]]] = []
        # `acl … -f FILE` reads through this (the loader's; the parser itself does no I/O)
        self.read_pattern_file: Callable[[str], str] = _no_pattern_files

    # ---------------------------------------------------------------- diagnostics
    def error(
        self, where: SourceLocation, kw: str, msg: str, reason: Reason = Reason.INVALID_VALUE
    ) -> None:
        self.sink.error(where, kw, msg, reason)

    def warn(
        self, where: SourceLocation, kw: str, msg: str, reason: Reason = Reason.IGNORED
    ) -> None:
        self.sink.warning(where, kw, msg, reason)

    def note_parsed_but_ignored(
        self, where: SourceLocation, kw: str, table: KeywordTable[Any]
    ) -> None:
        """The warning for a keyword that was read (its value checked) but changes nothing."""
        self.warn(where, kw, parsed_ignored_message(kw, table.reason(kw)))

    def classify_rest(
        self, section: Section, table: KeywordTable[Any], args: list[str], where: SourceLocation
    ) -> None:
        """A line no handler took: its keyword is ignored, refused or unknown in `table`."""
        kw = keyword_of(args)
        cls = table.classify(kw)
        if cls is KeywordClass.UNKNOWN and kw != args[0]:
            first = table.classify(args[0])
            if first is not KeywordClass.UNKNOWN:
                kw, cls = args[0], first
        if cls is KeywordClass.UNKNOWN:
            for prefix, reason in table.ignored_prefixes.items():
                if kw.startswith(prefix):
                    self.warn(where, kw, ignored_message(kw, reason))
                    return
        entry = table.get(kw)
        value = args[1] if len(args) > 1 else ""
        refused_value = entry.refused_values.get(value) if entry is not None else None
        if cls is KeywordClass.IGNORED and refused_value is not None:
            self.error(
                where,
                kw,
                refused_message(f"{kw} {args[1]}") + f" ({refused_value})",
                Reason.UNSUPPORTED,
            )
        elif cls is KeywordClass.IGNORED:
            self.warn(where, kw, ignored_message(kw, table.reason(kw)))
        elif cls is KeywordClass.REFUSED or cls is KeywordClass.SUPPORTED:
            self.error(where, kw, refused_message(kw), Reason.UNSUPPORTED)
        else:
            name = args[0] if args[0] not in TWO_WORD_HEADS else kw
            if args[0] == "option" and len(args) > 1:
                self.error(where, kw, f"unknown option '{args[1]}'.", Reason.UNKNOWN_KEYWORD)
                return
            self.error(
                where,
                name,
                unknown_message(name, section, table.names()),
                Reason.UNKNOWN_KEYWORD,
            )

    # ---------------------------------------------------------------- the proxy being built
    @property
    def proxy_settings(self) -> ProxySettings:
        if self.defaults_builder is not None:
            return self.defaults_builder.settings
        if self.proxy is not None:
            return self.proxy.settings
        return ProxySettings()

    def set_proxy_settings(self, settings: ProxySettings) -> None:
        if self.defaults_builder is not None:
            self.defaults_builder.settings = settings
        elif self.proxy is not None:
            self.proxy.settings = settings

    @property
    def acls(self) -> dict[str, list[AclTerm]]:
        if self.defaults_builder is not None:
            return self.defaults_builder.acls
        if self.proxy is not None:
            return self.proxy.acls
        return {}

    def has_cap(self, section: Section, *, frontend: bool, kw: str, where: SourceLocation) -> bool:
        """Whether `section` may hold a frontend (or backend) keyword; warns when not."""
        if section in (Section.LISTEN, Section.DEFAULTS):
            return True
        if frontend and section is Section.BACKEND:
            missing = "frontend"
        elif not frontend and section is Section.FRONTEND:
            missing = "backend"
        else:
            return True
        name = self.proxy.name if self.proxy is not None else ""
        self.warn(
            where,
            kw,
            f"'{kw}' ignored because {section.value} '{name}' has no {missing} capability.",
            Reason.IGNORED,
        )
        return False

    # ---------------------------------------------------------------- shared readers
    def valid_name(self, name: str, head: str, where: SourceLocation) -> bool:
        if _NAME_OK.fullmatch(name):
            return True
        if not name:  # `backend ""`: HAProxy's message for a missing name
            self.error(where, head, f"'{head}' expects an <id> argument", Reason.MISSING_ARGUMENT)
            return False
        bad = next(c for c in name if not _NAME_OK.fullmatch(c))
        self.error(
            where,
            head,
            f"character '{bad}' is not permitted in '{head}' name '{name}'.",
            Reason.SYNTAX,
        )
        return False

    def int_arg(
        self,
        kw: str,
        value: str | None,
        where: SourceLocation,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        if value is None:
            self.error(where, kw, f"'{kw}' expects an integer argument.", Reason.MISSING_ARGUMENT)
            return None
        try:
            return parse_int(value, minimum=minimum, maximum=maximum)
        except ValueSyntaxError as exc:
            self.error(where, kw, f"'{kw}' expects an integer argument ({exc.message}).")
            return None

    def time_arg(
        self, kw: str, value: str | None, where: SourceLocation, *, label: str | None = None
    ) -> int | None:
        label = label or kw
        if value is None:
            self.error(
                where,
                kw,
                f"'{label}' expects an integer value (in milliseconds)",
                Reason.MISSING_ARGUMENT,
            )
            return None
        result = parse_time(value)
        if isinstance(result, TimeParseFailure):
            if result.error is TimeError.OVERFLOW:
                msg = (
                    f"timer overflow in argument '{value}' to '{label}' (maximum value is "
                    "2147483647 ms or ~24.8 days)"
                )
            elif result.error is TimeError.UNDERFLOW:
                msg = (
                    f"timer underflow in argument '{value}' to '{label}' (minimum non-null "
                    "value is 1 ms)"
                )
            else:
                msg = f"unexpected character '{result.character}' in '{label}'"
            self.error(where, kw, msg)
            return None
        return result

    def status_arg(
        self, value: str | None, where: SourceLocation, kw: str, lo: int, hi: int
    ) -> int | None:
        try:
            status = parse_int(value or "", minimum=lo, maximum=hi)
        except ValueSyntaxError:
            self.error(
                where,
                kw,
                f"'{kw}' : status code must be an integer between {lo} and "
                f"{hi} (got '{value or ''}').",
            )
            return None
        return status


# a keyword's handler: reads one line of its section into the state, diagnosing as it goes
Handler = Callable[[ParserState, list[str], SourceLocation], None]
